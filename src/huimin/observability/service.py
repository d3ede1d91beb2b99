"""Reads behind /metrics and /readyz, each bounded by a short timeout: a probe that hangs with the
database is worse than one that says the database does not answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from huimin.claims.express import ExpressGate
from huimin.claims.gate import ClaimGate, RedisGate
from huimin.claims.repository import ClaimsRepository
from huimin.db import unit_of_work
from huimin.kit.clock import Clock
from huimin.observability.repository import ObservabilityRepository
from huimin.settlement.domain import RunStatus

__all__ = ["Readiness", "readiness", "scraped_metrics"]

log = logging.getLogger("huimin.observability")


async def scraped_metrics(
    *,
    sessions: async_sessionmaker[AsyncSession],
    gate: ClaimGate,
    clock: Clock,
    wait: float,
    express: ExpressGate | None = None,
) -> list[Metric]:
    """Stock remaining of every batch of the rounds open now (from Redis when it decides the claims:
    express claims' counters, else the Redis gate's; else from the database) and settlement runs by
    status."""
    stock = GaugeMetricFamily(
        "huimin_stock_remaining",
        "Vouchers left per batch of each round open now (source: the Redis claim gate or the database).",
        labels=["campaign", "round", "batch", "source"],
    )
    runs = GaugeMetricFamily(
        "huimin_settlement_runs", "Settlement runs (结算批次) by status.", labels=["status"]
    )
    ok = GaugeMetricFamily(
        "huimin_scrape_reads_ok", "1 when the database and Redis reads of this scrape succeeded."
    )
    try:
        async with asyncio.timeout(wait), unit_of_work(sessions) as session:
            repository = ObservabilityRepository(session)
            batches = await repository.open_batches(clock.now())
            pairs = [(round_id, batch_id) for round_id, batch_id, *_ in batches]
            left: dict[tuple[str, str], int | None]
            if express is not None:
                source = "redis"
                left = await express.stock_left_of([(row[5], row[0], row[1]) for row in batches])
            elif isinstance(gate, RedisGate):
                source, left = "redis", await gate.stock_left(pairs)
            else:
                remaining = await ClaimsRepository(session).remaining(sorted({pair[0] for pair in pairs}))
                source, left = "database", dict(remaining.items())
            by_status = await repository.settlement_runs()
    except (TimeoutError, SQLAlchemyError, RedisError, OSError) as error:
        log.warning("metrics: scrape-time reads failed: %s", error or type(error).__name__)
        ok.add_metric([], 0)
        return [ok]
    for round_id, batch_id, campaign_code, round_code, batch_code, _ in batches:
        value = left.get((round_id, batch_id))
        if value is not None:
            stock.add_metric([campaign_code, round_code, batch_code, source], value)
    for status in RunStatus:
        runs.add_metric([status.value], by_status.get(status.value, 0))
    ok.add_metric([], 1)
    return [stock, runs, ok]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # "ok", "timeout" or "error: <kind>"


async def readiness(*, engine: AsyncEngine, redis: Redis | RedisCluster | None, wait: float) -> Readiness:
    """The database answers `SELECT 1` and Redis (when configured) answers `PING`, within `wait` seconds."""

    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    checks = {"database": await _check(database(), wait)}
    if redis is not None:
        checks["redis"] = await _check(_ping(redis), wait)
    return Readiness(all(value == "ok" for value in checks.values()), checks)


async def _check(probe: Awaitable[object], wait: float) -> str:
    try:
        async with asyncio.timeout(wait):
            await probe
    except TimeoutError:
        return "timeout"
    except (SQLAlchemyError, RedisError, OSError) as error:
        return f"error: {type(error).__name__}"
    return "ok"


async def _ping(redis: Redis | RedisCluster) -> None:
    await redis.ping()
