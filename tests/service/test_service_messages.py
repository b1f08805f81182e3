"""The ingest validation module: exact integers out, or a rejection with a reason code.

Grid (engine/data/instruments.json): BTCUSDT tick 0.1, lot 0.001; ETHUSDT tick 0.01;
money at 8 decimals (1 USDT = 10^8 units).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.messages import (
    Deposit,
    Fill,
    LeverageChange,
    PriceUpdate,
    Withdraw,
    parse_account_event,
    parse_price,
)

TABLE = InstrumentTable.load(
    Path(__file__).resolve().parents[2] / "engine" / "data" / "instruments.json"
)
TS = 1_760_140_800_000


def price(doc: dict | bytes, key: bytes | None = None) -> PriceUpdate:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_price(value, key, TABLE)


def event(doc: dict | bytes, key: bytes | None = None) -> messages.AccountEvent:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_account_event(value, key, TABLE)


def reason(call, *args) -> str:
    with pytest.raises(Rejected) as info:
        call(*args)
    return info.value.reason


def test_mark_price_to_ticks() -> None:
    # 100000.1 / 0.1 = 1_000_001 ticks, exactly (a JSON number is read as Decimal).
    got = price(messages.price_doc("BTCUSDT", TS, 7, mark_price="100000.1"), b"BTCUSDT")
    assert got == PriceUpdate("BTCUSDT", 0, TS, 7, 1_000_001, 0)
    raw = b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":2,"mark_price":100000.1}'
    assert price(raw).price == 1_000_001


def test_index_median() -> None:
    # Odd count: the middle of 99990.0, 100000.0, 100100.0 -> 1_000_000 ticks.
    doc = messages.price_doc(
        "BTCUSDT", TS, 1, index_prices={"a": "100100", "b": "99990", "c": "100000"}
    )
    assert price(doc) == PriceUpdate("BTCUSDT", 0, TS, 1, 1_000_000, 3)
    # Even count: both middle prices (99990 and 100000) -> 999_900 and 1_000_000 ticks; the
    # tick resolves them (tests/service/test_prices.py).
    doc["index_prices"] = {"a": "100100", "b": "99990", "c": "100000", "d": "90000"}
    assert (price(doc).price, price(doc).price_high) == (999_900, 1_000_000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"{oops", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"v":2,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"1"}', "unsupported_version"),
        (b'{"v":1,"symbol":"XBTUSD","ts":1,"seq":1,"mark_price":"1"}', "unknown_symbol"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":NaN}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"NaN"}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":Infinity}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"-5"}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"0"}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"100.05"}', "off_grid"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"1e30"}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":1e999999999}', "invalid_price"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"1e-999999999"}', "off_grid"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1}', "missing_field"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":-1,"mark_price":"1"}', "invalid_sequence"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1.5,"seq":1,"mark_price":"1"}', "invalid_timestamp"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":true,"seq":1,"mark_price":"1"}', "invalid_timestamp"),
        (
            b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"1","index_prices":{}}',
            "missing_field",
        ),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"index_prices":{}}', "invalid_field"),
        (b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"index_prices":{"a":"x"}}', "invalid_price"),
        (b"{" + b'"pad":"' + b"x" * 70_000 + b'"}', "too_large"),
    ],
)
def test_price_rejections(value: bytes, expected: str) -> None:
    assert reason(price, value) == expected


def test_price_key_must_be_the_symbol() -> None:
    doc = messages.price_doc("BTCUSDT", TS, 1, mark_price="1")
    assert reason(price, doc, b"ETHUSDT") == "key_mismatch"


def test_account_events() -> None:
    # 1234.5 USDT = 123_450_000_000 units; 0.25 BTC = 250 lots; fee 0.01 USDT = 10^6 units.
    assert event(messages.deposit_doc(1, TS, 17, "1234.5"), b"17") == Deposit(
        1, TS, 17, 123_450_000_000
    )
    assert event(messages.withdraw_doc(2, TS, 17, "0.00000001")) == Withdraw(2, TS, 17, 1)
    fill = messages.fill_doc(3, TS, "BTCUSDT", "100000.5", "0.25", 17, 18, "0.01", "0")
    assert event(fill, b"18") == Fill(3, TS, "BTCUSDT", 0, 1_000_005, 250, 17, 18, 10**6, 0)
    assert event(messages.leverage_doc(4, TS, 17, "ETHUSDT", 25)) == LeverageChange(
        4, TS, 17, "ETHUSDT", 1, 25
    )
    big = messages.deposit_doc(5, TS, 0, "1")
    big["account"] = str(2**62)  # ids beyond 2^53 may come as digit strings
    assert event(big).account == 2**62


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "transfer"}, "unknown_type"),
        ({"event_id": 0}, "invalid_event_id"),
        ({"event_id": "x"}, "invalid_event_id"),
        ({"account": -1}, "invalid_account"),
        ({"account": 2**63}, "invalid_account"),
        ({"amount": "0"}, "invalid_amount"),
        ({"amount": "-1"}, "invalid_amount"),
        ({"amount": "0.000000001"}, "invalid_amount"),
        ({"amount": "NaN"}, "invalid_amount"),
        ({"amount": 1.5}, "invalid_amount"),  # a JSON number in a Python dict is a float
        ({"v": "1"}, "unsupported_version"),
    ],
)
def test_deposit_rejections(change: dict, expected: str) -> None:
    doc = {**messages.deposit_doc(1, TS, 17, "10"), **change}
    value = json.dumps(doc, allow_nan=True).encode()
    if change.get("amount") == 1.5:
        value = value.replace(b"1.5", b"1.5")  # stays a JSON number: read exactly, accepted
        assert event(value).amount == 150_000_000
        return
    assert reason(event, value) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"symbol": "BTC"}, "unknown_symbol"),
        ({"qty": "0"}, "invalid_qty"),
        ({"qty": "0.0005"}, "invalid_qty"),
        ({"price": "100000.05"}, "off_grid"),
        ({"seller": 17}, "invalid_account"),
        ({"buyer_fee": "-1"}, "invalid_amount"),
    ],
)
def test_fill_rejections(change: dict, expected: str) -> None:
    doc = {**messages.fill_doc(1, TS, "BTCUSDT", "100000", "1", 17, 18), **change}
    assert reason(event, doc) == expected


def test_event_key_must_be_an_account_of_it() -> None:
    fill = messages.fill_doc(1, TS, "BTCUSDT", "100000", "1", 17, 18)
    assert reason(event, fill, b"19") == "key_mismatch"
    assert reason(event, messages.leverage_doc(2, TS, 17, "BTCUSDT", 0)) == "invalid_leverage"


def test_routing_keys() -> None:
    fill = messages.fill_doc(1, TS, "BTCUSDT", "100000", "1", 17, 18)
    assert messages.routing_keys(fill) == [b"17"]
    assert messages.routing_keys(fill, lambda key: int(key) % 2) == [b"17", b"18"]
    assert messages.routing_keys(fill, lambda key: 0) == [b"17"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(value: bytes) -> None:
    for parse in (parse_price, parse_account_event):
        try:
            parse(value, None, TABLE)
        except Rejected as exc:
            assert exc.reason and exc.detail


@settings(max_examples=200, deadline=None)
@given(
    ticks=st.integers(1, 10**12),
    lots=st.integers(1, 10**9),
)
def test_decimal_round_trip(ticks: int, lots: int) -> None:
    # ticks x 0.1 as text parses back to the same ticks; lots x 0.001 likewise.
    text_price = f"{ticks // 10}.{ticks % 10}"
    text_qty = f"{lots // 1000}.{lots % 1000:03d}"
    doc = messages.fill_doc(1, TS, "BTCUSDT", text_price, text_qty, 1, 2)
    got = event(doc)
    assert isinstance(got, Fill) and (got.price, got.qty) == (ticks, lots)


# ----- hostile input: strict grammar, bounds, depth, duplicate keys ------------------------
@pytest.mark.parametrize(
    "amount", ["1_000", "\uff15", "\u0665", "+5", " 5 ", "5.", ".5", "5 ", "0x10", "1e", "NaN"]
)
def test_decimal_text_is_strict(amount: str) -> None:
    assert reason(event, messages.deposit_doc(1, TS, 17, amount)) == "invalid_amount"


def test_decimal_text_plain_forms_accepted() -> None:
    for text, units in (("5", 5 * 10**8), ("5.25", 525_000_000), ("1e1", 10 * 10**8)):
        got = event(messages.deposit_doc(1, TS, 17, text))
        assert isinstance(got, Deposit) and got.amount == units


def test_version_must_be_the_integer_one() -> None:
    value = json.dumps(messages.deposit_doc(1, TS, 17, "5")).replace('"v": 1', '"v": 1.0')
    assert reason(event, value.encode()) == "unsupported_version"
    raw = b'{"v":1.0,"symbol":"BTCUSDT","ts":1,"seq":1,"mark_price":"1"}'
    assert reason(price, raw) == "unsupported_version"


def test_duplicate_keys_are_refused() -> None:
    value = json.dumps(messages.deposit_doc(1, TS, 17, "5"))[:-1] + ', "amount": "500000"}'
    assert reason(event, value.encode()) == "duplicate_field"
    raw = b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":1,"index_prices":{"a":"1","a":"9"}}'
    assert reason(price, raw) == "duplicate_field"


def test_deep_nesting_is_a_rejection_not_a_recursion_error() -> None:
    doc = json.dumps(messages.deposit_doc(1, TS, 17, "5"))[:-1]
    value = (doc + ', "extra": ' + "[" * 1000 + "]" * 1000 + "}").encode()
    assert len(value) < 2_200
    assert reason(event, value) == "too_deep"
    deep_object = doc + ', "x": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}"
    assert reason(event, deep_object.encode()) == "too_deep"
    # Brackets inside strings do not count.
    fine = json.dumps({**messages.deposit_doc(1, TS, 17, "5"), "note": "[[[[[[[[[[{{{{{{{{{{"})
    assert isinstance(event(fine.encode()), Deposit)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"event_id": 2**63 - 1}, "invalid_event_id"),
        ({"event_id": 2**62}, "invalid_event_id"),
        ({"ts": 2**63 - 1}, "invalid_timestamp"),
        ({"ts": 4_102_444_800_001}, "invalid_timestamp"),
        ({"ts": -1}, "invalid_timestamp"),
    ],
)
def test_integer_fields_are_bounded(change: dict, expected: str) -> None:
    assert reason(event, {**messages.deposit_doc(1, TS, 17, "5"), **change}) == expected
    assert event({**messages.deposit_doc(2**62 - 1, TS, 17, "5")}).event_id == 2**62 - 1


def test_price_seq_and_ts_are_bounded() -> None:
    for seq, ts, expected in (
        (2**63 - 1, TS, "invalid_sequence"),
        (1, 2**63 - 1, "invalid_timestamp"),
    ):
        doc = messages.price_doc("BTCUSDT", ts, seq, mark_price="1")
        assert reason(price, doc) == expected
    assert price(messages.price_doc("BTCUSDT", TS, 2**62 - 1, mark_price="1")).seq == 2**62 - 1
