"""The one ingest validation module: JSON message bytes -> typed, fixed-point messages.
(Over 400 lines: every message's schema, its checks and its encoder live in one place.)

Everything the service reads from `prices` and `account-events` passes through here, so
nothing downstream sees a float, an off-grid price or an unchecked id. A message that cannot
be turned into exact integers raises engine.errors.Rejected with a stable reason code (the
dead-letter consumer counts them); nothing is ever rounded.

Numbers: prices, quantities and amounts are decimal strings ("100000.1") or JSON numbers,
which are parsed as Decimal, never float, so 0.1 stays exactly 0.1; a value off its grid
(tick size, lot size, money step) is refused. NaN and Infinity, as literals or strings, are
refused. Ids, timestamps, sequence numbers and leverage are integers (an id may also be a
string of digits, for producers whose JSON numbers are doubles).

Strict at the boundary: a decimal string is ASCII `-?digits[.digits][e[+-]digits]` and
nothing else (no "1_000", "+5", " 5 ", "5.", no non-ASCII digits); `v` is the integer 1 (not
1.0); a key given twice is `duplicate_field`; objects and arrays nest at most
JSON_DEPTH_MAX deep (`too_deep`); event ids and sequence numbers are below 2^62 and event
times are epoch ms within [0, TS_MAX] (engine.book.limits), so no sentinel value can become
a partition's last event id, a symbol's last seq or the service's event time.

Schemas (schema version `v` = 1; see docs/service.md for examples):

- price (key: symbol): symbol, ts (event time, ms), seq (per symbol, increasing), and
  either `mark_price` or `index_prices` {source: price, ...}. The index is the median of the
  sources; with an even count both middle ones are kept (`price`, `price_high`) and the
  service takes their mean rounded to the tick toward the previous mark, or refuses the
  price when they disagree beyond the band. The service then holds a price outside the
  band (engine.service.tick).
- account event (key: the account id in decimal): type, event_id (increasing within its
  partition), ts, and per type: deposit / withdraw {account, amount}; fill {symbol, price,
  qty > 0, buyer, seller, buyer_fee, seller_fee} (the buyer gets +qty); leverage {account,
  symbol, leverage}; with the profile's `[collateral]`: collateral_deposit /
  collateral_withdraw {account, asset, qty} (qty on the asset's qty_step);
  account_class {account, class: proprietary | brokerage}.
- a collateral price: a price message whose symbol is a `[collateral]` asset, with
  `mark_price` on the asset's price_step (no index), banded as an instrument's.
- parameter messages on the prices topic (key: the symbol), told from prices by their
  `type`: margin_change {symbol, ts, tiers} and settlement_price {symbol, ts,
  settlement_price} (engine.exchange).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, OutOfRangeError, parse_decimal, to_units
from engine.book.instruments import InstrumentTable
from engine.book.limits import (
    EVENT_ID_MAX,
    INT64_MAX,
    JSON_DEPTH_MAX,
    LEVERAGE_MAX,
    SEQ_MAX,
    TS_MAX,
    VALUE_MAX,
)
from engine.book.reasons import RejectReason
from engine.collateral.rules import CollateralAssetRule
from engine.exchange.account_classes import class_code
from engine.exchange.margin_change import MarginChange, parse_margin_change
from engine.margin.assets import AssetTable

SCHEMA_VERSION = 1
VALUE_BYTES_MAX = 64 * 1024
INDEX_SOURCES_MAX = 32
EVENT_TYPES = ("deposit", "withdraw", "fill", "leverage")
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class _NonFinite:
    """What the JSON literals NaN / Infinity parse to, so each field can refuse them with
    its own reason instead of the whole message failing as malformed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    symbol: str
    instrument: int
    ts: int  # event time, ms
    seq: int
    price: int  # ticks: the mark, or the median of the index sources (the lower middle one)
    sources: int  # number of index sources; 0 when a mark price was given directly
    # An even count of index sources: the upper middle one (the tick takes the mean of the
    # two, or refuses the price when they disagree beyond the band); 0 otherwise.
    price_high: int = 0


