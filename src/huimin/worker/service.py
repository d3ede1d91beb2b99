"""`huimin worker`: runs the platform's scheduled jobs, safe as several copies on several machines.

Each job has a lease row (`job_leases`). A pass over the jobs, for each one: take its lease with one
conditional UPDATE (free, expired, or already ours: `domain.lease_is_free`) and, holding it, decide
whether it is due (`domain.is_due`); if it is, record the start and commit, run the job in its own
transaction, then record the outcome and free the lease. Two workers racing for a job: the UPDATE lets
one through, the other sees zero rows and moves on. A worker that dies mid-run leaves its lease to
expire; the next worker to take it records that run as failed and runs the job again when due. While a
job runs, its lease is renewed every third of its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.kit.clock import Clock, to_local
from huimin.worker import domain
from huimin.worker.models import JobLeaseRow

__all__ = ["Job", "PassReport", "run_pass", "standard_jobs"]

log = logging.getLogger("huimin.worker")

LEASE = timedelta(minutes=10)
DETAIL_MAX = 2_000

JobFn = Callable[[async_sessionmaker[AsyncSession], Clock], Awaitable[str]]


@dataclass(frozen=True)
class Job:
    name: str
    schedule: domain.Schedule
    run: JobFn  # returns a line saying what it did


@dataclass(frozen=True)
class PassReport:
    ran: list[str]
    failed: list[str]
    skipped: list[str]  # not due, or held by another worker


async def _take(sessions: async_sessionmaker[AsyncSession], job: Job, *, me: str, clock: Clock) -> bool:
    """Take the job's lease and, if the job is due, record its start. False: not ours or not due."""
    now = clock.now()
    async with unit_of_work(sessions) as session:
        if await session.get(JobLeaseRow, job.name) is None:
            try:
                async with session.begin_nested():
                    session.add(JobLeaseRow(name=job.name, runs=0, failures=0))
            except IntegrityError:
                pass  # another worker created it first
    async with unit_of_work(sessions) as session:
        taken = await session.execute(
            update(JobLeaseRow)
            .where(
                JobLeaseRow.name == job.name,
                or_(
                    JobLeaseRow.holder.is_(None),
                    JobLeaseRow.holder == me,
                    JobLeaseRow.expires_at.is_(None),
                    JobLeaseRow.expires_at <= now,
                ),
            )
            .values(holder=me, expires_at=now + LEASE)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return False
        row = await session.scalar(select(JobLeaseRow).where(JobLeaseRow.name == job.name))
        assert row is not None  # noqa: S101 (just updated)
        state = _state(row)
        if domain.run_unfinished(state):  # its worker died mid-run: the lease expired under it
            row.last_finished_at, row.last_outcome = now, domain.Outcome.FAILED
            row.last_detail, row.failures = (
                "the worker running it stopped before it finished",
                row.failures + 1,
            )
            state = _state(row)
        if not domain.is_due(job.schedule, state, now):
            row.holder, row.expires_at = None, None
            return False
        row.last_started_at, row.runs = now, row.runs + 1
        return True


async def _finish(
    sessions: async_sessionmaker[AsyncSession], job: Job, *, me: str, clock: Clock, ok: bool, detail: str
) -> None:
    now = clock.now()
    values: dict[str, object] = {
        "holder": None,
        "expires_at": None,
        "last_finished_at": now,
        "last_outcome": domain.Outcome.OK if ok else domain.Outcome.FAILED,
        "last_detail": detail[:DETAIL_MAX],
    }
    if ok:
        values["last_success_at"] = now
    else:
        values["failures"] = JobLeaseRow.failures + 1
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(JobLeaseRow).where(JobLeaseRow.name == job.name, JobLeaseRow.holder == me).values(**values)
        )


