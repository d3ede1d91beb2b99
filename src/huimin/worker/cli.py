"""`huimin worker`: the scheduled jobs, as one long-running process (or one pass with --once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import create_engine, create_sessionmaker
from huimin.errors import InvalidInput, Problem
from huimin.jobs import checked_settings
from huimin.kit.clock import Clock, SystemClock
from huimin.worker.service import Job, run_pass, standard_jobs

__all__ = ["worker_command"]

out = Console()
POLL_SECONDS = 5.0


def worker_command(
    once: Annotated[
        bool, typer.Option("--once", help="Run the due jobs once and exit (for cron and tests).")
    ] = False,
    only: Annotated[list[str] | None, typer.Option(help="Run only this job (repeat for several).")] = None,
) -> None:
    """Run the scheduled jobs (expiry and recycling, settlement preparation, report rollups, audit seals,
    the risk scan), safe as several copies: each job runs under a lease (docs/worker.md)."""
    settings = checked_settings()
    from huimin.merchants.service import MerchantSealer
    from huimin.risk import flows
    from huimin.risk.service import MerchantLinks

    links = MerchantLinks(hasher=settings.hasher, sealer=MerchantSealer.from_settings(settings))

    async def risk_scan(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> str:
        report = await flows.scan(sessions, links=links, clock=clock, settle=timedelta(seconds=2))
        return f"{report.events} events, {report.raised} alerts raised, {report.updated} updated"

    jobs = standard_jobs(risk_scan=risk_scan)
    if only:
        known = {job.name for job in jobs}
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
    asyncio.run(_main(settings.database_url, jobs, me=me, once=once))


async def _main(database_url: str, jobs: list[Job], *, me: str, once: bool) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)  # finish the job under way, then leave
    out.print(f"worker {me}: {', '.join(job.name for job in jobs)}", markup=False)
    try:
        while not stop.is_set():
            report = await run_pass(sessions, jobs, me=me, clock=SystemClock())
            if report.ran or report.failed:
                out.print(f"ran {report.ran}, failed {report.failed}", markup=False)
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
    finally:
        await engine.dispose()
