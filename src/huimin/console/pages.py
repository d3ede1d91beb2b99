"""The console's pages (`/console`): parse the request, call a service with the signed-in principal,
render a template. Who may see what is decided by the services (403 `forbidden`; another
jurisdiction's record answers 404); the navigation only hides what a role could not open anyway.

Writes follow POST-redirect-GET: a successful form answers 303 to the page that shows the result, a
refused one shows the form again with the reason and the refusal's status. Each write runs in its
own unit of work, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth import accounts
from huimin.auth.principals import Role
from huimin.console import service
from huimin.console.deps import ConsoleUser, ConsoleUserDep
from huimin.console.figures import Series
from huimin.console.i18n import Translator
from huimin.console.web import (
    CONSOLE_PREFIX,
    Decision,
    error_page,
    home_of,
    page_count,
    parse_term,
    render,
    translator,
)
from huimin.db import unit_of_work
from huimin.deps import SESSION_COOKIE, ClockDep, SessionDep, SessionsDep, SettingsDep, set_session_cookie
from huimin.errors import HuiminError, InvalidInput, Problem
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants import service as merchants
from huimin.merchants.domain import Action, MerchantStatus

__all__ = ["SIGN_IN_COOKIE", "router"]

router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)

# The sign-in form has no session yet: a random token in a cookie and in the form (double submit)
# keeps another site from signing a browser in to an account of its choosing.
SIGN_IN_COOKIE = "huimin_sign_in"
PAGE_SIZE = 50


def _safe_next(value: str | None) -> str | None:
    """Only a console path of this site: never another host (an open redirect)."""
    if value and value.startswith(f"{CONSOLE_PREFIX}/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


def _frame(user: ConsoleUser) -> dict[str, Any]:
    return {"principal": user.principal, "csrf_token": user.csrf_token}


# Home, sign-in, sign-out


@router.get("")
@router.get("/")
async def home(user: ConsoleUserDep) -> RedirectResponse:
    return RedirectResponse(home_of(user.principal), status_code=303)


def _sign_in_form(
    request: Request,
    *,
    settings_secure: bool,
    notice: str | None = None,
    error: str | None = None,
    username: str = "",
    next_path: str = "",
    status: int = 200,
) -> HTMLResponse:
    form_token = secrets.token_urlsafe(24)
    response = render(
        request,
        "sign_in.html",
        {
            "form_token": form_token,
            "notice": notice,
            "error": error,
            "username": username,
            "next_path": next_path,
        },
        status=status,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        form_token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=settings_secure,
        path=f"{CONSOLE_PREFIX}/sign-in",
    )
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request,
    settings: SettingsDep,
    reason: Annotated[str | None, Query(max_length=20)] = None,
    next: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    t = translator(request)
    notices = {"expired": "sign_in.expired", "signed_out": "sign_in.signed_out"}
    return _sign_in_form(
        request,
        settings_secure=settings.env == "production",
        notice=t(notices[reason]) if reason in notices else None,
        next_path=_safe_next(next) or "",
    )


@router.post("/sign-in", response_model=None)
async def sign_in(
    request: Request,
    clock: ClockDep,
    settings: SettingsDep,
    sessions: SessionsDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    totp: Annotated[str, Form(max_length=6)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
    next_path: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    t = translator(request)
    secure = settings.env == "production"
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form_token):
        return _sign_in_form(
            request,
            settings_secure=secure,
            error=t("sign_in.form_expired"),
            username=username,
            next_path=_safe_next(next_path) or "",
            status=403,
        )
    async with unit_of_work(sessions) as session:
        outcome = await accounts.sign_in(
            session,
            username=username.strip(),
            password=password,
            totp_code=totp.strip() or None,
            sealer=request.app.state.totp_sealer,
            clock=clock,
            client_ip=request.client.host if request.client else None,
        )
    if isinstance(outcome, HuiminError):  # after the commit above, so the failure count is kept
        return _sign_in_form(
            request,
            settings_secure=secure,
            error=t("sign_in.locked" if outcome.code == "account_locked" else "sign_in.failed"),
            username=username,
            next_path=_safe_next(next_path) or "",
            status=outcome.status,
        )
    response = RedirectResponse(_safe_next(next_path) or home_of(outcome.principal), status_code=303)
    set_session_cookie(response, outcome.token, settings)
    response.delete_cookie(SIGN_IN_COOKIE, path=f"{CONSOLE_PREFIX}/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, user: ConsoleUserDep, clock: ClockDep, sessions: SessionsDep
) -> RedirectResponse:
    async with unit_of_work(sessions) as session:
        await accounts.end_session(session, token=request.cookies.get(SESSION_COOKIE, ""), clock=clock)
    response = RedirectResponse(f"{CONSOLE_PREFIX}/sign-in?reason=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# Overview


def _chart_data(series: Series, t: Translator) -> str:
    """What a chart script needs, as JSON for a data-* attribute (pages carry no inline script)."""
    claims = series.key.startswith("claims_")
    if series.key in ("claims_by_day", "redemptions_by_day"):
        payload: dict[str, Any] = {
            "labels": [label for label, _ in series.points],
            "values": [value for _, value in series.points],
            "name": t(f"chart.{series.key}.series"),
            "color": "blue" if claims else "red",
        }
    elif series.key in ("claims_by_district", "redemptions_by_district"):
        # The boundary file names districts in Chinese; nameMap shows them in the reader's language.
        payload = {
            "areas": [{"name": District(code).label, "value": value} for code, value in series.points],
            "nameMap": {District(code).label: t.term("district", code) for code, _ in series.points},
            "unit": t("chart.unit_vouchers") if claims else t("chart.unit_redemptions"),
        }
    else:
        payload = {
            "labels": [t.term("merchant_status", code) for code, _ in series.points],
            "values": [value for _, value in series.points],
            "unit": t("chart.unit_merchants"),
        }
    if series.key == "merchants_by_status":
        payload["empty"] = t("app.empty")
    else:
        payload["empty"] = t("chart.no_claims") if claims else t("chart.no_redemptions")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class MapLayer(StrEnum):
    CLAIMS = "claims"
    REDEMPTIONS = "redemptions"


@router.get("/overview")
async def overview(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    map: Annotated[MapLayer, Query()] = MapLayer.CLAIMS,
) -> HTMLResponse:
    view = await service.overview(session, principal=user.principal, clock=clock, campaign_id=campaign_id)
    t = translator(request)
    return render(
        request,
        "overview.html",
        {
            "view": view,
            "now": clock.now(),
            "charts": {series.key: series for series in view.charts},
            "chart_data": {series.key: _chart_data(series, t) for series in view.charts},
            "map_layer": map.value,
            "merchant_scope": (
                t.term("jurisdiction", user.principal.jurisdiction)
                if user.principal.jurisdiction
                else t("app.city_wide")
            ),
        },
        **_frame(user),
    )


# Campaigns and rounds


@router.get("/campaigns")
async def campaigns(request: Request, user: ConsoleUserDep, session: SessionDep) -> HTMLResponse:
    rows = await service.campaign_list(session, principal=user.principal)
    return render(request, "campaigns.html", {"campaigns": rows}, **_frame(user))


@router.get("/campaigns/{campaign_id}")
async def campaign(
    campaign_id: str, request: Request, user: ConsoleUserDep, session: SessionDep, clock: ClockDep
) -> HTMLResponse:
    board = await service.campaign_board(
        session, principal=user.principal, campaign_id=campaign_id, clock=clock
    )
    return render(request, "campaign.html", {"board": board}, **_frame(user))


# Merchants


@router.get("/merchants")
async def merchant_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=24)] = None,
    jurisdiction: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> HTMLResponse:
    chosen_status = parse_term(MerchantStatus, "status", status)
    chosen_jurisdiction = parse_term(Jurisdiction, "jurisdiction", jurisdiction)
    found = await merchants.list_merchants(
        session,
        principal=user.principal,
        statuses=(chosen_status,) if chosen_status else (),
        jurisdiction=chosen_jurisdiction,
        text=q,
        page=page,
        page_size=PAGE_SIZE,
    )
    scope = [user.principal.jurisdiction] if user.principal.jurisdiction else list(Jurisdiction)
    return render(
        request,
        "merchants.html",
        {
            "found": found,
            "pages": page_count(found.total, found.page_size),
            "statuses": list(MerchantStatus),
            "jurisdictions": scope,
            "filters": {"status": status or "", "jurisdiction": jurisdiction or "", "q": q or ""},
        },
        **_frame(user),
    )


@router.get("/merchants/review")
async def review_queue(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> HTMLResponse:
    found = await merchants.review_queue(session, principal=user.principal, page=page, page_size=PAGE_SIZE)
    return render(
        request,
        "review_queue.html",
        {"found": found, "pages": page_count(found.total, found.page_size)},
        **_frame(user),
    )


async def _final_list_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    *,
    campaign_id: str | None,
    page: int,
    listed_page: int,
    published: int | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    known = await service.campaign_list(session, principal=user.principal)
    chosen = service.choose_campaign(known, campaign_id, request.app.state.clock.now())
    board = (
        None
        if chosen is None
        else await merchants.final_list(
            session,
            principal=user.principal,
            campaign_id=chosen.id,
            page=page,
            listed_page=listed_page,
            page_size=PAGE_SIZE,
        )
    )
    return render(
        request,
        "final_list.html",
        {
            "campaigns": known,
            "campaign": chosen,
            "board": board,
            "awaiting_pages": page_count(board.awaiting.total, PAGE_SIZE) if board else 1,
            "listed_pages": page_count(board.listed.total, PAGE_SIZE) if board else 1,
            "published": published,
            "error": error,
        },
        status=status,
        **_frame(user),
    )


@router.get("/merchants/final-list")
async def final_list(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(max_length=32)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    listed_page: Annotated[int, Query(ge=1, le=100000)] = 1,
    published: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    return await _final_list_page(
        request,
        user,
        session,
        campaign_id=campaign_id,
        page=page,
        listed_page=listed_page,
        published=published,
    )


@router.post("/merchants/final-list", response_model=None)
async def publish(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    campaign_id: Annotated[str, Form(max_length=32)],
    merchant_id: Annotated[list[str] | None, Form()] = None,
) -> Response:
    t = translator(request)
    chosen = [item for item in merchant_id or [] if item]
    if not chosen:
        async with unit_of_work(sessions) as session:
            return await _final_list_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                page=1,
                listed_page=1,
                error=t("final_list.nothing_selected"),
                status=422,
            )
    try:
        async with unit_of_work(sessions) as session:
            rows = await merchants.publish(
                session, principal=user.principal, campaign_id=campaign_id, merchant_ids=chosen, clock=clock
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise
        async with unit_of_work(sessions) as session:
            return await _final_list_page(
                request,
                user,
                session,
                campaign_id=campaign_id,
                page=1,
                listed_page=1,
                error=refusal.message,
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/merchants/final-list?campaign_id={campaign_id}&published={len(rows)}",
        status_code=303,
    )


async def _merchant_page(
    request: Request,
    user: ConsoleUser,
    session: AsyncSession,
    merchant_id: str,
    *,
    done: str | None = None,
    error: str | None = None,
    reason: str = "",
    status: int = 200,
) -> HTMLResponse:
    detail = await merchants.get_merchant(session, principal=user.principal, merchant_id=merchant_id)
    return render(
        request,
        "merchant.html",
        {
            "detail": detail,
            "can_review": Action.APPROVE in detail.actions,
            "done": done if done in ("approve", "reject") else None,
            "error": error,
            "reason": reason,
        },
        status=status,
        **_frame(user),
    )


@router.get("/merchants/{merchant_id}")
async def merchant(
    merchant_id: str,
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    return await _merchant_page(request, user, session, merchant_id, done=done)


@router.post("/merchants/{merchant_id}/review", response_model=None)
async def review(
    merchant_id: str,
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    decision: Annotated[Decision, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        async with unit_of_work(sessions) as session:
            await merchants.review(
                session,
                principal=user.principal,
                merchant_id=merchant_id,
                approve=decision is Decision.APPROVE,
                reason=reason,
                clock=clock,
            )
    except HuiminError as refusal:
        if refusal.status not in (409, 422):
            raise  # 403 and 404 are pages of their own
        async with unit_of_work(sessions) as session:
            return await _merchant_page(
                request,
                user,
                session,
                merchant_id,
                error=_refusal_text(translator(request), refusal),
                reason=reason,
                status=refusal.status,
            )
    return RedirectResponse(
        f"{CONSOLE_PREFIX}/merchants/{merchant_id}?done={decision.value}", status_code=303
    )


def _refusal_text(t: Translator, refusal: HuiminError) -> str:
    if isinstance(refusal, InvalidInput):
        return f"{t('error.invalid')} {'; '.join(problem.message for problem in refusal.problems)}"
    return f"{t('error.conflict')} {refusal.message}"


# Users


def _user_form(
    request: Request,
    user: ConsoleUser,
    *,
    values: dict[str, str] | None = None,
    problems: Sequence[Problem] = (),
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "user_new.html",
        {
            "roles": accounts.account_roles(user.principal),
            "jurisdictions": list(Jurisdiction),
            "values": values or {},
            "problems": {problem.field: problem.message for problem in problems},
            "error": error,
        },
        status=status,
        **_frame(user),
    )


@router.get("/users")
async def users(request: Request, user: ConsoleUserDep, session: SessionDep) -> HTMLResponse:
    rows = await accounts.list_users(session, principal=user.principal)
    return render(request, "users.html", {"users": rows}, **_frame(user))


@router.get("/users/new")
async def new_user(request: Request, user: ConsoleUserDep) -> HTMLResponse:
    return _user_form(request, user)


@router.post("/users", response_model=None)
async def create_user(
    request: Request,
    user: ConsoleUserDep,
    sessions: SessionsDep,
    clock: ClockDep,
    username: Annotated[str, Form(max_length=64)] = "",
    display_name: Annotated[str, Form(max_length=100)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    jurisdiction: Annotated[str, Form(max_length=16)] = "",
    merchant_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    values = {
        "username": username,
        "display_name": display_name,
        "role": role,
        "jurisdiction": jurisdiction,
        "merchant_id": merchant_id,
    }
    try:
        chosen_role = parse_term(Role, "role", role)
        if chosen_role is None:
            raise InvalidInput([Problem("role", "choose a role")], code="invalid_user")
        async with unit_of_work(sessions) as session:
            created = await accounts.add_user(
                session,
                principal=user.principal,
                username=username,
                display_name=display_name,
                role=chosen_role,
                password=password,
                sealer=request.app.state.totp_sealer,
                clock=clock,
                jurisdiction=parse_term(Jurisdiction, "jurisdiction", jurisdiction),
                merchant_id=merchant_id.strip() or None,
            )
    except InvalidInput as refusal:
        return _user_form(request, user, values=values, problems=refusal.problems, status=422)
    except HuiminError as refusal:
        if refusal.status != 409:
            raise
        return _user_form(request, user, values=values, error=refusal.message, status=409)
    # The TOTP secret is shown on this one answer and never again; the page is not cached.
    return render(request, "user_created.html", {"created": created}, status=201, **_frame(user))


def console_error(request: Request, error: HuiminError) -> HTMLResponse:
    """A refusal on a console page, shown in the console's frame when the user is known."""
    user = getattr(request.state, "console_user", None)
    return error_page(
        request,
        status=error.status,
        code=error.code,
        message=error.message,
        principal=user.principal if isinstance(user, ConsoleUser) else None,
    )
