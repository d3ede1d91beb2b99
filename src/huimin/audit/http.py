"""Who asks from where: each request's client IP and request id, for the audit records its services
write. A request id sent by the caller (`X-Request-Id`, e.g. from nginx) is kept when well-formed,
otherwise one is made; either way it is returned in the answer's `X-Request-Id`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from huimin.audit.service import RequestContext, request_context

__all__ = ["install_request_context"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def install_request_context(app: FastAPI) -> None:
    @app.middleware("http")
    async def with_request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        sent = request.headers.get("X-Request-Id", "")
        request_id = sent if _REQUEST_ID.fullmatch(sent) else secrets.token_hex(8)
        token = request_context.set(
            RequestContext(client_ip=request.client.host if request.client else None, request_id=request_id)
        )
        try:
            response = await call_next(request)
        finally:
            request_context.reset(token)
        response.headers["X-Request-Id"] = request_id
        return response
