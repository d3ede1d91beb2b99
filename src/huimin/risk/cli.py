"""`huimin risk ...`: run the rules engine over the event logs, and look at alerts and the watch list from
the operator's shell (as the system)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
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
from huimin.risk.models import RiskAlertRow
from huimin.risk.repository import AlertFilter
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
