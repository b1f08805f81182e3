"""The liquidation waterfall: takeover, fund fills, ADL policies, socialized loss,
conservation audit, profiles."""
