"""HTTP for precision allocation: the next-round planner for console users
(`/api/v1/staff/allocation`), and a resident's offers for the payment app (signed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from huimin.allocation import service
from huimin.allocation.schemas import DecisionIn, LimitsIn, OfferOut, PlanOut, offer_out, plan_out
from huimin.claims.express_http import express_gate
from huimin.db import unit_of_work
from huimin.deps import AppPartnerDep, ClockDep, SessionDep, SessionsDep, StaffDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["allocation"])

_STAFF: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden (only the city admin plans allocation)"},
    404: {"description": "unknown_campaign, unknown_round, unknown_plan"},
    409: {"description": "nothing_to_plan, round_open, plan_decided"},
    422: {
        "description": "invalid_request, invalid_limits, limits_unreachable, invalid_allocation, invalid_decision"
    },
}


@router.post(
    "/staff/allocation/campaigns/{campaign_id}/plans",
    status_code=201,
    response_model=PlanOut,
    summary="Ask the planner to split the next round's stock (投放方案)",
    tags=["allocation (console)"],
    responses=_STAFF,
)
async def propose(
    campaign_id: str, body: LimitsIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> PlanOut:
    row = await service.propose(
        session,
        principal=principal,
        campaign_id=campaign_id,
        limits=body.limits(),
        clock=clock,
        round_id=body.round_id,
    )
    return plan_out(row)


@router.get(
    "/staff/allocation/campaigns/{campaign_id}/plans",
    response_model=list[PlanOut],
    summary="Proposals and decisions, newest first",
    tags=["allocation (console)"],
    responses=_STAFF,
)
async def list_plans(campaign_id: str, session: SessionDep, principal: StaffDep) -> list[PlanOut]:
    rows = await service.list_plans(session, principal=principal, campaign_id=campaign_id)
    return [plan_out(row) for row in rows]


@router.get(
    "/staff/allocation/plans/{plan_id}",
    response_model=PlanOut,
    summary="One proposal, each line explained in figures",
    tags=["allocation (console)"],
    responses=_STAFF,
)
async def get_plan(plan_id: str, session: SessionDep, principal: StaffDep) -> PlanOut:
    return plan_out(await service.get_plan(session, principal=principal, plan_id=plan_id))


@router.post(
    "/staff/allocation/plans/{plan_id}/decision",
    response_model=PlanOut,
    summary="Accept (as proposed or edited) or reject a proposal",
    tags=["allocation (console)"],
    responses=_STAFF,
)
async def decide(
    plan_id: str,
    body: DecisionIn,
    request: Request,
    sessions: SessionsDep,
    principal: StaffDep,
    clock: ClockDep,
) -> PlanOut:
    async with unit_of_work(sessions) as session:
        row = await service.decide(
            session,
            principal=principal,
            plan_id=plan_id,
            accept=body.accept,
            stock=body.stock,
            note=body.note,
            clock=clock,
            gate=request.app.state.claim_gate,
        )
    await service.push_round_stock(sessions, express=express_gate(request.app), plan=row)  # committed
    return plan_out(row)


@router.get(
    "/residents/{resident_id}/offers",
    response_model=list[OfferOut],
    summary="The batches open now, likeliest to be spent by this resident first (千人千面)",
    responses={404: {"description": "unknown_resident"}},
)
async def offers(
    resident_id: str, partner: AppPartnerDep, session: SessionDep, clock: ClockDep
) -> list[OfferOut]:
    lines = await service.offers_for(session, partner_id=partner.id, resident_id=resident_id, clock=clock)
    return [offer_out(line) for line in lines]
