"""The risk pages (风险监测): alerts with their evidence, the watch list of merchants, persons and devices by
risk score, and cases from alerts through investigation, referral and sanction.

Like every console page: parse, call `risk.service` with the signed-in principal, render. The service
decides who sees what (a county: alerts and cases about its own merchants; the market regulator and the
police: the cases referred to them) and who may take which step; another jurisdiction's alert or case
answers 404. Every step of a case is recorded by the service (who, when, why).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission, Principal
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import CampaignRow
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.repository import ConsoleRepository
from huimin.console.web import CONSOLE_PREFIX, page_count, parse_day, parse_term, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError, InvalidInput, Problem
from huimin.risk import service as risk
from huimin.risk.domain import (
    MEASURES,
    AlertStatus,
    CaseAction,
    CaseStatus,
    Department,
    Measure,
    Rule,
    SubjectKind,
)
from huimin.risk.models import RiskAlertRow
from huimin.risk.repository import AlertFilter

__all__ = ["CASE_STEPS", "router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/risk", include_in_schema=False)

PAGE_SIZE = 50
LIFTED = "lift"  # the case page's notice after a block is lifted
# The steps a case page offers as forms, in the order they come; `open` is the alert page's.
CASE_STEPS = [action for action in CaseAction if action is not CaseAction.OPEN]
_STEP_PERMISSIONS = {
    CaseAction.REFER: Permission.RISK_REFER,
    CaseAction.SANCTION: Permission.MERCHANT_SANCTION,
}


async def _campaigns(
    session: AsyncSession, request: Request, campaign_id: str | None
) -> tuple[list[CampaignRow], CampaignRow | None]:
    known = list(await campaigns.list_campaigns(session))
    return known, service.choose_campaign(known, campaign_id, request.app.state.clock.now())


async def _subject_names(session: AsyncSession, rows: list[tuple[str, str]]) -> dict[str, str]:
    """The merchants' names behind merchant subjects (persons and devices have none to show)."""
    merchants = {subject for kind, subject in rows if kind == SubjectKind.MERCHANT.value}
    return await ConsoleRepository(session).merchant_names(merchants)


def _may_step(principal: Principal, action: CaseAction) -> bool:
    return principal.can(_STEP_PERMISSIONS.get(action, Permission.RISK_INVESTIGATE))


# 风险预警: alerts


