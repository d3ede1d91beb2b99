"""The settlement pages (结算): a campaign's daily runs and the bank's files, a run with its payouts,
approvals and the bank's answers, the reconciliation of a business day (对账), and the recovery of
unused funds to the finance bureau (资金清退) with the final statement per funder.

Every action is `huimin.settlement`'s: the operator prepares runs, imports the bank's confirmations
and requests the recovery (`settlement.prepare`); the finance bureau approves runs and the recovery,
never one it prepared or requested (`settlement.approve`); the operator and finance download the
clearing file (`settlement.export`); the city reads (`settlement.read`). Finance may also return
(退回) a run awaiting approval, with a reason the operator reads before preparing the day again.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import CampaignRow
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.web import CONSOLE_PREFIX, page_count, parse_day, render, translator
from huimin.db import unit_of_work
from huimin.deps import ClockDep, SessionDep, SessionsDep
from huimin.errors import HuiminError, InvalidInput, Problem
from huimin.kit.clock import local_date
from huimin.kit.sealing import Sealer
from huimin.merchants.service import MerchantSealer
from huimin.settlement import service as settlement
from huimin.settlement.domain import RunStatus
from huimin.settlement.reconcile import reconcile

__all__ = ["router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/settlement", include_in_schema=False)

PAGE_SIZE = 50
MAX_BANK_FILE = 20 * 1024 * 1024  # as the staff API
# Refusals an approver or a requester must read on the page, not as a bare error page.
_REFUSALS = {
    "maker_checker": "settlement.maker_checker",
    "already_approved": "settlement.already_approved",
    "run_not_prepared": "settlement.not_prepared",
    "recovery_not_requested": "settlement.recovery_done",
    "recovery_stale": "settlement.recovery_stale",
    "day_not_due": "settlement.day_not_due",
    "run_open": "settlement.run_open",
    "invalid_return_reason": "settlement.return_reason_invalid",
}


def _sealer(request: Request) -> Sealer:
    return MerchantSealer.from_settings(request.app.state.settings).bank_account


async def _campaign(
    session: AsyncSession, user: ConsoleUser, campaign_id: str | None, request: Request
) -> tuple[list[CampaignRow], CampaignRow | None]:
    user.principal.require(Permission.SETTLEMENT_READ)
    known = list(await campaigns.list_campaigns(session))
    return known, service.choose_campaign(known, campaign_id, request.app.state.clock.now())


def _abilities(user: ConsoleUser) -> dict[str, bool]:
    can = user.principal.can
    return {
        "can_prepare": can(Permission.SETTLEMENT_PREPARE),
        "can_approve": can(Permission.SETTLEMENT_APPROVE),
        "can_export": can(Permission.SETTLEMENT_EXPORT),
    }


# 结算批次: the runs


async def _runs_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    campaign_id: str | None,
    import_id: str | None = None,
    done: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    board = (
        None
        if campaign is None
        else await service.settlement_board(
            session, principal=user.principal, campaign_id=campaign.id, import_id=import_id
        )
    )
    yesterday = local_date(request.app.state.clock.now()).toordinal() - 1
    return render(
        request,
        "settlement_runs.html",
        {
            "tab": "runs",
            "campaigns": known,
            "campaign": campaign,
            "board": board,
            "done": done if done in ("imported",) else None,
            "error": error,
            "values": values or {"business_day": date.fromordinal(yesterday).isoformat()},
            **_abilities(user),
        },
        status=status,
        **user.frame(),
    )


@router.get("")
async def runs(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    import_id: Annotated[str | None, Query(max_length=32)] = None,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _runs_page(request, user, session, campaign_id=campaign_id, import_id=import_id, done=done)


@router.post("/runs", response_model=None)
async def prepare(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
    business_day: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Prepare the run of a business day (maker); preparing a day again shows the same run."""
    user.principal.require(Permission.SETTLEMENT_PREPARE)  # before reading the form: 403, not 422
    t = translator(request)
    try:
        day = parse_day("business_day", business_day)
        if day is None:
            raise InvalidInput([Problem("business_day", "required")], code="invalid_request")
        async with unit_of_work(sessions) as session:
            run = await settlement.prepare(
                session, principal=user.principal, campaign_id=campaign_id, day=day, clock=clock
            )
    except HuiminError as refusal:
        if refusal.code not in (*_REFUSALS, "invalid_request"):
            raise
        message = t(_REFUSALS[refusal.code]) if refusal.code in _REFUSALS else t("settlement.day_invalid")
        async with unit_of_work(sessions) as session:
            return await _runs_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=f"{message} {refusal.message}" if refusal.status == 409 else message,
                values={"business_day": business_day},
                status=refusal.status,
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/settlement/runs/{run.id}?done=prepared", status_code=303)


