"""The stream path of the risk intake (production shape, Redis configured): claims, redemptions and refunds
reach the rules within a second of their commit, through a Redis Streams consumer group.

- **Publishing.** After the claim, redemption or refund transaction has committed, the endpoint publishes
  the ids of the events it wrote (`XADD huimin:{risk}:<source> MAXLEN ~ 1000000 * id <event id>`). A failed
  or slow publish is logged and forgotten, never the request's failure: the cursor scanner
  (`flows.scan`, the worker's `risk-scan` job) stays on as the reconciler and evaluates whatever was not
  published (a crash between commit and publish, Redis down, an entry trimmed before it was read, the
  lottery draw, which does not publish). The console's till and resident pages publish as the API does.
- **Consuming.** A consumer group per source stream. A consumer reads batches (`XREADGROUP`), loads the
  events by id from the database and evaluates them with the scanner's loaders and rules
  (`service.evaluate_events`). It stores the alerts and one `risk_evaluated_events` row per event in one
  transaction, then acknowledges (`XACK`). A consumer killed before the commit leaves its entries pending:
  it reads them again when it restarts under its name, and any consumer takes them over (`XAUTOCLAIM`)
  once idle for `min_idle`. Killed after the commit but before the `XACK`, the redelivered events are found
  in `risk_evaluated_events` and skipped: the replay is a no-op. The scanner skips those events too, and
  deletes their rows once its cursor passes them.

Consumers of one source take turns on the source's cursor row (as two scanners do), so several workers
give failover, not parallel evaluation; one core evaluates thousands of events a second
(docs/benchmarks.md). Both streams carry the hash tag `{risk}`, so one `XREADGROUP` reads both on a
Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from huimin.claims.models import VoucherEventRow
from huimin.db import unit_of_work
from huimin.kit.clock import Clock
from huimin.redemptions.models import RedemptionEventRow
from huimin.risk import service
from huimin.risk.rules import RULES, RuleFn
from huimin.risk.service import BATCH_SIZE, MerchantLinks, Source

__all__ = [
    "GROUP",
    "MAXLEN",
    "ConsumeReport",
    "EventKey",
    "RiskConsumer",
    "WrittenEvents",
    "publish",
    "stream_name",
]

log = logging.getLogger("huimin.risk.stream")

GROUP = "risk-rules"
MAXLEN = 1_000_000  # about a day of a big campaign's events; older entries are trimmed (approximately)
PUBLISH_TIMEOUT = 0.25  # seconds a request waits for Redis at most before giving the publish up
EventKey = tuple[Source, int]


def stream_name(source: Source) -> str:
    return f"huimin:{{risk}}:{source.value}"


class WrittenEvents:
    """The events a request's transaction writes that the rules evaluate: claims (`voucher_events` of kind
    `claimed`), redemptions and refunds (`redemption_events`), recorded as the session flushes them, and
    published once the transaction has committed."""

    def __init__(self) -> None:
        self._rows: list[VoucherEventRow | RedemptionEventRow] = []

    def watch(self, session: AsyncSession) -> None:
        """Record what this session inserts from now on (call it first thing in the request's work)."""
        self._rows = []
        session.sync_session.info[_WATCHED] = self._rows

    def keys(self) -> list[EventKey]:
        keys = set()
        for row in self._rows:
            if isinstance(row, VoucherEventRow) and row.kind == "claimed":
                keys.add((Source.CLAIMS, row.id))
            elif isinstance(row, RedemptionEventRow) and row.kind in ("redeemed", "refunded"):
                keys.add((Source.REDEMPTIONS, row.id))
        return sorted(keys)

    async def publish(self, redis: Redis | RedisCluster | None) -> int:
        """After the commit (a replayed answer wrote nothing, so publishes nothing)."""
        return await publish(redis, self.keys())


_WATCHED = "huimin.risk.written_events"  # Session.info key of a watched session's list


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: object) -> None:
    # One listener for every session, registered once (listening per session cost about a tenth of a
    # millisecond per request). after_flush still lists the flushed objects as new, now with their ids.
    rows = session.info.get(_WATCHED)
    if rows is not None:
        rows.extend(row for row in session.new if isinstance(row, VoucherEventRow | RedemptionEventRow))