async def _renew(sessions: async_sessionmaker[AsyncSession], job: Job, *, me: str, clock: Clock) -> None:
    while True:
        await asyncio.sleep(LEASE.total_seconds() / 3)
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(JobLeaseRow)
                .where(JobLeaseRow.name == job.name, JobLeaseRow.holder == me)
                .values(expires_at=clock.now() + LEASE)
            )


async def run_pass(
    sessions: async_sessionmaker[AsyncSession], jobs: Sequence[Job], *, me: str, clock: Clock
) -> PassReport:
    """One pass: every due job whose lease this worker gets, one after another. A failing job is
    recorded and does not stop the others."""
    ran, failed, skipped = [], [], []
    for job in jobs:
        if not await _take(sessions, job, me=me, clock=clock):
            skipped.append(job.name)
            continue
        renewal = asyncio.create_task(_renew(sessions, job, me=me, clock=clock))
        try:
            detail = await job.run(sessions, clock)
        except Exception as error:
            log.exception("job %s failed", job.name)
            await _finish(
                sessions, job, me=me, clock=clock, ok=False, detail=f"{type(error).__name__}: {error}"
            )
            failed.append(job.name)
        else:
            log.info("job %s: %s", job.name, detail)
            await _finish(sessions, job, me=me, clock=clock, ok=True, detail=detail)
            ran.append(job.name)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
    return PassReport(ran=ran, failed=failed, skipped=skipped)


def _state(row: JobLeaseRow) -> domain.JobState:
    return domain.JobState(
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_success_at=row.last_success_at,
        last_outcome=row.last_outcome,
    )


# -- the platform's jobs -----------------------------------------------------------------------------


async def _expire(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
    from huimin.claims.flows import expire_and_recycle

    async with unit_of_work(sessions) as session:
        report = await expire_and_recycle(session, clock=clock)
    return str(report)


async def _rollup(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
    from huimin.reports.rollup import rollup

    async with unit_of_work(sessions) as session:
        outcomes = await rollup(session, clock=clock)
    return "; ".join(str(outcome) for outcome in outcomes) or "nothing new"


async def _seal(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
    from huimin.audit.service import seal

    async with unit_of_work(sessions) as session:
        sealed = await seal(session, clock=clock)
    return f"{sealed} audit records sealed"


async def _settlement(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
    """The maker's half of yesterday's settlement run for each running campaign; finance approves it."""
    from huimin.auth.principals import Principal
    from huimin.campaigns.service import list_campaigns
    from huimin.errors import HuiminError
    from huimin.settlement import service as settlement

    yesterday = to_local(clock.now()).date() - timedelta(days=1)
    done = []
    async with unit_of_work(sessions) as session:
        campaigns = [row for row in await list_campaigns(session) if row.starts_on <= yesterday]
    for campaign in campaigns:
        try:
            async with unit_of_work(sessions) as session:
                run = await settlement.prepare(
                    session,
                    principal=Principal.system("worker"),
                    campaign_id=campaign.id,
                    day=yesterday,
                    clock=clock,
                )
            done.append(f"{campaign.code} {yesterday}: run {run.id} {run.status}")
        except HuiminError as refusal:  # e.g. an earlier run still awaits approval: said, not fatal
            done.append(f"{campaign.code} {yesterday}: {refusal.code}")
    return "; ".join(done) or "no running campaign"


def standard_jobs(*, risk_scan: JobFn | None = None) -> list[Job]:
    """What production runs: expiry and recycling after local midnight, settlement preparation at
    02:00, report rollups every minute, audit seals every five minutes, and the risk scan (the embedded
    path and the stream's backstop) every ten seconds when given."""
    jobs = [
        Job("expire-and-recycle", domain.DailyAt(time(0, 5)), _expire),
        Job("settlement-prepare", domain.DailyAt(time(2, 0)), _settlement),
        Job("report-rollup", domain.Every(60), _rollup),
        Job("audit-seal", domain.Every(300), _seal),
    ]
    if risk_scan is not None:
        jobs.append(Job("risk-scan", domain.Every(10), risk_scan))
    return jobs