def _score(value: str | None) -> int | None:
    """The form's minimum score: empty is no filter (the form sends the field empty)."""
    value = (value or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise InvalidInput([Problem("min_score", f"not a score: {value!r}")], code="invalid_request")
    return int(value)


@router.get("")
async def alerts(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    rule: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    subject_kind: Annotated[str | None, Query(max_length=16)] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    min_score: Annotated[str | None, Query(max_length=5)] = None,
    raised_from: Annotated[str | None, Query(max_length=10)] = None,
    raised_to: Annotated[str | None, Query(max_length=10)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """预警列表. The score and day filters are the API's: at least `min_score`, raised (first seen) on
    Asia/Shanghai days from `raised_from` to `raised_to`, both included."""
    known, chosen = await _campaigns(session, request, campaign_id)
    chosen_rule = parse_term(Rule, "rule", rule)
    chosen_status = parse_term(AlertStatus, "status", status)
    chosen_kind = parse_term(SubjectKind, "subject_kind", subject_kind)
    where = AlertFilter(
        campaign_id=chosen.id if chosen else None,
        rule=chosen_rule.value if chosen_rule else None,
        status=chosen_status.value if chosen_status else None,
        subject_kind=chosen_kind.value if chosen_kind else None,
        subject_id=(subject_id or "").strip() or None,
        min_score=_score(min_score),
        raised_from=parse_day("raised_from", raised_from),
        raised_to=parse_day("raised_to", raised_to),
    )
    found = await risk.list_alerts(
        session, principal=user.principal, where=where, page=page, page_size=PAGE_SIZE
    )
    filters = {
        "campaign_id": chosen.id if chosen else "",
        "rule": rule or "",
        "status": status or "",
        "subject_kind": subject_kind or "",
        "subject_id": where.subject_id or "",
        "min_score": "" if where.min_score is None else str(where.min_score),
        "raised_from": "" if where.raised_from is None else where.raised_from.isoformat(),
        "raised_to": "" if where.raised_to is None else where.raised_to.isoformat(),
    }
    return render(
        request,
        "risk_alerts.html",
        {
            "monitoring": user.principal.can(Permission.RISK_READ),
            "tab": "alerts",
            "campaigns": known,
            "campaign": chosen,
            "found": found,
            "names": await _subject_names(
                session, [(row.subject_kind, row.subject_id) for row in found.items]
            ),
            "page": page,
            "pages": page_count(found.total, PAGE_SIZE),
            "rules": list(Rule),
            "statuses": list(AlertStatus),
            "kinds": list(SubjectKind),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
        },
        **user.frame(),
    )


async def _alert_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    alert_id: str,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    alert = await risk.get_alert(session, principal=user.principal, alert_id=alert_id)
    siblings: list[RiskAlertRow] = []
    can_open = user.principal.can(Permission.RISK_INVESTIGATE) and alert.status == AlertStatus.OPEN.value
    if can_open:
        # Other open alerts about the same subject may join the same case.
        others = await risk.list_alerts(
            session,
            principal=user.principal,
            where=AlertFilter(
                campaign_id=alert.campaign_id,
                status=AlertStatus.OPEN.value,
                subject_kind=alert.subject_kind,
                subject_id=alert.subject_id,
            ),
            page_size=risk.MAX_PAGE_SIZE,
        )
        siblings = [row for row in others.items if row.id != alert.id]
    names = await _subject_names(session, [(alert.subject_kind, alert.subject_id)])
    return render(
        request,
        "risk_alert.html",
        {
            "monitoring": user.principal.can(Permission.RISK_READ),
            "tab": "alerts",
            "alert": alert,
            "subject_name": names.get(alert.subject_id),
            "evidence": _evidence(alert.evidence),
            "siblings": siblings,
            "can_open": can_open,
            "error": error,
            "values": values or {"title": "", "reason": ""},
        },
        status=status,
        **user.frame(),
    )


def _evidence(evidence: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Each piece of evidence as (key, shape, value): `table` (a list of records), `list`, or `value`.
    The evidence holds ids, counts, amounts, hash prefixes of devices and masked phones only."""
    shaped: list[tuple[str, str, Any]] = []
    for key, value in evidence.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            columns = list(dict.fromkeys(name for item in value for name in item))
            shaped.append((key, "table", (columns, value)))
        elif isinstance(value, list):
            shaped.append((key, "list", value))
        elif isinstance(value, dict):
            shaped.append((key, "list", [f"{name}: {item}" for name, item in value.items()]))
        else:
            shaped.append((key, "value", value))
    return shaped


@router.get("/alerts/{alert_id}")
async def alert(alert_id: str, request: Request, user: ConsoleUserDep, session: SessionDep) -> HTMLResponse:
    return await _alert_page(request, user, session, alert_id)


@router.post("/cases", response_model=None)
async def open_case(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    alert_id: Annotated[list[str], Form(max_length=100)],
    title: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """立案: the alert shown and the other open alerts ticked, about the same subject."""
    user.principal.require(Permission.RISK_INVESTIGATE)  # before reading the form: 403, not 422
    try:
        async with unit_of_work(sessions) as session:
            opened = await risk.open_case(
                session, principal=user.principal, alert_ids=alert_id, title=title, reason=reason, clock=clock
            )
    except InvalidInput as refusal:
        async with unit_of_work(sessions) as session:
            return await _alert_page(
                request,
                user,
                session,
                alert_id[0],
                error=_problems(request, refusal),
                values={"title": title, "reason": reason},
                status=refusal.status,
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/risk/cases/{opened.case.id}?done=open", status_code=303)


def _problems(request: Request, refusal: InvalidInput) -> str:
    t = translator(request)
    fields = sorted({problem.field for problem in refusal.problems})
    return t("risk.problem", fields=", ".join(t(f"risk.field.{name}") for name in fields))


# 重点关注名单: the watch list


@router.get("/watch-list")
async def watch_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    min_score: Annotated[str | None, Query(max_length=5)] = None,
) -> HTMLResponse:
    known, chosen = await _campaigns(session, request, campaign_id)
    score = _score(min_score)  # the form sends the field empty for "no minimum"
    entries = await risk.watch_list(
        session, principal=user.principal, campaign_id=chosen.id if chosen else None, min_score=score
    )
    return render(
        request,
        "risk_watch.html",
        {
            "monitoring": user.principal.can(Permission.RISK_READ),
            "tab": "watch",
            "campaigns": known,
            "campaign": chosen,
            "entries": entries,
            "min_score": "" if score is None else score,
        },
        **user.frame(),
    )


# 案件: cases


@router.get("/cases")
async def cases(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    known, chosen = await _campaigns(session, request, campaign_id)
    chosen_status = parse_term(CaseStatus, "status", status)
    found = await risk.list_cases(
        session,
        principal=user.principal,
        campaign_id=chosen.id if chosen else None,
        status=chosen_status,
        page=page,
        page_size=PAGE_SIZE,
    )
    filters = {"campaign_id": chosen.id if chosen else "", "status": status or ""}
    return render(
        request,
        "risk_cases.html",
        {
            "monitoring": user.principal.can(Permission.RISK_READ),
            "tab": "cases",
            "campaigns": known,
            "campaign": chosen,
            "found": found,
            "names": await _subject_names(
                session, [(row.subject_kind, row.subject_id) for row in found.items]
            ),
            "page": page,
            "pages": page_count(found.total, PAGE_SIZE),
            "statuses": list(CaseStatus),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
        },
        **user.frame(),
    )


async def _case_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    case_id: str,
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    detail = await risk.get_case(session, principal=user.principal, case_id=case_id)
    names = await _subject_names(session, [(detail.case.subject_kind, detail.case.subject_id)])
    steps = [action for action in detail.allowed if _may_step(user.principal, action)]
    return render(
        request,
        "risk_case.html",
        {
            "monitoring": user.principal.can(Permission.RISK_READ),
            "tab": "cases",
            "detail": detail,
            "subject_name": names.get(detail.case.subject_id),
            "steps": steps,
            "departments": list(Department),
            # a merchant is suspended or expelled; a person or a device is blocked (and its vouchers revoked)
            "measures": list(MEASURES[SubjectKind(detail.case.subject_kind)]),
            # the city lifts a person's or a device's block (解除禁止领取), as it sanctions
            "can_lift": user.principal.can(Permission.MERCHANT_SANCTION),
            "done": done if done in {action.value for action in CaseAction} | {LIFTED} else None,
            "error": error,
        },
        status=status,
        **user.frame(),
    )


@router.get("/cases/{case_id}")
async def case(
    case_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    return await _case_page(request, user, session, case_id, done=done)


@router.post("/cases/{case_id}/steps", response_model=None)
async def step_case(
    case_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    action: Annotated[CaseAction, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    department: Annotated[str, Form(max_length=32)] = "",
    measure: Annotated[str, Form(max_length=16)] = "",
    assignee: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            await risk.step_case(
                session,
                principal=user.principal,
                case_id=case_id,
                action=action,
                reason=reason,
                department=parse_term(Department, "department", department),
                measure=parse_term(Measure, "measure", measure),
                assignee=assignee if action is CaseAction.ASSIGN else None,
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise  # 403 and 404 are pages of their own
        message = (
            _problems(request, refusal)
            if isinstance(refusal, InvalidInput) and refusal.code == "invalid_step"
            else t("risk.step_refused", message=refusal.message)
        )
        async with unit_of_work(sessions) as session:
            return await _case_page(request, user, session, case_id, error=message, status=refusal.status)
    return RedirectResponse(f"{CONSOLE_PREFIX}/risk/cases/{case_id}?done={action.value}", status_code=303)


@router.post("/cases/{case_id}/blocks/{block_id}/lift", response_model=None)
async def lift_block(
    case_id: str,
    block_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """解除禁止领取: the block of this case lifted, with a reason."""
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            lifted = await risk.lift_block(
                session, principal=user.principal, block_id=block_id, reason=reason, clock=clock
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise  # 403 and 404 are pages of their own
        message = (
            _problems(request, refusal)
            if isinstance(refusal, InvalidInput)
            else t("risk.step_refused", message=refusal.message)
        )
        async with unit_of_work(sessions) as session:
            return await _case_page(request, user, session, case_id, error=message, status=refusal.status)
    return RedirectResponse(f"{CONSOLE_PREFIX}/risk/cases/{lifted.case.id}?done={LIFTED}", status_code=303)
