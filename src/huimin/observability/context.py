"""What a request carries for observability: its id (in a contextvar, for every log line written
while it runs, and in the ASGI scope, for the error handlers) and the refusal code that the metrics
label it with."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from starlette.routing import Mount
from starlette.types import Scope

__all__ = [
    "current_request_id",
    "error_code_of",
    "request_id",
    "request_id_from",
    "request_id_of",
    "route_of",
    "set_error_code",
    "set_request_id",
    "set_route",
]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_ID_KEY = "huimin.request_id"
_CODE_KEY = "huimin.error_code"
_ROUTE_KEY = "huimin.route"

request_id: ContextVar[str | None] = ContextVar("huimin_request_id", default=None)


def request_id_from(sent: str | None) -> str:
    """The caller's `X-Request-Id` (e.g. nginx's $request_id) when well-formed, else a new one."""
    return sent if sent and _REQUEST_ID.fullmatch(sent) else secrets.token_hex(8)


def current_request_id() -> str | None:
    return request_id.get()


def set_request_id(scope: Scope, value: str) -> None:
    scope[_ID_KEY] = value


def request_id_of(scope: Scope) -> str | None:
    value: str | None = scope.get(_ID_KEY)
    return value


def set_error_code(scope: Scope, code: str) -> None:
    """Name the refusal of this request for the metrics (the error handlers call it)."""
    scope[_CODE_KEY] = code


def error_code_of(scope: Scope) -> str | None:
    code: str | None = scope.get(_CODE_KEY)
    return code


def set_route(scope: Scope, template: str) -> None:
    """Label a request answered before routing (a middleware's refusal)."""
    scope[_ROUTE_KEY] = template


def route_of(scope: Scope) -> str:
    """The route template (`/api/v1/rounds/{round_id}/claims`), never the raw path: bounded labels."""
    template: str | None = scope.get(_ROUTE_KEY)
    if template is not None:
        return template
    route = scope.get("route")
    if route is None:
        return "unmatched"
    path: str | None = getattr(route, "path_format", None) or getattr(route, "path", None)
    if path is None:
        return "unmatched"
    if isinstance(route, Mount):
        return path.rstrip("/") + "/{path}"
    return path
