"""`huimin report ...`: the rollup job, the figures, the end-of-campaign summary and the exports, from
the operator's shell (as the system; exports are audited)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.campaigns.service import get_campaign_by_code
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock
from huimin.kit.money import Fen
from huimin.reports import exports, rollup, service, summary
from huimin.reports.domain import Dimension

__all__ = ["report_app"]

report_app = typer.Typer(
    help="Reports (统计报表): the rollup job, figures, the summary (活动总结), XLSX exports.",
    no_args_is_help=True,
)
out = Console()
T = TypeVar("T")
CampaignOption = Annotated[str, typer.Option("--campaign", help="Campaign code, e.g. ziyang-2022.")]
SYSTEM = Principal.system("report")


def _run(job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_job(job, checked_settings())


@report_app.command("rollup")
def rollup_command(
    rebuild: Annotated[bool, typer.Option(help="Forget the rollups and fold every log again.")] = False,
) -> None:
    """Fold the new voucher, redemption and ledger events into the report tables (idempotent; run it
    every few seconds in production, it stops where it is safe and goes on next time)."""

    async def job(session: AsyncSession) -> list[rollup.RollupOutcome]:
        if rebuild:
            return await rollup.rebuild(session, clock=SystemClock())
        return await rollup.rollup(session, clock=SystemClock())

    for outcome in _run(job):
        waiting = " (waiting for older transactions)" if outcome.waiting else ""
        out.print(f"{outcome.source}: {outcome.events} new, read up to id {outcome.last_id}{waiting}")


@report_app.command("figures")
def figures_command(
    campaign: CampaignOption,
    by: Annotated[
        Dimension | None, typer.Option(help="Break down by day, week, round, batch, district …")
    ] = None,
    since: Annotated[str | None, typer.Option(help="First local day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Last local day, YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (fen, decimal strings).")] = False,
) -> None:
    """The campaign's figures from the rollups (run `huimin report rollup` first)."""

    async def job(session: AsyncSession) -> service.Report:
        row = await get_campaign_by_code(session, code=campaign)
        query = service.Query(
            since=None if since is None else date.fromisoformat(since),
            until=None if until is None else date.fromisoformat(until),
            by=by,
        )
        return await service.figures(
            session, principal=SYSTEM, campaign_id=row.id, query=query, clock=SystemClock()
        )

    report = _run(job)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "figures": asdict(report.figures),
                    "lines": [
                        {"key": line.key, "label": line.label, **asdict(line.figures)}
                        for line in report.lines
                    ],
                },
                default=lambda value: str(value) if isinstance(value, Decimal) else value,
            )
        )
        return
    found = report.figures
    table = Table(title=f"{report.campaign_name} ({report.campaign_code})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("released", found.released),
        ("claimed", found.claimed),
        ("redeemed", found.redeemed),
        ("redemption rate", found.redemption_rate),
        ("subsidy", Fen(found.subsidy_fen).format()),
        ("consumption driven", Fen(found.consumption_fen).format()),
        ("leverage", found.leverage),
        ("residents claiming / redeeming", f"{found.residents_claiming} / {found.residents_redeeming}"),
        ("merchants redeeming", found.merchants_redeeming),
        ("recovered", None if report.money is None else Fen(report.money.recovered).format()),
    ):
        table.add_row(name, "—" if value is None else str(value))
    out.print(table)
    if report.lines:
        lines = Table()
        for column in ("", "claimed", "redeemed", "rate", "subsidy", "consumption", "leverage"):
            lines.add_column(column, justify="left" if not column else "right")
        for line in report.lines:
            item = line.figures
            lines.add_row(
                line.label,
                "—" if item.claimed is None else str(item.claimed),
                str(item.redeemed),
                "—" if item.redemption_rate is None else str(item.redemption_rate),
                Fen(item.subsidy_fen).format(),
                Fen(item.consumption_fen).format(),
                "—" if item.leverage is None else str(item.leverage),
            )
        out.print(lines)
    if report.events_behind:
        out.print(
            f"[yellow]{report.events_behind} logged events not rolled up yet: run `huimin report rollup`[/]"
        )


@report_app.command("summary")
def summary_command(
    campaign: CampaignOption,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the HTML and the PDF.")] = Path(
        "var/reports"
    ),
) -> None:
    """The end-of-campaign summary (活动总结) as HTML and PDF, after bringing the rollups up to date."""

    async def job(session: AsyncSession) -> tuple[str, str, bytes]:
        await rollup.rollup(session, clock=SystemClock())
        row = await get_campaign_by_code(session, code=campaign)
        return await summary.render(session, campaign_id=row.id, clock=SystemClock())

    stem, html, pdf = _run(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.html").write_text(html, encoding="utf-8")
    (out_dir / f"{stem}.pdf").write_bytes(pdf)
    out.print(f"wrote {out_dir / stem}.html and .pdf")


@report_app.command("export")
def export_command(
    kind: Annotated[exports.ExportKind, typer.Argument(help="claims, redemptions, merchants or statement")],
    campaign: CampaignOption,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the workbook.")] = Path("var/reports"),
) -> None:
    """An XLSX export for officials (personal data masked), recorded in the audit trail."""

    async def job(session: AsyncSession) -> Path:
        row = await get_campaign_by_code(session, code=campaign)
        found = await exports.export(
            session, principal=SYSTEM, campaign_id=row.id, kind=kind, clock=SystemClock()
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / found.file_name
        path.write_bytes(found.content)
        return path

    out.print(f"wrote {_run(job)}")
