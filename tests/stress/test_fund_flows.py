"""engine.stress.fund_flows: one waterfall's fund flows reconcile to the unit."""

from __future__ import annotations

from engine.stress.fund_flows import fund_flows
from engine.waterfall.run import run_waterfall
from tests.waterfall.test_safety_examples import bitmex_book


def test_whole_position_adl_overshoot_is_fund_income_in_the_flows() -> None:
    # BitMEX's example in whole mode (tests/waterfall/test_safety_examples.py): the fund's 700
    # pays the 1000 deficit, ADL takes 2's whole 10 lots at 650 for 500, 200 beyond the 300
    # short: the fund keeps the 200 overshoot as income (like a fee). The stress flows must
    # still say the deficit the fund took on is the 1000 payout: E_before 700 + income 200
    # + ADL 300 - E_after 200 = 1000 = fund drawdown 700 + ADL 300.
    book, profile = bitmex_book("whole", 700)
    result = run_waterfall(book, profile)
    assert result.adl_overshoot == 2 * 10**10
    flows = fund_flows(result, 0)
    assert flows.deficit_to_cover == result.insurance_paid == 10 * 10**10
    assert (flows.fund_drawdown, flows.adl, flows.unallocated) == (7 * 10**10, 3 * 10**10, 0)
