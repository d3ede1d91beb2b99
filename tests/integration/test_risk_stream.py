"""The risk intake's stream path (Redis Streams, `huimin.risk.stream`) on SQLite and PostgreSQL, each test
with its own Redis server: the partner API publishes claims, redemptions and refunds after their commit;
a consumer group evaluates each event once, a consumer killed after its commit but before its XACK
replays as a no-op, one killed before its commit leaves its events to another consumer, and the cursor
scanner (the reconciler) never evaluates them again but does evaluate what was never published."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.principals import Role
from huimin.claims.models import VoucherEventRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.redemptions.models import RedemptionEventRow
from huimin.risk import flows, service
from huimin.risk.domain import Finding
from huimin.risk.models import RiskAlertRow, RiskEvaluatedEventRow
from huimin.risk.rules import EventBatch
from huimin.risk.service import Source
from huimin.risk.stream import GROUP, RiskConsumer, stream_name
from tests.console_helpers import make_user
from tests.integration.redis_servers import RedisProcess, redis_process
from tests.integration.staff import accept_test_principals
from tests.integration.test_console_pages import signed_in
from tests.integration.test_risk_scan import (
    OPERATOR,
    TEST_SETTINGS,
    alerts,
    claim,
    links,
    one_alert_per_claim,
    plant,
    resident,
)
from tests.integration.till import Till, open_till

EXPECTED_RULES = {
    ("self_claim_self_redeem", "catering"),
    ("split_orders", "catering_2"),
    ("threshold_hugging", "catering_2"),
    ("velocity", "catering_2"),
    ("refund_soon", "retail"),
    ("off_hours", "retail"),
    ("device_farm", None),
    ("resale_ring", "anyue_above"),
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with redis_process(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(database_url: str, redis_server: RedisProcess) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_server.url)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    till = await open_till(client, sessions, settings, clock)
    async with unit_of_work(sessions) as session:
        await service.put_settings(
            session, principal=OPERATOR, campaign_id=till.campaign_id, overrides=TEST_SETTINGS, clock=clock
        )
    return till


def consumer(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    till: Till,
    name: str,
    **options: Any,
) -> RiskConsumer:
    return RiskConsumer(redis, sessions, name=name, links=links(settings), clock=till.clock, **options)


def dies(batch: EventBatch) -> list[Finding]:
    raise RuntimeError("consumer killed mid-batch")


class Killed(Exception):
    pass


async def claim_event_ids(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with unit_of_work(sessions) as session:
        return sorted(
            (await session.scalars(select(VoucherEventRow.id).where(VoucherEventRow.kind == "claimed"))).all()
        )


async def redemption_event_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with unit_of_work(sessions) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(RedemptionEventRow)
                .where(RedemptionEventRow.kind.in_(("redeemed", "refunded")))
            )
            or 0
        )


async def traces(sessions: async_sessionmaker[AsyncSession]) -> dict[int, int]:
    """event id -> how many times the trace rule evaluated it."""
    return {
        int(row.period.removeprefix("event-")): row.hits
        for row in await alerts(sessions)
        if row.period.startswith("event-")
    }


async def evaluated_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with unit_of_work(sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(RiskEvaluatedEventRow)) or 0)


def found(rows: list[RiskAlertRow], till: Till) -> set[tuple[str, str | None]]:
    names = {merchant_id: name for name, merchant_id in till.merchants.items()}
    return {(row.rule, names.get(row.subject_id)) for row in rows}


async def test_published_events_are_evaluated_once_and_the_scanner_only_passes_them(
    till: Till, redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await plant(till)
    redemption_events = await redemption_event_count(sessions)
    # every claim, redemption and refund was published after its commit, once
    assert await redis.xlen(stream_name(Source.CLAIMS)) == len(await claim_event_ids(sessions))
    assert await redis.xlen(stream_name(Source.REDEMPTIONS)) == redemption_events

    first = consumer(redis, sessions, settings, till, "worker-a")
    await first.create_groups()
    report = await first.drain()
    assert report.delivered == report.evaluated == len(await claim_event_ids(sessions)) + redemption_events
    assert found(await alerts(sessions), till) == EXPECTED_RULES
    hits = {(row.rule, row.subject_id, row.hits) for row in await alerts(sessions)}
    assert await evaluated_rows(sessions) == report.evaluated
    assert (await redis.xpending(stream_name(Source.CLAIMS), GROUP))["pending"] == 0

    # the scanner passes them without evaluating them again, and forgets their keys as it passes them
    scan = await flows.scan(sessions, links=links(settings), clock=till.clock)
    assert scan.events >= report.evaluated  # read, with the events of other kinds
    assert (scan.raised, scan.updated) == (0, 0)
    assert {(row.rule, row.subject_id, row.hits) for row in await alerts(sessions)} == hits
    assert await evaluated_rows(sessions) == 0
    assert (await first.drain()).delivered == 0


async def test_a_consumer_killed_after_its_commit_replays_as_a_no_op(
    till: Till,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await plant(till)
    killed = consumer(redis, sessions, settings, till, "worker-a", rules=[one_alert_per_claim])
    await killed.create_groups()

    async def dies_before_xack(source: Source, entry_ids: Any) -> None:
        raise Killed

    monkeypatch.setattr(killed, "_ack", dies_before_xack)
    with pytest.raises(Killed):
        await killed.drain()
    claims = await claim_event_ids(sessions)
    assert await traces(sessions) == dict.fromkeys(claims, 1)  # stored and committed
    pending = await redis.xpending(stream_name(Source.CLAIMS), GROUP)
    assert pending["pending"] == len(claims)  # but never acknowledged

    # another consumer takes the dead one's entries over: every one is known, nothing is evaluated twice
    other = consumer(
        redis, sessions, settings, till, "worker-b", rules=[one_alert_per_claim], min_idle=timedelta(0)
    )
    report = await other.recover()
    # the dead consumer had read both streams; it died acknowledging the claims, before the redemptions
    redemptions = await redemption_event_count(sessions)
    assert report.taken_over == len(claims) + redemptions
    assert report.evaluated == redemptions  # the claims were known: skipped
    assert await traces(sessions) == dict.fromkeys(claims, 1)
    assert (await redis.xpending(stream_name(Source.CLAIMS), GROUP))["pending"] == 0

    await flows.scan(sessions, links=links(settings), clock=till.clock, rules=[one_alert_per_claim])
    assert await traces(sessions) == dict.fromkeys(claims, 1)


async def test_a_consumer_killed_before_its_commit_leaves_its_events_to_another(
    till: Till, redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await plant(till)
    killed = consumer(redis, sessions, settings, till, "worker-a", rules=[one_alert_per_claim, dies])
    await killed.create_groups()
    with pytest.raises(RuntimeError, match="killed"):
        await killed.drain()
    assert await traces(sessions) == {}  # rolled back
    assert await evaluated_rows(sessions) == 0
    claims = await claim_event_ids(sessions)

    # still idle for less than min_idle: nobody takes them yet
    waiting = consumer(redis, sessions, settings, till, "worker-b", rules=[one_alert_per_claim])
    assert (await waiting.recover()).taken_over == 0
    other = consumer(
        redis, sessions, settings, till, "worker-b", rules=[one_alert_per_claim], min_idle=timedelta(0)
    )
    report = await other.drain()
    assert report.taken_over >= len(claims)
    assert await traces(sessions) == dict.fromkeys(claims, 1)

    # the scanner afterwards evaluates none of them again
    await flows.scan(sessions, links=links(settings), clock=till.clock, rules=[one_alert_per_claim])
    assert await traces(sessions) == dict.fromkeys(claims, 1)
    assert await evaluated_rows(sessions) == 0


async def test_what_was_never_published_is_evaluated_by_the_scanner_once(
    app: FastAPI,
    till: Till,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published = [await claim(till, await resident(till, 700 + serial)) for serial in range(3)]

    async def redis_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(app.state.redis, "xadd", redis_down)
    unpublished = await claim(till, await resident(till, 710))  # the request does not fail
    monkeypatch.undo()
    published.append(await claim(till, await resident(till, 711)))
    assert unpublished["voucher_id"]
    assert len(published) == 4
    assert await redis.xlen(stream_name(Source.CLAIMS)) == 4

    stream = consumer(redis, sessions, settings, till, "worker-a", rules=[one_alert_per_claim])
    await stream.create_groups()
    assert (await stream.drain()).evaluated == 4
    till.clock.advance(timedelta(minutes=1))  # past the scanner's settle line
    await flows.scan(sessions, links=links(settings), clock=till.clock, rules=[one_alert_per_claim])
    assert await traces(sessions) == dict.fromkeys(await claim_event_ids(sessions), 1)
    assert await evaluated_rows(sessions) == 0


def _form_key(page: str) -> str:
    match = re.search(r'name="form_key" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def _stream_ids(redis: Redis, source: Source) -> list[int]:
    return sorted(int(fields[b"id"]) for _, fields in await redis.xrange(stream_name(source)))


async def _redemption_event_ids(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with unit_of_work(sessions) as session:
        return sorted(
            (
                await session.scalars(
                    select(RedemptionEventRow.id).where(RedemptionEventRow.kind.in_(("redeemed", "refunded")))
                )
            ).all()
        )


async def test_the_consoles_till_publishes_its_redemptions_and_refunds(
    app: FastAPI, till: Till, settings: Settings, redis: Redis, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await make_user(
        sessions, settings, till.clock, "shop.wu", Role.MERCHANT, merchant_id=till.merchants["catering"]
    )
    cashier = await signed_in(app, created, till.clock)
    voucher = await till.voucher("general")
    form = {
        "voucher_code": voucher["code"],
        "order_amount": "120",
        "merchant_discount": "0",
        "terminal_id": till.terminals["catering"],
        "form_key": _form_key((await cashier.http.get("/console/till")).text),
        "csrf_token": cashier.csrf,
        "step": "confirm",
    }
    redeemed = await cashier.http.post("/console/till", data=form)
    assert redeemed.status_code == 303
    assert await _stream_ids(redis, Source.REDEMPTIONS) == await _redemption_event_ids(sessions) != []
    again = await cashier.http.post("/console/till", data=form)  # a double click: no new event, none sent
    assert again.headers["location"] == redeemed.headers["location"]
    assert len(await _stream_ids(redis, Source.REDEMPTIONS)) == 1

    redemption_id = redeemed.headers["location"].rsplit("/", 1)[1]
    path = f"/console/till/refunds/{redemption_id}"
    refund = {
        "step": "confirm",
        "amount": "30",
        "form_key": _form_key((await cashier.http.get(path)).text),
        "csrf_token": cashier.csrf,
    }
    assert (await cashier.http.post(path, data=refund)).status_code == 303
    published = await _stream_ids(redis, Source.REDEMPTIONS)
    assert published == await _redemption_event_ids(sessions)
    assert len(published) == 2
