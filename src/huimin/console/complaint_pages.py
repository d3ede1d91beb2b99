"""The supervision pages: complaints (投诉) from registration by the 12345 hotline, the market regulator
or the PBOC to resolution, with due dates, overdue flags, assignment, notes and the link to a risk case,
and their statistics; the market regulator's inspection findings (市场监管巡查) and the city's decision
to suspend a merchant from one; announcements and activity rules (公告) by the publicity department.

Like every console page: parse, call the package's service (`complaints`, `supervision`,
`announcements`) with the signed-in principal, render. The services decide who sees and does what; a
complaint or finding outside the caller's scope answers 404, and every step is audited by them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.announcements import service as announcements
from huimin.announcements.domain import Action as AnnouncementAction
from huimin.announcements.domain import AnnouncementKind
from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.complaints import service as complaints
from huimin.complaints.domain import Action, Category, ComplaintStatus, Department
from huimin.complaints.repository import ComplaintFilter
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.i18n import Translator
from huimin.console.repository import ConsoleRepository
from huimin.console.web import CONSOLE_PREFIX, page_count, parse_term, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep, SettingsDep
from huimin.errors import HuiminError, InvalidInput
from huimin.kit.terms import Jurisdiction
from huimin.supervision import service as supervision
from huimin.supervision.domain import Decision, FindingKind, FindingStatus, Severity
from huimin.supervision.repository import FindingFilter

__all__ = ["COMPLAINT_REFUSALS", "router"]

router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)

PAGE_SIZE = 50
# The refusals a complaint form shows on the form itself, each with `complaint.refused.<code>`.
COMPLAINT_REFUSALS = (
    "invalid_complaint",
    "invalid_step",
    "invalid_assignee",
    "invalid_risk_case",
    "invalid_note",
    "unknown_merchant",
    "unknown_voucher",
    "unknown_campaign",
    "unknown_case",
    "unknown_complaint",
    "invalid_transition",
    "complaint_closed",
    "invalid_finding",
    "reason_required",
    "invalid_announcement",
)
_STEPS = (Action.ASSIGN, Action.START, Action.RESOLVE, Action.REOPEN, Action.CLOSE)


def _refusal(t: Translator, refusal: HuiminError) -> str:
    text = t(f"complaint.refused.{refusal.code}") if refusal.code in COMPLAINT_REFUSALS else refusal.message
    if isinstance(refusal, InvalidInput) and refusal.problems:
        text += " " + "; ".join(str(problem) for problem in refusal.problems)
    return text


def _optional(value: str) -> str | None:
    return value.strip() or None


class YesNo:
    """A filter's yes / no / either, as the query writes it."""

    @staticmethod
    def parse(value: str | None) -> bool | None:
        return {"yes": True, "no": False}.get(value or "")


# 投诉: the list, registration, statistics


@router.get("/complaints")
async def complaint_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    department: Annotated[str | None, Query(max_length=24)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=16)] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    overdue: Annotated[str | None, Query(max_length=3)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    user.principal.require(Permission.COMPLAINT_READ)
    known = await campaigns.list_campaigns(session)
    chosen = service.choose_campaign(known, campaign_id, clock.now())
    chosen_status = parse_term(ComplaintStatus, "status", status)
    chosen_category = parse_term(Category, "category", category)
    where = ComplaintFilter(
        campaign_id=chosen.id if chosen else None,
        statuses=[chosen_status] if chosen_status else [],
        categories=[chosen_category] if chosen_category else [],
        department=parse_term(Department, "department", department),
        jurisdiction=parse_term(Jurisdiction, "jurisdiction", jurisdiction),
        merchant_id=_optional(merchant_id or ""),
        overdue=YesNo.parse(overdue),
    )
    found = await complaints.list_complaints(
        session, principal=user.principal, where=where, clock=clock, page=page, page_size=PAGE_SIZE
    )
    filters = {
        "campaign_id": chosen.id if chosen else "",
        "status": status or "",
        "category": category or "",
        "department": department or "",
        "jurisdiction": jurisdiction or "",
        "merchant_id": where.merchant_id or "",
        "overdue": overdue or "",
    }
    names = await ConsoleRepository(session).merchant_names(
        {row.merchant_id for row in found.items if row.merchant_id}
    )
    return render(
        request,
        "complaints.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "found": found,
            "names": names,
            "now": clock.now(),
            "page": page,
            "pages": page_count(found.total, PAGE_SIZE),
            "statuses": list(ComplaintStatus),
            "categories": list(Category),
            "departments": list(Department),
            "jurisdictions": list(Jurisdiction),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
            "can_register": user.principal.can(Permission.COMPLAINT_REGISTER),
        },
        **user.frame(),
    )


