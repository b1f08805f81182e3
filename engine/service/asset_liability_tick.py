"""One tick of the service for an asset-liability book: records in, output records out,
deterministic, no I/O of its own -- the futures service's contract (engine.service.tick)
for margin financing and spot margin.

A tick takes a batch of records (topic, partition, offset, key, value bytes):

1. asset events, in batch order: validated (engine.service.messages.parse_asset_event),
   deduplicated by event id (ids must increase within a partition: `duplicate_event_id`),
   refused when they name a house account (`reserved_account`), then applied through
   engine.margin.operations: asset_deposit, asset_withdraw and borrow (these two refused
   below the call level: `insufficient_margin`), repay.
2. asset prices, in batch order: validated (parse_asset_price), then the instrument
   prices' rule (engine.service.price_screen: `stale_sequence` unless seq rises per asset,
   a first price and a move beyond `band_rate` of the asset's price as the tick opened held
   until `band_confirm` prices confirm it); the last accepted price per asset becomes its
   price.
3. the sweep (the native kernel, engine.margin.ratio), once every asset held or owed has a
   price; an account entering margin call (or worse) gets one `margin_call` output on the
   margin-calls topic, with its collateral value, liability value and ratio.
4. forced liquidation (engine.margin.liquidation) when an account is at `liquidate` or
   worse: its events go to the liquidations / insurance topics, and the fund's summary.

Every rejected record is dead-lettered with its reason and changes no state (each
operation checks everything before it writes). `extra()` is what a snapshot carries beside
the book (the ServiceState) and `last_stats` what the tick did, for metrics: the driver
(engine.service.driver) runs this service as the futures one (engine.service.asset_service).
Daily interest and the call clock: a `settlement` message on the prices topic
(engine.service.asset_settlement) settles the day where it stands among the prices, at the
prices accepted before it; the tick's sweep then sees the call clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.reasons import RejectReason
from engine.margin import operations
from engine.margin.accounts import AssetBook
from engine.margin.liquidation import liquidate
from engine.margin.ratio import STATUS_LIQUIDATE, STATUS_MARGIN_CALL, ratio_text, sweep
from engine.service import messages
from engine.service.asset_settlement import Settlement, is_settlement, parse_settlement, settle
from engine.service.order import EventTime
from engine.service.outputs import TickOutputs, fund_doc, rejected_doc, topic_of_event
from engine.service.ports import Output, Record, tp_name
from engine.service.price_screen import PriceScreen
from engine.service.state import ServiceConfig, ServiceState, TickStats
from engine.waterfall.events import Event, WaterfallResult
from engine.waterfall.profile import Profile, is_reserved


class AssetLiabilityService:
    """The engine's state behind a stream for an asset-liability profile."""

    def __init__(
        self,
        book: AssetBook,
        profile: Profile,
        config: ServiceConfig | None = None,
        state: ServiceState | None = None,
    ) -> None:
        if profile.asset_liability is None:
            raise ValueError(f"profile {profile.name} is not an asset-liability model")
        if book.index.find(profile.fund_account_id) is None:
            raise ValueError("the insurance fund's account must be open (engine.margin)")
        self.book = book
        self.profile = profile
        self.rules = profile.asset_liability
        self.config = config or ServiceConfig()
        self.state = state or ServiceState()
        # The instrument prices' band rule, on the assets' prices (engine.service.price_screen).
        self.screen = PriceScreen(self.state, self.config)
        self.last_result: WaterfallResult | None = None
        self.last_stats = TickStats()
        # The journal position saved with the snapshot this service was restored from.
        self.journal_position = 0

    def extra(self) -> dict[str, Any]:
        """The service state a snapshot carries beside the book."""
        return {"service": self.state.to_extra(self.config.shard)}

    def tick(self, records: Sequence[Record]) -> list[Output]:
        topics = self.config.topics
        state = self.state
        state.tick += 1
        stats = self.last_stats = TickStats(records=len(records))
        out = TickOutputs(self.config.shard, state.tick)
        events, prices = [], []
        for record in records:
            name = tp_name(record.topic, record.partition)
            assert record.offset >= state.offsets.get(name, 0), f"{name}: offset went back"
            state.offsets[name] = record.offset + 1
            if record.topic == topics.account_events:
                events.append(record)
            elif record.topic == topics.prices:
                prices.append(record)
            else:
                raise AssertionError(f"record from a topic the service does not read: {name}")
        tick_ts = EventTime(state.tick_ts)
        assets = self.book.assets
        for record in events:
            try:
                event = messages.parse_asset_event(record.value, record.key, assets)
                self._apply(record, event)
                tick_ts.accept(event.ts)
                stats.account_events += 1
            except Rejected as exc:
                stats.rejects[exc.reason] = stats.rejects.get(exc.reason, 0) + 1
                out.add(topics.dead_letter, record.key or b"", rejected_doc(record, exc))
        accepted: dict[int, messages.AssetPrice] = {}
        self.screen.open_tick(np.where(self.book.price_set, self.book.price, 0).tolist())
        for record in prices:
            try:
                if is_settlement(record.value):  # at the prices before it (asset_settlement)
                    self._set_prices(accepted)
                    accepted = {}
                    settlement = parse_settlement(record.value, record.key, assets)
                    self._settle(settlement)
                    tick_ts.accept(settlement.ts)
                    stats.prices += 1
                    continue
                update = messages.parse_asset_price(record.value, record.key, assets)
                if self.screen.accept(
                    update.symbol, update.asset, update.ts, update.seq, update.price
                ):
                    accepted[update.asset] = update
                    tick_ts.accept(update.ts)
                else:
                    stats.prices_held += 1
                stats.prices += 1
            except Rejected as exc:
                stats.rejects[exc.reason] = stats.rejects.get(exc.reason, 0) + 1
                out.add(topics.dead_letter, record.key or b"", rejected_doc(record, exc))
        state.tick_ts = tick_ts.closing()
        self._set_prices(accepted)
        if self._priced():
            self._risk(out, stats)
        stats.outputs = out.counts
        return out.finish(state.tick_ts)

    def _apply(self, record: Record, event: messages.AssetEvent) -> None:
        name = tp_name(record.topic, record.partition)
        last = self.state.last_event_id.get(name, 0)
        if event.event_id <= last:
            raise Rejected(
                RejectReason.DUPLICATE_EVENT_ID,
                f"event id {event.event_id} is not above {last}, the last seen in {name}",
            )
        if is_reserved(event.account, self.profile):
            raise Rejected(
                RejectReason.RESERVED_ACCOUNT,
                f"account {event.account} is a house account; the stream may not move it",
            )
        book, rules = self.book, self.rules
        assert rules is not None
        if event.kind == "asset_deposit":
            operations.deposit(book, event.account, event.asset, event.amount)
        elif event.kind == "asset_withdraw":
            operations.withdraw(book, rules, event.account, event.asset, event.amount)
        elif event.kind == "borrow":
            operations.borrow(book, rules, event.account, event.asset, event.amount)
        else:
            assert event.kind == "repay", event.kind
            operations.repay(book, event.account, event.asset, event.amount)
        self.state.last_event_id[name] = event.event_id

    def _set_prices(self, accepted: dict[int, messages.AssetPrice]) -> None:
        for asset, update in sorted(accepted.items()):
            self.book.set_price(asset, update.price)
            self.state.mark_seq[update.symbol] = update.seq

    def _settle(self, settlement: Settlement) -> None:
        if not self._priced():
            raise Rejected(
                RejectReason.NO_MARK, "settlement before every asset held or owed has a price"
            )
        assert self.rules is not None
        settle(self.state, self.book, self.rules, settlement)

    def _priced(self) -> bool:
        used = self.book.held.any(axis=1) | self.book.owed.any(axis=1)
        return not (used & ~self.book.price_set).any()

    def _risk(self, out: TickOutputs, stats: TickStats) -> None:
        book, rules = self.book, self.rules
        assert rules is not None
        risk = sweep(book, rules)
        stats.full_sweep, stats.swept_accounts = True, book.n_accounts
        money = book.assets.money_decimals
        called_before = set(self.state.margin_call)
        called_now = np.flatnonzero(risk.status >= STATUS_MARGIN_CALL)
        ids = book.account_id
        for row in called_now.tolist():
            account = int(ids[row])
            if account in called_before or is_reserved(account, self.profile):
                continue
            collateral, liability = int(risk.collateral_value[row]), int(risk.liability_value[row])
            out.add(
                self.config.topics.margin_calls,
                str(account).encode(),
                {
                    "kind": "margin_call",
                    "account": account,
                    "collateral_value": format_units(collateral, money),
                    "liability_value": format_units(liability, money),
                    "maintenance_ratio": ratio_text(collateral, liability),
                    "collateral_value_units": collateral,
                    "liability_value_units": liability,
                },
            )
        if (risk.status >= STATUS_LIQUIDATE).any():
            result = liquidate(book, self.profile, risk)
            self.last_result = result
            stats.waterfall, stats.accounts_liquidated = True, result.accounts_liquidated
            for event in result.events:
                out.add(
                    topic_of_event(self.config.topics, event.kind),
                    str(event.account_id).encode(),
                    self._event_doc(event),
                )
            out.add(
                self.config.topics.insurance,
                str(self.profile.fund_account_id).encode(),
                fund_doc(result, self.profile.fund_account_id, money),
            )
            risk = sweep(book, rules)
        still = np.flatnonzero(risk.status >= STATUS_MARGIN_CALL)
        self.state.margin_call = sorted(int(ids[row]) for row in still.tolist())

    def _event_doc(self, event: Event) -> dict[str, Any]:
        money = self.book.assets.money_decimals
        doc: dict[str, Any] = {
            "kind": event.kind,
            "account": event.account_id,
            "book_event_id": event.event_id,
            "amount": format_units(event.amount, money),
            "amount_units": event.amount,
        }
        if event.symbol:
            asset = self.book.assets.assets[self.book.assets.index[event.symbol]]
            doc["asset"] = event.symbol
            doc["qty"] = format_units(event.qty, asset.decimals)
            doc["price"] = format_units(event.price, money)
            doc["qty_units"] = event.qty
            doc["price_units"] = event.price
        return doc
