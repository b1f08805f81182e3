"""report.html: one self-contained page per settlement and per stress run, saying when it ran,
with which engine, profile and inputs (each with its sha256)."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from engine.reports.html_report import markdown_html
from engine.reports.run_info import engine_version
from engine.reports.settlement_batch import SettlementJob, run_settlement_batch
from engine.reports.stress_run import execute
from engine.stress.scenario import load_scenario
from tests.settlement.example import write_example_files

EXTERNAL = re.compile(r"""(https?:|ftp:|//[a-z0-9.-]+\.[a-z]{2,}|url\(|@import)""", re.I)
SOURCES = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.I)


def assert_self_contained(page: str) -> None:
    head = page.split("<body>", 1)[0]
    assert "<link" not in head and "<script" not in page
    assert not EXTERNAL.search(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page))
    for source in SOURCES.findall(page):
        assert source.startswith("data:image/png;base64,"), source[:60]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_settlement_report_html_is_self_contained_and_says_what_ran(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    files = {
        "instruments": d / "instruments.json",
        "accounts": d / "accounts.csv",
        "positions": d / "positions.csv",
        "prices": d / "prices.csv",
        "funding": d / "funding.csv",
    }
    outcome = run_settlement_batch(SettlementJob(date="2025-10-11", out=tmp_path / "out", **files))
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert_self_contained(page)
    assert page.count("data:image/png;base64,") == 3
    assert f"clearing-engine {engine_version()}" in page and engine_version() != "unknown"
    assert "<code>binance-like</code>" in page and re.search(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page
    )
    for name, path in files.items():
        assert f"input: {name}" in page and f"sha256 {_sha(path)}" in page
    # the tables of report.md, figure for figure
    markdown = (tmp_path / "out" / "report.md").read_text()
    for figure in re.findall(r"-?\d[\d,]*\.\d\d", markdown):
        assert figure in page
    assert "<h2>Ten largest losers</h2>" in page and outcome.result.date in page


def test_markdown_subset() -> None:
    html = markdown_html(
        "# Title\n\nSome `code` & text\n\n## Part\n\n"
        "| a | b |\n|---|---:|\n| x | 1.00 |\n\n- one\n- two\n",
        Path("."),
    )
    assert "Title" not in html  # the document carries the title
    assert "<p>Some <code>code</code> &amp; text</p>" in html
    assert "<h2>Part</h2>" in html and '<td class="num">1.00</td>' in html
    assert "<ul><li>one</li><li>two</li></ul>" in html


@pytest.mark.slow
def test_stress_report_html(tmp_path: Path) -> None:
    out = tmp_path / "stress"
    quiet = Console(file=io.StringIO())
    summary = execute(load_scenario("2025-10-11"), out, accounts=300, console=quiet)
    page = (out / "report.html").read_text()
    assert_self_contained(page)
    assert page.count("data:image/png;base64,") == 3
    assert f"clearing-engine {engine_version()}" in page and "<code>binance-like</code>" in page
    assert re.search(
        r"input: scenario</td><td><code>built-in 2025-10-11"
        r"<br>sha256 [0-9a-f]{64}",
        page,
    )
    assert "synthetic crash book: 300 accounts, seed" in page
    assert "accounts liquidated" in page and summary["forward"]["fund_end"][:5] in page.replace(
        ",", ""
    )
