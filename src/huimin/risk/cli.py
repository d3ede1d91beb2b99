"""`huimin risk ...`: run the rules engine over the event logs, and look at alerts and the watch list from
the operator's shell (as the system)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.db import create_engine, create_sessionmaker
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock, to_local
from huimin.merchants.service import MerchantSealer
from huimin.risk import flows, service
from huimin.risk.ip_regions import IpRegion, parse_ip_regions
from huimin.risk.models import RiskAlertRow
from huimin.risk.repository import AlertFilter, RiskRepository
from huimin.risk.service import MerchantLinks

__all__ = ["risk_app"]

risk_app = typer.Typer(
    help="Fraud monitoring (风险监测): scan events, alerts, the watch list.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


@risk_app.command("scan")
def scan(
    every: Annotated[
        float | None,
        typer.Option(min=0.5, help="Keep scanning, a pass every this many seconds (the worker)."),
    ] = None,
    settle_seconds: Annotated[
        float,
        typer.Option(min=0, help="Leave events younger than this for the next pass (see docs/risk.md)."),
    ] = 2.0,
) -> None:
    """Evaluate the rules over claims, redemptions and refunds not yet seen, and store the alerts."""
    settings = checked_settings()
    links = MerchantLinks(hasher=settings.hasher, sealer=MerchantSealer.from_settings(settings))

    async def main() -> None:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        sessions = create_sessionmaker(engine)
        try:
            while True:
                report = await flows.scan(
                    sessions, links=links, clock=SystemClock(), settle=timedelta(seconds=settle_seconds)
                )
                out.print(
                    f"risk scan: {report.events} events in {report.batches} batches, "
                    f"{report.raised} alerts raised, {report.updated} updated; cursors {report.cursors}",
                    markup=False,
                )
                if every is None:
                    return
                await asyncio.sleep(every)
        finally:
            await engine.dispose()

    asyncio.run(main())


@risk_app.command("alerts")
def alerts(
    rule: Annotated[str | None, typer.Option(help="Only this rule, e.g. split_orders.")] = None,
    status: Annotated[str | None, typer.Option(help="open, in_case, dismissed or confirmed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
) -> None:
    """The highest-scoring alerts."""

    async def job(session: AsyncSession) -> service.Page[RiskAlertRow]:
        return await service.list_alerts(
            session,
            principal=Principal.system("risk-cli"),
            where=AlertFilter(rule=rule, status=status),
            page_size=limit,
        )

    page = run_job(job, checked_settings())
    table = Table("alert", "rule", "subject", "window", "score", "figure / line", "status", "raised (local)")
    for row in page.items:
        table.add_row(
            row.id,
            row.rule,
            f"{row.subject_kind} {row.subject_id}",
            row.period,
            str(row.score),
            f"{row.figure} / {row.threshold} {row.unit}",
            row.status,
            to_local(row.raised_at).strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)
    out.print(f"{page.total} alerts in all", markup=False)


@risk_app.command("watch-list")
def watch(
    min_score: Annotated[int | None, typer.Option(help="From this score (default: the campaign's).")] = None,
) -> None:
    """Merchants, persons and devices by combined risk score."""

    async def job(session: AsyncSession) -> list[service.WatchEntry]:
        return await service.watch_list(
            session, principal=Principal.system("risk-cli"), campaign_id=None, min_score=min_score
        )

    table = Table("subject", "who", "score", "alerts", "rules")
    for entry in run_job(job, checked_settings()):
        table.add_row(
            f"{entry.subject_kind} {entry.subject_id}",
            entry.label,
            str(entry.score),
            str(entry.alerts),
            ", ".join(entry.rules),
        )
    out.print(table)


@risk_app.command("consume")
def consume(
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate what waits in the streams now, then exit.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="This consumer's name in the group (default: host, pid, random).")
    ] = None,
) -> None:
    """Evaluate claims, redemptions and refunds from the Redis streams as they are published (a member of
    the consumer group; `huimin worker` runs one too). Needs HUIMIN_REDIS_URL."""
    import os
    import signal
    import socket
    import uuid

    from huimin.redis_client import connect_redis
    from huimin.risk.stream import RiskConsumer

    settings = checked_settings()
    links = MerchantLinks(hasher=settings.hasher, sealer=MerchantSealer.from_settings(settings))
    me = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        consumer = RiskConsumer(
            connect_redis(settings), create_sessionmaker(engine), name=me, links=links, clock=SystemClock()
        )
        try:
            if once:
                await consumer.create_groups()
                out.print(f"risk consume: {await consumer.drain()}", markup=False)
                return
            stop = asyncio.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
            out.print(f"risk consume: consumer {me}", markup=False)
            await consumer.run(stop)
        finally:
            await consumer.redis.aclose()
            await engine.dispose()

    asyncio.run(main())


ip_regions_app = typer.Typer(
    help="The offline IP-region table (IP 归属地) of the location-spoofing rule.", no_args_is_help=True
)
risk_app.add_typer(ip_regions_app, name="ip-regions")


@ip_regions_app.command("import")
def ip_regions_import(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV, UTF-8, columns network,region,in_city."
        ),
    ],
) -> None:
    """Replace the whole table with the file's rows, in one transaction. A bad row refuses the whole file,
    every bad row named by its row number and column."""
    regions = parse_ip_regions(file.read_bytes())

    async def job(session: AsyncSession) -> None:
        await RiskRepository(session).replace_ip_regions(regions, at=SystemClock().now())

    run_job(job, checked_settings())
    inside = sum(1 for region in regions if region.in_city)
    out.print(
        f"{len(regions)} networks imported ({inside} inside the city, {len(regions) - inside} outside); "
        "the table was replaced",
        markup=False,
    )


@ip_regions_app.command("list")
def ip_regions_list() -> None:
    """The table as the rule reads it."""

    async def job(session: AsyncSession) -> list[IpRegion]:
        return await RiskRepository(session).ip_regions()

    table = Table("network", "region", "in city")
    regions = run_job(job, checked_settings())
    for region in regions:
        table.add_row(str(region.network), region.region, "yes" if region.in_city else "no")
    out.print(table)
    out.print(f"{len(regions)} network{'' if len(regions) == 1 else 's'}", markup=False)
