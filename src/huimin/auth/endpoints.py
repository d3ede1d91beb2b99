"""Console sign-in and sign-out (`/api/v1/staff`): password, TOTP, a session cookie and a CSRF token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from huimin.auth import accounts
from huimin.auth.principals import Principal, Role
from huimin.db import unit_of_work
from huimin.deps import SESSION_COOKIE, ClockDep, SettingsDep, StaffDep, set_session_cookie
from huimin.errors import HuiminError

router = APIRouter(prefix="/api/v1/staff", tags=["console sign-in"])


class SignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
    totp: str | None = Field(
        default=None, max_length=6, description="the 6-digit code of the authenticator app"
    )


class StaffOut(BaseModel):
    user_id: str
    name: str
    role: Role
    jurisdiction: str | None
    merchant_id: str | None
    csrf_token: str | None = Field(default=None, description="echo it in X-CSRF-Token on every write")


def _out(principal: Principal, csrf_token: str | None = None) -> StaffOut:
    return StaffOut(
        user_id=principal.actor_id,
        name=principal.name,
        role=principal.role,
        jurisdiction=principal.jurisdiction,
        merchant_id=principal.merchant_id,
        csrf_token=csrf_token,
    )


@router.post(
    "/sign-in",
    response_model=StaffOut,
    responses={401: {"description": "sign_in_failed"}, 423: {"description": "account_locked"}},
)
async def sign_in(
    body: SignInIn, request: Request, response: Response, clock: ClockDep, settings: SettingsDep
) -> StaffOut:
    async with unit_of_work(request.app.state.sessions) as session:
        outcome = await accounts.sign_in(
            session,
            username=body.username,
            password=body.password,
            totp_code=body.totp,
            sealer=request.app.state.totp_sealer,
            clock=clock,
            client_ip=request.client.host if request.client else None,
        )
    if isinstance(outcome, HuiminError):
        raise outcome  # after the commit above, so the failure count is kept
    set_session_cookie(response, outcome.token, settings)
    return _out(outcome.principal, outcome.csrf_token)


@router.post("/sign-out", status_code=204)
async def sign_out(request: Request, response: Response, principal: StaffDep, clock: ClockDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    async with unit_of_work(request.app.state.sessions) as session:
        await accounts.end_session(session, token=token, clock=clock)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/me", response_model=StaffOut)
async def me(principal: StaffDep) -> StaffOut:
    return _out(principal)
