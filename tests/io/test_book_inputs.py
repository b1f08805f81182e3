"""engine.io.book_inputs: CSV / Parquet in, exact fixed-point columns out, every refusal located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.instruments import InstrumentTable
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.io.book_inputs import (
    BookInputs,
    read_accounts,
    read_book_inputs,
    read_marks,
    read_positions,
)
from engine.reports.risk_tables import exact_strings, risk_tables

DATA = Path(engine.__file__).parent / "data"
USDT = 10**8

ACCOUNTS = "account_id,balance\n1,1000\n2,250.5\n3,0.00000001\n"
POSITIONS = (
    "account_id,symbol,qty,entry_price\n"
    "1,BTCUSDT,0.5,59000.5\n"
    "1,ETHUSDT,-12.345,3100.25\n"
    "2,SOLUSDT,1000,140.123\n"
    "3,DOGEUSDT,-20000,0.142\n"
)
MARKS = "symbol,mark_price\nBTCUSDT,60000.0\nETHUSDT,3000.00\nSOLUSDT,150.000\nDOGEUSDT,0.15\n"


@pytest.fixture(scope="module")
def instruments() -> InstrumentTable:
    return InstrumentTable.load(DATA / "instruments.json")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, instruments: InstrumentTable, **files: str) -> BookInputs:
    texts = {"accounts": ACCOUNTS, "positions": POSITIONS, "marks": MARKS} | files
    paths = {k: write(tmp_path, f"{k}.csv", v) for k, v in texts.items()}
    return read_book_inputs(instruments, paths["accounts"], paths["positions"], paths["marks"])


def test_csv_text_is_exact(tmp_path: Path, instruments: InstrumentTable) -> None:
    inputs = load(tmp_path, instruments)
    assert inputs.accounts.account_id.tolist() == [1, 2, 3]
    assert inputs.accounts.balance.tolist() == [1000 * USDT, 250_50000000, 1]
    p = inputs.positions
    assert p.instrument.tolist() == [0, 1, 2, 3]
    assert p.qty.tolist() == [500, -12345, 10000, -20000]  # lots: 0.001, 0.001, 0.1, 1
    assert p.entry_price.tolist() == [590005, 310025, 140123, 14200]  # ticks
    # cost = qty lots x entry ticks x tick_value (10000, 1000, 10000, 1000 money units)
    assert p.cost.tolist() == [
        500 * 590005 * 10000,
        -12345 * 310025 * 1000,
        10000 * 140123 * 10000,
        -20000 * 14200 * 1000,
    ]
    assert p.leverage.tolist() == [20] * 4
    assert inputs.marks.price.tolist() == [600000, 300000, 150000, 15000]


def test_parquet_floats_give_the_same_book(tmp_path: Path, instruments: InstrumentTable) -> None:
    (tmp_path / "csv").mkdir()
    from_csv = load(tmp_path / "csv", instruments)
    # The same values as float64 columns: 0.1-style decimals have no exact binary form, so
    # this only works through the shortest round-trip text.
    pq.write_table(
        pa.table({"account_id": [1, 2, 3], "balance": [1000.0, 250.5, 0.00000001]}),
        tmp_path / "accounts.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "account_id": pa.array([1, 1, 2, 3], pa.int32()),
                "symbol": pa.array(
                    ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
                ).dictionary_encode(),
                "qty": [0.5, -12.345, 1000.0, -20000.0],
                "entry_price": [59000.5, 3100.25, 140.123, 0.142],
            }
        ),
        tmp_path / "positions.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "symbol": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"],
                "mark_price": pa.array(["60000.0", "3000", "150", "0.15"]).cast(
                    pa.decimal128(10, 5)
                ),
            }
        ),
        tmp_path / "marks.pq",
    )
    from_parquet = read_book_inputs(
        instruments,
        tmp_path / "accounts.parquet",
        tmp_path / "positions.parquet",
        tmp_path / "marks.pq",
    )
    for part in ("accounts", "positions", "marks"):
        a, b = getattr(from_csv, part), getattr(from_parquet, part)
        for name in a.__dataclass_fields__:
            if name != "path":
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_leverage_column_and_default(tmp_path: Path, instruments: InstrumentTable) -> None:
    positions = (
        "account_id,symbol,qty,entry_price,leverage\n1,BTCUSDT,1,60000,5\n2,BTCUSDT,1,60000,\n"
    )
    p = read_positions(write(tmp_path, "p.csv", positions), instruments, default_leverage=7)
    assert p.leverage.tolist() == [5, 7]


def test_exponents_and_zeros(tmp_path: Path, instruments: InstrumentTable) -> None:
    text = "account_id,balance\n1,25e-0001\n2,0e-99\n3,-1.5E+3\n4,-0\n5,.5\n6,7.\n"
    accounts = read_accounts(write(tmp_path, "a.csv", text), instruments)
    assert accounts.balance.tolist() == [250_000_000, 0, -1500 * USDT, 0, USDT // 2, 7 * USDT]


def test_blanks_around_values_are_ignored(tmp_path: Path, instruments: InstrumentTable) -> None:
    accounts = read_accounts(
        write(tmp_path, "a.csv", "account_id,balance\n 7 , 1.5 \n"), instruments
    )
    assert accounts.account_id.tolist() == [7]
    assert accounts.balance.tolist() == [150_000_000]


BAD = [
    # (file, its text, the words the message must hold)
    (
        "positions",
        POSITIONS.replace("59000.5", "59000.55"),
        ["row 1", "'entry_price'", "59000.55 is not a multiple of the BTCUSDT tick size 0.1"],
    ),
    ("marks", MARKS.replace("60000.0", "60000.05"), ["row 1", "'mark_price'", "not a multiple"]),
    (
        "positions",
        POSITIONS.replace("-12.345", "-12.3455"),
        ["row 2", "'qty'", "ETHUSDT lot size 0.001"],
    ),
    (
        "positions",
        POSITIONS.replace("1000,140", "10.05,140"),
        ["row 3", "'qty'", "SOLUSDT lot size 0.1"],
    ),
    (
        "accounts",
        ACCOUNTS.replace("250.5", "250.5x"),
        ["row 2", "'balance'", "'250.5x' is not a decimal number"],
    ),
    ("accounts", ACCOUNTS.replace("250.5", "1e-9"), ["row 2", "'balance'", "money unit"]),
    ("accounts", ACCOUNTS.replace("250.5", "1e30"), ["row 2", "'balance'", "out of range"]),
    # pyarrow's decimal cast gets these wrong or crashes on them: refused before it.
    ("accounts", ACCOUNTS.replace("250.5", "1e999999999"), ["row 2", "exponent out of range"]),
    ("accounts", ACCOUNTS.replace("250.5", "1e-9999999"), ["row 2", "exponent out of range"]),
    ("accounts", ACCOUNTS.replace("250.5", "1e-99"), ["row 2", "not a multiple"]),
    ("accounts", ACCOUNTS.replace("250.5", "9" * 30), ["row 2", "out of range"]),
    ("accounts", ACCOUNTS.replace("250.5", "1" + "0" * 38), ["row 2", "longer than 38"]),
    ("accounts", ACCOUNTS.replace("250.5", "1_000"), ["row 2", "not a decimal number"]),
    ("marks", MARKS.replace("150.000", "NaN"), ["row 3", "'mark_price'", "'NaN' is not finite"]),
    ("positions", POSITIONS.replace("140.123", ""), ["row 3", "'entry_price'", "missing value"]),
    ("positions", POSITIONS.replace("SOLUSDT", ""), ["row 3", "'symbol'", "missing value"]),
    (
        "positions",
        POSITIONS.replace("ETHUSDT", "XRPUSDT"),
        ["row 2", "'symbol'", "unknown symbol 'XRPUSDT'"],
    ),
    ("marks", MARKS.replace("DOGEUSDT", "XRPUSDT"), ["row 4", "'symbol'", "unknown symbol"]),
    ("marks", MARKS + "ETHUSDT,3001\n", ["row 5", "'symbol'", "ETHUSDT repeats row 2"]),
    (
        "positions",
        POSITIONS.replace("3,DOGE", "4,DOGE"),
        ["positions.csv: row 4", "account 4 is not in"],
    ),
    ("accounts", ACCOUNTS + "2,5\n", ["accounts.csv: row 4", "account 2 repeats row 2"]),
    (
        "accounts",
        ACCOUNTS.replace("2,250.5", "2.0,250.5"),
        ["row 2", "'account_id'", "'2.0' is not an integer"],
    ),
    ("accounts", ACCOUNTS.replace("2,250.5", "-2,250.5"), ["row 2", "account ids must be >= 0"]),
    ("accounts", "account_id,bal\n1,5\n", ["accounts.csv: missing column 'balance'"]),
    ("positions", POSITIONS.replace("entry_price", "price"), ["missing column 'entry_price'"]),
    (
        "marks",
        "symbol,mark_price\nBTCUSDT,60000\nETHUSDT,3000\nSOLUSDT,150\n",
        ["positions.csv: row 4", "no mark price for DOGEUSDT"],
    ),
    ("positions", POSITIONS.replace("0.5,", "0,"), ["row 1", "'qty'", "must not be zero"]),
    (
        "positions",
        POSITIONS.replace("0.142", "-0.142"),
        ["row 4", "'entry_price'", "must be positive"],
    ),
    (
        "positions",
        POSITIONS + "1,BTCUSDT,1,60000\n",
        ["positions.csv: row 5", "account 1 already holds BTCUSDT at row 1"],
    ),
    (
        "positions",
        "account_id,symbol,qty,entry_price,leverage\n1,BTCUSDT,1,60000,0\n",
        ["row 1", "'leverage'", "1..10000"],
    ),
    ("marks", MARKS.replace("3000.00", "-1"), ["row 2", "must be positive"]),
    ("marks", MARKS.replace("3000.00", "0"), ["row 2", "must be positive"]),
]


@pytest.mark.parametrize(("part", "text", "words"), BAD, ids=[" ".join(b[2][-1:]) for b in BAD])
def test_rejections_name_file_row_and_column(
    tmp_path: Path, instruments: InstrumentTable, part: str, text: str, words: list[str]
) -> None:
    with pytest.raises(Rejected) as caught:
        load(tmp_path, instruments, **{part: text})
    message = str(caught.value)
    assert f"{part}.csv" in message
    for word in words:
        assert word in message


def test_the_first_bad_row_is_named(tmp_path: Path, instruments: InstrumentTable) -> None:
    # Row 2 is off the grid (casts fine at the finest scale), row 3 does not parse at all.
    text = "symbol,mark_price\nBTCUSDT,1\nETHUSDT,0.005\nSOLUSDT,abc\nDOGEUSDT,\n"
    with pytest.raises(Rejected, match=r"row 2, column 'mark_price': 0.005 is not a multiple"):
        read_marks(write(tmp_path, "m.csv", text), instruments)


def test_parquet_nan_and_inf_are_refused(tmp_path: Path, instruments: InstrumentTable) -> None:
    for bad, word in ((float("nan"), "'nan' is not finite"), (float("inf"), "'inf' is not finite")):
        path = tmp_path / "marks.parquet"
        pq.write_table(pa.table({"symbol": ["BTCUSDT", "ETHUSDT"], "mark_price": [1.0, bad]}), path)
        with pytest.raises(Rejected, match=f"marks.parquet: row 2, column 'mark_price': {word}"):
            read_marks(path, instruments)


def test_float_account_ids_are_refused(tmp_path: Path, instruments: InstrumentTable) -> None:
    path = tmp_path / "accounts.parquet"
    pq.write_table(pa.table({"account_id": [1.0], "balance": [1.0]}), path)
    with pytest.raises(Rejected, match="'account_id': expected integers, got double"):
        read_accounts(path, instruments)


def test_files_that_cannot_be_read(tmp_path: Path, instruments: InstrumentTable) -> None:
    with pytest.raises(Rejected, match="nope.csv: no such file"):
        read_accounts(tmp_path / "nope.csv", instruments)
    with pytest.raises(Rejected, match="unknown file type"):
        read_accounts(write(tmp_path, "a.txt", ACCOUNTS), instruments)
    with pytest.raises(Rejected, match="cannot read as parquet"):
        read_accounts(write(tmp_path, "a.parquet", ACCOUNTS), instruments)


def test_exact_strings_match_format_units() -> None:
    rng = np.random.default_rng(3)
    units = np.concatenate(
        [
            rng.integers(-(10**12), 10**12, 2000),
            np.array([0, 1, -1, 9, -10, 2**63 - 1, -(2**63), 10**8, -(10**8)], dtype=np.int64),
        ]
    )
    for decimals in (0, 1, 3, 8, 12):
        expected = [format_units(int(u), decimals) for u in units]
        assert exact_strings(units, decimals).to_pylist() == expected
    per_row = rng.integers(0, 9, len(units))
    expected = [format_units(int(u), int(d)) for u, d in zip(units, per_row, strict=True)]
    assert exact_strings(units, per_row).to_pylist() == expected


def test_entry_price_between_ticks_is_rounded_half_even(instruments: InstrumentTable) -> None:
    book = Book(instruments)
    book.deposit(1, 10**6 * USDT)
    book.apply_fill(1, "BTCUSDT", 1, 1000)  # 0.001 BTC at 100.0
    book.apply_fill(1, "BTCUSDT", 2, 1001)  # 0.002 BTC at 100.1
    book.apply_fill(1, "ETHUSDT", 1, 10000)  # 0.001 ETH at 100.00
    book.apply_fill(1, "ETHUSDT", 1, 10001)  # 0.001 ETH at 100.01
    book.set_mark("BTCUSDT", 1000)
    book.set_mark("ETHUSDT", 10000)
    _, positions = risk_tables(book)
    # One column, at the largest tick's places among the instruments (5) + 4 = 9:
    # BTC: (100.0 + 2 x 100.1) / 3 = 100.0666..., rounded half-even: 100.066666667
    # ETH: (100.00 + 100.01) / 2 = 100.005 exactly: 100.005000000
    entry = positions.column("entry_price")
    assert entry.type.scale == 9
    assert [str(v) for v in entry.to_pylist()] == ["100.066666667", "100.005000000"]


def test_sparse_account_ids(tmp_path: Path, instruments: InstrumentTable) -> None:
    # Ids far above the count take the binary-search path instead of a direct table.
    big = 10**15
    accounts = f"account_id,balance\n{big + 7},1\n{big},2\n"
    positions = "account_id,symbol,qty,entry_price\n{},BTCUSDT,1,60000\n{},ETHUSDT,1,3000\n"
    inputs = load(
        tmp_path, instruments, accounts=accounts, positions=positions.format(big, big + 7)
    )
    assert inputs.positions.account_id.tolist() == [big, big + 7]
    with pytest.raises(Rejected, match=f"row 2, column 'account_id': account {big + 1} is not in"):
        load(tmp_path, instruments, accounts=accounts, positions=positions.format(big, big + 1))


def test_house_account_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(f"account_id,balance\n1,10\n{RESERVED_ACCOUNT_BASE},5\n")
    with pytest.raises(Rejected, match="row 2"):
        read_accounts(path, InstrumentTable.load("engine/data/instruments.json"))


def test_header_only_positions_and_insane_marks_are_refused(
    tmp_path: Path, instruments: InstrumentTable
) -> None:
    header_only = "account_id,symbol,qty,entry_price\n"
    with pytest.raises(Rejected, match=r"positions.csv: no positions") as caught:
        load(tmp_path, instruments, positions=header_only)
    assert caught.value.reason == "invalid_input"
    # BTCUSDT's only entry is 59000.5: a mark of 0.1 is below 59000.5 / 10, refused; 5900.1
    # (just above the tenth) and 590005 (ten times) are let through.
    for mark, ok in (("0.1", False), ("5900.0", False), ("5900.1", True), ("590005.0", True)):
        marks = MARKS.replace("60000.0", mark)
        if ok:
            load(tmp_path, instruments, marks=marks)
            continue
        with pytest.raises(Rejected, match=r"marks.csv: row 1, column 'mark_price'") as caught:
            load(tmp_path, instruments, marks=marks)
        assert caught.value.reason == "price_out_of_band"
    # An instrument nobody holds is only checked for sign and grid.
    positions = POSITIONS.replace("3,DOGEUSDT,-20000,0.142\n", "")
    load(tmp_path, instruments, positions=positions, marks=MARKS.replace("0.15", "1000"))