@dataclass(frozen=True, slots=True)
class Deposit:
    event_id: int
    ts: int
    account: int
    amount: int  # money units


@dataclass(frozen=True, slots=True)
class Withdraw:
    event_id: int
    ts: int
    account: int
    amount: int


@dataclass(frozen=True, slots=True)
class Fill:
    event_id: int
    ts: int
    symbol: str
    instrument: int
    price: int  # ticks
    qty: int  # lots, > 0: the buyer's side is +qty, the seller's -qty
    buyer: int
    seller: int
    buyer_fee: int  # money units
    seller_fee: int


@dataclass(frozen=True, slots=True)
class LeverageChange:
    event_id: int
    ts: int
    account: int
    symbol: str
    instrument: int
    leverage: int


@dataclass(frozen=True, slots=True)
class CollateralPrice:
    """A `prices` message for a collateral asset (engine.collateral): same schema as an
    instrument's, the price on the asset's price_step."""

    symbol: str
    ts: int
    seq: int
    price: int  # ticks of the asset's price_step


@dataclass(frozen=True, slots=True)
class CollateralTransfer:
    """`collateral_deposit` / `collateral_withdraw` {account, asset, qty}: qty > 0 on the
    asset's qty_step."""

    event_id: int
    ts: int
    account: int
    asset: str
    qty: int  # steps of the asset's qty_step
    withdraw: bool


# ----- futures exchange conventions (engine.exchange): parameter messages on the prices
# topic (keyed by symbol) and the account_class account event. See docs/service.md.
PARAMETER_TYPES = ("margin_change", "settlement_price")
EXCHANGE_EVENT_TYPES = ("account_class",)


@dataclass(frozen=True, slots=True)
class MarginChangeMessage:
    """New margin parameters of an instrument (engine.exchange.margin_change)."""

    symbol: str
    ts: int
    change: MarginChange


@dataclass(frozen=True, slots=True)
class SettlementPrice:
    """The previous settlement price of an instrument: its daily price limits' reference."""

    symbol: str
    instrument: int
    ts: int
    price: int  # ticks


@dataclass(frozen=True, slots=True)
class AccountClassChange:
    event_id: int
    ts: int
    account: int
    account_class: int  # engine.exchange.account_classes: PROPRIETARY or BROKERAGE


def is_parameter(value: bytes) -> bool:
    """A prices-topic record that may be a parameter message (prices carry no `type`); the
    parse decides."""
    return b'"type"' in value


def parse_parameter(
    value: bytes, key: bytes | None, instruments: InstrumentTable
) -> MarginChangeMessage | SettlementPrice | PriceUpdate:
    """A parameter message on the prices topic: {v, type, symbol, ts} plus `tiers`
    (margin_change) or `settlement_price`; the key, when present, must be the symbol. A
    record without a `type` field is a price (parse_price)."""
    doc = _load(value)
    if "type" not in doc:
        return parse_price(value, key, instruments)
    kind = doc["type"]
    if kind not in PARAMETER_TYPES:
        raise Rejected(
            RejectReason.UNKNOWN_TYPE,
            f"type {str(kind)[:32]!r} on the prices topic, expected one of {PARAMETER_TYPES}",
        )
    symbol, instrument = _symbol(doc, instruments)
    key_text = _key_text(key)
    if key_text is not None and key_text != symbol:
        raise Rejected(
            RejectReason.KEY_MISMATCH, f"key {key_text[:64]!r} is not the symbol {symbol!r}"
        )
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    if kind == "margin_change":
        change = parse_margin_change(doc, instruments, "margin_change")
        return MarginChangeMessage(symbol, ts, change)
    price = _price_ticks(
        _decimal(doc, "settlement_price", RejectReason.INVALID_PRICE),
        instruments,
        instrument,
        "settlement_price",
    )
    if not instruments.instruments[instrument].price_limit:
        raise Rejected(RejectReason.NO_PRICE_LIMIT, f"{symbol}: the instrument has no price_limit")
    return SettlementPrice(symbol, instrument, ts, price)


