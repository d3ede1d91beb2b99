"""Request dependencies: the session of the request's one transaction, the settings, the clock and
the signed partner."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import resolve_session
from huimin.auth.domain import PartnerKind, SignedRequest
from huimin.auth.principals import Principal
from huimin.auth.service import Partner, authenticate, require_kind
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import Clock

__all__ = [
    "SESSION_COOKIE",
    "AppPartnerDep",
    "ClockDep",
    "SessionDep",
    "SessionsDep",
    "SettingsDep",
    "StaffDep",
    "TerminalPartnerDep",
    "set_session_cookie",
]


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # One transaction per request: committed when the endpoint returns, rolled back if it raises.
    async with unit_of_work(request.app.state.sessions) as session:
        yield session


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def signed_path(request: Request) -> str:
    """The PATH that is signed: the path, and the query string when there is one."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


async def _partner(request: Request) -> Partner:
    headers = request.headers
    return await authenticate(
        keys=request.app.state.partner_keys,
        nonces=request.app.state.nonces,
        key_id=headers.get("X-Huimin-Key"),
        timestamp=headers.get("X-Huimin-Timestamp"),
        nonce=headers.get("X-Huimin-Nonce"),
        signature=headers.get("X-Huimin-Signature"),
        request=SignedRequest(
            method=request.method,
            path=signed_path(request),
            timestamp=headers.get("X-Huimin-Timestamp", ""),
            nonce=headers.get("X-Huimin-Nonce", ""),
            body=await request.body(),
        ),
        clock=request.app.state.clock,
    )


def _of_kind(kind: PartnerKind) -> object:
    async def check(partner: Annotated[Partner, Depends(_partner)]) -> Partner:
        return require_kind(partner, kind)

    return check


SESSION_COOKIE = "huimin_session"


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    """The console session: invisible to scripts, never sent by another site, HTTPS-only in production."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.env == "production",
        path="/",
    )


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _staff(request: Request) -> Principal:
    """The signed-in console user (government roles, the operator, merchants) from the session cookie.

    Idle sessions (30 minutes) end; a cookie-authenticated write must echo the session's CSRF token in
    `X-CSRF-Token`. A principal already on the request (set by a test harness) is taken as is.
    """
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise HuiminError("sign in first", code="not_signed_in", status=401)
    async with unit_of_work(request.app.state.sessions) as session:
        active = await resolve_session(session, token=token, clock=request.app.state.clock)
    if active is None:
        raise HuiminError(
            "the session has ended (30 idle minutes or signed out): sign in again",
            code="session_expired",
            status=401,
        )
    if request.method not in _SAFE_METHODS and not hmac.compare_digest(
        request.headers.get("X-CSRF-Token", ""), active.csrf_token
    ):
        raise HuiminError("missing or wrong X-CSRF-Token", code="csrf_failed", status=403)
    request.state.principal = active.principal
    return active.principal


SessionDep = Annotated[AsyncSession, Depends(_session)]
StaffDep = Annotated[Principal, Depends(_staff)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
ClockDep = Annotated[Clock, Depends(_clock)]
SettingsDep = Annotated[Settings, Depends(_settings)]
AppPartnerDep = Annotated[Partner, Depends(_of_kind(PartnerKind.APP))]
TerminalPartnerDep = Annotated[Partner, Depends(_of_kind(PartnerKind.TERMINAL))]
