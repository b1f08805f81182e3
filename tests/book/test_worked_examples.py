"""The worked examples of docs/design.md (liquidation prices 90000, 110000, 34013.61) through
the whole book and kernels."""

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.waterfall.conservation import audit

USDT = 10**8  # money_decimals 8


def _table(mmr: str) -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "BTCUSDT",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": mmr, "max_leverage": 125}],
                }
            ]
        }
    )


def test_seed_liquidation_prices() -> None:
    # 10x long and short 1 BTC at 100000 with 10000 margin, mmr 0:
    # long LP = 100000 - 10000/1 = 90000, short LP = 100000 + 10000 = 110000.
    book = Book(_table("0"))
    for account, side in ((1, 1), (2, -1)):
        book.deposit(account, 10_000 * USDT)
        book.apply_fill(account, "BTCUSDT", side * 1000, 100_000_00)
    book.set_mark("BTCUSDT", 100_000_00)
    liquidation, bankruptcy = book.liquidation_prices()
    assert liquidation.tolist() == [90_000_00, 110_000_00]
    assert bankruptcy.tolist() == [90_000_00, 110_000_00]
    assert audit(book, closed=True).ok


def test_seed_three_x_long_mark_notional_convention() -> None:
    # 0.6 BTC long at 50000, 10000 margin, mmr 2% of the mark notional:
    # 10000 + 0.6 (m - 50000) = 0.02 * 0.6 m  ->  m = 20000 / 0.588 = 34013.6054...
    # rounded up to the 0.01 tick (a long's safe side): 34013.61.
    book = Book(_table("0.02"))
    book.deposit(1, 10_000 * USDT)
    book.apply_fill(1, "BTCUSDT", 600, 50_000_00)
    book.set_mark("BTCUSDT", 50_000_00)
    liquidation, _ = book.liquidation_prices()
    assert liquidation.tolist() == [34_013_61]
