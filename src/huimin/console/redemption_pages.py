"""The redemption pages: 核销查询 (search and detail, jurisdiction-scoped), 发票核验 (the county's
big-ticket invoice verification), and the county sales ledger (XLSX).

Like every console page: parse, call a service with the signed-in principal, render. The services
decide who may see what; another jurisdiction's redemption answers 404.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.repository import RedemptionFilter
from huimin.console.web import CONSOLE_PREFIX, Decision, page_count, parse_day, parse_term, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError
from huimin.kit.terms import Jurisdiction
from huimin.redemptions import flows
from huimin.redemptions import service as redemptions
from huimin.redemptions.domain import RedemptionStatus

__all__ = ["router"]

router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)

PAGE_SIZE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class BigTicket(StrEnum):
    YES = "yes"
    NO = "no"


# 核销查询


@router.get("/redemptions")
async def redemption_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    merchant_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=24)] = None,
    big_ticket: Annotated[str | None, Query(max_length=3)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    user.principal.require(Permission.REDEMPTION_READ)
    known = await campaigns.list_campaigns(session)
    chosen = service.choose_campaign(known, campaign_id, clock.now())
    big = parse_term(BigTicket, "big_ticket", big_ticket)
    chosen_status = parse_term(RedemptionStatus, "status", status)
    where = RedemptionFilter(
        campaign_id=chosen.id if chosen else None,
        merchant_id=(merchant_id or "").strip() or None,
        status=chosen_status.value if chosen_status else None,
        big_ticket=None if big is None else big is BigTicket.YES,
        since=parse_day("since", since),
        until=parse_day("until", until),
    )
    found = await service.search_redemptions(
        session, principal=user.principal, where=where, page=page, page_size=PAGE_SIZE
    )
    filters = {
        "campaign_id": chosen.id if chosen else "",
        "merchant_id": where.merchant_id or "",
        "status": status or "",
        "big_ticket": big_ticket or "",
        "since": since or "",
        "until": until or "",
    }
    return render(
        request,
        "redemptions.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "found": found,
            "page": page,
            "pages": page_count(found.totals.count, PAGE_SIZE),
            "statuses": list(RedemptionStatus),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
            "can_export": user.principal.can(Permission.SALES_LEDGER_EXPORT),
        },
        **user.frame(),
    )


@router.get("/redemptions/{redemption_id}")
async def redemption(
    redemption_id: str, request: Request, user: ConsoleUserDep, session: SessionDep
) -> HTMLResponse:
    detail = await service.redemption_detail(
        session, principal=user.principal, redemption_id=redemption_id, permission=Permission.REDEMPTION_READ
    )
    return render(
        request,
        "redemption.html",
        {
            "detail": detail,
            "can_verify": user.principal.can(Permission.INVOICE_VERIFY)
            and detail.redemption.status == RedemptionStatus.PENDING_VERIFICATION,
        },
        **user.frame(),
    )


# 发票核验


@router.get("/invoices")
async def invoice_queue(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    user.principal.require(Permission.INVOICE_VERIFY)
    known = await campaigns.list_campaigns(session)
    chosen = service.choose_campaign(known, campaign_id, clock.now())
    found = await service.invoice_queue(
        session,
        principal=user.principal,
        campaign_id=chosen.id if chosen else None,
        page=page,
        page_size=PAGE_SIZE,
    )
    return render(
        request,
        "invoices.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "found": found,
            "page": page,
            "pages": page_count(found.totals.count, PAGE_SIZE),
            "base_query": urlencode({"campaign_id": chosen.id if chosen else ""}) + "&",
            "can_export": user.principal.can(Permission.SALES_LEDGER_EXPORT),
        },
        **user.frame(),
    )


async def _invoice_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    redemption_id: str,
    *,
    done: str | None = None,
    error: str | None = None,
    note: str = "",
    status: int = 200,
) -> HTMLResponse:
    detail = await service.redemption_detail(
        session, principal=user.principal, redemption_id=redemption_id, permission=Permission.INVOICE_VERIFY
    )
    return render(
        request,
        "invoice.html",
        {
            "detail": detail,
            "can_verify": detail.redemption.status == RedemptionStatus.PENDING_VERIFICATION,
            "done": done if done in ("approve", "reject") else None,
            "error": error,
            "note": note,
        },
        status=status,
        **user.frame(),
    )


@router.get("/invoices/sales-ledger.xlsx")
async def sales_ledger(
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Query(max_length=32)],
    jurisdiction: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """汽车、家电销售台账: a county gets its own; the city and the operator any county, or the city."""
    ledger = await flows.export_sales_ledger(
        session,
        principal=user.principal,
        campaign_id=campaign_id,
        jurisdiction=parse_term(Jurisdiction, "jurisdiction", jurisdiction),
        clock=clock,
    )
    return Response(
        ledger.content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(ledger.file_name)}",
            "Cache-Control": "no-store",
        },
    )


@router.get("/invoices/{redemption_id}")
async def invoice(
    redemption_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _invoice_page(request, user, session, redemption_id, done=done)


@router.post("/invoices/{redemption_id}/verification", response_model=None)
async def verify(
    redemption_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    decision: Annotated[Decision, Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            await redemptions.verify(
                session,
                principal=user.principal,
                redemption_id=redemption_id,
                approve=decision is Decision.APPROVE,
                note=note,
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise  # 403 and 404 are pages of their own
        message = (
            t("invoice.reason_required") if refusal.code == "reason_required" else t("invoice.not_pending")
        )
        async with unit_of_work(sessions) as session:
            return await _invoice_page(
                request, user, session, redemption_id, error=message, note=note, status=refusal.status
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/invoices/{redemption_id}?done={decision.value}", status_code=303
    )
