"""Reports and charts: output tables, markdown, plots."""
