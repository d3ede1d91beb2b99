"""HTTP for complaints. `router` carries both parts, so one `app.include_router(router)` wires them:

- `/api/v1/staff/complaints` (console users): register, list (with the overdue filter), statistics,
  detail, transitions, notes, the link to a risk case.
- `/api/v1/residents/{resident_id}/complaints` (signed by the payment app): a resident complains and
  follows its complaints.

Endpoints parse, call a service with the signed-in principal, and shape the answer; who may do what
is decided in `service` (403 `forbidden`, 404 outside the caller's scope).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal
from huimin.campaigns.schemas import JurisdictionTerm
from huimin.complaints import service
from huimin.complaints.domain import Action, Category, ComplaintStatus, Department
from huimin.complaints.repository import ComplaintFilter
from huimin.complaints.schemas import (
    AssignIn,
    ComplaintDetailOut,
    ComplaintIn,
    ComplaintPage,
    ResidentComplaintIn,
    ResidentComplaintOut,
    RiskCaseLinkIn,
    StatisticsOut,
    TextIn,
    complaint_detail_out,
    complaint_page,
    resident_complaint_out,
    statistics_out,
)
from huimin.deps import AppPartnerDep, ClockDep, SessionDep, SettingsDep, StaffDep
from huimin.kit.clock import Clock

__all__ = ["partner_router", "router", "staff_router"]

staff_router = APIRouter(prefix="/api/v1/staff/complaints", tags=["complaints (console)"])
partner_router = APIRouter(prefix="/api/v1/residents", tags=["complaints"])

_ACT: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden (the role may not, or the complaint is routed elsewhere), csrf_failed"},
    404: {
        "description": "unknown_complaint (also outside the caller's scope), unknown_merchant, unknown_voucher"
    },
    409: {"description": "invalid_transition, complaint_closed"},
    422: {"description": "invalid_request, invalid_complaint, invalid_step, invalid_assignee"},
}
_SIGNED: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing_signature, bad_signature, stale_timestamp, replayed_nonce, unknown_key"},
    403: {"description": "wrong_partner_kind"},
    404: {"description": "unknown_resident, unknown_merchant, unknown_voucher, unknown_campaign"},
    422: {"description": "invalid_request, invalid_complaint"},
}


async def _detail(
    session: AsyncSession, principal: Principal, complaint_id: str, clock: Clock
) -> ComplaintDetailOut:
    detail = await service.get_complaint(session, principal=principal, complaint_id=complaint_id, clock=clock)
    return complaint_detail_out(detail, clock.now())


@staff_router.post(
    "",
    status_code=201,
    response_model=ComplaintDetailOut,
    summary="Register a complaint (登记) — hotline, market regulator, PBOC",
    responses=_ACT,
)
async def register(
    body: ComplaintIn, session: SessionDep, principal: StaffDep, clock: ClockDep, settings: SettingsDep
) -> ComplaintDetailOut:
    row = await service.register(
        session,
        principal=principal,
        category=body.category,
        text=body.text,
        campaign_id=body.campaign_id,
        merchant_id=body.merchant_id,
        voucher_code=body.voucher_code,
        phone=body.phone,
        hasher=settings.hasher,
        policy=service.ComplaintPolicy.from_settings(settings),
        clock=clock,
    )
    return await _detail(session, principal, row.id, clock)


@staff_router.get("", response_model=ComplaintPage, summary="Complaints the caller may see", responses=_ACT)
async def list_complaints(
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    settings: SettingsDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[list[ComplaintStatus] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    department: Annotated[Department | None, Query()] = None,
    jurisdiction: Annotated[JurisdictionTerm | None, Query()] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    overdue: Annotated[bool | None, Query(description="true: only overdue; false: only not overdue")] = None,
    phone: Annotated[
        str | None, Query(max_length=24, description="one caller's complaints (matched by hash)")
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> ComplaintPage:
    found = await service.list_complaints(
        session,
        principal=principal,
        where=ComplaintFilter(
            campaign_id=campaign_id,
            statuses=status or (),
            categories=category or (),
            department=department,
            jurisdiction=jurisdiction,
            merchant_id=merchant_id,
            overdue=overdue,
        ),
        phone=phone,
        hasher=settings.hasher,
        clock=clock,
        page=page,
        page_size=page_size,
    )
    return complaint_page(found, clock.now())


@staff_router.get(
    "/stats",
    response_model=StatisticsOut,
    summary="Statistics by category, department and jurisdiction",
    responses=_ACT,
)
async def stats(
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[list[Category] | None, Query()] = None,
) -> StatisticsOut:
    found = await service.statistics(
        session, principal=principal, campaign_id=campaign_id, categories=category or (), clock=clock
    )
    return statistics_out(found)


@staff_router.get(
    "/{complaint_id}",
    response_model=ComplaintDetailOut,
    summary="One complaint with its history",
    responses=_ACT,
)
async def get_complaint(
    complaint_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> ComplaintDetailOut:
    return await _detail(session, principal, complaint_id, clock)


@staff_router.post(
    "/{complaint_id}/assign",
    response_model=ComplaintDetailOut,
    summary="Assign (or re-assign) to a user of the department it is routed to",
    responses=_ACT,
)
async def assign(
    complaint_id: str, body: AssignIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> ComplaintDetailOut:
    await service.step(
        session,
        principal=principal,
        complaint_id=complaint_id,
        action=Action.ASSIGN,
        text=body.text,
        assignee_id=body.assignee_id,
        clock=clock,
    )
    return await _detail(session, principal, complaint_id, clock)


def _step_route(action: Action, summary: str) -> None:
    async def act(
        complaint_id: str, body: TextIn, session: SessionDep, principal: StaffDep, clock: ClockDep
    ) -> ComplaintDetailOut:
        await service.step(
            session,
            principal=principal,
            complaint_id=complaint_id,
            action=action,
            text=body.text,
            clock=clock,
        )
        return await _detail(session, principal, complaint_id, clock)

    staff_router.add_api_route(
        f"/{{complaint_id}}/{action.value}",
        act,
        methods=["POST"],
        response_model=ComplaintDetailOut,
        summary=summary,
        responses=_ACT,
        name=f"complaint_{action.value}",
    )


_step_route(Action.START, "Start work on an assigned complaint (办理)")
_step_route(Action.RESOLVE, "Resolve with the resolution text (办结)")
_step_route(Action.REOPEN, "Reopen a resolution the complainant did not accept (with why)")
_step_route(Action.CLOSE, "Close after the callback (回访) — the handling department or who registered it")


@staff_router.post(
    "/{complaint_id}/notes",
    response_model=ComplaintDetailOut,
    summary="Add a note to the history",
    responses=_ACT,
)
async def add_note(
    complaint_id: str, body: TextIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> ComplaintDetailOut:
    await service.add_note(
        session, principal=principal, complaint_id=complaint_id, text=body.text, clock=clock
    )
    return await _detail(session, principal, complaint_id, clock)


@staff_router.post(
    "/{complaint_id}/risk-case",
    response_model=ComplaintDetailOut,
    summary="Link to the risk case it concerns (suspected cash-out)",
    responses={**_ACT, 404: {"description": "unknown_complaint, unknown_case"}},
)
async def link_risk_case(
    complaint_id: str, body: RiskCaseLinkIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> ComplaintDetailOut:
    await service.link_risk_case(
        session, principal=principal, complaint_id=complaint_id, risk_case_id=body.risk_case_id, clock=clock
    )
    return await _detail(session, principal, complaint_id, clock)


# The payment app, for a resident


@partner_router.post(
    "/{resident_id}/complaints",
    status_code=201,
    response_model=ResidentComplaintOut,
    summary="A resident complains (投诉), through the payment app",
    responses=_SIGNED,
)
async def resident_complains(
    resident_id: str,
    body: ResidentComplaintIn,
    partner: AppPartnerDep,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ResidentComplaintOut:
    row = await service.register_for_resident(
        session,
        partner_id=partner.id,
        resident_id=resident_id,
        category=body.category,
        text=body.text,
        campaign_id=body.campaign_id,
        merchant_id=body.merchant_id,
        voucher_code=body.voucher_code,
        policy=service.ComplaintPolicy.from_settings(settings),
        clock=clock,
    )
    return resident_complaint_out(row)


@partner_router.get(
    "/{resident_id}/complaints",
    response_model=list[ResidentComplaintOut],
    summary="A resident's complaints and their answers",
    responses=_SIGNED,
)
async def resident_complaints(
    resident_id: str, partner: AppPartnerDep, session: SessionDep, clock: ClockDep
) -> list[ResidentComplaintOut]:
    rows = await service.resident_complaints(
        session, partner_id=partner.id, resident_id=resident_id, clock=clock
    )
    return [resident_complaint_out(row) for row in rows]


router = APIRouter()
router.include_router(staff_router)
router.include_router(partner_router)
