"""/metrics (Prometheus text exposition) and /readyz (readiness: the database and Redis answer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from huimin.claims.express_http import express_gate
from huimin.observability.metrics import CONTENT_TYPE_LATEST, exposition
from huimin.observability.service import readiness, scraped_metrics

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    state = request.app.state
    scraped = await scraped_metrics(
        sessions=state.sessions,
        gate=state.claim_gate,
        clock=state.clock,
        wait=state.settings.probe_timeout_seconds,
        express=express_gate(request.app),
    )
    return Response(exposition(scraped), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    summary="Readiness: the database and Redis answer (503 naming the failed check otherwise)",
    responses={503: {"description": "a dependency does not answer; `checks` says which"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    result = await readiness(
        engine=state.engine, redis=state.redis, wait=state.settings.probe_timeout_seconds
    )
    body: dict[str, Any] = {"status": "ready" if result.ready else "not_ready", "checks": result.checks}
    if not result.ready:
        failed = ", ".join(name for name, value in result.checks.items() if value != "ok")
        body = {"code": "not_ready", "message": f"not ready: {failed}", **body}
    return JSONResponse(body, status_code=200 if result.ready else 503)
