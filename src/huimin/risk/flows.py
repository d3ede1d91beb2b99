"""The rules engine's pass over the event logs: batch after batch, each its own transaction (the alerts
and the cursor move together), until every source is read up to the settle line.

`huimin risk scan` runs one pass; `huimin risk scan --every 5` is the worker that keeps monitoring within
seconds. A pass that dies leaves every committed batch in place and nothing of the batch it was in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.kit.clock import Clock
from huimin.risk import service
from huimin.risk.rules import RULES, RuleFn
from huimin.risk.service import BATCH_SIZE, MerchantLinks, Source

__all__ = ["ScanReport", "scan"]


@dataclass(frozen=True)
class ScanReport:
    events: int
    batches: int
    raised: int
    updated: int
    cursors: dict[str, int]


async def scan(
    sessions: async_sessionmaker[AsyncSession],
    *,
    links: MerchantLinks,
    clock: Clock,
    settle: timedelta = timedelta(seconds=2),
    batch_size: int = BATCH_SIZE,
    rules: Sequence[RuleFn] = RULES,
) -> ScanReport:
    events = batches = raised = updated = 0
    cursors: dict[str, int] = {}
    for source in Source:
        while True:
            async with unit_of_work(sessions) as session:
                outcome = await service.scan_batch(
                    session,
                    source=source,
                    links=links,
                    clock=clock,
                    settle=settle,
                    batch_size=batch_size,
                    rules=rules,
                )
            cursors[source.value] = outcome.last_id
            if outcome.events == 0:
                break
            events += outcome.events
            batches += 1
            raised += outcome.raised
            updated += outcome.updated
            if outcome.events < batch_size:
                break
    return ScanReport(events=events, batches=batches, raised=raised, updated=updated, cursors=cursors)
