"""engine.io.settlement_inputs: prices, funding and fees files to exact integers, every
refusal located by file, row and column (instruments of tests/settlement/example.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.io.settlement_inputs import read_fees, read_funding, read_prices
from engine.settlement.funding import INTEREST_RATE_DEFAULT, FundingInput
from tests.settlement.example import example_instruments


def _file(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_prices_in_ticks(tmp_path: Path) -> None:
    # BTC-PERP tick 0.1: 101000.0 -> 1_010_000 ticks; ETH-0926 tick 0.01: 3100 -> 310_000.
    path = _file(tmp_path, "symbol,settlement_price\nETH-0926, 3100 \nBTC-PERP,1.01E+5\n")
    assert read_prices(path, example_instruments()) == {1: 310_000, 0: 1_010_000}


def test_parquet_float_prices_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "prices.parquet"
    pq.write_table(pa.table({"symbol": ["BTC-PERP"], "settlement_price": [101000.1]}), path)
    assert read_prices(path, example_instruments()) == {0: 1_010_001}


def test_funding_rates_and_index_prices(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "symbol,funding_rate,index_price,interest_rate,rate_cap\nBTC-PERP,,100900.5,0.0002,0.003\n",
    )
    # rate 0.0002 = 20_000 / 10^8, cap 0.003 = 300_000 / 10^8; index 100900.5 = 1_009_005 ticks
    assert read_funding(path, example_instruments()) == [
        FundingInput(0, rate=None, index_price=1_009_005, interest_rate=20_000, rate_cap=300_000)
    ]
    path = _file(tmp_path, "symbol,funding_rate\nBTC-PERP,-0.00012345\n")
    assert read_funding(path, example_instruments()) == [
        FundingInput(0, rate=-12_345, interest_rate=INTEREST_RATE_DEFAULT)
    ]


def test_fees_in_money_units(tmp_path: Path) -> None:
    fees = read_fees(_file(tmp_path, "account_id,fee\n1,12.3456\n2,-0.5\n"), example_instruments())
    assert fees.account_id.tolist() == [1, 2] and fees.amount.tolist() == [123_456, -5_000]


@pytest.mark.parametrize(
    ("reader", "text", "reason", "message"),
    [
        (read_prices, "symbol,settlement_price\nBTC-PERP,101000.05\n", "invalid_value",
         "row 1, column 'settlement_price': 101000.05 is not a multiple of 0.1"),
        (read_prices, "symbol,settlement_price\nBTC-PERP,0\n", "invalid_price",
         "row 1, column 'settlement_price': must be positive"),
        (read_prices, "symbol,settlement_price\nBTC-PERP,\n", "missing_value",
         "row 1, column 'settlement_price': missing value"),
        (read_prices, "symbol,settlement_price\nBTC-PERP,1\nBTC-PERP,2\n", "duplicate_symbol",
         "row 2, column 'symbol': BTC-PERP repeats row 1"),
        (read_prices, "symbol,settlement_price\nDOGE,1\n", "unknown_symbol",
         "row 1, column 'symbol': unknown symbol 'DOGE'"),
        (read_prices, "symbol,price\nBTC-PERP,1\n", "missing_column",
         "missing column 'settlement_price'"),
        (read_funding, "symbol\nBTC-PERP\n", "missing_column",
         "needs a funding_rate or an index_price column"),
        (read_funding, "symbol,funding_rate,index_price\nBTC-PERP,,\n", "missing_value",
         "row 1, column 'funding_rate': needs a funding_rate or an index_price"),
        (read_funding, "symbol,funding_rate\nBTC-PERP,0.000000001\n", "invalid_value",
         "row 1, column 'funding_rate': 1E-9 is not a multiple of 1E-8"),
        (read_funding, "symbol,index_price,rate_cap\nBTC-PERP,100900,x\n", "invalid_value",
         "row 1, column 'rate_cap': 'x' is not a decimal number"),
        (read_fees, "account_id,fee\n1,0.00001\n", "off_grid",
         "row 1, column 'fee': 0.00001 is not a multiple of the money unit 0.0001"),
        (read_fees, "account_id,fee\nx,1\n", "invalid_value",
         "row 1, column 'account_id': 'x' is not an integer"),
    ],
)  # fmt: skip
def test_refusals_name_file_row_and_column(
    tmp_path: Path,
    reader: Callable[[Path, InstrumentTable], object],
    text: str,
    reason: str,
    message: str,
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(Rejected) as excinfo:
        reader(path, example_instruments())
    assert excinfo.value.reason == reason
    assert excinfo.value.detail.startswith(f"{path}: ") and message in excinfo.value.detail
