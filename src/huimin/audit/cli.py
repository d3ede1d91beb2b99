"""`huimin audit ...`: seal the chain, verify it, read the trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service
from huimin.audit.domain import Verdict
from huimin.audit.models import AuditRecordRow
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock, to_local

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The audit trail (审计日志): seal, verify, read.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@audit_app.command("seal")
def seal_command() -> None:
    """Append the committed records not yet sealed to the hash chain."""

    async def job(session: AsyncSession) -> int:
        return await service.seal(session, clock=SystemClock())

    out.print(f"sealed {run_job(job, checked_settings())} records")


@audit_app.command("verify")
def verify_command() -> None:
    """Check the whole chain; name the first edited, deleted or inserted record (exit 1)."""

    async def job(session: AsyncSession) -> Verdict:
        return await service.verify_chain(session, clock=SystemClock())

    verdict = run_job(job, checked_settings())
    if verdict.ok:
        out.print(f"audit chain intact: {verdict.sealed} records sealed and verified")
        return
    err.print(f"audit chain broken after {verdict.sealed} good records: {verdict.reason}")
    raise typer.Exit(1)


@audit_app.command("log")
def log_command(
    actor: Annotated[str | None, typer.Option(help="Only this actor id.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. merchant.approve.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The latest records, newest first."""

    async def job(session: AsyncSession) -> list[AuditRecordRow]:
        query = select(AuditRecordRow).order_by(AuditRecordRow.id.desc()).limit(limit)
        if actor:
            query = query.where(AuditRecordRow.actor_id == actor)
        if action:
            query = query.where(AuditRecordRow.action == action)
        return list((await session.scalars(query)).all())

    table = Table("id", "time", "actor", "role", "action", "object", "result", "client IP")
    for row in run_job(job, checked_settings()):
        table.add_row(
            str(row.id),
            f"{to_local(row.at):%Y-%m-%d %H:%M:%S}",
            f"{row.actor_name} ({row.actor_id})",
            row.actor_role,
            row.action,
            f"{row.object_type} {row.object_id}",
            row.result,
            row.client_ip or "",
        )
    out.print(table)
