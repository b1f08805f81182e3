"""The asset-liability service's daily settlement (engine.service.asset_settlement): a
`settlement` message on the prices topic accrues interest and advances the call clock; the
securities worked example: a call not restored within 2 settlements becomes a forced sale."""

from __future__ import annotations

from engine.service.asset_settlement import settlement_doc
from engine.service.ports import Record
from tests.margin.test_service import Stream


def _settlement(s: Stream, date: str, rates: dict[str, str] | None = None) -> Record:
    return s.record("prices", "settlement", settlement_doc(date, 2000, rates))


def _financed(s: Stream, price: str) -> None:
    """The financed buyer: 2,000 shares bought at 10.00 with 10,000 own and 10,000 borrowed."""
    s.tick(s.price("SH600000", 1, "10.00"))
    s.tick(
        s.event("asset_deposit", 1, "SH600000", "2000"),
        s.event("borrow", 1, "CNY", "10000"),
        s.event("asset_withdraw", 1, "CNY", "10000"),
    )
    s.tick(s.price("SH600000", 2, price))


def test_a_call_not_restored_within_two_settlements_is_a_forced_sale() -> None:
    s = Stream()
    _financed(s, "6.49")  # 12,980 / 10,000 = 129.8%: called (one margin call on the way)
    book = s.service.book
    row = book.index.find(1)  # the fund opened first
    for day, date in ((1, "2026-01-05"), (2, "2026-01-06")):
        assert s.tick(_settlement(s, date)) == []  # still called: no new output
        assert int(book.call_days[row]) == day
    # The third settlement: the call has stood for more than 2 settlements: forced sale of
    # ceil(10,000 / 6.49) = 1,541 shares for 1,541 x 6.49 = 10,001.09; the debt is repaid,
    # 459 shares and 1.09 yuan are left.
    out = s.tick(_settlement(s, "2026-01-07"))
    assert [(t, d["kind"]) for t, d in out] == [
        ("liquidations", "liquidation"),
        ("insurance", "fund"),
    ]
    assert out[0][1]["qty"] == "-1541" and out[0][1]["amount"] == "10001.09"
    assert book.held[:, row].tolist() == [109, 459]
    assert book.owed[:, row].tolist() == [0, 0]
    assert s.service.state.last_price_seq["@settlement"] == 20260107


def test_a_call_restored_before_the_deadline_resets_the_clock() -> None:
    s = Stream()
    _financed(s, "6.49")
    s.tick(_settlement(s, "2026-01-05"))
    s.tick(s.event("asset_deposit", 1, "CNY", "1000"))  # 13,980 / 10,000: restored
    s.tick(_settlement(s, "2026-01-06"))
    assert int(s.service.book.call_days[s.service.book.index.find(1)]) == 0
    assert s.tick(_settlement(s, "2026-01-07"), _settlement(s, "2026-01-08")) == []


def test_interest_at_settlement_brings_the_call_forward() -> None:
    # At 6.50 exactly 130%; a day's interest at 0.0225% (ceil(10,000 x 0.000225) = 2.25
    # yuan): owes 10,002.25; 13,000 / 10,002.25 = 129.97%: called.
    s = Stream()
    _financed(s, "6.50")
    out = s.tick(_settlement(s, "2026-01-05", {"CNY": "0.000225"}))
    assert [(d["kind"], d["liability_value"]) for _, d in out] == [("margin_call", "10002.25")]
    assert s.service.book.owed[:, s.service.book.index.find(1)].tolist() == [1_000_225, 0]


def test_bad_settlements_are_refused_by_name_and_change_nothing() -> None:
    s = Stream()
    out = s.tick(_settlement(s, "2026-01-05"))  # no price yet, but nothing is held or owed
    assert out == []
    s.tick(s.price("SH600000", 1, "10.00"), s.event("borrow", 1, "CNY", "1"))
    bad = [
        _settlement(s, "2026-01-05"),  # not after the last
        _settlement(s, "2026-1-6"),
        _settlement(s, "2026-01-06", {"USD": "0.01"}),
        _settlement(s, "2026-01-06", {"CNY": "1.5"}),
        s.record("prices", "SH600000", settlement_doc("2026-01-06", 2000)),
    ]
    out = s.tick(*bad)
    assert [d["reason"] for _, d in out] == [
        "stale_sequence",
        "invalid_date",
        "unknown_asset",
        "invalid_value",
        "key_mismatch",
    ]
    assert s.service.state.last_price_seq["@settlement"] == 20260105
