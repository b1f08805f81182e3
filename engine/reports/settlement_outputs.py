"""Settlement outputs: statements, ledger, summary, charts and the risk officer's report.

- `statements.parquet`: one row per account. Money columns are Parquet decimals at the
  book's money scale (exact, and numbers to polars and duckdb); margin_ratio is a float
  (maintenance margin / equity, for display; +inf where equity <= 0 with margin due).
  closing_balance = opening_balance + realized_pnl + funding - fees - liquidation_losses.
- `ledger.parquet`: every posting of the run (not the opening postings that carried the
  balances in). Negative account ids are house accounts (names in summary.json); `symbol`
  is set on variation-margin and funding postings.
- `summary.json`: totals per instrument, the insurance fund's movement, the house accounts,
  the conservation checks; money as exact decimal strings.
- `report.md` with PNG charts: rounded for reading (0.01 of the currency); the exact
  figures are in the two files above.
- `report.html`: the same report as one self-contained page (charts embedded), opening with
  the run's time, the engine's version, the profile and every input file's sha256
  (engine.reports.html_report).

Tables: settlement_tables; summary and shared selections: settlement_summary; charts:
settlement_charts; report: settlement_markdown. This module writes them all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from engine.book.book import Book
from engine.book.fixed import RATE_SCALE
from engine.reports.html_report import RunInfo, document, markdown_html
from engine.reports.run_info import input_digest, with_run_info
from engine.reports.run_info import run_info as metadata_of_run
from engine.reports.settlement_charts import (
    CHART_INSTRUMENTS,
    CHART_LOSERS,
    CHART_MARGIN,
    chart_instruments,
    chart_losers,
    chart_margin_ratio,
)
from engine.reports.settlement_markdown import INSTRUMENTS_IN_REPORT, report_markdown
from engine.reports.settlement_summary import (
    CURRENCY_DEFAULT,
    house_book,
    largest_losers,
    summary_dict,
    top_instruments,
)
from engine.reports.settlement_tables import ledger_table, statements_table
from engine.settlement.results import SettlementResult
from engine.waterfall.profile import Profile

INSTRUMENTS_IN_CHART = 15
STATEMENTS, LEDGER, SUMMARY, REPORT, REPORT_HTML = (
    "statements.parquet",
    "ledger.parquet",
    "summary.json",
    "report.md",
    "report.html",
)


def write_outputs(
    out: Path,
    book: Book,
    result: SettlementResult,
    profile: Profile,
    *,
    source: dict[str, str],
    settled_dates: Sequence[str],
    currency: str = CURRENCY_DEFAULT,
) -> list[Path]:
    """Every output but the snapshot, into `out` (an existing, empty directory). The run's
    metadata (engine.reports.run_info: engine version, profile, each input file's sha256,
    the command line) goes into both Parquet schemas, summary.json (`run`) and report.html."""
    metadata = metadata_of_run(
        profile=profile.name,
        inputs={name: input_digest(Path(file)) for name, file in source.items()},
    )
    paths = []
    path = out / STATEMENTS
    pq.write_table(with_run_info(statements_table(book, result), metadata), path)
    paths.append(path)
    path = out / LEDGER
    pq.write_table(with_run_info(ledger_table(book, result), metadata), path)
    paths.append(path)
    summary = summary_dict(
        book, result, profile, source=source, settled_dates=settled_dates, currency=currency
    )
    summary["run"] = metadata
    warning_pct = 100.0 * book.warning_rate / RATE_SCALE
    chart_margin_ratio(out / CHART_MARGIN, result, warning_pct, house_book(book, profile))
    chosen = top_instruments(result, INSTRUMENTS_IN_CHART)
    chart_instruments(out / CHART_INSTRUMENTS, book, result, currency, chosen)
    losers = largest_losers(book, result)
    chart_losers(out / CHART_LOSERS, book, result, losers, currency)
    paths += [out / CHART_MARGIN, out / CHART_INSTRUMENTS, out / CHART_LOSERS]
    report_chosen = top_instruments(result, INSTRUMENTS_IN_REPORT)
    markdown = report_markdown(book, result, summary, report_chosen, losers)
    path = out / REPORT
    path.write_text(markdown)
    paths.append(path)
    info = RunInfo.from_metadata(metadata)
    title = f"End-of-day settlement — {result.date}"
    path = out / REPORT_HTML
    path.write_text(document(title, info, [markdown_html(markdown, out)]))
    paths.append(path)
    summary["outputs"] = sorted(p.name for p in paths) + [SUMMARY]
    path = out / SUMMARY
    path.write_text(json.dumps(summary, indent=2) + "\n")
    paths.append(path)
    return paths
