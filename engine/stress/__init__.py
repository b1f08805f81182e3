"""Stress: scenarios, the cascade simulator, reverse stress, synthetic books."""
