"""The money pages (资金): funders' deposits (recorded by the city or the operator, approved by the
finance bureau, never by the person who recorded them), the ledger's balances by account, and the
ledger check (SPEC §5 I1–I3) with the figures behind each invariant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import CampaignRow
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.web import CONSOLE_PREFIX, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.money import Fen, MoneyFormatError
from huimin.ledger import service as ledger
from huimin.ledger.domain import AccountKind

__all__ = ["router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/money", include_in_schema=False)

# The order of the conservation identity (I1): what was deposited, then where it is now.
KINDS = list(AccountKind)


async def _campaign(
    session: AsyncSession, user: ConsoleUser, campaign_id: str | None, request: Request
) -> tuple[list[CampaignRow], CampaignRow | None]:
    user.principal.require(Permission.LEDGER_READ)
    known = list(await campaigns.list_campaigns(session))
    chosen = service.choose_campaign(known, campaign_id, request.app.state.clock.now())
    if chosen is None:
        return known, None
    return known, await campaigns.get_campaign(session, campaign_id=chosen.id)  # with its funders


async def _deposits_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    campaign_id: str | None,
    done: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    deposits = (
        []
        if campaign is None
        else await ledger.list_deposits(session, principal=user.principal, campaign_id=campaign.id)
    )
    return render(
        request,
        "money_deposits.html",
        {
            "tab": "deposits",
            "campaigns": known,
            "campaign": campaign,
            "deposits": sorted(deposits, key=lambda item: item.row.requested_at, reverse=True),
            "can_record": user.principal.can(Permission.LEDGER_DEPOSIT),
            "can_approve": user.principal.can(Permission.LEDGER_APPROVE),
            "done": done if done in ("recorded", "approved") else None,
            "error": error,
            "values": values or {"funder": "", "amount": "", "note": ""},
        },
        status=status,
        **user.frame(),
    )


@router.get("")
async def deposits(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _deposits_page(request, user, session, campaign_id=campaign_id, done=done)


@router.post("/deposits", response_model=None)
async def record_deposit(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
    funder: Annotated[str, Form(max_length=64)] = "",
    amount: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    user.principal.require(Permission.LEDGER_DEPOSIT)  # before reading the form: 403, not 422
    t = translator(request)
    values = {"funder": funder, "amount": amount, "note": note}
    try:
        try:
            parsed = Fen.parse_yuan(amount)
        except MoneyFormatError:
            raise InvalidInput([Problem("amount", "not an amount of yuan")], code="invalid_deposit") from None
        async with unit_of_work(sessions) as session:
            await ledger.request_deposit(
                session,
                principal=user.principal,
                campaign_id=campaign_id,
                funder_code=funder,
                amount=parsed,
                clock=clock,
                note=note,
            )
    except InvalidInput:
        async with unit_of_work(sessions) as session:
            return await _deposits_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=t("money.amount_invalid"),
                values=values,
                status=422,
            )
    except NotFound as refusal:
        if refusal.code != "unknown_funder":
            raise
        async with unit_of_work(sessions) as session:
            return await _deposits_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=t("money.funder_required"),
                values=values,
                status=422,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/money?campaign_id={campaign_id}&done=recorded", status_code=303
    )


@router.post("/deposits/{deposit_id}/approve", response_model=None)
async def approve_deposit(
    deposit_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            approved = await ledger.approve_deposit(
                session, principal=user.principal, deposit_id=deposit_id, clock=clock
            )
    except HuiminError as refusal:
        # The maker-checker refusal is an answer the approver needs to read, not a bare 403 page.
        messages = {"maker_checker": "money.maker_checker", "deposit_not_requested": "money.already_approved"}
        if refusal.code not in messages:
            raise
        async with unit_of_work(sessions) as session:
            return await _deposits_page(
                request,
                user,
                session,
                campaign_id=campaign_id or None,
                error=t(messages[refusal.code]),
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/money?campaign_id={approved.row.campaign_id}&done=approved", status_code=303
    )


@router.get("/balances")
async def balances(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    board = (
        None
        if campaign is None
        else await service.ledger_board(session, principal=user.principal, campaign=campaign)
    )
    return render(
        request,
        "money_balances.html",
        {"tab": "balances", "campaigns": known, "campaign": campaign, "board": board},
        **user.frame(),
    )


@router.get("/check")
async def check(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    results = (
        []
        if campaign is None
        else await ledger.check(session, principal=user.principal, campaign_id=campaign.id)
    )
    return render(
        request,
        "money_check.html",
        {
            "tab": "check",
            "campaigns": known,
            "campaign": campaign,
            "report": results[0] if results else None,
            "now": clock.now(),
        },
        **user.frame(),
    )