@router.post("/bank-confirmations", response_model=None)
async def import_bank(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
    bank_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """The bank's confirmation file (CSV): each payout paid or failed; differences reported."""
    user.principal.require(Permission.SETTLEMENT_PREPARE)
    t = translator(request)
    content = b"" if bank_file is None else await bank_file.read(MAX_BANK_FILE + 1)
    try:
        if not content:
            raise InvalidInput([Problem("bank_file", "no file")], code="invalid_bank_file")
        if len(content) > MAX_BANK_FILE:
            raise HuiminError("the bank file is larger than 20 MB", code="payload_too_large", status=413)
        async with unit_of_work(sessions) as session:
            report = await settlement.import_bank_file(
                session, principal=user.principal, campaign_id=campaign_id, content=content, clock=clock
            )
    except HuiminError as refusal:
        if refusal.code not in ("invalid_bank_file", "payload_too_large"):
            raise
        async with unit_of_work(sessions) as session:
            return await _runs_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=f"{t('settlement.bank_file_invalid')} {refusal.message}",
                status=refusal.status,
            )
    query = urlencode({"campaign_id": campaign_id, "import_id": report.import_id, "done": "imported"})
    return RedirectResponse(f"{CONSOLE_PREFIX}/settlement?{query}", status_code=303)


# One run


