"""`huimin privacy purge --campaign C [--after-days N] [--dry-run]`: erase a finished campaign's personal
data (see `privacy.service`). Runs as the system; the purge is audited."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock
from huimin.merchants import service as merchants
from huimin.privacy import service
from huimin.privacy.domain import PurgeReport

__all__ = ["privacy_app"]

privacy_app = typer.Typer(
    help="Personal data (个人信息保护): the purge after a campaign.", no_args_is_help=True
)
out = Console()


@privacy_app.command("purge")
def purge(
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign code, e.g. ziyang-2022.")],
    after_days: Annotated[
        int | None,
        typer.Option(
            "--after-days",
            min=0,
            help="Days after the final settlement (default HUIMIN_PRIVACY_PURGE_AFTER_DAYS, 180).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")
    ] = False,
) -> None:
    """Erase the campaign's personal data once it is due: residents' ID, phone and device hashes,
    complainants' phone hashes, merchants' contact phones, and their bank accounts when nothing is
    outstanding. Masked forms and everything audit and the ledger need are kept."""
    settings = checked_settings()
    days = settings.privacy_purge_after_days if after_days is None else after_days

    async def job(session: AsyncSession) -> PurgeReport:
        found = await merchants.campaign_by_code(session, campaign)
        return await service.purge(
            session,
            principal=Principal.system("privacy-purge"),
            campaign_id=found.id,
            after_days=days,
            sealer=merchants.MerchantSealer.from_settings(settings),
            clock=SystemClock(),
            dry_run=dry_run,
        )

    report = run_job(job, settings)
    verb = "would erase" if report.dry_run else "erased"
    out.print(
        f"{campaign}: {report.reference_kind.replace('_', ' ')} {report.reference}, purge due from {report.due_on}",
        highlight=False,
    )
    for name, count in report.counts().items():
        out.print(f"  {name.replace('_', ' ')}: {count}", highlight=False)
    out.print(f"{verb} the personal data above (masked forms kept)", highlight=False)
