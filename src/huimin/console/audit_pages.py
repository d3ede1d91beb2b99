"""The audit log viewer (审计日志): the trail of sign-ins, account changes, state transitions, money
movements and exports, searched by actor, action, object, time and result, newest first, 50 a page;
the chain's last seal, and on request the verification of the whole chain (`huimin audit verify`).
Read-only: the trail is append-only for the application.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from huimin.console import service
from huimin.console.deps import ConsoleUserDep
from huimin.console.repository import AuditFilter
from huimin.console.web import CONSOLE_PREFIX, page_count, render
from huimin.deps import ClockDep, SessionDep
from huimin.errors import InvalidInput, Problem
from huimin.kit.clock import local_datetime

__all__ = ["router"]

router = APIRouter(prefix=f"{CONSOLE_PREFIX}/audit", include_in_schema=False)

PAGE_SIZE = 50


def _instant(field: str, value: str | None, *, end: bool) -> datetime | None:
    """A local date as the instant its Beijing day starts (`since`) or the next one starts (`until`,
    so that the day is included)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput([Problem(field, f"not a date: {value!r}")], code="invalid_request") from None
    return local_datetime(day + timedelta(days=1) if end else day, time())


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


@router.get("")
async def audit_log(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    clock: ClockDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    result: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    verify: Annotated[bool, Query()] = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    where = AuditFilter(
        actor=_text(actor),
        action=_text(action),
        object_type=_text(object_type),
        object_id=_text(object_id),
        result=_text(result),
        since=_instant("since", since, end=False),
        until=_instant("until", until, end=True),
    )
    log = await service.audit_log(
        session,
        principal=user.principal,
        where=where,
        page=page,
        page_size=PAGE_SIZE,
        verify=verify,
        clock=clock,
    )
    filters = {
        "actor": actor or "",
        "action": action or "",
        "object_type": object_type or "",
        "object_id": object_id or "",
        "result": result or "",
        "since": since or "",
        "until": until or "",
    }
    return render(
        request,
        "audit_log.html",
        {
            "log": log,
            "page": page,
            "pages": page_count(log.total, PAGE_SIZE),
            "filters": filters,
            "base_query": urlencode(filters) + "&",
            "verify_query": urlencode({**filters, "verify": "true"}),
            "now": clock.now(),
        },
        **user.frame(),
    )
