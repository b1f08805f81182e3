"""Reports and charts: output tables, markdown, plots, and the batch runs that write them
(risk_report, liquidation_report, settlement_batch; settlement outputs: settlement_*)."""
