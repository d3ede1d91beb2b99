"""The HTTP application: one factory, one error model.

Every refusal is JSON `{"code": "<stable_snake_case>", "message": "..."}` with a 4xx status; an
unexpected failure is a 500 with code `internal_error` and no internals in the message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huimin import __version__
from huimin.allocation.endpoints import router as allocation_router
from huimin.announcements.endpoints import router as announcements_router
from huimin.auth.accounts import totp_sealer
from huimin.auth.endpoints import router as staff_router
from huimin.auth.service import PartnerKeys, RedisNonces, SqlNonces, partner_sealer
from huimin.campaigns.endpoints import router as campaigns_router
from huimin.claims.endpoints import router as claims_router
from huimin.claims.express_http import Express, ExpressClaims
from huimin.claims.gate import RedisGate, SqlGate
from huimin.claims.lottery import lottery_sealer
from huimin.complaints.endpoints import router as complaints_router
from huimin.config import Settings
from huimin.console.mount import mount_console
from huimin.db import create_engine, create_sessionmaker
from huimin.eligibility.endpoints import router as residents_router
from huimin.eligibility.geofence import default_geofence
from huimin.errors import HuiminError
from huimin.http_errors import failure_answer
from huimin.idempotency.service import RedisAnswers
from huimin.kit.clock import Clock, SystemClock
from huimin.merchants.endpoints import router as merchants_router
from huimin.observability.context import set_error_code
from huimin.observability.endpoints import router as observability_router
from huimin.observability.middleware import RequestObservability
from huimin.protection.domain import parse_networks
from huimin.protection.http import PublicReadLimits
from huimin.protection.service import build_protection
from huimin.redemptions.batching import TillBatcher
from huimin.redemptions.endpoints import router as redemptions_router
from huimin.redemptions.till_http import TillRedemptions
from huimin.redis_client import connect_redis
from huimin.reports.endpoints import router as reports_router
from huimin.risk.endpoints import router as risk_router
from huimin.settlement.endpoints import router as settlement_router
from huimin.supervision.endpoints import router as inspections_router

__all__ = ["create_app"]

log = logging.getLogger("huimin.app")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_production()
    settings.check_backends()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        app.state.engine = engine
        app.state.sessions = create_sessionmaker(engine)
        redis = connect_redis(settings) if settings.redis_url else None
        gate = redis if settings.claims_backend == "redis" else None
        app.state.claim_gate = RedisGate(gate) if gate is not None else SqlGate()
        # with the Redis gate, claim answers live in Redis too, so a refused claim writes nothing to the database
        app.state.idempotency_answers = RedisAnswers(gate) if gate is not None else None
        # signed requests: keys cached in this worker, nonces shared by all workers (Redis when configured)
        app.state.partner_keys = PartnerKeys(
            app.state.sessions,
            app.state.partner_sealer,
            ttl=timedelta(seconds=settings.partner_key_cache_seconds),
        )
        app.state.nonces = RedisNonces(redis) if redis is not None else SqlNonces(app.state.sessions)
        app.state.redis = redis  # for /readyz
        # the till's redemptions, decided together per event-loop pass (huimin.redemptions.batching)
        app.state.till = TillBatcher(
            app.state.sessions,
            app.state.clock,
            publish_to=redis,
            passes=1 if engine.dialect.name == "sqlite" else 2,
        )
        # express claims: answered once Redis has decided them, persisted by each worker's consumer
        express = (
            await Express.open(settings, gate, app.state.sessions)
            if gate is not None and settings.claims_ack == "redis"
            else None
        )
        app.state.express = express
        # rate limits shared through Redis; sold-out flags pushed by the Redis gate (huimin.protection)
        stock_left = None
        if gate is not None:
            stock_left = express.stock_left if express is not None else app.state.claim_gate.stock_left
        app.state.protection = build_protection(
            settings, redis=redis, stock_left=stock_left, clock=app.state.clock
        )
        app.state.protection.flags.start()
        try:
            yield
        finally:
            if express is not None:
                await express.close()
            await app.state.protection.flags.close()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Huimin 惠民 partner API",
        version=__version__,
        description="Government consumption-voucher campaigns: campaigns, rounds, claims, redemptions.",
        lifespan=lifespan,
        docs_url=None,  # served by the console from the installed swagger-ui-dist (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.partner_sealer = partner_sealer(settings.secret_key.get_secret_value())
    app.state.lottery_sealer = lottery_sealer(settings.secret_key.get_secret_value())
    app.state.totp_sealer = totp_sealer(settings.secret_key.get_secret_value())
    app.state.geofence = default_geofence()

    _install_error_handlers(app)
    # Pure ASGI middlewares, the last added outermost: request id, metrics and access log around
    # everything; then the security headers; then the limit of public reads.
    # innermost, before FastAPI's routing: the hot routes as plain ASGI (huimin.plain_http)
    app.add_middleware(TillRedemptions)
    app.add_middleware(ExpressClaims)
    app.add_middleware(PublicReadLimits)
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(
        RequestObservability,
        proxies=parse_networks(settings.trusted_proxies),
        access_log=settings.access_log,
    )
    app.include_router(observability_router)  # /metrics, /readyz
    app.include_router(campaigns_router)
    app.include_router(staff_router)
    app.include_router(residents_router)
    app.include_router(claims_router)
    app.include_router(merchants_router)
    app.include_router(redemptions_router)
    app.include_router(settlement_router)
    app.include_router(risk_router)
    app.include_router(complaints_router)
    app.include_router(inspections_router)
    app.include_router(announcements_router)
    app.include_router(reports_router)
    app.include_router(allocation_router)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    mount_console(app, settings)  # the pages, their assets, /docs; after the JSON error handlers

    return app


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(self), camera=(self), microphone=()",
}
# Everything the platform shows is served by the platform itself (government intranets have no
# internet), the interactive API docs included: no page runs inline script or style.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for header, value in _SECURITY_HEADERS.items():
                    headers.setdefault(header, value)
                headers.setdefault("Content-Security-Policy", _CSP)
                if api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HuiminError)
    async def huimin_error(request: Request, error: HuiminError) -> JSONResponse:
        if error.status == 503:
            # shedding load or waiting for a dependency (busy, claims_paused, nonce_check_unavailable): the
            # client retries; the metrics count these by code, and an outage shows in the dependency's logs
            log.warning("unavailable %s: %s", error.code, error.message)
        elif error.status >= 500:
            log.error("server-side error %s: %s", error.code, error.message)
        set_error_code(request.scope, error.code)
        # a refusal that says when to come back (429 rate_limited, 503 busy) carries Retry-After
        return JSONResponse(error.body(), status_code=error.status, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        set_error_code(request.scope, "invalid_request")
        problems = [
            {"field": ".".join(str(part) for part in item["loc"]), "message": str(item["msg"])}
            for item in error.errors()
        ]
        message = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
        return JSONResponse(
            {"code": "invalid_request", "message": message, "problems": problems}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        body: dict[str, Any] = {
            "code": _HTTP_CODES.get(error.status_code, "http_error"),
            "message": str(error.detail),
        }
        set_error_code(request.scope, body["code"])
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(PoolTimeout)  # 503 busy
    @app.exception_handler(ConnectionError)  # the database refused or dropped the connection: 503
    @app.exception_handler(DBAPIError)  # 503 when the connection went, else a bug: 500
    @app.exception_handler(Exception)  # answered outside the request middleware: the request id is quoted
    async def failed(request: Request, error: Exception) -> JSONResponse:
        status, body, headers = failure_answer(request.scope, error)
        return JSONResponse(body, status_code=status, headers=headers)
