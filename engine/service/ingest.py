"""A poll's account-event records -> event columns (engine.book.batch.EventColumns).

The rules are engine.service.messages' and only theirs: a record takes the fast path only
when it is in the plain form producers write -- one flat JSON object without whitespace,
each key once, integers as JSON integers, amounts, prices and quantities as plain decimal
strings on a power-of-ten grid, the key one of its accounts -- and then its values are
exactly what messages.parse_account_event gives. Any other record (and every refused one)
goes through parse_account_event itself, which gives the value or the refusal with its
reason and detail. Decoding uses orjson: bench.ingest measures it against msgspec and the
standard json module on these small objects; orjson and msgspec are both 3-8x faster than
json and within noise of each other, and orjson needs no schema types.

The columnar format (`arrow_rows`, `encode_arrow_events`; docs/service.md): a record whose
value is an Arrow IPC stream (it starts with the IPC continuation marker, which no JSON text
does) carries a batch of account events, one per row, in the columns of
ACCOUNT_EVENTS_SCHEMA. Each row becomes a record of its own -- same topic, partition and
offset, `row` its index, its value the row as the plain JSON object -- so every event keeps
its own identity and goes through exactly the JSON rules (the fast path above, or
messages.parse_account_event), and a refused row is dead-lettered alone, naming the record
and the row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa

from engine.book.batch import DEPOSIT, FILL, LEVERAGE, WITHDRAW, EventColumns
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import EVENT_ID_MAX, INT64_MAX, LEVERAGE_MAX, TS_MAX
from engine.book.reasons import RejectReason
from engine.service import messages
from engine.service.messages import Deposit, Fill, LeverageChange, Withdraw
from engine.service.ports import Record

_PLAIN = re.compile(rb"[^\s]*\Z")
_UNITS = re.compile(r"([0-9]+)(?:\.([0-9]+))?\Z", re.ASCII)
_KIND = {"deposit": DEPOSIT, "withdraw": WITHDRAW, "fill": FILL, "leverage": LEVERAGE}


@dataclass
class Decoded:
    """Per record: the event as columns (rows of `columns` are the records in `rows`), or
    its refusal; `ts` per column row."""

    columns: EventColumns
    rows: np.ndarray  # record index of each column row
    ts: np.ndarray
    refused: dict[int, Rejected] = field(default_factory=dict)


def _places(step: Decimal) -> int | None:
    sign, digits, exponent = step.normalize().as_tuple()
    if sign == 0 and digits == (1,) and isinstance(exponent, int) and exponent <= 0:
        return -exponent
    return None


class _Grids:
    def __init__(self, instruments: InstrumentTable) -> None:
        self.money = _places(instruments.money_step)
        self.tick = [_places(i.tick_size) for i in instruments.instruments]
        self.lot = [_places(i.lot_size) for i in instruments.instruments]
        self.price_max = [INT64_MAX // int(v) for v in instruments.tick_value]


def _units(text: object, places: int | None) -> int | None:
    """A plain non-negative decimal string on a 10^-places grid as units; None otherwise."""
    if places is None or type(text) is not str:
        return None
    match = _UNITS.match(text)
    if match is None:
        return None
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > places or len(whole) > 19:
        return None
    units = int(whole + frac.ljust(places, "0"))
    return units if units <= INT64_MAX else None


def _int(value: object, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _fast(
    value: bytes, key: bytes | None, instruments: InstrumentTable, grids: _Grids
) -> tuple[int, ...] | None:
    """(kind, event_id, ts, account, counterparty, instrument, price, qty, amount, fee,
    counterparty_fee, leverage) of a plain record, or None: the reference decides."""
    if len(value) > messages.VALUE_BYTES_MAX or not _PLAIN.match(value):
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or value.count(b'":') != len(doc) or doc.get("v") != 1:
        return None
    for item in doc.values():
        if type(item) is not int and type(item) is not str:
            return None
    if type(doc["v"]) is not int:
        return None
    kind = _KIND.get(doc.get("type"))  # type: ignore[arg-type]
    event_id = _int(doc.get("event_id"), 1, EVENT_ID_MAX)
    ts = _int(doc.get("ts"), 0, TS_MAX)
    if kind is None or event_id is None or ts is None:
        return None
    if kind == FILL:
        inst = instruments.index.get(doc.get("symbol"))  # type: ignore[arg-type]
        if inst is None:
            return None
        price = _units(doc.get("price"), grids.tick[inst])
        qty = _units(doc.get("qty"), grids.lot[inst])
        buyer = _int(doc.get("buyer"), 0, INT64_MAX)
        seller = _int(doc.get("seller"), 0, INT64_MAX)
        fees = [_units(doc.get(name, "0"), grids.money) for name in ("buyer_fee", "seller_fee")]
        if price is None or qty is None or buyer is None or seller is None:
            return None
        if not (0 < price <= grids.price_max[inst] and qty > 0 and buyer != seller):
            return None
        if fees[0] is None or fees[1] is None:
            return None
        if key is not None and key != str(buyer).encode() and key != str(seller).encode():
            return None
        return (FILL, event_id, ts, buyer, seller, inst, price, qty, 0, fees[0], fees[1], 0)
    account = _int(doc.get("account"), 0, INT64_MAX)
    if account is None or (key is not None and key != str(account).encode()):
        return None
    if kind == LEVERAGE:
        inst = instruments.index.get(doc.get("symbol"))  # type: ignore[arg-type]
        leverage = _int(doc.get("leverage"), 1, LEVERAGE_MAX)
        if inst is None or leverage is None:
            return None
        return (LEVERAGE, event_id, ts, account, 0, inst, 0, 0, 0, 0, 0, leverage)
    amount = _units(doc.get("amount"), grids.money)
    if amount is None or amount <= 0:
        return None
    return (kind, event_id, ts, account, 0, 0, 0, 0, amount, 0, 0, 0)


class PlainEvent(NamedTuple):
    """An account event in the plain producer form, decoded by the fast path only (the row
    of `decode_account_events`' form): what the tick order needs of it (its `ts`) without
    the reference parse, for a tick that applies its account events as one batch, which
    decodes them again itself."""

    row: tuple[int, ...]

    @property
    def ts(self) -> int:
        return self.row[2]

    @property
    def event_id(self) -> int:
        return self.row[1]

    @property
    def accounts(self) -> tuple[int, ...]:
        """The accounts it names: buyer and seller of a fill, else its account."""
        return (self.row[3], self.row[4]) if self.row[0] == FILL else (self.row[3],)

    @property
    def needs_open_accounts(self) -> bool:
        """A withdrawal, fill or leverage change (a deposit opens its account)."""
        return self.row[0] != DEPOSIT


class FastDecoder:
    """The fast path on one instrument table: a plain record's row, or None."""

    def __init__(self, instruments: InstrumentTable) -> None:
        self.instruments = instruments
        self.grids = _Grids(instruments)

    def __call__(self, record: Record) -> PlainEvent | None:
        row = _fast(record.value, record.key, self.instruments, self.grids)
        return None if row is None else PlainEvent(row)


def row_of_event(event: messages.AccountEvent) -> tuple[int, ...]:
    """An event parsed by messages.parse_account_event as a row of the fast path's form."""
    if isinstance(event, Fill):
        return (
            FILL,
            event.event_id,
            event.ts,
            event.buyer,
            event.seller,
            event.instrument,
            event.price,
            event.qty,
            0,
            event.buyer_fee,
            event.seller_fee,
            0,
        )
    if isinstance(event, LeverageChange):
        return (LEVERAGE, event.event_id, event.ts, event.account, 0, event.instrument) + (
            0,
            0,
            0,
            0,
            0,
            event.leverage,
        )
    kind = DEPOSIT if isinstance(event, Deposit) else WITHDRAW
    assert isinstance(event, Deposit | Withdraw)
    return (kind, event.event_id, event.ts, event.account, 0, 0, 0, 0, event.amount, 0, 0, 0)


def decode_account_events(
    records: Sequence[Record],
    instruments: InstrumentTable,
    known: Sequence[PlainEvent | None] = (),
) -> Decoded:
    """Every record decoded and validated (engine.service.messages' rules); `known[i]`, when
    given, is record i already decoded by the fast path (FastDecoder)."""
    grids = _Grids(instruments)
    rows: list[tuple[int, ...]] = []
    where: list[int] = []
    refused: dict[int, Rejected] = {}
    for i, record in enumerate(records):
        plain = known[i] if i < len(known) else None
        row = (
            plain.row if plain is not None else _fast(record.value, record.key, instruments, grids)
        )
        if row is None:
            try:
                event = messages.parse_account_event(record.value, record.key, instruments)
            except Rejected as exc:
                refused[i] = exc
                continue
            row = row_of_event(event)
        rows.append(row)
        where.append(i)
    return Decoded(_columns(rows), np.asarray(where, dtype=np.int64), _ts(rows), refused)


def _ts(rows: list[tuple[int, ...]]) -> np.ndarray:
    return np.asarray([row[2] for row in rows], dtype=np.int64)


def _columns(rows: list[tuple[int, ...]]) -> EventColumns:
    cols = EventColumns.empty(len(rows))
    if not rows:
        return cols
    table = np.asarray(rows, dtype=np.int64)
    cols.kind[:] = table[:, 0]
    cols.event_id[:] = table[:, 1]
    cols.account[:] = table[:, 3]
    cols.counterparty[:] = table[:, 4]
    cols.instrument[:] = table[:, 5]
    cols.price[:] = table[:, 6]
    cols.qty[:] = table[:, 7]
    cols.amount[:] = table[:, 8]
    cols.fee[:] = table[:, 9]
    cols.counterparty_fee[:] = table[:, 10]
    cols.leverage[:] = table[:, 11]
    return cols


# ----- the columnar format: a batch of account events as an Arrow IPC stream ----------------
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"  # an IPC stream's first message starts with it
ARROW_BYTES_MAX = 16 * 1024 * 1024
ARROW_ROWS_MAX = 100_000
# Field -> its Arrow type. Integers are int64; decimals are strings in the JSON form's
# plain decimal text (decimal128 columns are read as their exact plain text too). A null is
# an absent field. Columns may be left out (all null) but not added.
ACCOUNT_EVENTS_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("event_id", pa.int64()),
        ("ts", pa.int64()),
        ("account", pa.int64()),
        ("amount", pa.string()),
        ("symbol", pa.string()),
        ("price", pa.string()),
        ("qty", pa.string()),
        ("buyer", pa.int64()),
        ("seller", pa.int64()),
        ("buyer_fee", pa.string()),
        ("seller_fee", pa.string()),
        ("leverage", pa.int64()),
    ]
)


