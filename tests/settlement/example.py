"""The worked example of the settlement tests: two instruments, three accounts.

Grid (money_decimals 4, so 1 USDT = 10^4 units):
- BTC-PERP, perpetual: tick 0.1, lot 0.001 BTC -> tick_value 0.1 x 0.001 x 10^4 = 1 unit;
- ETH-0926, dated:     tick 0.01, lot 0.01 ETH -> tick_value 0.01 x 0.01 x 10^4 = 1 unit;
so a position's value in units is lots x ticks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.settlement.fees import FeesInput
from engine.settlement.funding import FundingInput
from engine.waterfall.profile import Profile

FUND = Profile.shipped().fund_account_id
TIER = [{"max_notional": None, "mmr": "0.005", "max_leverage": 100}]


def example_instruments() -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "money_decimals": 4,
            "instruments": [
                {"symbol": "BTC-PERP", "tick_size": "0.1", "lot_size": "0.001", "tiers": TIER},
                {
                    "symbol": "ETH-0926",
                    "kind": "dated",
                    "tick_size": "0.01",
                    "lot_size": "0.01",
                    "tiers": TIER,
                },
            ],
        }
    )


def example_book() -> Book:
    """Accounts 1, 2, 3 with 10000, 5000 and 250 USDT.

    BTC-PERP at entry 100000.0 (1_000_000 ticks): 1 long 1.000 (1000 lots), 2 short 0.600,
    3 short 0.400; costs 1000 x 1_000_000 = 1e9, -6e8, -4e8 units.
    ETH-0926: 1 short 5.00 (500 lots) at 3000.00, 2 long 3.00 at 2990.00, 3 long 2.00 at
    3015.00; costs -500 x 300_000 = -150_000_000, 300 x 299_000 = 89_700_000,
    200 x 301_500 = 60_300_000 (they sum to 0: the trades were against each other).
    """
    return Book.from_arrays(
        example_instruments(),
        np.array([1, 2, 3]),
        np.array([100_000_000, 50_000_000, 2_500_000]),
        np.array([1, 2, 3, 1, 2, 3]),
        np.array([0, 0, 0, 1, 1, 1]),
        np.array([1000, -600, -400, -500, 300, 200]),
        np.array([1_000_000_000, -600_000_000, -400_000_000, -150_000_000, 89_700_000, 60_300_000]),
    )


EXAMPLE_PRICES = {0: 1_010_000, 1: 310_000}  # BTC 101000.0, ETH 3100.00
EXAMPLE_FUNDING = [FundingInput(0, rate=12_345)]  # 0.012345% for the interval
EXAMPLE_FEES = FeesInput(np.array([1, 2]), np.array([123_456, -5_000]))  # 12.3456; -0.5 rebate


# ----- the same example as input files (CSV text) --------------------------------------------
INSTRUMENTS = """{"money_decimals": 4, "instruments": [
 {"symbol": "BTC-PERP", "tick_size": "0.1", "lot_size": "0.001",
  "tiers": [{"max_notional": null, "mmr": "0.005", "max_leverage": 100}]},
 {"symbol": "ETH-0926", "kind": "dated", "tick_size": "0.01", "lot_size": "0.01",
  "tiers": [{"max_notional": null, "mmr": "0.005", "max_leverage": 100}]}]}
"""
ACCOUNTS = "account_id,balance\n1,10000\n2,5000\n3,250\n"
POSITIONS = (
    "account_id,symbol,qty,entry_price\n1,BTC-PERP,1,100000\n2,BTC-PERP,-0.6,100000\n"
    "3,BTC-PERP,-0.4,100000\n1,ETH-0926,-5,3000\n2,ETH-0926,3,2990\n3,ETH-0926,2,3015\n"
)
PRICES = "symbol,settlement_price\nBTC-PERP,101000\nETH-0926,3100\n"
FUNDING = "symbol,funding_rate\nBTC-PERP,0.00012345\n"
FEES = "account_id,fee\n1,12.3456\n2,-0.5\n"


def write_example_files(directory: Path, prices: str = PRICES) -> Path:
    """instruments.json, accounts.csv, positions.csv, prices.csv, funding.csv, fees.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("instruments.json", INSTRUMENTS),
        ("accounts.csv", ACCOUNTS),
        ("positions.csv", POSITIONS),
        ("prices.csv", prices),
        ("funding.csv", FUNDING),
        ("fees.csv", FEES),
    ):
        (directory / name).write_text(text)
    return directory
