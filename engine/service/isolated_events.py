"""Isolated positions from the stream (the profile's `[isolated]`,
engine.risk.isolated_margin): the account events that open an isolated position, move
margin into or out of it, and trade in it.

- `isolated_margin` {account, symbol, amount[, leverage]}: `amount` (a decimal in money,
  not zero) moves between the owner `account` and its isolated position in `symbol`, one
  ledger posting (Reason.ISOLATED_MARGIN). Positive: into the position; the first one opens
  its sub-account (ids from the profile's `isolated.subaccount_base` up, in the order they
  are opened: engine.risk.isolated_margin.IsolatedRegistry.open). The owner may move at most
  its free balance (what it could withdraw: IsolatedRegistry.free_balance), else
  `insufficient_margin`. Negative: out of the position, at most the sub-account's own free
  balance (the margin its position does not need), else `insufficient_margin`; a position
  never opened is `not_isolated`. `leverage` (optional, an integer) then sets the position's
  leverage, as a `leverage` event would.
- a fill with `buyer_isolated` / `seller_isolated` true: that side trades in its owner's
  isolated position of the fill's symbol (`not_isolated` when none is open: margin comes in
  first), under the fill rules of engine.service.tick. The key, as for any fill, is a
  side's owner.

Without an `[isolated]` section both are refused (`not_isolated`). An isolated sub-account is
keyed by its own id where the events topic is sharded, so a house that shards the events
topic sends an owner's isolated events to the partition of the sub-account id (a single
partition needs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.ledger import Reason
from engine.book.limits import EVENT_ID_MAX, LEVERAGE_MAX, TS_MAX, VALUE_MAX
from engine.book.reasons import RejectReason
from engine.risk.isolated_margin import IsolatedRegistry
from engine.service import messages
from engine.service.rollback import Savepoint

ISOLATED_EVENT_TYPE = "isolated_margin"
ISOLATED_FLAGS = ("buyer_isolated", "seller_isolated")


@dataclass(frozen=True, slots=True)
class IsolatedMargin:
    """`isolated_margin`: money between an owner and its isolated position."""

    event_id: int
    ts: int
    account: int  # the owner
    symbol: str
    amount: int  # money units, signed: > 0 into the position, < 0 out of it
    leverage: int | None = None


@dataclass(frozen=True, slots=True)
class IsolatedFill:
    """A fill one or both of whose sides trade in an isolated position."""

    fill: messages.Fill
    buyer_isolated: bool
    seller_isolated: bool

    @property
    def event_id(self) -> int:
        return self.fill.event_id

    @property
    def ts(self) -> int:
        return self.fill.ts


def might_be_isolated(value: bytes) -> bool:
    """Whether an account-event record may be one of these (the parse decides)."""
    return b"isolated" in value


def parse_isolated_event(
    value: bytes, key: bytes | None, instruments: InstrumentTable
) -> IsolatedMargin | IsolatedFill | None:
    """The isolated event in `value`, or None when it is another account event."""
    doc = messages._load(value)
    kind = doc.get("type")
    if kind == "fill" and any(name in doc for name in ISOLATED_FLAGS):
        flags = []
        for name in ISOLATED_FLAGS:
            flag = doc.get(name, False)
            if not isinstance(flag, bool):
                raise Rejected(RejectReason.INVALID_FIELD, f"{name} must be true or false")
            flags.append(flag)
        fill = messages.parse_account_event(value, key, instruments)
        assert isinstance(fill, messages.Fill)
        return IsolatedFill(fill, flags[0], flags[1]) if any(flags) else None
    if kind != ISOLATED_EVENT_TYPE:
        return None
    event_id = messages._int(
        doc, "event_id", RejectReason.INVALID_EVENT_ID, low=1, high=EVENT_ID_MAX
    )
    ts = messages._int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    account = messages._int(doc, "account", RejectReason.INVALID_ACCOUNT)
    symbol, _ = messages._symbol(doc, instruments)
    amount = messages._on_grid(
        messages._decimal(doc, "amount", RejectReason.INVALID_AMOUNT),
        instruments.money_step,
        "amount",
        RejectReason.INVALID_AMOUNT,
    )
    if amount == 0 or abs(amount) > VALUE_MAX:
        raise Rejected(RejectReason.INVALID_AMOUNT, f"amount must not be zero, got {amount}")
    leverage = None
    if "leverage" in doc:
        leverage = messages._int(
            doc, "leverage", RejectReason.INVALID_LEVERAGE, low=1, high=LEVERAGE_MAX
        )
    key_text = messages._key_text(key)
    if key_text is not None and key_text != str(account):
        raise Rejected(RejectReason.KEY_MISMATCH, f"key {key_text[:32]!r} is not account {account}")
    return IsolatedMargin(event_id, ts, account, symbol, amount, leverage)


def _registry(registry: IsolatedRegistry | None) -> IsolatedRegistry:
    if registry is None:
        raise Rejected(
            RejectReason.NOT_ISOLATED,
            "the profile has no [isolated] section: no isolated positions",
        )
    return registry


def resolve_fill(registry: IsolatedRegistry | None, event: IsolatedFill) -> messages.Fill:
    """The fill with each isolated side's owner replaced by its sub-account."""
    registry = _registry(registry)
    fill = event.fill
    sides = {"buyer": fill.buyer, "seller": fill.seller}
    for name, owner, isolated in (
        ("buyer", fill.buyer, event.buyer_isolated),
        ("seller", fill.seller, event.seller_isolated),
    ):
        if not isolated:
            continue
        sub = registry.sub_account(registry.check_owner(owner), fill.symbol)
        if sub is None:
            raise Rejected(
                RejectReason.NOT_ISOLATED,
                f"fill {fill.event_id}: account {owner} has no isolated {fill.symbol} position"
                " (move margin into it first: isolated_margin)",
            )
        sides[name] = sub
    return replace(fill, buyer=sides["buyer"], seller=sides["seller"])


