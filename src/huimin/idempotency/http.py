"""The HTTP side of idempotency: run a money- or stock-moving request once and answer it, replaying the
stored answer (success or refusal) to a retry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.deps import signed_path
from huimin.errors import HuiminError
from huimin.idempotency.service import Answer, RedisAnswers, request_digest, run_once

__all__ = ["answer_once"]


async def answer_once(
    request: Request,
    *,
    partner_id: str,
    key: str | None,
    body: Any,
    work: Callable[[AsyncSession], Awaitable[Answer]],
    store: RedisAnswers | None = None,
) -> JSONResponse:
    """`work` once per (partner, Idempotency-Key); the digest covers the method, the signed path and
    the parsed body, so the same key with another request is refused."""
    status, answer = await run_once(
        request.app.state.sessions,
        partner_id=partner_id,
        key=key,
        digest=request_digest(request.method, signed_path(request), body),
        clock=request.app.state.clock,
        work=work,
        store=store,
    )
    if status >= 400:  # a stored refusal, replayed: the same answer as the first time
        raise HuiminError(answer.get("message", ""), code=answer.get("code"), status=status)
    return JSONResponse(answer, status_code=status)
