"""Market impact of the insurance fund's unwinds: where a sale fills and where it leaves the mark.

Each market of a scenario remembers the net volume Q (money units at the mark) the fund has
sold into it and not yet refilled (bought: negative). The mark sits at
path * (1 - I(Q)) with I(Q) = sign(Q) * k * (|Q| / D)^alpha (D the depth, I capped at
IMPACT_MAX), and Q decays with the market's half-life. Selling v more fills at the impact
averaged along that curve from Q to Q + v, (G(Q + v) - G(Q)) / v with G' = I, so one sale of
2v and two sales of v cost the same and a cascade's many small rounds do not compound a
concave law. The execution price is rounded against the fund: down for a sale, up for a
purchase.

Arithmetic is Decimal at 34 digits in a local context (software arithmetic, the same on
every machine); what leaves this module is integer ticks.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

from engine.book.book import Book
from engine.stress.scenario_model import MarketPath, ScenarioError

IMPACT_MAX = Decimal("0.99")  # one unwind moves a price by at most 99%
DECIMAL = Context(prec=34, rounding=ROUND_HALF_EVEN)
_TWO = Decimal(2)
_HALF = Decimal("0.5")
_THREE_HALVES = Decimal("1.5")


class Market:
    """A scenario market bound to the book: its instrument, its depth in money units and the
    net volume the fund has sold into it (bought: negative), decaying as depth refills."""

    def __init__(self, book: Book, path: MarketPath) -> None:
        table = book.instruments
        try:
            self.inst = table.symbol_index(path.symbol)
        except KeyError:
            raise ScenarioError(
                f"markets: {path.symbol!r} is not an instrument of the book"
            ) from None
        instrument = table.instruments[self.inst]
        self.path = path
        self.symbol = path.symbol
        self.tick = Fraction(instrument.tick_size)
        if path.start is not None:
            self.start = Fraction(path.start)
        elif book.mark_set[self.inst]:
            self.start = int(book.mark[self.inst]) * self.tick
        else:
            raise ScenarioError(f"markets ({path.symbol}).start: the book has no mark for it")
        depth = Fraction(path.depth) * 10**table.money_decimals
        self.depth = Decimal(max(1, round(depth)))
        self.k, self.alpha = path.impact.k, path.impact.alpha
        self.half_life = path.impact.recovery_half_life_s
        self.volume = Decimal(0)  # Q: money units sold net and not yet refilled
        self._decay: dict[int, Decimal] = {}

    def exogenous_ticks(self, t_s: int) -> Decimal:
        price = self.path.price_at(t_s, self.start) / self.tick
        return DECIMAL.divide(Decimal(price.numerator), Decimal(price.denominator))

    def mark_ticks(self, exogenous: Decimal) -> int:
        value = DECIMAL.multiply(exogenous, 1 - self.level(self.volume))
        return max(1, int(value.to_integral_value(ROUND_HALF_EVEN)))

    def decay(self, dt_s: int) -> None:
        if self.half_life and self.volume and dt_s > 0:
            factor = self._decay.get(dt_s)
            if factor is None:  # steps are evenly spaced: one power per run, not per step
                factor = DECIMAL.power(
                    _TWO, DECIMAL.divide(Decimal(-dt_s), Decimal(self.half_life))
                )
                self._decay[dt_s] = factor
            self.volume = DECIMAL.multiply(self.volume, factor)

    def level(self, volume: Decimal) -> Decimal:
        """I(Q) = sign(Q) k (|Q| / D)^alpha: how far the mark sits below (above) the path."""
        if not self.k or not volume:
            return Decimal(0)
        size = _power(DECIMAL.divide(abs(volume), self.depth), self.alpha)
        level = min(DECIMAL.multiply(self.k, size), IMPACT_MAX)
        return level if volume > 0 else -level

    def _area(self, volume: Decimal) -> Decimal:
        """G(Q) = k D (|Q| / D)^(alpha + 1) / (alpha + 1), so that G' = I."""
        size = _power(DECIMAL.divide(abs(volume), self.depth), self.alpha + 1)
        return DECIMAL.divide(DECIMAL.multiply(self.k * self.depth, size), self.alpha + 1)

    def unwind(self, mark: int, volume: int) -> int:
        """Sell `volume` money units (buy: negative) into the market; the execution price in
        ticks, and the market remembers the volume. The fill averages the impact over the
        curve from Q to Q + volume, relative to the path; the current mark already carries
        I(Q), so the fill is mark * (1 - average) / (1 - I(Q)), rounded against the fund."""
        before, after = self.volume, self.volume + volume
        self.volume = after
        if not self.k:
            return mark
        average = DECIMAL.divide(self._area(after) - self._area(before), Decimal(volume))
        average = max(min(average, IMPACT_MAX), -IMPACT_MAX)
        ratio = DECIMAL.divide(1 - average, 1 - self.level(before))
        price = DECIMAL.multiply(Decimal(mark), ratio)
        price = price.to_integral_value(ROUND_FLOOR if volume > 0 else ROUND_CEILING)
        return max(1, int(price))


def _power(x: Decimal, exponent: Decimal) -> Decimal:
    # The common exponents of the square-root law: sqrt and products are far cheaper than
    # the general power, and exact where the power is.
    if exponent == 1:
        return x
    if exponent == _HALF:
        return DECIMAL.sqrt(x)
    if exponent == _THREE_HALVES:
        return DECIMAL.multiply(x, DECIMAL.sqrt(x))
    if exponent == _TWO:
        return DECIMAL.multiply(x, x)
    return DECIMAL.power(x, exponent)


def unwind_plan(
    book: Book, holdings: list[tuple[int, int, int]], by_inst: dict[int, Market]
) -> tuple[dict[str, int], list[Market]]:
    """Execution price of each fund position, and the markets whose depth it consumed.

    An instrument outside the scenario has no depth: it unwinds at its mark, no impact.
    """
    prices: dict[str, int] = {}
    moved: list[Market] = []
    for inst, qty, _ in holdings:
        symbol = book.instruments.instruments[inst].symbol
        mark = int(book.mark[inst])
        market = by_inst.get(inst)
        if market is None:
            prices[symbol] = mark
            continue
        # Closing a long sells (positive volume), closing a short buys.
        volume = qty * int(book.mark_lot_value[inst])
        prices[symbol] = market.unwind(mark, volume)
        moved.append(market)
    return prices, moved
