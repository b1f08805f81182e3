"""A seeded, bounded fuzz of the service loop: adversarial messages through Service.tick with
the real book, checked after every tick. (Over 400 lines: the generator's catalogue of
hostile records is one list of cases, kept beside the checks it feeds.)

`python -m bench.fuzz --messages 1000000 --seed 1`

Each tick takes a batch of records on two account-event partitions and one price partition:
random valid traffic (deposits, withdrawals, fills near the mark, leverage changes, prices
walking in and out of the band, index prices) mixed with hostile ones -- bytes that are not
JSON, truncated and oversized documents, deep nesting, duplicate keys, boundary integers
(0, -1, 2^31, 2^53, 2^62 -1/0, 2^63 -1/0, 2^64), off-grid and hostile decimals ("1_000",
full-width digits, "+5", " 5 ", "5.", "1e400", "NaN"), wrong types, house accounts (the
fund, 2^62 and up), redeliveries of earlier records, and out-of-order or jumping seqs, ids
and times. After every tick:

- no crash: Service.tick raised nothing (a refusal is a dead letter, never an exception);
- the conservation audit (engine.waterfall.conservation.audit) passes;
- replay: a second Service fed the same ticks without their dead-lettered records holds
  the same state -- the snapshot's book batch (engine.io.snapshot.book_batch) and the
  service state (engine.service.state) equal, offsets and the tick aside. An account event
  whose refusal needs the marks (insufficient_margin, price_out_of_band, no_mark, ...) is
  decided after the prices before it have taken effect, so it closes their step: the
  replay gets it too, and must refuse it again for the same reason. Refusals that no step
  could change (a record that does not parse, a duplicate or jumping id, a house account,
  an account not open) close none, and the replay never sees them.

Producers' times rise within a partition (the valid traffic jitters across partitions).
A hostile time that parses but breaks that order is off unless --reorder-ts: the tick order
merges partitions by the time of their next record (engine.service.order), so a refused
record whose time lies above a later accepted one's in its partition holds that one back
in the merge, and the replay without it can differ. Times out of range, and records that
do not parse, are always fuzzed: those take a neighbour's time and move nothing.

It prints messages fuzzed, ticks, dead letters by reason, held prices, outputs by kind, and
crashes / audit failures / replay mismatches (each with the tick that showed it); the exit
status is 1 when any of those is not zero. tests/service/test_fuzz.py runs a small slice.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import TS_MAX
from engine.io.snapshot import book_batch
from engine.service import messages
from engine.service.ports import Record, Topics
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

TOPICS = Topics()
# Refusals of a parsed account event that no step could change (Service._refused_before_marks).
REFUSED_WHATEVER_THE_MARKS = {
    "duplicate_event_id",
    "invalid_event_id",
    "reserved_account",
    "unknown_account",
}
DATA = Path(__file__).resolve().parent.parent / "engine" / "data"
TS0 = 1_760_140_800_000
USDT = 10**8
EVENT_PARTITIONS = 2
ACCOUNTS = 300  # the pool valid traffic draws from (ids 1000 ..)
SYMBOLS = {"BTCUSDT": (100_000.0, "0.1", "0.001"), "ETHUSDT": (4_000.0, "0.01", "0.01")}
BOUNDARY_INTS: list[Any] = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**53,
    2**53 + 1,
    2**62 - 1,
    2**62,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    1.0,
    1.5,
    1e308,
    True,
    None,
    "1",
    [],
    {},
]
HOSTILE_DECIMALS = [
    "1_000",
    "\uff11\uff10",  # full-width 10
    "\u0661\u0660",  # Arabic-Indic 10
    "+5",
    " 5 ",
    "5.",
    ".5",
    "1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-0",
    "0",
    "-5",
    "0.000000001",
    "0.0000000000000000000000001",
    "92233720368.54775807",
    "92233720368.54775808",
    "1" * 40,
    "1e18",
    "0x10",
    "",
    "5,0",
    "5 0",
    "--5",
    "1e",
]


@dataclass
class Report:
    messages: int = 0
    ticks: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    outputs: Counter[str] = field(default_factory=Counter)
    held: int = 0
    crashes: list[str] = field(default_factory=list)
    audit_failures: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.audit_failures or self.mismatches)

    def lines(self) -> list[str]:
        rate = self.messages / self.seconds if self.seconds else 0.0
        out = [
            f"messages fuzzed  {self.messages} in {self.ticks} ticks "
            f"({self.seconds:.1f} s, {rate:,.0f} messages/s)",
            f"dead letters     {sum(self.dead_letters.values())}",
        ]
        out += [f"  {reason:<24} {n}" for reason, n in sorted(self.dead_letters.items())]
        out.append(f"prices held      {self.held}")
        out.append(f"outputs          {sum(self.outputs.values())}")
        out += [f"  {kind:<24} {n}" for kind, n in sorted(self.outputs.items())]
        out.append(f"crashes          {len(self.crashes)}")
        out.append(f"audit failures   {len(self.audit_failures)}")
        out.append(f"replay mismatches {len(self.mismatches)}")
        out += [f"  {s}" for s in (self.crashes + self.audit_failures + self.mismatches)[:10]]
        return out


def new_service(profile: Profile, instruments: InstrumentTable) -> Service:
    book = Book(instruments, warning_rate=profile.warning_rate)
    open_fund(book, profile, 1_000_000 * USDT)
    return Service(book, profile, ServiceConfig())


class Generator:
    """Records for one tick at a time: valid traffic with hostile records mixed in."""

    def __init__(
        self, seed: int, profile: Profile, hostile: float = 0.5, reorder_ts: bool = False
    ) -> None:
        self.rng = random.Random(seed)
        self.hostile = hostile
        self.fund = profile.fund_account_id
        self.offsets = Counter[tuple[str, int]]()
        self.event_id = [0] * EVENT_PARTITIONS
        self.seq = dict.fromkeys(SYMBOLS, 0)
        self.level = {s: spec[0] for s, spec in SYMBOLS.items()}
        self.ts = TS0
        self.sent: list[Record] = []  # a window of earlier records, for redeliveries
        self.last_ts: dict[tuple[str, int], int] = {}
        self.reorder_ts = reorder_ts

    # ----- valid traffic -----------------------------------------------------------------
    def _account(self) -> int:
        return 1000 + self.rng.randrange(ACCOUNTS)

    def _next_id(self, partition: int) -> int:
        self.event_id[partition] += self.rng.choice((1, 1, 1, 2, 7))
        return self.event_id[partition]

    def _price_text(self, symbol: str, level: float) -> str:
        tick = SYMBOLS[symbol][1]
        decimals = len(tick.split(".")[1])
        step = float(tick)
        return f"{round(level / step) * step:.{decimals}f}"

    def _valid_event(self, partition: int) -> dict[str, Any]:
        rng = self.rng
        ts = self.ts + rng.randrange(-50, 50)
        kind = rng.choices(("deposit", "withdraw", "fill", "leverage"), (4, 2, 5, 1))[0]
        event_id = self._next_id(partition)
        if kind == "deposit":
            amount = rng.choice(("10000", "250.5", "0.01", "1000000", "3"))
            return messages.deposit_doc(event_id, ts, self._account(), amount)
        if kind == "withdraw":
            return messages.withdraw_doc(event_id, ts, self._account(), rng.choice(("1", "50")))
        symbol = rng.choice(list(SYMBOLS))
        if kind == "leverage":
            return messages.leverage_doc(
                event_id, ts, self._account(), symbol, rng.choice((1, 2, 5, 20, 50, 125))
            )
        level = self.level[symbol] * (1 + rng.uniform(-0.02, 0.02))
        lots = rng.choice((1, 2, 10, 100, 1000))
        qty = f"{lots * float(SYMBOLS[symbol][2]):.3f}".rstrip("0").rstrip(".")
        buyer, seller = self._account(), self._account()
        return messages.fill_doc(
            event_id, ts, symbol, self._price_text(symbol, level), qty, buyer, seller, "0", "0"
        )

    def _valid_price(self) -> dict[str, Any]:
        rng = self.rng
        symbol = rng.choice(list(SYMBOLS))
        move = rng.choice((0.0, 0.001, -0.001, 0.01, -0.01, 0.05, -0.05, -0.12, 0.12))
        self.level[symbol] = min(max(self.level[symbol] * (1 + move), 10.0), 10_000_000.0)
        self.seq[symbol] += rng.choice((1, 1, 1, 3))
        level = self.level[symbol]
        ts = self.ts + rng.randrange(-50, 50)
        if rng.random() < 0.3:
            sources = {
                name: self._price_text(symbol, level * (1 + rng.uniform(-0.001, 0.001)))
                for name in rng.sample("abcd", rng.randint(1, 4))
            }
            return messages.price_doc(symbol, ts, self.seq[symbol], index_prices=sources)
        return messages.price_doc(
            symbol, ts, self.seq[symbol], mark_price=self._price_text(symbol, level)
        )

    # ----- hostile -------------------------------------------------------------------------
    def _mutate(self, doc: dict[str, Any]) -> bytes | dict[str, Any]:
        mutated = self._mutate_once(doc)
        if self.reorder_ts:
            return mutated
        if isinstance(mutated, dict) and _reorders(mutated, doc):
            mutated["ts"] = doc["ts"]
        elif isinstance(mutated, bytes):
            try:  # a flipped byte can leave a document that parses, with another time
                parsed = json.loads(mutated)
            except (ValueError, RecursionError):
                return mutated
            if isinstance(parsed, dict) and _reorders(parsed, doc):
                return doc
        return mutated

    def _mutate_once(self, doc: dict[str, Any]) -> bytes | dict[str, Any]:
        rng = self.rng
        doc = dict(doc)
        choice = rng.randrange(14)
        keys = list(doc)
        if choice == 0:
            doc[rng.choice(keys)] = rng.choice(BOUNDARY_INTS)
        elif choice == 1:
            money = [k for k in keys if k in ("amount", "price", "qty", "mark_price")]
            doc[rng.choice(money or keys)] = rng.choice(HOSTILE_DECIMALS)
        elif choice == 2:
            for k in ("account", "buyer", "seller"):
                if k in doc:
                    doc[k] = rng.choice((self.fund, 2**62, 2**62 + 1, 2**63 - 1, -1, 0))
        elif choice == 3:
            del doc[rng.choice(keys)]
        elif choice == 4:
            depth = rng.choice((3, 7, 8, 9, 50, 1000, 5000))
            deep = b"[" * (depth // 2) + b'{"a":' * (depth - depth // 2) + b"1"
            deep += b"}" * (depth - depth // 2) + b"]" * (depth // 2)
            return messages.encode(doc)[:-1] + b',"extra":' + deep + b"}"
        elif choice == 5:
            doc["pad"] = "x" * rng.choice((100, 65_000, 70_000))
        elif choice == 6:
            raw = messages.encode(doc)
            k = rng.choice(keys)
            dup = json.dumps({k: rng.choice(BOUNDARY_INTS)})[1:-1].encode()
            return raw[:-1] + b"," + dup + b"}"
        elif choice == 7:
            raw = messages.encode(doc)
            return raw[: rng.randrange(len(raw))]
        elif choice == 8:
            flipped = bytearray(messages.encode(doc))
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            return bytes(flipped)
        elif choice == 9:
            doc["type"] = rng.choice(("deposit", "fill", "nope", "", 5, None))
        elif choice == 10:
            doc["v"] = rng.choice((0, 2, "1", 1.0, True, None))
        elif choice == 11:
            doc["symbol"] = rng.choice(("btcusdt", "XYZ", "", "BTCUSDT\x00", 1))
        elif choice == 12:
            # Ids and seqs near and past their bounds, times past theirs (and in range but
            # out of their partition's order: only with reorder_ts, see `run`).
            for k in ("event_id", "seq", "ts"):
                if k in doc:
                    doc[k] = rng.choice((2**62 - 1, 2**62 - 2, 2**62, TS_MAX + 1, TS_MAX - 1, 1))
        else:
            return rng.choice(
                (
                    b"",
                    b"null",
                    b"[]",
                    b"{",
                    b'"x"',
                    b"\xff\xfe",
                    b"{}",
                    b"1e999",
                    b'{"v":1}',
                    b"[" * 5000,
                    b'{"a":' * 200 + b"1" + b"}" * 200,
                    bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
                )
            )
        return doc

    def resync(self, service: Service) -> None:
        """Go on above the ids and seqs the service accepted: a hostile id or seq within
        the gap (EVENT_ID_GAP_MAX, SEQ_GAP_MAX) is accepted and would otherwise make every
        later valid record of its partition or symbol a duplicate (a producer so blocked
        resumes above it)."""
        for partition in range(EVENT_PARTITIONS):
            name = f"{TOPICS.account_events}:{partition}"
            last = service.state.last_event_id.get(name, 0)
            self.event_id[partition] = max(self.event_id[partition], last)
        for symbol in SYMBOLS:
            last = service.state.last_price_seq.get(symbol, 0)
            self.seq[symbol] = max(self.seq[symbol], last)

    def _record(self, topic: str, partition: int, value: bytes, key: bytes | None) -> Record:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = offset + 1
        return Record(topic, partition, offset, key, value)

    def tick(self, n: int) -> list[Record]:
        rng = self.rng
        self.ts += rng.choice((0, 10, 100, 1000, 60_000))
        records: list[Record] = []
        for _ in range(n):
            is_price = rng.random() < 0.35
            partition = 0 if is_price else rng.randrange(EVENT_PARTITIONS)
            topic = TOPICS.prices if is_price else TOPICS.account_events
            r = rng.random()
            if r < self.hostile * 0.15 and self.sent:
                old = rng.choice(self.sent)  # a redelivery, to its own partition
                records.append(self._record(old.topic, old.partition, old.value, old.key))
                continue
            doc = self._valid_price() if is_price else self._valid_event(partition)
            # A producer's times do not go back within its partition (jitter across them).
            last = self.last_ts.get((topic, partition), 0)
            doc["ts"] = self.last_ts[(topic, partition)] = max(last, doc["ts"])
            value: bytes | dict[str, Any] = doc
            if r < self.hostile:
                value = self._mutate(doc)
            raw = value if isinstance(value, bytes) else _encode(value)
            key = self._key(doc, is_price)
            if rng.random() < 0.02:
                key = rng.choice((None, b"", b"999999", b"\xff"))
            records.append(self._record(topic, partition, raw, key))
        self.sent = (self.sent + records)[-200:]
        return records

    def _key(self, doc: dict[str, Any], is_price: bool) -> bytes | None:
        if is_price:
            return str(doc["symbol"]).encode()
        account = doc.get("account", doc.get("buyer"))
        return messages.account_key(account) if isinstance(account, int) else None


def _parses(
    records: list[Record], where: tuple[str, int, int], instruments: InstrumentTable
) -> bool:
    """Whether the account-event record at `where` parses (its refusal came at the book)."""
    if where[0] != TOPICS.account_events:
        return False
    record = next(r for r in records if (r.topic, r.partition, r.offset) == where)
    try:
        messages.parse_account_event(record.value, record.key, instruments)
    except Rejected:
        return False
    return True


def _reorders(mutated: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether a mutation gave the record another time that parses (in range)."""
    ts = mutated.get("ts")
    if isinstance(ts, str) and ts.isascii() and ts.isdigit() and len(ts) <= 19:
        ts = int(ts)
    in_range = isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts <= TS_MAX
    return in_range and ts != doc["ts"]


