"""`huimin worker` on both databases: a job runs once however many workers race for it, a dead
worker's lease is taken over and its run recorded as failed, a daily job runs once per local day, and
a failing job does not stop the others (issue 12)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.kit.clock import Clock, ManualClock
from huimin.worker import domain
from huimin.worker.models import JobLeaseRow
from huimin.worker.service import Job, run_pass


async def _lease(sessions: async_sessionmaker[AsyncSession], name: str) -> JobLeaseRow:
    async with unit_of_work(sessions) as session:
        row = await session.get(JobLeaseRow, name)
        assert row is not None
        return row


async def test_two_workers_racing_run_a_job_once(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls = []

    async def slow(_: async_sessionmaker[AsyncSession], __: Clock) -> str:
        calls.append("run")
        started.set()
        await release.wait()
        return "done"

    jobs = [Job("slow", domain.Every(60), slow)]
    first = asyncio.create_task(run_pass(sessions, jobs, me="worker-a", clock=clock))
    await started.wait()
    second = await run_pass(sessions, jobs, me="worker-b", clock=clock)
    assert second.skipped == ["slow"]
    release.set()
    assert (await first).ran == ["slow"]
    assert calls == ["run"]
    row = await _lease(sessions, "slow")
    assert (row.holder, row.runs, row.last_outcome) == (None, 1, "ok")
    again = await run_pass(sessions, jobs, me="worker-b", clock=clock)  # not due for another minute
    assert again.skipped == ["slow"]
    clock.advance(timedelta(seconds=60))
    assert (await run_pass(sessions, jobs, me="worker-b", clock=clock)).ran == ["slow"]


async def test_a_dead_workers_lease_is_taken_over_when_it_expires(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async def ok(_: async_sessionmaker[AsyncSession], __: Clock) -> str:
        return "done"

    now = clock.now()
    async with unit_of_work(sessions) as session:
        session.add(
            JobLeaseRow(
                name="rollup",
                holder="dead",
                expires_at=now + timedelta(minutes=5),
                last_started_at=now,
                runs=1,
                failures=0,
            )
        )
    jobs = [Job("rollup", domain.Every(60), ok)]
    assert (await run_pass(sessions, jobs, me="alive", clock=clock)).skipped == ["rollup"]  # still held
    clock.advance(timedelta(minutes=6))
    assert (await run_pass(sessions, jobs, me="alive", clock=clock)).ran == ["rollup"]
    row = await _lease(sessions, "rollup")
    assert (row.runs, row.failures, row.last_outcome, row.holder) == (2, 1, "ok", None)


async def test_a_daily_job_runs_once_per_local_day(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = ManualClock(datetime(2022, 7, 1, 15, 0, tzinfo=UTC))  # 23:00 in Ziyang
    calls = []

    async def expire(_: async_sessionmaker[AsyncSession], at: Clock) -> str:
        calls.append(at.now())
        return "expired"

    jobs = [Job("expire", domain.DailyAt(time(0, 5)), expire)]
    assert (await run_pass(sessions, jobs, me="w", clock=clock)).ran == ["expire"]  # catch-up: yesterday's
    clock.advance(timedelta(minutes=30))  # 23:30
    assert (await run_pass(sessions, jobs, me="w", clock=clock)).skipped == ["expire"]
    clock.advance(timedelta(minutes=40))  # 00:10 the next day
    assert (await run_pass(sessions, jobs, me="w", clock=clock)).ran == ["expire"]
    clock.advance(timedelta(hours=5))
    assert (await run_pass(sessions, jobs, me="w", clock=clock)).skipped == ["expire"]
    assert len(calls) == 2


async def test_a_failing_job_is_recorded_and_the_others_still_run(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async def boom(_: async_sessionmaker[AsyncSession], __: Clock) -> str:
        raise RuntimeError("the bank file is missing")

    async def fine(_: async_sessionmaker[AsyncSession], __: Clock) -> str:
        return "fine"

    jobs = [Job("boom", domain.Every(60), boom), Job("fine", domain.Every(60), fine)]
    report = await run_pass(sessions, jobs, me="w", clock=clock)
    assert (report.failed, report.ran) == (["boom"], ["fine"])
    row = await _lease(sessions, "boom")
    assert (row.last_outcome, row.failures, row.holder) == ("failed", 1, None)
    assert row.last_detail == "RuntimeError: the bank file is missing"
