"""The liquidation waterfall, a module per step, no cycles:

events (kinds, log, result) <- profile (rules, reserved accounts) <- fund (the fund's
account and fill plans) <- takeover (liquidation) ; adl_book, tranches (the bankruptcy
premium of this tick's takeovers) <- adl_queue, water_filling (ADL selections) <- adl
(applying them) ; quantiles (ADL lights) ; socialize (socialized loss) ; run (one tick, in
order, and the deficit identity) ; conservation (the auditor).
"""
