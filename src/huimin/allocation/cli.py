"""`huimin allocation ...`: the next-round planner from the operator's shell (as the system), for a
city admin who prefers the command line or a scheduled proposal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.allocation import domain, service
from huimin.allocation.models import AllocationPlanRow
from huimin.auth.principals import Principal
from huimin.campaigns.service import get_campaign_by_code
from huimin.errors import InvalidInput, Problem
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock

__all__ = ["allocation_app"]

allocation_app = typer.Typer(
    help="Precision allocation (精准投放): the next-round planner's proposals and decisions.",
    no_args_is_help=True,
)
out = Console()
SYSTEM = Principal.system("allocation")


def _counts(pairs: list[str]) -> dict[str, int]:
    counts = {}
    for pair in pairs:
        key, _, count = pair.partition("=")
        if not key.strip() or not count.strip().isdigit():
            raise InvalidInput(
                [Problem("--stock", f"{pair!r}: expected BATCH=COUNT, e.g. general-100-30=9000")]
            )
        counts[key.strip()] = int(count)
    return counts


@allocation_app.command("plan")
def plan(
    campaign: Annotated[str, typer.Option(help="Campaign code.")],
    round_id: Annotated[
        str | None, typer.Option("--round", help="Round id (default: the next to open).")
    ] = None,
    max_change: Annotated[str, typer.Option(help="Most a batch's stock may change, e.g. 20%.")] = "20%",
    min_category: Annotated[
        list[str] | None, typer.Option(help="Minimum share of the round's value, e.g. retail=30% (repeat).")
    ] = None,
    min_jurisdiction: Annotated[
        list[str] | None, typer.Option(help="Minimum share of the round's value, e.g. anyue=15% (repeat).")
    ] = None,
) -> None:
    """Ask the planner for the next round's split; prints each batch's figures and the proposal."""
    limits = domain.Limits(
        max_change_bp=domain.parse_shares("--max-change", [f"all={max_change}"])["all"],
        min_category_share_bp=domain.parse_shares("--min-category", min_category or []),
        min_jurisdiction_share_bp=domain.parse_shares("--min-jurisdiction", min_jurisdiction or []),
    )

    async def job(session: AsyncSession) -> AllocationPlanRow:
        found = await get_campaign_by_code(session, code=campaign)
        return await service.propose(
            session,
            principal=SYSTEM,
            campaign_id=found.id,
            limits=limits,
            clock=SystemClock(),
            round_id=round_id,
        )

    _show(run_job(job, checked_settings()))


@allocation_app.command("decide")
def decide(
    plan_id: Annotated[str, typer.Argument(help="The proposal's id (alp_...).")],
    accept: Annotated[bool, typer.Option("--accept/--reject", help="Accept or reject the proposal.")],
    stock: Annotated[
        list[str] | None, typer.Option(help="Accept your own split instead: BATCH=COUNT (repeat for each).")
    ] = None,
    note: Annotated[str, typer.Option(help="Why (required to reject).")] = "",
) -> None:
    """Accept (as proposed, or edited with --stock) or reject a proposal; accepting sets the round's stock."""
    edited = _counts(stock) if stock else None

    async def job(session: AsyncSession) -> AllocationPlanRow:
        return await service.decide(
            session,
            principal=SYSTEM,
            plan_id=plan_id,
            accept=accept,
            stock=edited,
            note=note,
            clock=SystemClock(),
        )

    row = run_job(job, checked_settings())
    out.print(f"{row.id}: {row.status}", markup=False)
    if row.status == "accepted":
        out.print("Run `huimin claims reconcile` if claims use the Redis gate.", markup=False)


def _show(row: AllocationPlanRow) -> None:
    table = Table(title=f"Allocation proposal {row.id} (round {row.round_id})")
    for column in ("batch", "planned", "proposed", "change", "why"):
        table.add_column(column, overflow="fold")
    for line in row.lines:
        table.add_row(
            line["batch"],
            f"{line['planned']:,}",
            f"{line['proposed']:,}",
            f"{line['proposed'] - line['planned']:+,}",
            domain.explain(line, row.average_merit),
        )
    out.print(table)
    if row.fallback > 0:
        out.print(
            f"The merit-led split broke a limit; moved {row.fallback:.0%} of the way back to the planned split.",
            markup=False,
        )
    out.print(
        f"Decide with: huimin allocation decide {row.id} --accept | --reject --note REASON", markup=False
    )