async def publish(redis: Redis | RedisCluster | None, events: Sequence[EventKey]) -> int:
    """Add the events to their streams, after their transaction committed; how many were added. Never
    raises: a failure is logged and the cursor scanner evaluates the events instead."""
    if redis is None or not events:
        return 0
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            if len(events) == 1:
                [(source, event_id)] = events
                await redis.xadd(stream_name(source), {"id": str(event_id)}, maxlen=MAXLEN, approximate=True)
                return 1
            # many (the express claims' consumer persists hundreds at a time): one round trip, not one each
            pipeline = redis.pipeline(transaction=False)
            for source, event_id in events:
                pipeline.xadd(stream_name(source), {"id": str(event_id)}, maxlen=MAXLEN, approximate=True)
            await pipeline.execute()
            return len(events)
    except Exception as error:  # the request has committed: nothing may fail it now
        log.warning("risk events not published (the scanner will evaluate them): %r", error)
    return 0


@dataclass
class ConsumeReport:
    delivered: int = 0  # stream entries read (new, own pending, or taken over)
    evaluated: int = 0  # events evaluated now (the rest had been evaluated before: skipped)
    raised: int = 0
    updated: int = 0
    taken_over: int = 0  # entries claimed from idle consumers
    sources: dict[str, int] = field(default_factory=dict)

    def add(self, other: ConsumeReport) -> None:
        self.delivered += other.delivered
        self.evaluated += other.evaluated
        self.raised += other.raised
        self.updated += other.updated
        self.taken_over += other.taken_over
        for name, count in other.sources.items():
            self.sources[name] = self.sources.get(name, 0) + count

    def __str__(self) -> str:
        return (
            f"{self.delivered} delivered, {self.evaluated} evaluated, {self.raised} alerts raised, "
            f"{self.updated} updated, {self.taken_over} taken over"
        )


Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