def _account_class_event(doc: dict[str, Any], event_id: int, ts: int) -> AccountClassChange:
    account = _int(doc, "account", RejectReason.INVALID_ACCOUNT)
    code = class_code(_field(doc, "class"), "class")
    return AccountClassChange(event_id, ts, account, code)


def margin_change_doc(symbol: str, ts: int, tiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "margin_change",
        "symbol": symbol,
        "ts": ts,
        "tiers": tiers,
    }


def settlement_price_doc(symbol: str, ts: int, price: str) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "settlement_price",
        "symbol": symbol,
        "ts": ts,
        "settlement_price": price,
    }


def account_class_doc(event_id: int, ts: int, account: int, name: str) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "account_class",
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "class": name,
    }


# ----- end of the futures exchange block

AccountEvent = Deposit | Withdraw | Fill | LeverageChange | CollateralTransfer | AccountClassChange


def accounts_of(event: AccountEvent) -> tuple[int, ...]:
    if isinstance(event, Fill):
        return (event.buyer, event.seller)
    return (event.account,)


# ----- parsing ---------------------------------------------------------------------------
class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _DuplicateKey(f"key {key[:64]!r} given twice")
        doc[key] = value
    return doc


def _depth(value: bytes) -> int:
    """How deep objects and arrays nest in JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    for byte in _STRING.sub(b'""', value):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _load(value: bytes) -> dict[str, Any]:
    if len(value) > VALUE_BYTES_MAX:
        raise Rejected(
            RejectReason.TOO_LARGE, f"message of {len(value)} bytes (max {VALUE_BYTES_MAX})"
        )
    # Counting brackets is C-speed; only a message with many of them is scanned for depth.
    if value.count(b"{") + value.count(b"[") > JSON_DEPTH_MAX and (_depth(value) > JSON_DEPTH_MAX):
        raise Rejected(
            RejectReason.TOO_DEEP, f"objects and arrays nest deeper than {JSON_DEPTH_MAX}"
        )
    try:
        doc = json.loads(
            value, parse_float=Decimal, parse_constant=_NonFinite, object_pairs_hook=_object
        )
    except _DuplicateKey as exc:
        raise Rejected(RejectReason.DUPLICATE_FIELD, str(exc)) from None
    except RecursionError:
        raise Rejected(RejectReason.TOO_DEEP, "objects and arrays nest too deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(RejectReason.MALFORMED_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected(RejectReason.MALFORMED_JSON, "expected a JSON object")
    version = doc.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise Rejected(RejectReason.UNSUPPORTED_VERSION, f"schema version {version!r}, expected 1")
    return doc


def _field(doc: dict[str, Any], name: str) -> Any:
    if name not in doc:
        raise Rejected(RejectReason.MISSING_FIELD, f"field {name!r} is missing")
    return doc[name]


def _int(
    doc: dict[str, Any], name: str, reason: RejectReason, low: int = 0, high: int = INT64_MAX
) -> int:
    value = _field(doc, name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Rejected(reason, f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _decimal(doc: dict[str, Any], name: str, reason: RejectReason) -> Decimal:
    value = _field(doc, name)
    if isinstance(value, Decimal):
        value = str(value)
    if isinstance(value, _NonFinite):
        raise Rejected(reason, f"{name} is {value!r}, not a finite number")
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value):
        raise Rejected(reason, f"{name}: {value[:64]!r} is not a plain finite decimal number")
    try:
        return parse_decimal(value, name)
    except FixedPointError as exc:
        raise Rejected(reason, str(exc)) from None


def _on_grid(
    value: Decimal,
    step: Decimal,
    name: str,
    reason: RejectReason,
    range_reason: RejectReason | None = None,
) -> int:
    """value / step as an exact int64 (engine.book.fixed.to_units); `reason` when off the
    grid, `range_reason` (default the same) when beyond int64."""
    try:
        return to_units(value, step, name)
    except OutOfRangeError as exc:
        raise Rejected(range_reason or reason, str(exc)) from None
    except FixedPointError as exc:
        raise Rejected(reason, str(exc)) from None


def _symbol(doc: dict[str, Any], instruments: InstrumentTable) -> tuple[str, int]:
    symbol = _field(doc, "symbol")
    if not isinstance(symbol, str):
        raise Rejected(RejectReason.INVALID_FIELD, f"symbol must be a string, got {symbol!r}")
    index = instruments.index.get(symbol)
    if index is None:
        raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol[:64]!r}")
    return symbol, index


def _price_ticks(value: Decimal, instruments: InstrumentTable, instrument: int, name: str) -> int:
    if not value > 0:
        raise Rejected(RejectReason.INVALID_PRICE, f"{name} must be positive, got {value}")
    inst = instruments.instruments[instrument]
    ticks = _on_grid(value, inst.tick_size, name, RejectReason.OFF_GRID, RejectReason.INVALID_PRICE)
    if ticks > INT64_MAX // int(instruments.tick_value[instrument]):
        raise Rejected(RejectReason.INVALID_PRICE, f"{name} {value} is out of range")
    return ticks


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        raise Rejected(
            RejectReason.KEY_MISMATCH, f"message key {key[:32]!r} is not UTF-8"
        ) from None


def parse_price(value: bytes, key: bytes | None, instruments: InstrumentTable) -> PriceUpdate:
    """A price message; the key, when present, must be the symbol."""
    doc = _load(value)
    symbol, instrument = _symbol(doc, instruments)
    key_text = _key_text(key)
    if key_text is not None and key_text != symbol:
        raise Rejected(
            RejectReason.KEY_MISMATCH, f"key {key_text[:64]!r} is not the symbol {symbol!r}"
        )
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    seq = _int(doc, "seq", RejectReason.INVALID_SEQUENCE, high=SEQ_MAX)
    has_mark, has_index = "mark_price" in doc, "index_prices" in doc
    if has_mark == has_index:
        raise Rejected(
            RejectReason.MISSING_FIELD, "give exactly one of mark_price and index_prices"
        )
    if has_mark:
        price = _price_ticks(
            _decimal(doc, "mark_price", RejectReason.INVALID_PRICE),
            instruments,
            instrument,
            "mark_price",
        )
        return PriceUpdate(symbol, instrument, ts, seq, price, 0)
    sources = doc["index_prices"]
    if not isinstance(sources, dict) or not 1 <= len(sources) <= INDEX_SOURCES_MAX:
        raise Rejected(
            RejectReason.INVALID_FIELD,
            f"index_prices must map 1 to {INDEX_SOURCES_MAX} source names to prices",
        )
    ticks = sorted(
        _price_ticks(
            _decimal(sources, name, RejectReason.INVALID_PRICE),
            instruments,
            instrument,
            f"index {name}",
        )
        for name in sources
    )
    # An odd count: the median. An even count: both middle ones; the tick resolves them
    # against the band and the previous mark (engine.service.tick).
    n = len(ticks)
    high = ticks[n // 2] if n % 2 == 0 else 0
    return PriceUpdate(symbol, instrument, ts, seq, ticks[(n - 1) // 2], n, high)


def parse_account_event(
    value: bytes, key: bytes | None, instruments: InstrumentTable
) -> AccountEvent:
    """An account event; the key, when present, must be its account (a fill: either side)."""
    doc = _load(value)
    kind = _field(doc, "type")
    if kind not in EVENT_TYPES + EXCHANGE_EVENT_TYPES:
        raise Rejected(
            RejectReason.UNKNOWN_TYPE, f"type {str(kind)[:32]!r}, expected one of {EVENT_TYPES}"
        )
    event_id = _int(doc, "event_id", RejectReason.INVALID_EVENT_ID, low=1, high=EVENT_ID_MAX)
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    money_step = instruments.money_step
    event: AccountEvent
    if kind in ("deposit", "withdraw"):
        account = _int(doc, "account", RejectReason.INVALID_ACCOUNT)
        amount = _on_grid(
            _decimal(doc, "amount", RejectReason.INVALID_AMOUNT),
            money_step,
            "amount",
            RejectReason.INVALID_AMOUNT,
        )
        if not amount > 0:
            raise Rejected(
                RejectReason.INVALID_AMOUNT, f"amount must be positive, got {doc['amount']}"
            )
        cls = Deposit if kind == "deposit" else Withdraw
        event = cls(event_id, ts, account, amount)
    elif kind == "fill":
        symbol, instrument = _symbol(doc, instruments)
        price = _price_ticks(
            _decimal(doc, "price", RejectReason.INVALID_PRICE), instruments, instrument, "price"
        )
        lot_size = instruments.instruments[instrument].lot_size
        qty = _on_grid(
            _decimal(doc, "qty", RejectReason.INVALID_QTY),
            lot_size,
            "qty",
            RejectReason.INVALID_QTY,
        )
        if not qty > 0:
            raise Rejected(RejectReason.INVALID_QTY, f"qty must be positive, got {doc['qty']}")
        buyer = _int(doc, "buyer", RejectReason.INVALID_ACCOUNT)
        seller = _int(doc, "seller", RejectReason.INVALID_ACCOUNT)
        if buyer == seller:
            raise Rejected(RejectReason.INVALID_ACCOUNT, f"buyer and seller are both {buyer}")
        fees = []
        for name in ("buyer_fee", "seller_fee"):
            fee = 0
            if name in doc:
                fee = _on_grid(
                    _decimal(doc, name, RejectReason.INVALID_AMOUNT),
                    money_step,
                    name,
                    RejectReason.INVALID_AMOUNT,
                )
            if fee < 0:
                raise Rejected(RejectReason.INVALID_AMOUNT, f"{name} must not be negative")
            fees.append(fee)
        event = Fill(event_id, ts, symbol, instrument, price, qty, buyer, seller, *fees)
    elif kind in EXCHANGE_EVENT_TYPES:
        event = _account_class_event(doc, event_id, ts)
    else:
        account = _int(doc, "account", RejectReason.INVALID_ACCOUNT)
        symbol, instrument = _symbol(doc, instruments)
        leverage = _int(doc, "leverage", RejectReason.INVALID_LEVERAGE, low=1, high=LEVERAGE_MAX)
        event = LeverageChange(event_id, ts, account, symbol, instrument, leverage)
    key_text = _key_text(key)
    if key_text is not None and key_text not in {str(a) for a in accounts_of(event)}:
        raise Rejected(
            RejectReason.KEY_MISMATCH, f"key {key_text[:32]!r} is not an account of the event"
        )
    return event


# ----- collateral assets (the profile's [collateral] section) ---------------------------
COLLATERAL_EVENT_TYPES = ("collateral_deposit", "collateral_withdraw")


def _collateral_asset(symbol: Any, assets: Sequence[CollateralAssetRule]) -> CollateralAssetRule:
    for asset in assets:
        if asset.symbol == symbol:
            return asset
    raise Rejected(RejectReason.UNKNOWN_ASSET, f"unknown collateral asset {str(symbol)[:64]!r}")


def parse_collateral_price(
    value: bytes, key: bytes | None, assets: Sequence[CollateralAssetRule]
) -> CollateralPrice | None:
    """A `prices` message whose symbol is a collateral asset; None for any other symbol
    (then it is an instrument's price: parse_price)."""
    doc = _load(value)
    symbol = doc.get("symbol")
    if not any(a.symbol == symbol for a in assets):
        return None
    asset = _collateral_asset(symbol, assets)
    key_text = _key_text(key)
    if key_text is not None and key_text != asset.symbol:
        raise Rejected(RejectReason.KEY_MISMATCH, f"key {key_text[:64]!r} is not {asset.symbol!r}")
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    seq = _int(doc, "seq", RejectReason.INVALID_SEQUENCE, high=SEQ_MAX)
    price = _decimal(doc, "mark_price", RejectReason.INVALID_PRICE)
    if not price > 0:
        raise Rejected(RejectReason.INVALID_PRICE, f"mark_price must be positive, got {price}")
    ticks = _on_grid(
        price, asset.price_step, "mark_price", RejectReason.OFF_GRID, RejectReason.INVALID_PRICE
    )
    return CollateralPrice(asset.symbol, ts, seq, ticks)


def parse_collateral_event(
    value: bytes, key: bytes | None, assets: Sequence[CollateralAssetRule]
) -> CollateralTransfer | None:
    """A `collateral_deposit` / `collateral_withdraw` account event; None for other types."""
    doc = _load(value)
    kind = doc.get("type")
    if kind not in COLLATERAL_EVENT_TYPES:
        return None
    event_id = _int(doc, "event_id", RejectReason.INVALID_EVENT_ID, low=1, high=EVENT_ID_MAX)
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    account = _int(doc, "account", RejectReason.INVALID_ACCOUNT)
    asset = _collateral_asset(_field(doc, "asset"), assets)
    qty = _on_grid(
        _decimal(doc, "qty", RejectReason.INVALID_QTY),
        asset.qty_step,
        "qty",
        RejectReason.INVALID_QTY,
    )
    if not qty > 0:
        raise Rejected(RejectReason.INVALID_QTY, f"qty must be positive, got {doc['qty']}")
    key_text = _key_text(key)
    if key_text is not None and key_text != str(account):
        raise Rejected(RejectReason.KEY_MISMATCH, f"key {key_text[:32]!r} is not account {account}")
    return CollateralTransfer(
        event_id, ts, account, asset.symbol, qty, kind == "collateral_withdraw"
    )


def collateral_doc(
    event_id: int, ts: int, account: int, asset: str, qty: str, *, withdraw: bool = False
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": COLLATERAL_EVENT_TYPES[1 if withdraw else 0],
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "asset": asset,
        "qty": qty,
    }


# ----- encoding (producers, tests, the benchmark, the synthetic source) -----------------
def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def price_doc(
    symbol: str,
    ts: int,
    seq: int,
    *,
    mark_price: str | None = None,
    index_prices: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": SCHEMA_VERSION, "symbol": symbol, "ts": ts, "seq": seq}
    if mark_price is not None:
        doc["mark_price"] = mark_price
    if index_prices is not None:
        doc["index_prices"] = index_prices
    return doc


def deposit_doc(event_id: int, ts: int, account: int, amount: str) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "deposit",
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "amount": amount,
    }


def withdraw_doc(event_id: int, ts: int, account: int, amount: str) -> dict[str, Any]:
    return {**deposit_doc(event_id, ts, account, amount), "type": "withdraw"}


def fill_doc(
    event_id: int,
    ts: int,
    symbol: str,
    price: str,
    qty: str,
    buyer: int,
    seller: int,
    buyer_fee: str = "0",
    seller_fee: str = "0",
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "fill",
        "event_id": event_id,
        "ts": ts,
        "symbol": symbol,
        "price": price,
        "qty": qty,
        "buyer": buyer,
        "seller": seller,
        "buyer_fee": buyer_fee,
        "seller_fee": seller_fee,
    }


def leverage_doc(
    event_id: int, ts: int, account: int, symbol: str, leverage: int
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "leverage",
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "symbol": symbol,
        "leverage": leverage,
    }


def account_key(account: int) -> bytes:
    return str(account).encode()


def routing_keys(doc: dict[str, Any], partition_of: Any = None) -> list[bytes]:
    """The keys to send an account event under: its account; a fill once per side whose
    account is keyed into a different partition (`partition_of(key) -> partition`), so each
    shard sees the fill and applies the side it owns (engine.service.tick)."""
    if doc["type"] != "fill":
        return [account_key(int(doc["account"]))]
    buyer, seller = account_key(int(doc["buyer"])), account_key(int(doc["seller"]))
    if partition_of is None or partition_of(buyer) == partition_of(seller):
        return [buyer]
    return [buyer, seller]


# ----- asset-liability accounts (engine.margin): asset events and asset prices ------------
# For a profile whose model is asset_liability the `account-events` topic carries asset
# events and `prices` carries asset prices, validated here like every other message:
# - asset event (key: the account id): type "asset_deposit" | "asset_withdraw" | "borrow" |
#   "repay", event_id, ts, account, asset (a symbol of the asset table), amount (> 0, on the
#   asset's grid of 10**-decimals).
# - asset price (key: the asset): asset, ts, seq (per asset, increasing), price (money per
#   whole asset, on the money grid, >= 0; the money asset has no price message).
ASSET_EVENT_TYPES = ("asset_deposit", "asset_withdraw", "borrow", "repay")


@dataclass(frozen=True, slots=True)
class AssetEvent:
    kind: str  # one of ASSET_EVENT_TYPES
    event_id: int
    ts: int
    account: int
    symbol: str
    asset: int  # index into the asset table
    amount: int  # asset units, > 0


@dataclass(frozen=True, slots=True)
class AssetPrice:
    symbol: str
    asset: int
    ts: int
    seq: int
    price: int  # money units per whole asset


def _asset(doc: dict[str, Any], assets: AssetTable) -> tuple[str, int]:
    symbol = _field(doc, "asset")
    if not isinstance(symbol, str):
        raise Rejected(RejectReason.INVALID_FIELD, f"asset must be a string, got {symbol!r}")
    index = assets.asset_index(symbol)
    if index is None:
        raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown asset {symbol[:64]!r}")
    return symbol, index


def parse_asset_event(value: bytes, key: bytes | None, assets: AssetTable) -> AssetEvent:
    """An asset event; the key, when present, must be its account."""
    doc = _load(value)
    kind = _field(doc, "type")
    if kind not in ASSET_EVENT_TYPES:
        raise Rejected(
            RejectReason.UNKNOWN_TYPE,
            f"type {str(kind)[:32]!r}, expected one of {ASSET_EVENT_TYPES}",
        )
    event_id = _int(doc, "event_id", RejectReason.INVALID_EVENT_ID, low=1, high=EVENT_ID_MAX)
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    account = _int(doc, "account", RejectReason.INVALID_ACCOUNT)
    symbol, asset = _asset(doc, assets)
    step = Decimal(1).scaleb(-assets.assets[asset].decimals)
    amount = _on_grid(
        _decimal(doc, "amount", RejectReason.INVALID_AMOUNT),
        step,
        "amount",
        RejectReason.INVALID_AMOUNT,
    )
    if not amount > 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, f"amount must be positive, got {doc['amount']}")
    key_text = _key_text(key)
    if key_text is not None and key_text != str(account):
        raise Rejected(
            RejectReason.KEY_MISMATCH, f"key {key_text[:32]!r} is not the event's account"
        )
    return AssetEvent(kind, event_id, ts, account, symbol, asset, amount)


