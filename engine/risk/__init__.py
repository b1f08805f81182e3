"""Risk: the margin sweep, the incremental sweep, liquidation prices."""
