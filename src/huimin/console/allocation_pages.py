"""The next-round planner on screen (投放方案, issue 13): the city admin asks for a proposal within
limits, reads each batch's figures and why it moves, and accepts it, edits it or rejects it. Every
rule and check is `allocation.service`'s; this page only parses the form and shows the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.allocation import domain
from huimin.allocation import service as allocation
from huimin.allocation.models import AllocationPlanRow
from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.claims.express_http import express_gate
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.web import CONSOLE_PREFIX, render
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError, InvalidInput

__all__ = ["router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/allocation", include_in_schema=False)
HERE = f"{CONSOLE_PREFIX}/allocation"


def _pairs(text: str) -> list[str]:
    return [part.strip() for part in text.replace("，", ",").replace("\n", ",").split(",") if part.strip()]


async def _page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    campaign_id: str | None,
    plan_id: str | None = None,
    error: HuiminError | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    user.principal.require(Permission.ALLOCATION_PLAN)
    known = list(await campaigns.list_campaigns(session))
    chosen = service.choose_campaign(known, campaign_id, request.app.state.clock.now())
    plans: list[AllocationPlanRow] = []
    shown = None
    if chosen is not None:
        plans = list(await allocation.list_plans(session, principal=user.principal, campaign_id=chosen.id))
        if plan_id is not None:
            shown = await allocation.get_plan(session, principal=user.principal, plan_id=plan_id)
            if shown.campaign_id != chosen.id:
                shown = None
        elif plans:
            shown = plans[0]
    return render(
        request,
        "allocation.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "plans": plans,
            "plan": shown,
            "explain": lambda line: domain.explain(line, shown.average_merit if shown else 0.0),
            "error": error,
            "problems": error.problems if isinstance(error, InvalidInput) else [],
            "values": values or {"max_change": "20%", "min_category": "", "min_jurisdiction": ""},
        },
        status=status,
        **user.frame(),
    )


@router.get("")
async def plans_page(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    plan_id: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _page(request, user, session, campaign_id=campaign_id, plan_id=plan_id)


@router.post("/plans", response_model=None)
async def propose(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
    max_change: Annotated[str, Form(max_length=16)] = "20%",
    min_category: Annotated[str, Form(max_length=500)] = "",
    min_jurisdiction: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    user.principal.require(Permission.ALLOCATION_PLAN)
    values = {"max_change": max_change, "min_category": min_category, "min_jurisdiction": min_jurisdiction}
    try:
        limits = domain.Limits(
            max_change_bp=domain.parse_shares("max_change", [f"all={max_change}"])["all"],
            min_category_share_bp=domain.parse_shares("min_category", _pairs(min_category)),
            min_jurisdiction_share_bp=domain.parse_shares("min_jurisdiction", _pairs(min_jurisdiction)),
        )
        async with unit_of_work(sessions) as session:
            row = await allocation.propose(
                session, principal=user.principal, campaign_id=campaign_id, limits=limits, clock=clock
            )
            plan_id = row.id
    except (InvalidInput, HuiminError) as refusal:
        if refusal.status == 403:
            raise
        async with unit_of_work(sessions) as session:
            return await _page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=refusal,
                values=values,
                status=refusal.status,
            )
    return RedirectResponse(f"{HERE}?campaign_id={campaign_id}&plan_id={plan_id}", status_code=303)


@router.post("/plans/{plan_id}/decision", response_model=None)
async def decide(
    plan_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    decision: Annotated[str, Form(pattern="^(accept|reject)$")],
    note: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    user.principal.require(Permission.ALLOCATION_PLAN)
    form = await request.form()
    stock: dict[str, int] = {}
    for name, value in form.items():
        if name.startswith("stock.") and isinstance(value, str):
            stock[name.removeprefix("stock.")] = int(value) if value.strip().isdigit() else -1
    try:
        async with unit_of_work(sessions) as session:
            row = await allocation.decide(
                session,
                principal=user.principal,
                plan_id=plan_id,
                accept=decision == "accept",
                stock=stock or None,
                note=note,
                clock=clock,
                gate=request.app.state.claim_gate,
            )
            campaign_id = row.campaign_id
        await allocation.push_round_stock(sessions, express=express_gate(request.app), plan=row)  # committed
    except HuiminError as refusal:
        if refusal.status in (403, 404):
            raise
        async with unit_of_work(sessions) as session:
            plan = await allocation.get_plan(session, principal=user.principal, plan_id=plan_id)
            return await _page(
                request,
                user,
                session,
                campaign_id=plan.campaign_id,
                plan_id=plan_id,
                error=refusal,
                status=refusal.status,
            )
    return RedirectResponse(f"{HERE}?campaign_id={campaign_id}&plan_id={plan_id}", status_code=303)