def parse_asset_price(value: bytes, key: bytes | None, assets: AssetTable) -> AssetPrice:
    """An asset price; the key, when present, must be the asset."""
    doc = _load(value)
    symbol, asset = _asset(doc, assets)
    key_text = _key_text(key)
    if key_text is not None and key_text != symbol:
        raise Rejected(RejectReason.KEY_MISMATCH, f"key {key_text[:64]!r} is not {symbol!r}")
    if asset == assets.money:
        raise Rejected(RejectReason.INVALID_PRICE, f"{symbol} is the money asset: its price is 1")
    ts = _int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    seq = _int(doc, "seq", RejectReason.INVALID_SEQUENCE, high=SEQ_MAX)
    price = _on_grid(
        _decimal(doc, "price", RejectReason.INVALID_PRICE),
        Decimal(1).scaleb(-assets.money_decimals),
        "price",
        RejectReason.OFF_GRID,
        RejectReason.INVALID_PRICE,
    )
    if not 0 <= price <= VALUE_MAX:
        raise Rejected(RejectReason.INVALID_PRICE, f"price must be 0 to 2^62 units, got {price}")
    return AssetPrice(symbol, asset, ts, seq, price)


def asset_event_doc(
    kind: str, event_id: int, ts: int, account: int, asset: str, amount: str
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": kind,
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "asset": asset,
        "amount": amount,
    }


def asset_price_doc(asset: str, ts: int, seq: int, price: str) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "asset": asset, "ts": ts, "seq": seq, "price": price}
