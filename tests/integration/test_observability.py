"""Metrics, probes and request ids through HTTP, on SQLite and PostgreSQL (and Redis for /readyz)."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.campaigns import service as campaigns
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.observability.logs import JsonFormatter, RequestIdFilter
from tests.support import small_campaign

OPEN = datetime(2022, 6, 24, 2, 0, 1, tzinfo=UTC)
Labels = dict[str, str]


async def samples(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_metrics_count_requests_by_route_template_and_outcome(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=small_campaign(stock=100), clock=clock)
    clock.set(OPEN)
    before = await samples(client)
    assert (await client.get("/api/v1/campaigns")).status_code == 200
    assert (await client.get("/api/v1/rounds/rnd_nope")).json()["code"] == "unknown_round"
    unsigned = await client.post("/api/v1/rounds/rnd_nope/claims", json={})
    assert unsigned.json()["code"] == "missing_signature"
    after = await samples(client)

    def grew(metric: tuple[str, frozenset[tuple[str, str]]]) -> float:
        return after.get(metric, 0.0) - before.get(metric, 0.0)

    ok = {"method": "GET", "route": "/api/v1/campaigns", "status": "2xx", "code": "ok"}
    assert grew(key("huimin_http_requests_total", **ok)) == 1
    assert grew(key("huimin_http_request_duration_seconds_count", **ok)) == 1
    assert grew(key("huimin_http_request_duration_seconds_bucket", **ok, le="+Inf")) == 1
    refused = {
        "method": "GET",
        "route": "/api/v1/rounds/{round_id}",
        "status": "4xx",
        "code": "unknown_round",
    }
    assert grew(key("huimin_http_requests_total", **refused)) == 1  # the template, never the raw path
    claim = {"method": "POST", "route": "/api/v1/rounds/{round_id}/claims", "status": "4xx"}
    assert grew(key("huimin_http_requests_total", **claim, code="missing_signature")) == 1
    assert grew(key("huimin_claims_total", outcome="missing_signature")) == 1
    # read at scrape time: the open round's stock (no Redis gate here: from the database)
    stock = {"campaign": "test-2022", "round": "friday-20220624", "source": "database"}
    assert after[key("huimin_stock_remaining", **stock, batch="general")] == 100
    assert after[key("huimin_settlement_runs", status="prepared")] == 0
    assert after[key("huimin_scrape_reads_ok")] == 1


def test_metrics_of_several_worker_processes_add_up(tmp_path: Path) -> None:
    """prometheus_client's multiprocess mode, as `huimin serve --workers N` sets it up: two processes
    count, a third (any worker answering a scrape) reports the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from huimin.observability.metrics import observe_request, set_stream_lag\n"
        "observe_request('GET', '/api/v1/rounds', 200, None, 0.004)\n"
        "set_stream_lag('huimin:claims', 'persist', entries=7)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)  # noqa: S603 (our own interpreter)
    scrape = "import sys\nfrom huimin.observability.metrics import exposition\nsys.stdout.write(exposition().decode())\n"
    text = subprocess.run(  # noqa: S603
        [sys.executable, "-c", scrape], env=env, check=True, capture_output=True, text=True
    ).stdout
    values = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    ok = {"method": "GET", "route": "/api/v1/rounds", "status": "2xx", "code": "ok"}
    assert values[key("huimin_http_requests_total", **ok)] == 2
    assert values[key("huimin_stream_lag_entries", stream="huimin:claims", group="persist")] == 7


# --- probes ---------------------------------------------------------------------------------------------


async def test_readyz_says_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def ready(settings: Settings, clock: ManualClock) -> httpx.Response:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            return await http.get("/readyz")


@pytest.mark.redis
async def test_readyz_checks_redis_too_and_names_it_when_it_does_not_answer(
    database_url: str, redis_url: str, clock: ManualClock
) -> None:
    response = await ready(Settings(database_url=database_url, redis_url=redis_url), clock)
    assert (response.status_code, response.json()["checks"]) == (200, {"database": "ok", "redis": "ok"})
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Settings(
        database_url=database_url, redis_url=f"redis://127.0.0.1:{port}/0", probe_timeout_seconds=0.5
    )
    response = await ready(dead, clock)
    body = response.json()
    assert response.status_code == 503
    assert (body["status"], body["code"], body["checks"]["database"]) == ("not_ready", "not_ready", "ok")
    assert body["checks"]["redis"] != "ok"
    assert "redis" in body["message"]


# --- request ids and logs -----------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The JSON lines `huimin serve` writes, captured: the formatter and filter of its logging config."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger("huimin.access"), logging.getLogger("huimin.app")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_request_id_is_kept_returned_and_logged(
    client: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    response = await client.get("/api/v1/rounds/rnd_nope", headers={"X-Request-Id": "nginx-req-0001"})
    assert response.headers["X-Request-Id"] == "nginx-req-0001"
    [line] = [entry for entry in lines(json_log) if entry["logger"] == "huimin.access"]
    assert line["request_id"] == "nginx-req-0001"
    assert (line["route"], line["status"], line["code"], line["level"]) == (
        "/api/v1/rounds/{round_id}",
        404,
        "unknown_round",
        "info",
    )
    assert isinstance(line["duration_ms"], float)


async def test_a_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz", headers={"X-Request-Id": "bad id\tinjected"})
    second = await client.get("/healthz")
    made = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(made) == 2
    assert all(len(value) == 16 and int(value, 16) >= 0 for value in made)


async def test_an_internal_error_quotes_the_request_id(
    settings: Settings, clock: ManualClock, json_log: io.StringIO
) -> None:
    application: FastAPI = create_app(settings, clock=clock)

    async def broken() -> None:
        raise RuntimeError("a bug")

    application.add_api_route("/api/v1/broken", broken)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            response = await http.get("/api/v1/broken", headers={"X-Request-Id": "bug-report-42"})
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": "bug-report-42",
    }
    assert response.headers["X-Request-Id"] == "bug-report-42"
    errors = [entry for entry in lines(json_log) if entry["logger"] == "huimin.app"]
    assert errors[0]["request_id"] == "bug-report-42"
    assert "RuntimeError: a bug" in str(errors[0]["exception"])
