"""`huimin ledger ...`: deposits, balances and the invariant check from the operator's shell.

A deposit is a person's act: `--actor NAME --role ROLE`, checked like a signed-in user of that role
(recorded by `operator` or `city_admin`, approved by `finance`), and the approver must be another
person than the recorder. Reads (balances, the check) run as the system.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal, Role
from huimin.campaigns.models import CampaignRow
from huimin.errors import NotFound
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock, to_local
from huimin.kit.money import Fen, MoneyFormatError
from huimin.ledger import checks, service

__all__ = ["ledger_app"]

ledger_app = typer.Typer(
    help="The ledger (复式记账): deposits, balances, invariant checks.", no_args_is_help=True
)

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ActorOption = Annotated[str, typer.Option("--actor", help="Who does this, as recorded, e.g. 王芳.")]
RoleOption = Annotated[
    str, typer.Option("--role", help="Their role: operator or city_admin records, finance approves.")
]
CampaignOption = Annotated[str, typer.Option("--campaign", help="Campaign code, e.g. ziyang-2022.")]


def _run(job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_job(job, checked_settings())


def _person(actor: str, role: str) -> Principal:
    """The person acting, as a console user of that role would be; the service checks the permission."""
    if not actor.strip():
        raise typer.BadParameter("name the person who acts", param_hint="--actor")
    try:
        parsed = Role(role)
    except ValueError:
        parsed = Role.SYSTEM
    if parsed in (Role.SYSTEM, Role.COUNTY_REVIEWER, Role.MERCHANT):
        raise typer.BadParameter("operator, city_admin or finance", param_hint="--role")
    return Principal(actor_id=f"cli:{actor.strip()}", role=parsed, name=actor.strip())


async def _campaign(session: AsyncSession, code: str) -> CampaignRow:
    row = await session.scalar(select(CampaignRow).where(CampaignRow.code == code))
    if row is None:
        raise NotFound(f"no campaign {code!r}", code="unknown_campaign")
    return row


def _describe(deposit: service.Deposit) -> str:
    row = deposit.row
    text = (
        f"deposit {row.id}: {deposit.funder_code} {Fen(row.amount_fen).format()} {row.status}, "
        f"recorded by {row.requested_by_name} ({row.requested_by_role})"
    )
    if row.approved_by_name:
        text += f", approved by {row.approved_by_name}"
    return text


@ledger_app.command("deposit")
def deposit(
    campaign: CampaignOption,
    funder: Annotated[str, typer.Option("--funder", help="Funder code from the campaign file, e.g. fiscal.")],
    amount: Annotated[str, typer.Option("--amount", help='Yuan, exactly: "1234.56".')],
    actor: ActorOption,
    role: RoleOption,
    note: Annotated[str, typer.Option("--note", help="e.g. the finance bureau's transfer reference.")] = "",
) -> None:
    """Record a funder's deposit into the campaign budget; it counts once finance approves it."""
    try:
        fen = Fen.parse_yuan(amount)
    except MoneyFormatError as error:
        raise typer.BadParameter(str(error), param_hint="--amount") from None
    principal = _person(actor, role)

    async def job(session: AsyncSession) -> service.Deposit:
        row = await _campaign(session, campaign)
        return await service.request_deposit(
            session,
            principal=principal,
            campaign_id=row.id,
            funder_code=funder,
            amount=fen,
            clock=SystemClock(),
            note=note,
        )

    out.print(_describe(_run(job)), highlight=False)


@ledger_app.command("approve-deposit")
def approve_deposit(
    deposit_id: Annotated[str, typer.Argument(help="The deposit id (dep_…).")],
    actor: ActorOption,
    role: RoleOption,
) -> None:
    """Approve a recorded deposit (finance; not the person who recorded it): it is posted to the ledger."""
    principal = _person(actor, role)
    result = _run(
        lambda session: service.approve_deposit(
            session, principal=principal, deposit_id=deposit_id, clock=SystemClock()
        )
    )
    out.print(_describe(result), highlight=False)


@ledger_app.command("deposits")
def deposits(campaign: CampaignOption) -> None:
    """List a campaign's deposits, requested and approved."""

    async def job(session: AsyncSession) -> list[service.Deposit]:
        row = await _campaign(session, campaign)
        return await service.list_deposits(session, principal=Principal.system(), campaign_id=row.id)

    found = _run(job)
    table = Table("id", "funder", "amount", "status", "recorded", "approved", title=f"{len(found)} deposits")
    for item in found:
        row = item.row
        table.add_row(
            row.id,
            item.funder_code,
            Fen(row.amount_fen).format(),
            row.status,
            f"{row.requested_by_name} {to_local(row.requested_at):%Y-%m-%d %H:%M}",
            ""
            if row.approved_at is None
            else f"{row.approved_by_name} {to_local(row.approved_at):%Y-%m-%d %H:%M}",
        )
    out.print(table)


@ledger_app.command("balances")
def balances(campaign: CampaignOption) -> None:
    """Every account of a campaign with its balance (normal side positive)."""

    async def job(session: AsyncSession) -> dict[str, Fen]:
        row = await _campaign(session, campaign)
        return await service.balances(session, campaign_id=row.id)

    found = _run(job)
    table = Table("account", "balance", title=f"{campaign}: {len(found)} accounts")
    for key, value in found.items():
        table.add_row(key, value.format())
    out.print(table)


@ledger_app.command("check")
def check(
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Campaign code; every campaign when omitted.")
    ] = None,
) -> None:
    """Verify the invariants I1–I3 (SPEC §5) with their figures; exit 1 if any fails."""

    async def job(session: AsyncSession) -> list[checks.CampaignChecks]:
        campaign_id = None if campaign is None else (await _campaign(session, campaign)).id
        return await service.check(session, principal=Principal.system(), campaign_id=campaign_id)

    reports = _run(job)
    if not reports:
        out.print("no campaigns loaded: nothing to check")
    for report in reports:
        _print_report(report)
    failed = [report.campaign_code for report in reports if not report.ok]
    if failed:
        err.print(f"invariants FAILED for {', '.join(failed)}", markup=False)
        raise typer.Exit(1)


def _print_report(report: checks.CampaignChecks) -> None:
    table = Table("", "invariant", "check", "figures", title=f"{report.campaign_code}", show_lines=True)
    for result in report.results:
        figures = "\n".join(f"{figure.label}: {figure.text()}" for figure in result.figures)
        if result.problems:
            figures += "\n" + "\n".join(f"- {problem}" for problem in result.problems)
        table.add_row(
            "[green]ok[/green]" if result.ok else "[red]FAIL[/red]", result.invariant, result.name, figures
        )
    out.print(table)
