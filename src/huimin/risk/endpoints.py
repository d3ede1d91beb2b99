"""HTTP for fraud monitoring, `/api/v1/staff/risk` (console users): alerts with their evidence, the watch
list, cases from alerts, their steps, the lifting of a person's or device's block, and a campaign's rule
settings.

Endpoints parse, call a service with the signed-in principal, and shape the answer; who may see and do
what is decided in `service` (403 `forbidden`, 404 outside the caller's scope).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from huimin.deps import ClockDep, SessionDep, StaffDep
from huimin.risk import service
from huimin.risk.domain import AlertStatus, CaseStatus, Rule, SubjectKind
from huimin.risk.repository import AlertFilter
from huimin.risk.schemas import (
    AlertOut,
    AlertPage,
    CaseDetailOut,
    CaseIn,
    CasePage,
    LiftIn,
    StepIn,
    WatchEntryOut,
    alert_out,
    alert_page,
    case_detail_out,
    case_page,
    watch_entry_out,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/staff/risk", tags=["risk (console)"])

_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "not_signed_in, session_expired"},
    403: {"description": "forbidden (the role may not)"},
    404: {"description": "unknown_alert, unknown_case (also outside the caller's scope)"},
}
_ACT: dict[int | str, dict[str, Any]] = {
    **_READ,
    409: {"description": "invalid_transition (and the merchants service's for a merchant's sanction)"},
    422: {"description": "invalid_request, invalid_case, invalid_step"},
}


@router.get(
    "/alerts",
    response_model=AlertPage,
    summary="Alerts (预警), highest score first",
    responses={**_READ, 422: {"description": "invalid_request (also raised_from after raised_to)"}},
)
async def list_alerts(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    rule: Rule | None = None,
    status: AlertStatus | None = None,
    subject_kind: SubjectKind | None = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    min_score: Annotated[int | None, Query(ge=0, description="the alert's score, this one included")] = None,
    raised_from: Annotated[
        date | None, Query(description="first Asia/Shanghai day the alert was raised on, included")
    ] = None,
    raised_to: Annotated[
        date | None, Query(description="last Asia/Shanghai day the alert was raised on, included")
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> AlertPage:
    """The alerts the caller may see, highest score first. `min_score` keeps alerts scoring at least that
    much. `raised_from` and `raised_to` are Asia/Shanghai calendar days, both included, of when the alert
    was first raised (`raised_at`), not of its last update (`updated_at`: a pattern seen again updates
    its alert): an alert raised at 23:30 Beijing time is in that day. `raised_from` after `raised_to` is
    refused with 422 `invalid_request`."""
    where = AlertFilter(
        campaign_id=campaign_id,
        rule=None if rule is None else rule.value,
        status=None if status is None else status.value,
        subject_kind=None if subject_kind is None else subject_kind.value,
        subject_id=subject_id,
        min_score=min_score,
        raised_from=raised_from,
        raised_to=raised_to,
    )
    return alert_page(
        await service.list_alerts(session, principal=principal, where=where, page=page, page_size=page_size)
    )


@router.get(
    "/alerts/{alert_id}", response_model=AlertOut, summary="One alert with its evidence", responses=_READ
)
async def get_alert(alert_id: str, session: SessionDep, principal: StaffDep) -> AlertOut:
    return alert_out(await service.get_alert(session, principal=principal, alert_id=alert_id))


@router.get(
    "/watch-list",
    response_model=list[WatchEntryOut],
    summary="Merchants, persons and devices by combined risk score (重点关注名单)",
    responses=_READ,
)
async def watch_list(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    min_score: Annotated[int | None, Query(ge=0)] = None,
) -> list[WatchEntryOut]:
    entries = await service.watch_list(
        session, principal=principal, campaign_id=campaign_id, min_score=min_score
    )
    return [watch_entry_out(entry) for entry in entries]


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseDetailOut,
    summary="Open a case from alerts (立案)",
    responses=_ACT,
)
async def open_case(body: CaseIn, session: SessionDep, principal: StaffDep, clock: ClockDep) -> CaseDetailOut:
    detail = await service.open_case(
        session,
        principal=principal,
        alert_ids=body.alert_ids,
        title=body.title,
        reason=body.reason,
        clock=clock,
    )
    return case_detail_out(detail)


@router.get(
    "/cases",
    response_model=CasePage,
    summary="Cases (a department sees those referred to it)",
    responses=_READ,
)
async def list_cases(
    session: SessionDep,
    principal: StaffDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: CaseStatus | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> CasePage:
    return case_page(
        await service.list_cases(
            session,
            principal=principal,
            campaign_id=campaign_id,
            status=status,
            page=page,
            page_size=page_size,
        )
    )


@router.get(
    "/cases/{case_id}",
    response_model=CaseDetailOut,
    summary="One case: alerts, steps, referrals",
    responses=_READ,
)
async def get_case(case_id: str, session: SessionDep, principal: StaffDep) -> CaseDetailOut:
    return case_detail_out(await service.get_case(session, principal=principal, case_id=case_id))


@router.post(
    "/cases/{case_id}/transitions",
    response_model=CaseDetailOut,
    summary="A step of a case: investigate, dismiss, confirm, refer, sanction, assign, note",
    description=(
        "A sanction names its measure by the case's subject: `suspend` or `expel` a merchant; `block` a "
        "person or a device from claiming and entering lotteries in the campaign, or `block_and_revoke` "
        "to revoke their unused vouchers as well (docs/risk.md, Cases)."
    ),
    responses=_ACT,
)
async def step_case(
    case_id: str, body: StepIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> CaseDetailOut:
    detail = await service.step_case(
        session,
        principal=principal,
        case_id=case_id,
        action=body.action,
        reason=body.reason,
        department=body.department,
        measure=body.measure,
        assignee=body.assignee,
        clock=clock,
    )
    return case_detail_out(detail)


@router.post(
    "/blocks/{block_id}/lift",
    response_model=CaseDetailOut,
    summary="Lift a person's or a device's block (解除禁止领取); answers the block's case",
    description=(
        "The person or device may claim and enter lotteries in the campaign again; vouchers the sanction "
        "revoked are not restored. Recorded as a `note` step of the case and a `risk.block_lifted` audit "
        "record (docs/risk.md, Cases)."
    ),
    responses={
        **_READ,
        404: {"description": "unknown_block (also outside the caller's scope)"},
        409: {"description": "block_already_lifted"},
        422: {"description": "invalid_request, invalid_lift (a reason of 1 to 2000 characters)"},
    },
)
async def lift_block(
    block_id: str, body: LiftIn, session: SessionDep, principal: StaffDep, clock: ClockDep
) -> CaseDetailOut:
    detail = await service.lift_block(
        session, principal=principal, block_id=block_id, reason=body.reason, clock=clock
    )
    return case_detail_out(detail)


@router.get("/settings/{campaign_id}", summary="A campaign's rule thresholds and weights", responses=_READ)
async def get_settings(campaign_id: str, session: SessionDep, principal: StaffDep) -> dict[str, Any]:
    return (await service.campaign_settings(session, principal=principal, campaign_id=campaign_id)).as_dict()


@router.put(
    "/settings/{campaign_id}",
    summary="Replace a campaign's overrides of the defaults (docs/risk.md lists every setting)",
    responses={**_READ, 422: {"description": "invalid_risk_settings"}},
)
async def put_settings(
    campaign_id: str,
    overrides: Annotated[dict[str, Any], Body()],
    session: SessionDep,
    principal: StaffDep,
    clock: ClockDep,
) -> dict[str, Any]:
    settings = await service.put_settings(
        session, principal=principal, campaign_id=campaign_id, overrides=overrides, clock=clock
    )
    return settings.as_dict()
