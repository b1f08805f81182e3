"""FX brokers' margin rules (the profile's `[stop_out]` section): margin level and stop-out."""
