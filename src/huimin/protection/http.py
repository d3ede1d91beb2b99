"""The HTTP side of protection: the sold-out guard and the admission of a claim (for the claim route),
and the per-address limit of public reads (a pure ASGI middleware)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from huimin.claims.domain import ClaimRefused
from huimin.errors import HuiminError
from huimin.observability.context import set_error_code, set_route
from huimin.protection.domain import Network, client_ip
from huimin.protection.service import Protection

__all__ = [
    "PUBLIC_READS",
    "PublicReadLimits",
    "admit_claim",
    "client_ip_of",
    "refuse_if_flagged",
    "refuse_sold_out",
]

# Reads anyone may make without signing (issue: claims): campaigns, rounds, merchants, announcements.
PUBLIC_READS = ("/api/v1/campaigns", "/api/v1/rounds", "/api/v1/merchants", "/api/v1/announcements")

_CLIENT_IP = "huimin.client_ip"


def client_ip_of(scope: Scope, proxies: tuple[Network, ...]) -> str | None:
    """The client's address (see `domain.client_ip`), worked out once per request."""
    if _CLIENT_IP not in scope:
        peer = scope["client"][0] if scope.get("client") else None
        forwarded = None
        if proxies:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded = value.decode("latin-1")
                    break
        scope[_CLIENT_IP] = client_ip(peer, forwarded, proxies)
    address: str | None = scope[_CLIENT_IP]
    return address


async def refuse_sold_out(request: Request) -> None:
    """A dependency of the claim route that runs before authentication: a batch flagged sold out is
    refused from memory, without Redis (no nonce, no gate) and without the database. The body is read
    only while some flag is up."""
    protection: Protection = request.app.state.protection
    if protection.flags:
        refuse_if_flagged(protection, request.path_params["round_id"], await request.body())


def refuse_if_flagged(protection: Protection, round_id: str, body: bytes) -> None:
    """409 `sold_out` when the claim's body names a batch flagged sold out in the round (the caller has
    checked that some flag is up: the body is parsed only then)."""
    try:
        batch_id = json.loads(body).get("batch_id")
    except (ValueError, AttributeError):
        return  # not JSON: the route's own validation answers
    if isinstance(batch_id, str) and protection.flags.is_sold_out(round_id, batch_id):
        raise ClaimRefused.sold_out()


@asynccontextmanager
async def admit_claim(
    request: Request, *, partner_id: str, resident_id: str, device_id: str | None
) -> AsyncIterator[None]:
    """Hold one of this worker's claim slots (503 `busy` when none is free) and charge the attempt
    against the resident, device, address and global limits (429 `rate_limited`) for the claim."""
    protection: Protection = request.app.state.protection
    async with protection.slots.slot():
        await protection.check_claim(
            partner_id=partner_id,
            resident_id=resident_id,
            device_id=device_id,
            ip=client_ip_of(request.scope, protection.trusted_proxies),
        )
        yield


class PublicReadLimits:
    """Per-address limit of the public reads (GET and HEAD under `PUBLIC_READS`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith(PUBLIC_READS)
        ):
            protection: Protection = scope["app"].state.protection
            try:
                await protection.check_public_read(client_ip_of(scope, protection.trusted_proxies))
            except HuiminError as refusal:  # refused before routing: the metrics see the prefix
                set_route(
                    scope, next(prefix for prefix in PUBLIC_READS if scope["path"].startswith(prefix)) + "*"
                )
                set_error_code(scope, refusal.code)
                response = JSONResponse(
                    refusal.body(), status_code=refusal.status, headers=_headers_of(refusal)
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _headers_of(error: HuiminError) -> dict[str, str] | None:
    headers: Any = getattr(error, "headers", None)
    return dict(headers) if headers else None
