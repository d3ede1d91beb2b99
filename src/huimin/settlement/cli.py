"""`huimin settlement …` and `huimin reconcile`: settlement runs from the operator's shell.

Acts of a person take `--actor NAME --role ROLE`, checked like a signed-in user of that role: the
operator prepares, imports bank files and requests the recovery; finance approves or returns (never
their own).
Reads run as the system. `huimin reconcile` exits 1 when it finds any difference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock
from huimin.kit.money import Fen
from huimin.kit.sealing import Sealer
from huimin.ledger.cli import _campaign, _person
from huimin.merchants.service import MerchantSealer
from huimin.settlement import service
from huimin.settlement.models import RecoveryRow, SettlementRunRow
from huimin.settlement.reconcile import Reconciliation, reconcile

__all__ = ["reconcile_command", "settlement_app"]

settlement_app = typer.Typer(
    help="Settlement (结算): daily runs, clearing files, bank confirmations, clawbacks, recovery.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ActorOption = Annotated[str, typer.Option("--actor", help="Who does this, as recorded, e.g. 李强.")]
RoleOption = Annotated[str, typer.Option("--role", help="operator prepares, finance approves.")]
CampaignOption = Annotated[str, typer.Option("--campaign", help="Campaign code, e.g. ziyang-2022.")]
DayOption = Annotated[str, typer.Option("--day", help="Business day, YYYY-MM-DD (Asia/Shanghai).")]


def _run(job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_job(job, checked_settings())


def _sealer() -> Sealer:
    return MerchantSealer.from_settings(checked_settings()).bank_account


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("write the day as YYYY-MM-DD", param_hint="--day") from None


def _describe(run: SettlementRunRow) -> str:
    return (
        f"run {run.id} for {run.business_day}: {run.status}, {run.lines} payouts over {run.redemptions} "
        f"redemptions, subsidy {Fen(run.subsidy_fen).format()}, set off {Fen(run.netted_fen).format()}, "
        f"to pay {Fen(run.total_fen).format()} ({run.approvals_needed} approval(s) needed)"
    )


@settlement_app.command("prepare")
def prepare(campaign: CampaignOption, day: DayOption, actor: ActorOption, role: RoleOption) -> None:
    """Prepare the run of a business day (maker); preparing the same day again shows the same run."""
    principal, business_day = _person(actor, role), _day(day)

    async def job(session: AsyncSession) -> SettlementRunRow:
        row = await _campaign(session, campaign)
        return await service.prepare(
            session, principal=principal, campaign_id=row.id, day=business_day, clock=SystemClock()
        )

    out.print(_describe(_run(job)), highlight=False)


@settlement_app.command("approve")
def approve(
    run_id: Annotated[str, typer.Argument(help="The run (stl_…).")], actor: ActorOption, role: RoleOption
) -> None:
    """Approve a run (finance, not its preparer); the final approval posts it and fixes its file."""
    principal, sealer = _person(actor, role), _sealer()
    run = _run(
        lambda session: service.approve(
            session, principal=principal, run_id=run_id, clock=SystemClock(), sealer=sealer
        )
    )
    out.print(_describe(run), highlight=False)


@settlement_app.command("return")
def return_run(
    run_id: Annotated[str, typer.Argument(help="The run (stl_…).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the run goes back to the operator (≤ 500).")],
    actor: ActorOption,
    role: RoleOption,
) -> None:
    """Return a prepared run to the operator (退回, finance, not its preparer): nothing is posted, its
    redemptions await settlement again, and the day can be prepared anew."""
    principal = _person(actor, role)
    run = _run(
        lambda session: service.return_run(
            session, principal=principal, run_id=run_id, reason=reason, clock=SystemClock()
        )
    )
    out.print(f"{_describe(run)}; returned: {run.return_reason}", highlight=False)


@settlement_app.command("export")
def export(
    run_id: Annotated[str, typer.Argument(help="The run (stl_…).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the clearing file.")] = Path(
        "var/clearing"
    ),
) -> None:
    """Write an approved run's clearing file for the bank (the same bytes every time; owner-only)."""
    sealer = _sealer()
    found = _run(
        lambda session: service.clearing_file(
            session, principal=Principal.system(), run_id=run_id, sealer=sealer, clock=SystemClock()
        )
    )
    path = service.write_clearing_file(out_dir, found)
    out.print(f"{path}  sha256 {found.sha256}", highlight=False)