def is_arrow_batch(value: bytes) -> bool:
    """Whether an account-event record's value is a columnar batch (not a JSON object)."""
    return value[:4] == ARROW_STREAM_MAGIC


def encode_arrow_events(docs: Sequence[dict[str, object]]) -> bytes:
    """Account-event JSON documents (messages.deposit_doc, fill_doc, ...) as one columnar
    batch record's value: what a producer that batches sends."""
    schema = ACCOUNT_EVENTS_SCHEMA
    columns = {name: [doc.get(name) for doc in docs] for name in schema.names}
    batch = pa.RecordBatch.from_pydict(columns, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _column_values(column: pa.ChunkedArray, name: str) -> list[object]:
    kind = column.type
    if pa.types.is_decimal(kind):
        return [None if v is None else format(v, "f") for v in column.to_pylist()]
    expected = ACCOUNT_EVENTS_SCHEMA.field(name).type
    if expected == pa.int64() and pa.types.is_signed_integer(kind):
        return list(column.to_pylist())
    if expected == pa.string() and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return list(column.to_pylist())
    raise Rejected(RejectReason.INVALID_INPUT, f"column {name!r} is {kind}, expected {expected}")


def arrow_rows(record: Record) -> list[Record]:
    """A columnar batch record as one record per event (row order); Rejected
    (`too_large`, `invalid_input`) for the whole record when it is not a readable batch in
    ACCOUNT_EVENTS_SCHEMA."""
    value = record.value
    if len(value) > ARROW_BYTES_MAX:
        raise Rejected(
            RejectReason.TOO_LARGE, f"batch of {len(value)} bytes (max {ARROW_BYTES_MAX})"
        )
    try:
        table = pa.ipc.open_stream(value).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Rejected(
            RejectReason.INVALID_INPUT, f"not an Arrow IPC stream: {str(exc)[:200]}"
        ) from None
    unknown = [name for name in table.schema.names if name not in ACCOUNT_EVENTS_SCHEMA.names]
    if unknown or len(set(table.schema.names)) != len(table.schema.names):
        raise Rejected(
            RejectReason.INVALID_INPUT,
            f"columns {table.schema.names[:20]!r}: unknown or repeated names",
        )
    if table.num_rows > ARROW_ROWS_MAX:
        raise Rejected(
            RejectReason.TOO_LARGE, f"batch of {table.num_rows} events (max {ARROW_ROWS_MAX})"
        )
    names = [name for name in ACCOUNT_EVENTS_SCHEMA.names if name in table.schema.names]
    columns = [_column_values(table.column(name), name) for name in names]
    rows = []
    for i in range(table.num_rows):
        doc: dict[str, object] = {"v": messages.SCHEMA_VERSION}
        for name, values in zip(names, columns, strict=True):
            if values[i] is not None:
                doc[name] = values[i]
        rows.append(record._replace(key=None, value=orjson.dumps(doc), row=i))
    return rows