async def _run_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    run_id: str,
    *,
    page: int = 1,
    done: str | None = None,
    error: str | None = None,
    reason: str = "",
    status: int = 200,
) -> HTMLResponse:
    board = await service.settlement_run(session, principal=user.principal, run_id=run_id)
    approvers = {approval.approver for approval in board.approvals}
    abilities = _abilities(user)
    return render(
        request,
        "settlement_run.html",
        {
            "board": board,
            "lines": board.lines[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
            "page": page,
            "pages": page_count(len(board.lines), PAGE_SIZE),
            "may_approve": abilities["can_approve"]
            and board.run.status == RunStatus.PREPARED.value
            and user.principal.actor_id not in approvers,
            # Returning is the checker's too: also after a first approval of two, never by the preparer.
            "may_return": abilities["can_approve"]
            and board.run.status == RunStatus.PREPARED.value
            and user.principal.actor_id != board.run.prepared_by,
            "has_file": board.run.status != RunStatus.PREPARED.value and board.run.file_sha256 is not None,
            "done": done if done in ("prepared", "approved", "recorded", "returned") else None,
            "error": error,
            "reason": reason,
            **abilities,
        },
        status=status,
        **user.frame(),
    )


@router.get("/runs/{run_id}")
async def run(
    run_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _run_page(request, user, session, run_id, page=page, done=done)


@router.post("/runs/{run_id}/approval", response_model=None)
async def approve(
    run_id: str, request: Request, user: ConsoleUserDep, sessions: SessionsDep, clock: ClockDep
) -> Response:
    """Approve a run (checker). Above the campaign's threshold the first approval is recorded and a
    second approver is needed."""
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            approved = await settlement.approve(
                session, principal=user.principal, run_id=run_id, clock=clock, sealer=_sealer(request)
            )
    except HuiminError as refusal:
        # Only a user who may approve reads the reason; a role without the permission gets 403.
        if refusal.code not in _REFUSALS or not user.principal.can(Permission.SETTLEMENT_APPROVE):
            raise
        async with unit_of_work(sessions) as session:
            return await _run_page(
                request, user, session, run_id, error=t(_REFUSALS[refusal.code]), status=refusal.status
            )
    done = "recorded" if approved.status == RunStatus.PREPARED.value else "approved"
    return RedirectResponse(f"{CONSOLE_PREFIX}/settlement/runs/{run_id}?done={done}", status_code=303)


@router.post("/runs/{run_id}/return", response_model=None)
async def return_run(
    run_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    reason: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    """Return a run (退回, checker) with a reason: its redemptions are free again and the operator may
    prepare the day anew."""
    user.principal.require(Permission.SETTLEMENT_APPROVE)  # before reading the form: 403, not 422
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            await settlement.return_run(
                session, principal=user.principal, run_id=run_id, reason=reason, clock=clock
            )
    except HuiminError as refusal:
        if refusal.code not in _REFUSALS:
            raise
        async with unit_of_work(sessions) as session:
            return await _run_page(
                request,
                user,
                session,
                run_id,
                error=t(_REFUSALS[refusal.code]),
                reason=reason,
                status=refusal.status,
            )
    return RedirectResponse(f"{CONSOLE_PREFIX}/settlement/runs/{run_id}?done=returned", status_code=303)


@router.get("/runs/{run_id}/clearing-file.csv")
async def clearing_file(
    run_id: str, request: Request, user: ConsoleUserDep, session: SessionDep, clock: ClockDep
) -> Response:
    """清算文件 for the bank, with clear accounts: `settlement.export` only, audited, never cached."""
    found = await settlement.clearing_file(
        session, principal=user.principal, run_id=run_id, sealer=_sealer(request), clock=clock
    )
    return Response(
        found.content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}",
            "X-Content-SHA256": found.sha256,
            "Cache-Control": "no-store",
        },
    )


# 对账: reconciliation of a business day


@router.get("/reconciliation")
async def reconciliation(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    chosen = parse_day("day", day)
    report = None
    runs = []
    if campaign is not None:
        runs = list(await settlement.list_runs(session, principal=user.principal, campaign_id=campaign.id))
        if chosen is None and runs:
            chosen = max(run.business_day for run in runs)
        if chosen is not None:
            report = await reconcile(
                session,
                principal=user.principal,
                day=chosen,
                sealer=_sealer(request),
                campaign_code=campaign.code,
            )
    return render(
        request,
        "settlement_reconciliation.html",
        {
            "tab": "reconciliation",
            "campaigns": known,
            "campaign": campaign,
            "day": chosen.isoformat() if chosen else "",
            "days": sorted({run.business_day for run in runs}, reverse=True),
            "report": report,
        },
        **user.frame(),
    )


# 资金清退: recovery to the funders, and the final statement


async def _recovery_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    campaign_id: str | None,
    done: str | None = None,
    error: str | None = None,
    reasons: list[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    known, campaign = await _campaign(session, user, campaign_id, request)
    statement = (
        None
        if campaign is None
        else await settlement.statement(session, principal=user.principal, campaign_id=campaign.id)
    )
    full = None if campaign is None else await campaigns.get_campaign(session, campaign_id=campaign.id)
    recovery = None if statement is None else statement.recovery
    return render(
        request,
        "settlement_recovery.html",
        {
            "tab": "recovery",
            "campaigns": known,
            "campaign": campaign,
            "statement": statement,
            "recovery": recovery,
            "funder_names": {} if full is None else {funder.code: funder.name for funder in full.funders},
            "may_approve": recovery is not None
            and recovery.status == "requested"
            and user.principal.can(Permission.SETTLEMENT_APPROVE),
            "done": done if done in ("requested", "approved") else None,
            "error": error,
            "reasons": reasons or [],
            **_abilities(user),
        },
        status=status,
        **user.frame(),
    )


@router.get("/recovery")
async def recovery(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _recovery_page(request, user, session, campaign_id=campaign_id, done=done)


@router.post("/recovery", response_model=None)
async def request_recovery(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
) -> Response:
    """Request the recovery (maker): refused, with every reason, while anything is unsettled."""
    user.principal.require(Permission.SETTLEMENT_PREPARE)
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            await settlement.request_recovery(
                session, principal=user.principal, campaign_id=campaign_id, clock=clock
            )
    except HuiminError as refusal:
        if refusal.code != "recovery_not_ready":
            raise
        # The refusal names every reason, "…: reason; reason": shown one a line.
        reasons = refusal.message.partition(": ")[2].split("; ")
        async with unit_of_work(sessions) as session:
            return await _recovery_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                error=t("settlement.recovery_not_ready"),
                reasons=reasons,
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/settlement/recovery?campaign_id={campaign_id}&done=requested", status_code=303
    )


@router.post("/recovery/{recovery_id}/approval", response_model=None)
async def approve_recovery(
    recovery_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Approve the recovery (checker, never its requester): posted to the ledger at once."""
    t = translator(request)
    try:
        async with unit_of_work(sessions) as session:
            approved = await settlement.approve_recovery(
                session, principal=user.principal, recovery_id=recovery_id, clock=clock
            )
    except HuiminError as refusal:
        if refusal.code not in _REFUSALS or not user.principal.can(Permission.SETTLEMENT_APPROVE):
            raise
        async with unit_of_work(sessions) as session:
            return await _recovery_page(
                request,
                user,
                session,
                campaign_id=campaign_id or None,
                error=t(_REFUSALS[refusal.code]),
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/settlement/recovery?campaign_id={approved.campaign_id}&done=approved",
        status_code=303,
    )