@settlement_app.command("import-bank")
def import_bank(
    campaign: CampaignOption,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The bank's CSV.")],
    actor: ActorOption,
    role: RoleOption,
) -> None:
    """Import the bank's confirmations: payouts paid or failed; differences listed, not applied."""
    principal, content = _person(actor, role), file.read_bytes()

    async def job(session: AsyncSession) -> service.BankImportReport:
        row = await _campaign(session, campaign)
        return await service.import_bank_file(
            session, principal=principal, campaign_id=row.id, content=content, clock=SystemClock()
        )

    report = _run(job)
    out.print(
        f"{report.rows} rows: {report.applied} applied, {report.already_applied} already applied, "
        f"{len(report.differences)} differences"
    )
    for row, reference, outcome in report.differences:
        err.print(f"  row {row}: {reference}: {outcome}", markup=False)
    if report.differences:
        raise typer.Exit(1)


@settlement_app.command("clawback")
def clawback() -> None:
    """Act on merchant.expelled events: claw back settled subsidy, set off what is owed to them."""
    rows = _run(lambda session: service.consume_merchant_events(session, clock=SystemClock()))
    for row in rows:
        out.print(
            f"{row.merchant_id}: {row.redemptions} redemptions clawed back {Fen(row.clawed_back_fen).format()}, "
            f"set off {Fen(row.setoff_fen).format()}, outstanding {Fen(row.outstanding_fen).format()}, "
            f"still frozen {Fen(row.frozen_fen).format()}",
            highlight=False,
        )
    if not rows:
        out.print("no expulsion to act on")


@settlement_app.command("recover")
def recover(campaign: CampaignOption, actor: ActorOption, role: RoleOption) -> None:
    """Request the end-of-campaign recovery (maker): unused budget and expired value back to funders."""
    principal = _person(actor, role)

    async def job(session: AsyncSession) -> RecoveryRow:
        row = await _campaign(session, campaign)
        return await service.request_recovery(
            session, principal=principal, campaign_id=row.id, clock=SystemClock()
        )

    _print_recovery(_run(job))


@settlement_app.command("approve-recovery")
def approve_recovery(
    recovery_id: Annotated[str, typer.Argument(help="The recovery (rec_…).")],
    actor: ActorOption,
    role: RoleOption,
) -> None:
    """Approve the recovery (finance, not its requester): it is posted to the ledger."""
    principal = _person(actor, role)
    _print_recovery(
        _run(
            lambda session: service.approve_recovery(
                session, principal=principal, recovery_id=recovery_id, clock=SystemClock()
            )
        )
    )


def _print_recovery(row: RecoveryRow) -> None:
    out.print(f"recovery {row.id}: {row.status}, {Fen(row.total_fen).format()}", highlight=False)
    for code, (unused, lapsed) in row.amounts.items():
        out.print(
            f"  {code}: unused budget {Fen(unused).format()}, expired {Fen(lapsed).format()}", highlight=False
        )


@settlement_app.command("statement")
def statement(campaign: CampaignOption) -> None:
    """The final statement per funder: deposited, paid, clawed back, recovered, outstanding."""

    async def job(session: AsyncSession) -> service.Statement:
        row = await _campaign(session, campaign)
        return await service.statement(session, principal=Principal.system(), campaign_id=row.id)

    found = _run(job)
    table = Table(
        "funder",
        "deposited",
        "to merchants",
        "paid",
        "clawed back",
        "outstanding",
        "frozen",
        "recovered",
        title=f"{campaign} final statement (决算)",
    )
    for item in found.funders:
        table.add_row(
            item.funder,
            *(
                Fen(value).format()
                for value in (
                    item.deposited,
                    item.to_merchants,
                    item.subsidy_paid,
                    item.clawed_back,
                    item.outstanding,
                    item.frozen,
                    item.recovered,
                )
            ),
        )
    out.print(table)


@settlement_app.command("runs")
def runs(campaign: CampaignOption) -> None:
    """A campaign's runs."""

    async def job(session: AsyncSession) -> list[str]:
        row = await _campaign(session, campaign)
        return [
            _describe(run)
            for run in await service.list_runs(session, principal=Principal.system(), campaign_id=row.id)
        ]

    for line in _run(job):
        out.print(line, highlight=False)


def reconcile_command(
    day: DayOption,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Campaign code; all when omitted.")
    ] = None,
) -> None:
    """Reconcile a business day: redemptions, ledger, clearing files and bank confirmations. Exit 1 on
    any difference."""
    business_day, sealer = _day(day), _sealer()
    report: Reconciliation = _run(
        lambda session: reconcile(
            session, principal=Principal.system(), day=business_day, sealer=sealer, campaign_code=campaign
        )
    )
    out.print(
        f"{report.day}: {report.runs} runs, {report.payouts} payouts, {Fen(report.total).format()}; "
        f"{len(report.differences)} differences",
        highlight=False,
    )
    for item in report.differences:
        err.print(f"  {item.run_id} {item.what}: {item.detail}", markup=False, highlight=False)
    if report.differences:
        raise typer.Exit(1)
