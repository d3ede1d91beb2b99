"""`huimin worker`: the scheduled jobs, as one long-running process (or one pass with --once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import create_engine, create_sessionmaker
from huimin.errors import InvalidInput, Problem
from huimin.jobs import checked_settings
from huimin.kit.clock import Clock, SystemClock
from huimin.worker.service import Job, run_pass, standard_jobs

if TYPE_CHECKING:
    from huimin.risk.stream import RiskConsumer

__all__ = ["worker_command"]

out = Console()
POLL_SECONDS = 5.0
RISK_STREAM = "risk-stream"  # the consumer of the risk events' streams, when Redis is configured


def worker_command(
    once: Annotated[
        bool, typer.Option("--once", help="Run the due jobs once and exit (for cron and tests).")
    ] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only this job (repeat for several).")] = None,
) -> None:
    """Run the scheduled jobs (expiry and recycling, settlement preparation, report rollups, audit seals,
    the risk scan), safe as several copies: each job runs under a lease (docs/worker.md). With Redis
    configured, also the risk stream's consumer (`risk-stream`), beside the jobs."""
    settings = checked_settings()
    from huimin.merchants.service import MerchantSealer
    from huimin.redis_client import connect_redis
    from huimin.risk import flows
    from huimin.risk.service import MerchantLinks
    from huimin.risk.stream import RiskConsumer

    links = MerchantLinks(hasher=settings.hasher, sealer=MerchantSealer.from_settings(settings))

    async def risk_scan(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
        report = await flows.scan(sessions, links=links, clock=clock, settle=timedelta(seconds=2))
        return f"{report.events} events, {report.raised} alerts raised, {report.updated} updated"

    jobs = standard_jobs(risk_scan=risk_scan)
    stream = bool(settings.redis_url) and (not only or RISK_STREAM in only)
    if only:
        known = {job.name for job in jobs} | ({RISK_STREAM} if settings.redis_url else set())
        unknown = sorted(set(only) - known)
        if unknown:
            raise InvalidInput(
                [
                    Problem("--only", f"unknown job {name!r}; known: {', '.join(sorted(known))}")
                    for name in unknown
                ]
            )
        jobs = [job for job in jobs if job.name in only]
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def consumer(sessions: async_sessionmaker[AsyncSession]) -> RiskConsumer | None:
        if not stream:
            return None
        return RiskConsumer(connect_redis(settings), sessions, name=me, links=links, clock=SystemClock())

    asyncio.run(_main(settings.database_url, jobs, me=me, once=once, consumer=consumer))


async def _main(
    database_url: str,
    jobs: list[Job],
    *,
    me: str,
    once: bool,
    consumer: Callable[[async_sessionmaker[AsyncSession]], RiskConsumer | None],
) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    risk_stream = consumer(sessions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)  # finish the job under way, then leave
    names = [job.name for job in jobs] + ([RISK_STREAM] if risk_stream else [])
    out.print(f"worker {me}: {', '.join(names)}", markup=False)
    # the stream's consumer runs beside the jobs (no lease: its group shares the work out)
    beside = asyncio.create_task(risk_stream.run(stop)) if risk_stream is not None and not once else None
    try:
        if risk_stream is not None and once:
            await risk_stream.create_groups()
            out.print(f"{RISK_STREAM}: {await risk_stream.drain()}", markup=False)
        while not stop.is_set():
            report = await run_pass(sessions, jobs, me=me, clock=SystemClock())
            if report.ran or report.failed:
                out.print(f"ran {report.ran}, failed {report.failed}", markup=False)
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
    finally:
        stop.set()
        if beside is not None:
            await beside
        if risk_stream is not None:
            await risk_stream.redis.aclose()
        await engine.dispose()