def apply_isolated_margin(
    book: Book, registry: IsolatedRegistry | None, event: IsolatedMargin
) -> None:
    """Move the margin, then set the leverage: all or nothing (a refusal after the first
    write puts both accounts back: engine.service.rollback)."""
    registry = _registry(registry)
    owner = registry.check_owner(event.account)
    sub = registry.sub_account(owner, event.symbol)
    if event.amount > 0:
        free = registry.free_balance(owner)  # unknown_account when the owner is not open
        if event.amount > free:
            raise Rejected(
                RejectReason.INSUFFICIENT_MARGIN,
                f"account {owner}: {event.amount} into isolated {event.symbol}, free {free}",
            )
        if sub is None and event.leverage is not None:
            inst = book.instruments.index[event.symbol]
            if event.leverage > book.instruments.tier_for(inst, 0).max_leverage:
                raise Rejected(
                    RejectReason.LEVERAGE_ABOVE_MAX,
                    f"isolated {event.symbol}: leverage {event.leverage} above the tier's max",
                )
        sub = registry.open(owner, event.symbol)
    elif sub is None:
        raise Rejected(
            RejectReason.NOT_ISOLATED, f"account {owner} has no isolated {event.symbol} position"
        )
    savepoint = Savepoint(book, (owner, sub))
    try:
        _move(book, registry, owner, sub, event)
    except Rejected:
        savepoint.restore()
        raise


def _move(
    book: Book, registry: IsolatedRegistry, owner: int, sub: int, event: IsolatedMargin
) -> None:
    if event.amount > 0:
        debit, credit, amount = owner, sub, event.amount
    else:
        if event.leverage is not None:  # the margin the position needs at its new leverage
            book.set_leverage(sub, event.symbol, event.leverage)
        free = registry.free_balance(sub)
        if -event.amount > free:
            raise Rejected(
                RejectReason.INSUFFICIENT_MARGIN,
                f"isolated {event.symbol} of account {owner}: {-event.amount} out, free {free}",
            )
        debit, credit, amount = sub, owner, -event.amount
    total = int(book.balance[book.row_of(owner)]) + int(book.balance[book.row_of(sub)])
    book.transfer(debit, credit, amount, Reason.ISOLATED_MARGIN, event.event_id)
    after = int(book.balance[book.row_of(owner)]) + int(book.balance[book.row_of(sub)])
    assert after == total, f"isolated margin {event.event_id}: {owner}+{sub} moved {total}->{after}"
    if event.leverage is not None and event.amount > 0:
        book.set_leverage(sub, event.symbol, event.leverage)
