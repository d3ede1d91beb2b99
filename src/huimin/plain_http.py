"""The hot routes answered as plain ASGI, in front of FastAPI: the express claim
(`claims.express_http`) and the till's redemption (`redemptions.till_http`).

FastAPI's per-request machinery (routing, dependency injection, request and response objects) cost
more CPU than a claim or a batched redemption itself (docs/benchmarks.md). These routes keep the same
request, signature check, refusals and answers as their FastAPI twins, which still document them in the
OpenAPI schema; the observability, security-header and rate-limit middlewares wrap them as they wrap
FastAPI's routes. What they share is here: reading the body, the signed partner, the JSON body's
validation and the answer, whatever happened.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from huimin.auth.domain import PartnerKind, SignedRequest
from huimin.auth.service import Partner, authenticate, require_kind
from huimin.errors import HuiminError, InvalidInput, Problem
from huimin.http_errors import failure_answer
from huimin.observability.context import set_error_code, set_route

__all__ = ["Signed", "answer", "headers_of", "parse_body", "read_body", "signed_request"]

_MAX_BODY = 16 * 1024
M = TypeVar("M", bound=BaseModel)


class Signed:
    """A signed request's raw body, its headers (lower-case names), the signed path and the partner."""

    __slots__ = ("body", "headers", "partner", "path")

    def __init__(self, body: bytes, headers: dict[str, str], path: str, partner: Partner) -> None:
        self.body = body
        self.headers = headers
        self.path = path
        self.partner = partner


async def read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HuiminError("the client went away", code="client_disconnected", status=400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise HuiminError("the request body is too large", code="payload_too_large", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def headers_of(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def signed_request(scope: Scope, body: bytes, headers: dict[str, str], *, kind: PartnerKind) -> Signed:
    """The partner whose key signed the request (`deps.TerminalPartnerDep`/`AppPartnerDep`'s check),
    if it is of `kind`."""
    state = scope["app"].state
    query = scope.get("query_string", b"").decode("latin-1")
    path = f"{scope['path']}?{query}" if query else scope["path"]
    partner = await authenticate(
        keys=state.partner_keys,
        nonces=state.nonces,
        key_id=headers.get("x-huimin-key"),
        timestamp=headers.get("x-huimin-timestamp"),
        nonce=headers.get("x-huimin-nonce"),
        signature=headers.get("x-huimin-signature"),
        request=SignedRequest(
            method=scope["method"],
            path=path,
            timestamp=headers.get("x-huimin-timestamp", ""),
            nonce=headers.get("x-huimin-nonce", ""),
            body=body,
        ),
        clock=state.clock,
    )
    return Signed(body, headers, path, require_kind(partner, kind))


def parse_body(model: type[M], raw: bytes) -> M:
    """The JSON body as `model`, or 422 `invalid_request` naming the fields, as FastAPI answers it."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidInput(
            [
                Problem(".".join(("body", *(str(part) for part in item["loc"]))), str(item["msg"]))
                for item in error.errors()
            ],
            code="invalid_request",
        ) from None


async def answer(
    scope: Scope,
    send: Send,
    *,
    route: str,
    handle: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> None:
    """Run the route's handler and send its answer: its (status, body), a refusal's, or the FastAPI
    app's answer to a failure (busy, database unavailable, a bug)."""
    set_route(scope, route)
    headers: dict[str, str] = {}
    try:
        status, body = await handle()
        if status >= 400:
            set_error_code(scope, body.get("code", ""))
    except HuiminError as refusal:
        set_error_code(scope, refusal.code)
        status, body = refusal.status, refusal.body()
        headers = dict(getattr(refusal, "headers", None) or {})
    except Exception as error:
        status, body, headers = failure_answer(scope, error)
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