async def _register_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    user.principal.require(Permission.COMPLAINT_REGISTER)
    known = await campaigns.list_campaigns(session)
    chosen = service.choose_campaign(known, None, request.app.state.clock.now())
    blank = {"campaign_id": chosen.id if chosen else "", "category": "", "merchant_id": ""}
    blank |= {"voucher_code": "", "phone": "", "text": ""}
    return render(
        request,
        "complaint_new.html",
        {
            "campaigns": known,
            "categories": list(Category),
            "values": values or blank,
            "error": error,
        },
        status=status,
        **user.frame(),
    )


@router.get("/complaints/new")
async def new_complaint(request: Request, user: ConsoleUserDep, session: SessionDep) -> HTMLResponse:
    return await _register_page(request, user, session)


@router.post("/complaints", response_model=None)
async def register(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    settings: SettingsDep,
    campaign_id: Annotated[str, Form(max_length=32)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    merchant_id: Annotated[str, Form(max_length=32)] = "",
    voucher_code: Annotated[str, Form(max_length=60)] = "",
    phone: Annotated[str, Form(max_length=24)] = "",
    text: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """登记: the complaint is routed to its department and jurisdiction at once, with its due date."""
    user.principal.require(Permission.COMPLAINT_REGISTER)  # before reading the form: 403, not 422
    values = {"campaign_id": campaign_id, "category": category, "merchant_id": merchant_id}
    values |= {"voucher_code": voucher_code, "phone": phone, "text": text}
    try:
        chosen = parse_term(Category, "category", category)
        if chosen is None:
            raise InvalidInput([], code="invalid_complaint")
        async with unit_of_work(sessions) as session:
            row = await complaints.register(
                session,
                principal=user.principal,
                category=chosen,
                text=text,
                campaign_id=_optional(campaign_id),
                merchant_id=_optional(merchant_id),
                voucher_code=_optional(voucher_code),
                phone=_optional(phone),
                hasher=settings.hasher,
                policy=complaints.ComplaintPolicy.from_settings(settings),
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.code not in COMPLAINT_REFUSALS and refusal.code != "invalid_request":
            raise
        async with unit_of_work(sessions) as session:
            # The typed phone is not shown again: the page never echoes a clear number.
            return await _register_page(
                request,
                user,
                session,
                values={**values, "phone": ""},
                error=_refusal(translator(request), refusal),
                status=422 if refusal.status == 404 else refusal.status,
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/complaints/{row.id}?done=register", status_code=303)


@router.get("/complaints/stats")
async def complaint_stats(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    user.principal.require(Permission.COMPLAINT_READ)
    known = await campaigns.list_campaigns(session)
    chosen = service.choose_campaign(known, campaign_id, clock.now())
    stats = await complaints.statistics(
        session, principal=user.principal, campaign_id=chosen.id if chosen else None, clock=clock
    )
    return render(
        request,
        "complaint_stats.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "stats": stats,
            "can_register": user.principal.can(Permission.COMPLAINT_REGISTER),
        },
        **user.frame(),
    )


# 投诉: one complaint and its handling


async def _complaint_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    complaint_id: str,
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    clock = request.app.state.clock
    detail = await complaints.get_complaint(
        session, principal=user.principal, complaint_id=complaint_id, clock=clock
    )
    row = detail.complaint
    # Every open state has a step only the handling department may take: so it may add notes too.
    handles = any(action is not Action.CLOSE for action in detail.actions)
    assignees = (
        await service.complaint_assignees(session, principal=user.principal, complaint=row)
        if Action.ASSIGN in detail.actions
        else []
    )
    names = await ConsoleRepository(session).merchant_names({row.merchant_id} if row.merchant_id else set())
    return render(
        request,
        "complaint.html",
        {
            "detail": detail,
            "row": row,
            "merchant_name": names.get(row.merchant_id or ""),
            "steps": [action for action in _STEPS if action in detail.actions],
            "handles": handles and row.status != ComplaintStatus.CLOSED.value,
            "assignees": assignees,
            "resolved_late": row.resolved_at is not None and row.resolved_at >= row.due_at,
            "done": done if done in {action.value for action in Action} else None,
            "error": error,
        },
        status=status,
        **user.frame(),
    )


@router.get("/complaints/{complaint_id}")
async def complaint(
    complaint_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    return await _complaint_page(request, user, session, complaint_id, done=done)


async def _act(
    request: Request,
    user: ConsoleUser,
    sessions: async_sessionmaker[AsyncSession],
    complaint_id: str,
    action: Action,
    work: Callable[[AsyncSession], Awaitable[None]],
) -> Response:
    """Run one write; a refusal the handler can act on shows the complaint again with the reason."""
    try:
        async with unit_of_work(sessions) as session:
            await work(session)
    except HuiminError as refusal:
        if refusal.status not in (409, 422) and refusal.code not in ("unknown_case",):
            raise  # 403 and the complaint's own 404 are pages of their own
        async with unit_of_work(sessions) as session:
            return await _complaint_page(
                request,
                user,
                session,
                complaint_id,
                error=_refusal(translator(request), refusal),
                status=422 if refusal.status == 404 else refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/complaints/{complaint_id}?done={action.value}", status_code=303
    )


@router.post("/complaints/{complaint_id}/steps", response_model=None)
async def complaint_step(
    complaint_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    action: Annotated[Action, Form()],
    text: Annotated[str, Form(max_length=4000)] = "",
    assignee_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    async def work(session: AsyncSession) -> None:
        await complaints.step(
            session,
            principal=user.principal,
            complaint_id=complaint_id,
            action=action,
            text=text,
            assignee_id=_optional(assignee_id),
            clock=clock,
        )

    return await _act(request, user, sessions, complaint_id, action, work)


@router.post("/complaints/{complaint_id}/notes", response_model=None)
async def complaint_note(
    complaint_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    text: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    async def work(session: AsyncSession) -> None:
        await complaints.add_note(
            session, principal=user.principal, complaint_id=complaint_id, text=text, clock=clock
        )

    return await _act(request, user, sessions, complaint_id, Action.NOTE, work)


@router.post("/complaints/{complaint_id}/risk-case", response_model=None)
async def complaint_risk_case(
    complaint_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    risk_case_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    async def work(session: AsyncSession) -> None:
        await complaints.link_risk_case(
            session,
            principal=user.principal,
            complaint_id=complaint_id,
            risk_case_id=risk_case_id.strip(),
            clock=clock,
        )

    return await _act(request, user, sessions, complaint_id, Action.LINK_RISK_CASE, work)


# 市场监管巡查: inspection findings


@router.get("/inspections")
async def inspections(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=24)] = None,
    unread: Annotated[str | None, Query(max_length=3)] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    where = FindingFilter(
        merchant_id=_optional(merchant_id or ""),
        status=parse_term(FindingStatus, "status", status),
        unread=YesNo.parse(unread),
    )
    found = await supervision.list_findings(
        session, principal=user.principal, where=where, page=page, page_size=PAGE_SIZE
    )
    deciding = user.principal.can(Permission.MERCHANT_SANCTION)
    inbox = await supervision.inbox(session, principal=user.principal, limit=1) if deciding else None
    filters = {"status": status or "", "unread": unread or "", "merchant_id": where.merchant_id or ""}
    names = await ConsoleRepository(session).merchant_names({row.merchant_id for row in found.items})
    return render(
        request,
        "inspections.html",
        {
            "found": found,
            "names": names,
            "unread_count": None if inbox is None else inbox.unread,
            "page": page,
            "pages": page_count(found.total, PAGE_SIZE),
            "statuses": list(FindingStatus),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
            "can_record": user.principal.can(Permission.INSPECTION_RECORD),
        },
        **user.frame(),
    )


async def _finding_form(
    request: Request,
    user: ConsoleUser,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    user.principal.require(Permission.INSPECTION_RECORD)
    return render(
        request,
        "inspection_new.html",
        {
            "kinds": list(FindingKind),
            "severities": list(Severity),
            "values": values
            or {"merchant_id": "", "kind": "", "severity": "", "description": "", "complaint_id": ""},
            "error": error,
        },
        status=status,
        **user.frame(),
    )


@router.get("/inspections/new")
async def new_finding(
    request: Request,
    user: ConsoleUserDep,
    merchant_id: Annotated[str, Query(max_length=32)] = "",
    complaint_id: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    values = {"merchant_id": merchant_id, "kind": "", "severity": "", "description": ""}
    return await _finding_form(request, user, values={**values, "complaint_id": complaint_id})


@router.post("/inspections", response_model=None)
async def record_finding(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    merchant_id: Annotated[str, Form(max_length=32)] = "",
    kind: Annotated[str, Form(max_length=24)] = "",
    severity: Annotated[str, Form(max_length=16)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    complaint_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """巡查: a finding against a merchant, notified to the city commerce bureau's inbox."""
    user.principal.require(Permission.INSPECTION_RECORD)  # before reading the form: 403, not 422
    values = {"merchant_id": merchant_id, "kind": kind, "severity": severity}
    values |= {"description": description, "complaint_id": complaint_id}
    try:
        chosen_kind = parse_term(FindingKind, "kind", kind)
        chosen_severity = parse_term(Severity, "severity", severity)
        if chosen_kind is None or chosen_severity is None:
            raise InvalidInput([], code="invalid_finding")
        async with unit_of_work(sessions) as session:
            row = await supervision.record_finding(
                session,
                principal=user.principal,
                merchant_id=merchant_id.strip(),
                kind=chosen_kind,
                severity=chosen_severity,
                description=description,
                complaint_id=_optional(complaint_id),
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.code not in COMPLAINT_REFUSALS and refusal.code != "invalid_request":
            raise
        return await _finding_form(
            request,
            user,
            values=values,
            error=_refusal(translator(request), refusal),
            status=422 if refusal.status == 404 else refusal.status,
        )
    return RedirectResponse(f"{CONSOLE_PREFIX}/inspections/{row.id}?done=record", status_code=303)


async def _finding_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    finding_id: str,
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    row = await supervision.get_finding(session, principal=user.principal, finding_id=finding_id)
    names = await ConsoleRepository(session).merchant_names({row.merchant_id})
    deciding = user.principal.can(Permission.MERCHANT_SANCTION)
    return render(
        request,
        "inspection.html",
        {
            "row": row,
            "merchant_name": names.get(row.merchant_id),
            "can_decide": deciding and row.status == FindingStatus.OPEN.value,
            "can_mark_read": deciding and row.read_at is None,
            "done": done if done in ("record", "read", *(item.value for item in Decision)) else None,
            "error": error,
        },
        status=status,
        **user.frame(),
    )


@router.get("/inspections/{finding_id}")
async def finding(
    finding_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    return await _finding_page(request, user, session, finding_id, done=done)


@router.post("/inspections/{finding_id}/read", response_model=None)
async def mark_read(
    finding_id: str, user: ConsoleUserDep, sessions: SessionsDep, clock: ClockDep
) -> Response:
    async with unit_of_work(sessions) as session:
        await supervision.mark_read(session, principal=user.principal, finding_id=finding_id, clock=clock)
    return RedirectResponse(f"{CONSOLE_PREFIX}/inspections/{finding_id}?done=read", status_code=303)


@router.post("/inspections/{finding_id}/decision", response_model=None)
async def decide(
    finding_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    decision: Annotated[Decision, Form()],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """The city commerce bureau suspends the merchant from the finding, or decides no action."""
    try:
        async with unit_of_work(sessions) as session:
            await supervision.decide(
                session,
                principal=user.principal,
                finding_id=finding_id,
                decision=decision,
                reason=reason,
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise
        async with unit_of_work(sessions) as session:
            return await _finding_page(
                request,
                user,
                session,
                finding_id,
                error=_refusal(translator(request), refusal),
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/inspections/{finding_id}?done={decision.value}", status_code=303
    )


# 公告: announcements and activity rules


async def _announcements_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    done: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    page: int = 1,
    status: int = 200,
) -> HTMLResponse:
    found = await announcements.list_announcements(
        session, principal=user.principal, page=page, page_size=PAGE_SIZE
    )
    known = await campaigns.list_campaigns(session)
    return render(
        request,
        "announcements.html",
        {
            "found": found,
            "campaigns": known,
            "names": {campaign.id: campaign.name for campaign in known},
            "kinds": list(AnnouncementKind),
            "page": page,
            "pages": page_count(found.total, PAGE_SIZE),
            "done": done if done in ("create", "publish", "unpublish") else None,
            "error": error,
            "values": values or {"kind": "announcement", "title": "", "body": "", "campaign_id": ""},
        },
        status=status,
        **user.frame(),
    )


@router.get("/announcements")
async def announcement_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    return await _announcements_page(request, user, session, done=done, page=page)


@router.post("/announcements", response_model=None)
async def create_announcement(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    kind: Annotated[str, Form(max_length=16)] = "",
    title: Annotated[str, Form(max_length=400)] = "",
    body: Annotated[str, Form(max_length=40_000)] = "",
    campaign_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """A draft: public only once published."""
    user.principal.require(Permission.ANNOUNCEMENT_PUBLISH)  # before reading the form: 403, not 422
    values = {"kind": kind, "title": title, "body": body, "campaign_id": campaign_id}
    try:
        async with unit_of_work(sessions) as session:
            await announcements.create(
                session,
                principal=user.principal,
                kind=parse_term(AnnouncementKind, "kind", kind) or AnnouncementKind.ANNOUNCEMENT,
                title=title,
                body=body,
                campaign_id=_optional(campaign_id),
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.code not in ("invalid_announcement", "unknown_campaign", "invalid_request"):
            raise
        async with unit_of_work(sessions) as session:
            return await _announcements_page(
                request,
                user,
                session,
                error=_refusal(translator(request), refusal),
                values=values,
                status=422,
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/announcements?done=create", status_code=303)


@router.post("/announcements/{announcement_id}/{action}", response_model=None)
async def step_announcement(
    announcement_id: str,
    action: AnnouncementAction,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
) -> Response:
    """Publish now (a draft or a withdrawn one), or withdraw a published one."""
    try:
        async with unit_of_work(sessions) as session:
            await announcements.step(
                session, principal=user.principal, announcement_id=announcement_id, action=action, clock=clock
            )
    except HuiminError as refusal:
        if refusal.status != 409:
            raise
        async with unit_of_work(sessions) as session:
            return await _announcements_page(
                request, user, session, error=_refusal(translator(request), refusal), status=409
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/announcements?done={action.value}", status_code=303)