def _encode(doc: dict[str, Any]) -> bytes:
    try:
        return messages.encode(doc)
    except (ValueError, TypeError):
        return json.dumps(doc, default=str).encode()


def _state_of(service: Service) -> tuple[Any, str]:
    extra = dict(service.extra()["service"])
    extra.pop("offsets", None)
    extra.pop("tick", None)
    return book_batch(service.book), json.dumps(extra, sort_keys=True, default=str)


def run(
    n_messages: int,
    seed: int,
    *,
    batch_max: int = 64,
    hostile: float = 0.5,
    replay: bool = True,
    reorder_ts: bool = False,
    progress: bool = False,
    max_seconds: float = 0.0,
) -> Report:
    """Fuzz `n_messages` records in ticks of 1..batch_max records; see the module text."""
    profile = Profile.shipped()
    instruments = InstrumentTable.load(DATA / "instruments.json")
    service = new_service(profile, instruments)
    mirror = new_service(profile, instruments) if replay else None
    gen = Generator(seed, profile, hostile, reorder_ts)
    rng = random.Random(seed + 1)
    report = Report()
    started = time.perf_counter()
    next_progress = started + 10
    while report.messages < n_messages:
        if max_seconds and time.perf_counter() - started > max_seconds:
            break  # the time budget: the report says how many were fuzzed
        n = min(rng.randint(1, batch_max), n_messages - report.messages)
        records = gen.tick(n)
        report.messages += n
        report.ticks += 1
        tick = service.state.tick + 1
        try:
            outputs = service.tick(records)
        except Exception as exc:  # a crash: the harness records it and stops
            report.crashes.append(f"tick {tick}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            break
        dead: dict[tuple[str, int, int], str] = {}
        for o in outputs:
            doc = json.loads(o.value)
            report.outputs[doc["kind"]] += 1
            if o.topic == TOPICS.dead_letter:
                report.dead_letters[doc["reason"]] += 1
                dead[(doc["topic"], doc["partition"], doc["offset"])] = doc["reason"]
        report.held += service.last_stats.prices_held
        gen.resync(service)
        try:
            if not audit(service.book).ok:
                report.audit_failures.append(f"tick {tick}: the audit is not ok")
        except Exception as exc:
            report.audit_failures.append(f"tick {tick}: {type(exc).__name__}: {exc}")
        if mirror is not None:
            # The accepted records, and the refused ones whose refusal needs the marks (they
            # close a step, so they go again and must be refused again, for the same reason).
            at_marks = {
                where: reason
                for where, reason in dead.items()
                if reason not in REFUSED_WHATEVER_THE_MARKS and _parses(records, where, instruments)
            }
            kept = [
                r
                for r in records
                if (where := (r.topic, r.partition, r.offset)) not in dead or where in at_marks
            ]
            try:
                again = {
                    (d["topic"], d["partition"], d["offset"]): d["reason"]
                    for d in (json.loads(o.value) for o in mirror.tick(kept))
                    if d["kind"] == "rejected"
                }
            except Exception as exc:
                report.mismatches.append(f"tick {tick}: the replay raised {exc!r}")
                break
            (got_book, got_state), (want_book, want_state) = _state_of(service), _state_of(mirror)
            if got_state != want_state or not got_book.equals(want_book) or again != at_marks:
                report.mismatches.append(f"tick {tick}: the replay of the accepted differs")
                mirror = None  # diverged for good: stop comparing
        if report.audit_failures:
            break
        if progress and time.perf_counter() > next_progress:
            next_progress += 10
            print(f"... {report.messages} messages, {report.ticks} ticks", file=sys.stderr)
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-max", type=int, default=64)
    parser.add_argument("--hostile", type=float, default=0.5, help="share of hostile records")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay check")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="stop early (0: never)")
    parser.add_argument(
        "--reorder-ts",
        action="store_true",
        help="also hostile times that parse but break their partition's time order",
    )
    args = parser.parse_args(argv)
    report = run(
        args.messages,
        args.seed,
        batch_max=args.batch_max,
        hostile=args.hostile,
        replay=not args.no_replay,
        reorder_ts=args.reorder_ts,
        progress=True,
        max_seconds=args.max_seconds,
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
