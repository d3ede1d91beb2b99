"""The answers to failures that are not refusals: the pool is exhausted (503 `busy`), the database is out
of reach (503 `database_unavailable`), anything else (500 `internal_error`). One definition for the
FastAPI app's exception handlers and for the plain ASGI routes in front of it (express claims)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import Scope

from huimin.db import database_unreachable
from huimin.observability.context import request_id_of, set_error_code

__all__ = ["failure_answer"]

log = logging.getLogger("huimin.app")

Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, body, headers


def failure_answer(scope: Scope, error: Exception) -> Answer:
    if isinstance(error, PoolTimeout):
        set_error_code(scope, "busy")
        # Every database connection of this worker is in use: say so, so that clients back off and retry
        # (an idempotent request's key was released, so the retry is safe), instead of a bare 500.
        log.warning("database connection pool exhausted")
        return 503, {"code": "busy", "message": "the server is busy: retry shortly"}, {"Retry-After": "1"}
    if database_unreachable(error):
        set_error_code(scope, "database_unavailable")
        # PostgreSQL restarting or out of reach: nothing was written (the transaction never committed), so
        # the client may retry; an idempotent request's retry gets one effect (docs/operations.md).
        log.warning("database unavailable: %s", type(error).__name__)
        unavailable = {
            "code": "database_unavailable",
            "message": "the database is unavailable: retry shortly",
        }
        return 503, unavailable, {"Retry-After": "2"}
    # a statement the database refused is a bug too, answered as one
    request_id = request_id_of(scope)
    log.exception("unhandled error", exc_info=error, extra={"request_id": request_id})
    body: dict[str, Any] = {"code": "internal_error", "message": "internal error", "request_id": request_id}
    return 500, body, {"X-Request-Id": request_id or ""}
