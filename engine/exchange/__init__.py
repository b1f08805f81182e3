"""Futures exchange conventions: what a CME- or CFFEX-style venue adds to the waterfall.

- margin per contract (engine.book.instruments: a tier's margin_per_contract, native in the
  sweep), and a runtime change of margin parameters (margin_change) that gives newly short
  accounts a margin call with a deadline (margin_calls) instead of liquidating them at once;
- daily price limits (price_limits): marks clamped to the previous settlement price +- the
  instrument's limit, and a limit-locked market, in which breached accounts are held with a
  margin call after the exchange's forced position reduction (forced_reduction);
- the forced-close order by account class, proprietary before brokerage (account_classes);
- the profile's `[exchange]` section selecting them (rules), and one tick that applies them
  around the liquidation waterfall (tick), shared by the batch commands and the service.
See docs/design.md, "Futures exchange conventions".
"""
