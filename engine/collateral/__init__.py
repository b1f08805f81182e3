"""Multi-asset collateral for derivatives accounts (the profile's `[collateral]` section).

An account's margin balance is its cash balance plus assets valued at price x (1 - haircut),
each (account, asset) value rounded down (engine.collateral.holdings). The value is added to
the balance before the sweep decides a status; a breached account's collateral is sold at
that haircut value before its takeover.
"""
