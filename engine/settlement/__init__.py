"""End-of-day settlement: mark to market, funding, fees, then one sweep and the waterfall.

The run (run.settle), in order, every money movement a ledger posting through the book:

1. Validate and plan (plan.py; nothing changes yet): every instrument with an open position
   has a settlement price; every amount fits int64 with room; every balance stays in range.
2. Settlement prices become the marks.
3. Dated futures (marking.py): the variation margin `q x price x tick_value - cost` of each
   position is realized (CLEARING pays the holder) and the cost basis is reset to
   `q x price x tick_value`. Perpetuals keep their cost basis.
4. Funding (funding.py), perpetuals only: longs pay shorts when the rate is positive,
   shorts pay longs when it is negative, through the FUNDING_POOL house account, which keeps
   the rounding remainder.
5. Accrued trading fees (fees.py; signed: a negative fee is a rebate) move to or from FEES.
6. One risk sweep and the waterfall (engine.waterfall) at the settlement prices. Accounts
   left negative (debt mode, or a fund that could not be made whole) are listed.

Every account's statement (results.py) satisfies, to the unit:
closing_balance = opening_balance + realized_pnl + funding - fees - liquidation_losses.

Modules: run (the run), plan (validation before any change), marking, funding, fees,
postings (ledger postings and balance moves), sums (exact per-account and per-instrument
sums), results (what the run returns), dates (which dates may be settled). Bounds
come from engine.book.limits.
"""
