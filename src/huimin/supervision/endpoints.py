"""HTTP for market supervision: `/api/v1/staff/inspections` (console users). The market regulator
records findings; the city commerce bureau reads its inbox and decides (suspend the merchant, or no
action). Who may do what is decided in `service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from huimin.deps import ClockDep, SessionDep, StaffDep
from huimin.supervision import service
from huimin.supervision.domain import Decision, FindingStatus
from huimin.supervision.repository import FindingFilter
from huimin.supervision.schemas import (
    FindingIn,
    FindingOut,
    FindingPage,
    InboxOut,
    ReasonIn,
    finding_out,
    finding_page,
    inbox_out,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/staff/inspections", tags=["market supervision (console)"])

_ACT: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden, csrf_failed"},
    404: {"description": "unknown_finding (also outside the caller's jurisdiction), unknown_merchant"},
    409: {"description": "invalid_transition (decided already, or the merchant is not active)"},
    422: {"description": "invalid_request, invalid_finding, reason_required"},
}


@router.post(
    "",
    status_code=201,
    response_model=FindingOut,
    summary="Record a finding — market regulator",
    responses=_ACT,
)
async def record(body: FindingIn, session: SessionDep, principal: StaffDep, clock: ClockDep) -> FindingOut:
    row = await service.record_finding(
        session,
        principal=principal,
        merchant_id=body.merchant_id,
        kind=body.kind,
        severity=body.severity,
        description=body.description,
        inspected_at=body.inspected_at,
        complaint_id=body.complaint_id,
        clock=clock,
    )
    return finding_out(row)


@router.get("", response_model=FindingPage, summary="Findings the caller may see", responses=_ACT)
async def list_findings(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[FindingStatus | None, Query()] = None,
    unread: Annotated[bool | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> FindingPage:
    found = await service.list_findings(
        session,
        principal=principal,
        where=FindingFilter(campaign_id=campaign_id, merchant_id=merchant_id, status=status, unread=unread),
        page=page,
        page_size=page_size,
    )
    return finding_page(found)


@router.get(
    "/inbox", response_model=InboxOut, summary="Unread findings — the city commerce bureau", responses=_ACT
)
async def inbox(session: SessionDep, principal: StaffDep) -> InboxOut:
    return inbox_out(await service.inbox(session, principal=principal))


@router.get("/{finding_id}", response_model=FindingOut, summary="One finding", responses=_ACT)
async def get_finding(finding_id: str, session: SessionDep, principal: StaffDep) -> FindingOut:
    return finding_out(await service.get_finding(session, principal=principal, finding_id=finding_id))


@router.post(
    "/{finding_id}/read",
    response_model=FindingOut,
    summary="Mark read — city commerce bureau",
    responses=_ACT,
)
async def mark_read(finding_id: str, session: SessionDep, principal: StaffDep, clock: ClockDep) -> FindingOut:
    return finding_out(
        await service.mark_read(session, principal=principal, finding_id=finding_id, clock=clock)
    )


def _decision_route(decision: Decision, path: str, summary: str) -> None:
    async def act(
        finding_id: str, body: ReasonIn, session: SessionDep, principal: StaffDep, clock: ClockDep
    ) -> FindingOut:
        row = await service.decide(
            session,
            principal=principal,
            finding_id=finding_id,
            decision=decision,
            reason=body.reason,
            clock=clock,
        )
        return finding_out(row)

    router.add_api_route(
        f"/{{finding_id}}/{path}",
        act,
        methods=["POST"],
        response_model=FindingOut,
        summary=summary,
        responses=_ACT,
        name=f"finding_{decision.value}",
    )


_decision_route(
    Decision.SUSPEND, "suspend-merchant", "Suspend the merchant from this finding — city commerce bureau"
)
_decision_route(Decision.NO_ACTION, "no-action", "Decide no sanction — city commerce bureau")
