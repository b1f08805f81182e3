"""End-of-day settlement: variation margin, funding, fees, the waterfall, statements."""
