"""The insurance fund's flows in one waterfall, and the identity they reconcile to.

For one waterfall (money units; E_before / E_after the fund's equity at the mark before and
after it, F its floor, income = liquidation fees + takeover surplus paid to the fund + ADL
overshoot, the profit whole-position ADL takes beyond the shortfall, which the fund keeps):

- deficit_to_cover: what the waterfall cost the fund before anyone covered it: the payouts
  for bankrupt accounts plus the unwind's loss against the mark. From the fund's equity:
  E_before + income + ADL + socialized - E_after (nothing else moves the fund's equity at
  fixed marks; the simulator checks this against the payouts and the unwind fills).
- fund_drawdown: the part the fund paid itself, out of its equity above the floor and this
  waterfall's income: max(E_before, F) - max(E_after, F) + income.
- adl, socialized: what ADL and socialized loss moved to the fund.
- unallocated: the change in the fund's deficit below its floor, max(0, F - E_after) -
  max(0, F - E_before): the loss this waterfall left unallocated; negative when it covered
  a deficit left unallocated earlier. Summed over a run that starts at or above the floor,
  it is the unallocated loss at the end.

Identity, to the unit: deficit_to_cover = fund_drawdown + adl + socialized + unallocated. It
holds exactly when the waterfall reports as unallocated what is left of the fund's shortfall
(`unallocated_loss == max(0, F - E_after)`), which `fund_flows` asserts.

Every column of a stress run's flows (steps, totals, the reverse stress test's table, chart
and summary) is a sum of these, so the identity holds for each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.waterfall.events import WaterfallResult


@dataclass(frozen=True)
class FundFlows:
    """Money units; deficit_to_cover == fund_drawdown + adl + socialized + unallocated."""

    deficit_to_cover: int = 0
    fund_drawdown: int = 0
    adl: int = 0
    socialized: int = 0
    unallocated: int = 0

    def __add__(self, other: FundFlows) -> FundFlows:
        return FundFlows(
            self.deficit_to_cover + other.deficit_to_cover,
            self.fund_drawdown + other.fund_drawdown,
            self.adl + other.adl,
            self.socialized + other.socialized,
            self.unallocated + other.unallocated,
        )

    @property
    def reconciles(self) -> bool:
        covered = self.fund_drawdown + self.adl + self.socialized + self.unallocated
        return covered == self.deficit_to_cover


def fund_flows(result: WaterfallResult, floor: int) -> FundFlows:
    """The flows of one waterfall (see the module docstring), checked to reconcile."""
    before, after = result.fund_equity_before, result.fund_equity_after
    assert result.unallocated_loss == max(0, floor - after), (
        f"unallocated loss {result.unallocated_loss} is not the fund's shortfall"
        f" {max(0, floor - after)} (equity {after}, floor {floor})"
    )
    income = result.liquidation_fees + result.takeover_surplus + result.adl_overshoot
    covered = result.adl_amount + result.socialized_amount
    flows = FundFlows(
        deficit_to_cover=before + income + covered - after,
        fund_drawdown=max(before, floor) - max(after, floor) + income,
        adl=result.adl_amount,
        socialized=result.socialized_amount,
        unallocated=result.unallocated_loss - max(0, floor - before),
    )
    assert flows.reconciles, f"fund flows do not reconcile: {flows}"
    return flows
