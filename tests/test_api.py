"""The Python API: `import engine` is cheap and gives the documented surface; tables in
memory are books as files are; results are readable Arrow tables; docs/api.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import engine
from engine import api
from engine.cli.liquidate import run as liquidate_cli
from tests.cli.test_liquidate_cli import _args, _inputs

DATA = Path(engine.__file__).parent / "data"
DOCS = Path(__file__).parent.parent / "docs" / "api.md"
SAMPLE = {
    "accounts": DATA / "sample_accounts.csv",
    "positions": DATA / "sample_positions.csv",
    "marks": DATA / "sample_marks.csv",
}


def test_import_engine_is_cheap_and_lazy() -> None:
    code = (
        "import sys, engine; "
        "assert 'pyarrow' not in sys.modules and 'engine.api' not in sys.modules; "
        "engine.load_book; assert 'engine.api' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert engine.load_book is api.load_book and engine.stress_test is api.stress_test
    assert set(api.__all__) <= set(dir(engine))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        engine.nothing  # noqa: B018


def _csv(path: Path) -> pa.Table:
    # As text, the way the file reader sees a CSV: the same exact decimals.
    names = pcsv.read_csv(path).column_names
    options = pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True, null_values=[""]
    )
    return pcsv.read_csv(path, convert_options=options)


def test_tables_and_dataframes_make_the_same_book_as_files() -> None:
    from_files = engine.sweep(engine.load_book(**SAMPLE))
    tables = {name: _csv(path) for name, path in SAMPLE.items()}
    from_tables = engine.sweep(engine.load_book(**tables))
    frames = {name: pl.from_arrow(t) for name, t in tables.items()}
    from_frames = engine.sweep(engine.load_book(**frames))  # via __arrow_c_stream__
    for result in (from_tables, from_frames):
        assert result.accounts.equals(from_files.accounts)
        assert result.positions.equals(from_files.positions)
    assert from_files.accounts.schema.field("equity").type == pa.decimal128(19, 8)


def test_a_refusal_names_the_table_row_and_column() -> None:
    accounts = pa.table({"account_id": [1, 2, 1], "balance": ["1", "2", "3"]})
    with pytest.raises(engine.Rejected) as refused:
        engine.load_book(accounts, SAMPLE["positions"], SAMPLE["marks"])
    assert refused.value.reason == "duplicate_account"
    assert refused.value.detail.startswith("accounts table: row 3, column 'account_id'")
    with pytest.raises(TypeError, match="__arrow_c_stream__"):
        engine.load_book([1, 2], SAMPLE["positions"], SAMPLE["marks"])


def test_liquidation_prices_are_the_risk_reports() -> None:
    book = engine.load_book(**SAMPLE)
    prices = engine.liquidation_prices(book)
    assert prices.column_names == [
        "account_id",
        "symbol",
        "qty",
        "mark_price",
        "liquidation_price",
        "bankruptcy_price",
    ]
    row = prices.filter(pa.compute.equal(prices["account_id"], 1003)).to_pylist()[0]
    assert row["liquidation_price"] == Decimal("59949.8")  # worked by hand in test_cli


def test_liquidate_returns_what_the_cli_writes(tmp_path: Path) -> None:
    assert liquidate_cli(_args(tmp_path, "--insurance-fund=8750")).status == 0
    (tmp_path / "api").mkdir()
    inputs = _inputs(tmp_path / "api")
    book = engine.load_book(
        inputs["accounts"], inputs["positions"], inputs["marks"], instruments=inputs["instruments"]
    )
    tick = engine.liquidate(book, insurance_fund="8750")
    for name in ("events", "accounts", "positions", "insurance"):
        written = pq.read_table(tmp_path / "out" / f"{name}.parquet")
        assert getattr(tick, name).equals(written.replace_schema_metadata(None)), name
    assert tick.events["kind"].to_pylist() == ["liquidation", "insurance_payout", "adl", "adl"]


def test_docs_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) >= 5
    exec(compile("\n".join(blocks), str(DOCS), "exec"), {"__name__": "docs_api"})


def test_the_lazy_names_are_the_api() -> None:
    # engine/__init__.py lists the API's names without importing it (import stays cheap);
    # that list and engine.api.__all__ must be the same set.
    import engine
    from engine import api

    assert frozenset(api.__all__) == engine._API
    assert all(hasattr(api, name) for name in api.__all__)
