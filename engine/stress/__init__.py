"""Stress: scenarios (scenario, scenario_model), the cascade simulator (simulator, impact,
simulation_result), reverse stress (reverse), synthetic books (synthetic), and a stress run
with its files (run)."""