class RiskConsumer:
    """One member (`name`) of the consumer group: reads, evaluates, stores, acknowledges."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str,
        links: MerchantLinks,
        clock: Clock,
        batch_size: int = BATCH_SIZE,
        min_idle: timedelta = timedelta(seconds=60),
        rules: Sequence[RuleFn] = RULES,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.name = name
        self.links = links
        self.clock = clock
        self.batch_size = batch_size
        self.min_idle = min_idle
        self.rules = rules

    async def create_groups(self) -> None:
        """The group on each source stream (the streams too, empty, if they do not exist yet)."""
        for source in Source:
            try:
                await self.redis.xgroup_create(stream_name(source), GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def recover(self) -> ConsumeReport:
        """Entries delivered but never acknowledged: this consumer's own (it was restarted under its name),
        then those of consumers idle for `min_idle` (dead ones), taken over with `XAUTOCLAIM`."""
        report = ConsumeReport()
        for source in Source:
            stream = stream_name(source)
            after = "0"
            while True:  # our own pending entries, in pages
                response = await self.redis.xreadgroup(
                    GROUP, self.name, {stream: after}, count=self.batch_size
                )
                entries = _entries(response)
                if not entries:
                    break
                report.add(await self._handle(source, entries))
                after = entries[-1][0].decode()
            start = "0-0"
            while True:
                next_start, claimed, deleted = _autoclaimed(
                    await self.redis.xautoclaim(
                        stream,
                        GROUP,
                        self.name,
                        int(self.min_idle.total_seconds() * 1000),
                        start,
                        count=self.batch_size,
                    )
                )
                if deleted:  # trimmed before anyone read them: the scanner evaluates those events
                    await self._ack(source, deleted)
                if claimed:
                    report.taken_over += len(claimed)
                    report.add(await self._handle(source, claimed))
                if next_start == "0-0":  # the whole pending list scanned
                    break
                start = next_start
        return report

    async def poll(self, *, block_ms: int | None = None) -> ConsumeReport:
        """New entries of both sources, one batch each at most; waits up to `block_ms` for some (None:
        does not wait)."""
        response: Any = await self.redis.xreadgroup(
            GROUP,
            self.name,
            {stream_name(source): ">" for source in Source},
            count=self.batch_size,
            block=block_ms,
        )
        report = ConsumeReport()
        by_stream = {stream_name(source): source for source in Source}
        for stream, entries in response or []:
            name = stream.decode() if isinstance(stream, bytes) else str(stream)
            report.add(
                await self._handle(by_stream[name], [(entry_id, fields) for entry_id, fields in entries])
            )
        return report

    async def drain(self) -> ConsumeReport:
        """Everything waiting now: recover, then poll until the streams are read (for `--once` and tests)."""
        report = await self.recover()
        while True:
            step = await self.poll()
            report.add(step)
            if step.delivered == 0:
                return report

    async def run(
        self,
        stop: asyncio.Event,
        *,
        block_ms: int = 1000,
        recover_every: timedelta = timedelta(seconds=30),
        pause: timedelta = timedelta(seconds=5),
    ) -> None:
        """Until `stop`: poll (blocking up to `block_ms`), and every `recover_every` take over what dead
        consumers left. A failure (database or Redis away) is logged; its entries stay pending and are
        read again on the next recovery, after `pause`."""
        recovered_at: float | None = None
        while not stop.is_set():
            try:
                if recovered_at is None:
                    await self.create_groups()
                if recovered_at is None or time.monotonic() - recovered_at >= recover_every.total_seconds():
                    report = await self.recover()
                    recovered_at = time.monotonic()
                else:
                    report = await self.poll(block_ms=block_ms)
            except Exception:
                log.exception("risk stream consumer %s: a pass failed; retrying in %s", self.name, pause)
                recovered_at = None  # whatever was read stays pending: read it again first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause.total_seconds())
                continue
            if report.delivered:
                log.info("risk stream consumer %s: %s", self.name, report)

    async def _handle(self, source: Source, entries: Entries) -> ConsumeReport:
        entry_ids = [entry_id for entry_id, _ in entries]
        event_ids = set()
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"id")
            if raw is None or not raw.isdigit():
                log.warning("risk stream %s: entry %r is not an event id; dropped", source.value, entry_id)
                continue
            event_ids.add(int(raw))
        async with unit_of_work(self.sessions) as session:
            outcome = await service.evaluate_events(
                session,
                source=source,
                event_ids=event_ids,
                links=self.links,
                clock=self.clock,
                rules=self.rules,
            )
        await self._ack(source, entry_ids)  # after the commit: a crash before it means a redelivery
        return ConsumeReport(
            delivered=len(entries),
            evaluated=outcome.events,
            raised=outcome.raised,
            updated=outcome.updated,
            sources={source.value: len(entries)},
        )

    async def _ack(self, source: Source, entry_ids: Sequence[bytes]) -> None:
        await self.redis.xack(stream_name(source), GROUP, *entry_ids)


def _entries(response: Any) -> Entries:
    """The entries of an `XREADGROUP` answer on one stream: `[[stream, [(id, fields), ...]]]`."""
    return [(entry_id, fields) for _, entries in response or [] for entry_id, fields in entries]


def _autoclaimed(response: Any) -> tuple[str, Entries, list[bytes]]:
    """(the next start, the entries taken over, the ids of entries trimmed meanwhile) of `XAUTOCLAIM`."""
    next_start = response[0].decode() if isinstance(response[0], bytes) else str(response[0])
    entries: Entries = []
    deleted: list[bytes] = list(response[2]) if len(response) > 2 else []
    for entry_id, fields in response[1]:
        if fields is None:  # Redis 6.2 reports a trimmed entry this way
            deleted.append(entry_id)
        else:
            entries.append((entry_id, fields))
    return next_start, entries, deleted
