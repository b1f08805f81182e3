"""Stress: scenarios (scenario, scenario_model), the cascade simulator (simulator, impact,
simulation_result), reverse stress (reverse), synthetic books (synthetic), fund flows
(fund_flows). A stress run with its files is engine.reports.stress_run."""
