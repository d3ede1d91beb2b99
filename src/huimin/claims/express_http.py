"""The claim route of express claims as a plain ASGI app in front of FastAPI.

With `HUIMIN_CLAIMS_ACK=redis`, `POST /api/v1/rounds/{round_id}/claims` is answered here: the same
request, signature, refusals and answer as the FastAPI route (`claims.endpoints.claim`, which still
documents it in the OpenAPI schema), without the framework's per-request machinery, which cost more than
the claim itself (docs/benchmarks.md). Every other request, and every request when express claims are
off, goes on to FastAPI untouched. The observability, security-header and rate-limit middlewares wrap
this app as they wrap FastAPI's routes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from huimin.auth.domain import PartnerKind
from huimin.claims.express import ExpressClaim, ExpressContexts, ExpressGate, ExpressPersister, decide_claim
from huimin.claims.schemas import ClaimIn
from huimin.config import Settings
from huimin.eligibility.geofence import Crs, Location
from huimin.errors import ConfigurationError, InvalidInput, Problem
from huimin.idempotency.service import check_key, request_digest
from huimin.kit.network import network_prefix
from huimin.plain_http import answer, headers_of, parse_body, read_body, signed_request
from huimin.protection.http import client_ip_of, refuse_if_flagged
from huimin.protection.service import Protection

__all__ = ["Express", "ExpressClaims", "express_gate"]

log = logging.getLogger("huimin.claims.express")

_PATH = re.compile(r"/api/v1/rounds/([^/]{1,64})/claims")
_ROUTE = "/api/v1/rounds/{round_id}/claims"


@dataclass
class Express:
    """What the express route needs, built in the app's lifespan (`app.state.express`), and the worker's
    consumer that persists the claims it and the other workers acknowledged."""

    gate: ExpressGate
    contexts: ExpressContexts
    persister: ExpressPersister
    consuming: asyncio.Task[None] | None = None
    checking: asyncio.Task[None] | None = None  # the durability check, when Redis did not answer at start

    @classmethod
    async def open(
        cls,
        settings: Settings,
        redis: Redis | RedisCluster,
        sessions: async_sessionmaker[AsyncSession],
    ) -> Express:
        """Refuses to start on a Redis that says it may lose acknowledged writes. A Redis that does not
        answer at start-up (a worker restarted during a Redis outage) does not stop the worker: claims
        pause meanwhile, and the check runs when Redis answers, after which claims are refused 503
        `claims_paused` if it fails."""
        gate = ExpressGate(redis)
        express = cls(gate, ExpressContexts(sessions), ExpressPersister(redis, sessions, publish_to=redis))
        try:
            express._judge(await gate.durability(), settings, starting=True)
        except RedisError as error:
            log.warning(
                "express claims: Redis does not answer (%r); its durability is checked when it does", error
            )
            express.checking = asyncio.create_task(express._check_when_reachable(settings))
        express.consuming = asyncio.create_task(express.persister.run())
        return express

    def _judge(self, problem: str | None, settings: Settings, *, starting: bool) -> None:
        if problem is None:
            return
        message = (
            "HUIMIN_CLAIMS_ACK=redis answers a claim once Redis has it, so Redis must keep every write it "
            f"acknowledged: {problem} (set appendonly yes, appendfsync always; docs/claims.md)"
        )
        if settings.claims_ack_volatile_redis:
            log.warning("express claims on a Redis that may lose them: %s", problem)
        elif starting:
            raise ConfigurationError(message)
        else:
            log.error("express claims refused until this is fixed and the workers restarted: %s", message)
            self.gate.refusing = message

    async def _check_when_reachable(self, settings: Settings) -> None:
        while True:
            await asyncio.sleep(2)
            try:
                problem = await self.gate.durability()
            except RedisError:
                continue
            self._judge(problem, settings, starting=False)
            return

    async def close(self) -> None:
        if self.checking is not None:
            self.checking.cancel()
        self.persister.stop()
        if self.consuming is not None:
            await self.consuming

    async def stock_left(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        """The sold-out flags' reading of the stock of (round, batch) pairs."""
        known = [(self.contexts.campaign_of(r), r, b) for r, b in pairs]
        left = await self.gate.stock_left_of([(c, r, b) for c, r, b in known if c is not None])
        return {(r, b): left.get((r, b)) for _, r, b in known}


def express_gate(app: Any) -> ExpressGate | None:
    """The app's express gate when express claims are on (for the writers of stock: allocations)."""
    express: Express | None = getattr(app.state, "express", None)
    return express.gate if express is not None else None


class ExpressClaims:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        matched = _PATH.fullmatch(scope["path"])
        express: Express | None = getattr(scope["app"].state, "express", None)
        if matched is None or express is None:
            await self.app(scope, receive, send)
            return

        async def handle() -> tuple[int, dict[str, Any]]:
            return 201, await _claim(scope, receive, express, matched.group(1))

        await answer(scope, send, route=_ROUTE, handle=handle)


async def _claim(scope: Scope, receive: Receive, express: Express, round_id: str) -> dict[str, Any]:
    state = scope["app"].state
    protection: Protection = state.protection
    raw = await read_body(receive)
    headers = headers_of(scope)
    if protection.flags:  # before authentication, like the FastAPI route's `refuse_sold_out`
        refuse_if_flagged(protection, round_id, raw)
    signed = await signed_request(scope, raw, headers, kind=PartnerKind.APP)
    body = parse_body(ClaimIn, raw)
    device_id = headers.get("x-huimin-device")
    if device_id is not None and len(device_id) > 128:
        raise InvalidInput([Problem("X-Huimin-Device", "at most 128 characters")], code="invalid_request")
    key = check_key(headers.get("idempotency-key"))
    ip = client_ip_of(scope, protection.trusted_proxies)
    async with protection.slots.slot():
        await protection.check_claim(
            partner_id=signed.partner.id, resident_id=body.resident_id, device_id=device_id, ip=ip
        )
        return await decide_claim(
            ExpressClaim(
                partner_id=signed.partner.id,
                resident_id=body.resident_id,
                round_id=round_id,
                batch_id=body.batch_id,
                location=Location(body.location.lng, body.location.lat, Crs(body.location.crs)),
                idempotency_key=key,
                digest=request_digest("POST", signed.path, body.model_dump(mode="json")),
                ip_prefix=network_prefix(ip),
            ),
            contexts=express.contexts,
            gate=express.gate,
            geofence=state.geofence,
            clock=state.clock,
        )
