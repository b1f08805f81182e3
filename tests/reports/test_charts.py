"""The charts a committee reads: units on every axis, UTC time, series told apart, the fund
on a scale that shows its change, and every figure printed as the tables print it."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from engine.reports import stress_charts, stress_map_charts, stress_reverse_charts
from engine.reports.chart_style import DEFAULT_START, money_text, series_style
from engine.reports.settlement_batch import SettlementJob, run_settlement_batch
from engine.reports.settlement_charts import instruments_figure, losers_figure, margin_ratio_figure
from engine.reports.settlement_markdown import rounded
from engine.reports.settlement_summary import house_book, largest_losers, top_instruments
from engine.reports.stress_run import prepare
from engine.reports.stress_tables import money, pct
from engine.stress.reverse import ReverseStressResult, reverse_stress
from engine.stress.scenario import load_scenario
from engine.stress.simulation_result import SimulationResult
from engine.stress.simulator import simulate
from engine.waterfall.profile import Profile
from tests.settlement.example import write_example_files

ACCOUNTS = 400


def _axes(fig: Figure) -> Iterator[Axes]:
    """The axes that draw data (not a colour bar)."""
    return (ax for ax in fig.axes if ax.get_label() != "<colorbar>")


# ----- rounding --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("units", "text"),
    [
        (-2_510_250, "-251.02"),  # a float formats -251.025 as -251.03
        (2_510_250, "251.02"),
        (-2_510_350, "-251.04"),
        (2_510_251, "251.03"),
        (1_234_567_891_250, "123,456,789.12"),
    ],
)
def test_chart_figures_round_as_the_tables_do(units: int, text: str) -> None:
    assert money_text(units, 4) == money(units, 4) == rounded(units, 4) == text


def test_a_float_would_round_the_half_way_value_away() -> None:
    # What the charts did before: the float nearest -251.025 is below it, so it prints -251.03.
    assert f"{-2_510_250 / 10**4:,.2f}" == "-251.03" != money_text(-2_510_250, 4)


# ----- settlement charts -----------------------------------------------------------------
@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = write_example_files(tmp_path_factory.mktemp("in"))
    job = SettlementJob(
        date="2025-10-11",
        prices=d / "prices.csv",
        out=tmp_path_factory.mktemp("out") / "settled",
        instruments=d / "instruments.json",
        accounts=d / "accounts.csv",
        positions=d / "positions.csv",
        funding=d / "funding.csv",
        fees=d / "fees.csv",
    )
    return run_settlement_batch(job)


def test_losers_chart_labels_are_the_report_table_figures(settled) -> None:  # type: ignore[no-untyped-def]
    book, result = settled.book, settled.result
    md = book.instruments.money_decimals
    rows = largest_losers(book, result)
    assert len(rows) >= 2
    fig = losers_figure(book, result, rows, "USDT")
    (ax,) = list(_axes(fig))
    labels = [t.get_text().strip() for t in ax.texts]
    change = result.closing.equity[rows] - result.opening_equity[rows]
    assert labels == [rounded(int(c), md) for c in change]
    assert "USDT" in ax.get_xlabel()


def test_settlement_money_axes_name_the_currency(settled) -> None:  # type: ignore[no-untyped-def]
    book, result = settled.book, settled.result
    fig = instruments_figure(book, result, "USDT", top_instruments(result, 15))
    assert all("USDT" in ax.get_xlabel() for ax in _axes(fig))
    fig = margin_ratio_figure(result, 80.0, house_book(book, Profile.shipped()))
    (ax,) = list(_axes(fig))
    assert "%" in ax.get_xlabel() and "accounts" in ax.get_ylabel()


# ----- stress charts ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def run() -> tuple[SimulationResult, stress_map_charts.LiquidationLevels]:
    scenario, factory = prepare(load_scenario("2025-10-11"), ACCOUNTS, None)
    book = factory()
    symbols = [m.symbol for m in scenario.markets]
    levels = stress_map_charts.liquidation_levels(book, symbols, "BTCUSDT")
    return simulate(book, scenario), levels


@pytest.fixture(scope="module")
def reverse() -> tuple[ReverseStressResult, int]:
    scenario, factory = prepare(load_scenario("2025-10-11"), ACCOUNTS, None)
    result = reverse_stress(factory, scenario, tolerance=Fraction(1, 20))
    return result, factory().instruments.money_decimals


def test_price_chart_units_utc_time_and_distinct_series(run) -> None:  # type: ignore[no-untyped-def]
    result, _ = run
    fig = stress_charts.price_liquidations_figure(result, main="BTCUSDT")
    axes = list(_axes(fig))
    marks, bars = axes[0], axes[2]
    assert "%" in marks.get_ylabel()
    for ax in axes[2:]:
        assert "M USDT" in ax.get_ylabel() and "per 1-minute step" in ax.get_ylabel()
        assert "UTC" in ax.get_xlabel()
    assert "2025-10-11" in bars.get_xlabel() and "00:00 UTC" in axes[0].get_title()
    styles = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in marks.get_lines()}
    assert len(styles) == len(marks.get_lines()) == len(result.steps[0].marks)
    colors = {ln.get_color() for ln in marks.get_lines()}
    assert len(colors) < len(styles) or len(colors) == len(styles)  # told apart, not by colour only


def test_series_styles_differ_in_more_than_colour() -> None:
    seen = {tuple(series_style(i).values()) for i in range(40)}
    assert len(seen) == 40
    assert series_style(0)["color"] == series_style(7)["color"]
    assert series_style(0)["ls"] != series_style(7)["ls"]


def test_zoom_takes_in_the_rebound(run) -> None:  # type: ignore[no-untyped-def]
    result, _ = run
    steps = result.steps
    t_s = np.array([s.t_s for s in steps])
    liquidated = np.array([s.liquidated_long + s.liquidated_short for s in steps], dtype=float)
    lowest = np.min(
        [[s.marks[m] / steps[0].exogenous[m] - 1 for s in steps] for m in steps[0].marks], axis=0
    )
    window = stress_charts.zoom_window(t_s, liquidated, lowest)
    inside = np.flatnonzero(window)
    trough = inside[0] + int(np.argmin(lowest[inside[0] :]))
    assert inside[0] < trough < inside[-1]
    # after the trough the window runs on while the lowest mark climbs back
    assert lowest[inside[-1]] > lowest[trough] + 0.5 * (lowest[inside[0]] - lowest[trough])


def test_fund_chart_is_scaled_to_its_change(run) -> None:  # type: ignore[no-untyped-def]
    result, _ = run
    fig = stress_charts.insurance_fund_figure(result)
    fund, flows = list(_axes(fig))
    equity = np.array([s.fund_equity for s in result.steps]) / 10.0**result.money_decimals / 1e6
    low, high = fund.get_ylim()
    assert low <= equity.min() and high >= equity.max()
    assert high - low < 0.5 * equity.max()  # not stretched down to zero
    assert "M USDT" in fund.get_ylabel() and "M USDT" in flows.get_ylabel()
    assert "UTC" in flows.get_xlabel()
    texts = [t.get_text() for t in fund.texts]
    start = money_text(result.steps[0].fund_equity, result.money_decimals)
    assert any(start in t for t in texts)


def test_liquidation_map_has_its_time_and_both_sides(run) -> None:  # type: ignore[no-untyped-def]
    _, levels = run
    fig = stress_map_charts.liquidation_map_figure(levels, start=DEFAULT_START)
    axes = fig.axes
    top = axes[0]
    assert "2025-10-11 00:00 UTC" in top.get_title()
    assert "USDT" in top.get_xlabel() and "M USDT" in top.get_ylabel()
    titles = [ax.get_title() for ax in axes]
    assert any(t.startswith("longs") for t in titles) and any(
        t.startswith("shorts") for t in titles
    )
    assert np.allclose(levels.by_distance, levels.long_by_distance + levels.short_by_distance)
    colorbar = fig.axes[3]  # the scale of both heat maps
    assert "USDT" in colorbar.get_ylabel() and "log" in colorbar.get_ylabel()


def test_reverse_chart_threshold_at_the_table_precision(reverse) -> None:  # type: ignore[no-untyped-def]
    result, decimals = reverse
    fig = stress_reverse_charts.reverse_stress_figure(result, decimals)
    axes = list(_axes(fig))
    labels = [t.get_text() for ax in axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert result.move is not None
    assert any(pct(result.move) in label for label in labels)
    assert pct(result.move) in axes[0].get_title()
    assert all("M USDT" in ax.get_ylabel() for ax in axes)


def test_charts_write_png(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result, levels = run
    for path in (
        stress_charts.price_liquidations(result, tmp_path / "a.png"),
        stress_charts.insurance_fund(result, tmp_path / "b.png"),
        stress_map_charts.liquidation_map(levels, tmp_path / "c.png"),
    ):
        assert path.read_bytes()[:4] == b"\x89PNG"
