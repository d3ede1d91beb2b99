"""The Redis claim gate under failure: paused until reconciled, Redis killed mid-round, and the same
scripts on a three-node Redis Cluster. Each test starts its own redis-server on loopback ports."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, RoundRow, StockShardRow
from huimin.claims import service as claims
from huimin.claims.gate import RedisGate, round_keys
from huimin.claims.models import ClaimCounterRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from tests.conftest import fresh_postgres
from tests.integration.redis_servers import cluster_client, redis_cluster, redis_process
from tests.integration.test_claim_concurrency import STOCK, flash
from tests.support import resident_body, small_campaign

INSIDE = Location(104.6276, 30.1288, Crs.GCJ02)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The Redis gate is the production shape: these tests run on PostgreSQL only."""
    yield from fresh_postgres(request)


OPEN = datetime(2022, 6, 24, 2, 0, 1, tzinfo=UTC)


async def setup_round(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    *,
    residents: int,
    stock: int,
) -> tuple[str, str, str, list[str]]:
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=small_campaign(stock=stock), clock=clock)
        partner = await create_partner(
            session, name="app", kind=PartnerKind.APP, sealer=partner_sealer("k" * 40), clock=clock
        )
        ids = [
            (
                await eligibility.register_resident(
                    session,
                    partner_id=partner.partner.id,
                    data=ResidentIn(**resident_body(serial)),
                    hasher=settings.hasher,
                    clock=clock,
                )
            ).resident.id
            for serial in range(residents)
        ]
        round_id = await session.scalar(select(RoundRow.id).where(RoundRow.code == "friday-20220624"))
        batch_id = await session.scalar(select(BatchRow.id).where(BatchRow.code == "general"))
    assert round_id
    assert batch_id
    return partner.partner.id, round_id, batch_id, ids


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    gate: RedisGate,
    clock: ManualClock,
    partner: str,
    round_id: str,
    batch_id: str,
    resident: str,
) -> str:
    try:
        async with unit_of_work(sessions) as session:
            await claims.claim_voucher(
                session,
                partner_id=partner,
                resident_id=resident,
                round_id=round_id,
                batch_id=batch_id,
                location=INSIDE,
                geofence=default_geofence(),
                clock=clock,
                gate=gate,
            )
        return "claimed"
    except HuiminError as refusal:
        return refusal.code


async def reconcile(sessions: async_sessionmaker[AsyncSession], gate: RedisGate, clock: ManualClock) -> None:
    async with unit_of_work(sessions) as session:
        await claims.reconcile_gate(session, gate=gate, clock=clock)


async def vouchers(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with unit_of_work(sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(VoucherRow)) or 0)


async def test_claims_pause_until_the_gate_is_reconciled(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    partner, round_id, batch_id, residents = await setup_round(
        sessions, settings, clock, residents=3, stock=5
    )
    clock.set(OPEN)
    with redis_process(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        gate = RedisGate(redis)
        assert (
            await claim(sessions, gate, clock, partner, round_id, batch_id, residents[0]) == "claims_paused"
        )
        await reconcile(sessions, gate, clock)
        assert await claim(sessions, gate, clock, partner, round_id, batch_id, residents[0]) == "claimed"
        assert (
            await claim(sessions, gate, clock, partner, round_id, batch_id, residents[0]) == "limit_reached"
        )
        _, stock_key, _ = round_keys(round_id, batch_id)
        assert int(await redis.get(stock_key)) == 4
        await redis.aclose()


async def test_redis_killed_mid_round_never_over_issues_and_loses_nothing_acknowledged(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    """The machine's Redis keeps nothing on disk, and neither does this one: a claim is acknowledged
    only after PostgreSQL committed it, so a Redis that comes back empty loses nothing acknowledged;
    the empty gate pauses claims until it is rebuilt from PostgreSQL."""
    stock = 60
    partner, round_id, batch_id, residents = await setup_round(
        sessions, settings, clock, residents=150, stock=stock
    )
    clock.set(OPEN)
    with redis_process(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        gate = RedisGate(redis)
        await reconcile(sessions, gate, clock)
        outcomes: Counter[str] = Counter()
        concurrency = asyncio.Semaphore(10)

        async def attempt(resident: str) -> None:
            async with concurrency:
                outcomes[await claim(sessions, gate, clock, partner, round_id, batch_id, resident)] += 1

        first_wave = [asyncio.ensure_future(attempt(resident)) for resident in residents[:70]]
        await asyncio.sleep(0.05)
        server.kill()  # mid-round, while claims are in flight
        await asyncio.gather(*first_wave)
        acknowledged_before = outcomes["claimed"]
        assert acknowledged_before == await vouchers(sessions)
        assert outcomes["claims_paused"] > 0 or acknowledged_before == 70  # the kill landed mid-wave

        server.start()  # back, empty: no persistence
        redis_again = Redis.from_url(server.url)
        gate = RedisGate(redis_again)
        assert (
            await claim(sessions, gate, clock, partner, round_id, batch_id, residents[70]) == "claims_paused"
        )
        await reconcile(sessions, gate, clock)
        await asyncio.gather(*(attempt(resident) for resident in residents))
        await redis.aclose()
        await redis_again.aclose()

    issued = await vouchers(sessions)
    assert issued == outcomes["claimed"] == stock  # every acknowledged claim is in PostgreSQL, and no more
    async with unit_of_work(sessions) as session:
        left = await session.scalar(
            select(func.sum(StockShardRow.remaining)).where(
                StockShardRow.round_id == round_id, StockShardRow.batch_id == batch_id
            )
        )
    assert left == 0


def test_the_scripts_run_on_a_three_node_redis_cluster(tmp_path: Path) -> None:
    with redis_cluster(tmp_path) as port:
        asyncio.run(_exercise_cluster(port))


async def _exercise_cluster(port: int) -> None:
    cluster = await cluster_client(port)
    gate = RedisGate(cluster)
    rounds = [f"rnd_cluster{number:02d}" for number in range(6)]  # spread over the three nodes' slots
    for round_id in rounds:
        await gate.provision(round_id, {"bat_a": 3, "bat_b": 1}, {"bat_a": {"psn_x": 1}})
        verdicts = await asyncio.gather(
            gate.admit(round_id, "bat_a", "psn_x", 1),
            gate.admit(round_id, "bat_a", "psn_y", 1),
            gate.admit(round_id, "bat_b", "psn_y", 1),
            gate.admit(round_id, "bat_b", "psn_z", 1),
        )
        assert verdicts == ["limit_reached", "ok", "ok", "sold_out"]
        await gate.release(round_id, "bat_b", "psn_y")
        assert await gate.admit(round_id, "bat_b", "psn_z", 1) == "ok"
    slots = {await cluster.cluster_keyslot(round_keys(round_id, "bat_a")[1]) for round_id in rounds}
    assert len(slots) == len(rounds)
    await cluster.aclose()


async def test_flash_claims_through_the_redis_gate_never_over_issue(
    redis_url: str,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        gate = RedisGate(redis)
        outcomes = await flash(
            sessions, settings, clock, gate, before=lambda: reconcile(sessions, gate, clock)
        )
        assert outcomes["claimed"] == STOCK
        # the gate agrees with the database afterwards (SPEC I5)
        async with unit_of_work(sessions) as session:
            round_id = await session.scalar(select(RoundRow.id).where(RoundRow.code == "friday-20220624"))
            batch_id = await session.scalar(select(BatchRow.id).where(BatchRow.code == "general"))
            counters = {
                person: claimed
                for person, claimed in await session.execute(
                    select(ClaimCounterRow.person_id, ClaimCounterRow.claimed).where(
                        ClaimCounterRow.scope == f"r:{round_id}:b:{batch_id}"
                    )
                )
            }
        assert round_id
        assert batch_id
        _, stock_key, held_key = round_keys(round_id, batch_id)
        assert int(await redis.get(stock_key)) == 0
        held = {key.decode(): int(value) for key, value in (await redis.hgetall(held_key)).items()}
        assert held == counters
    finally:
        await redis.aclose()


def test_dates() -> None:
    assert OPEN - timedelta(seconds=1) == datetime(2022, 6, 24, 2, 0, tzinfo=UTC)


async def test_the_app_serves_claims_through_the_redis_gate(
    tmp_path: Path, database_url: str, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    import httpx

    from huimin.app import create_app
    from tests.integration.test_claims_api import new_partner
    from tests.support import ZIYANG_CENTRE, SignedClient

    with redis_process(tmp_path / "redis") as server:
        settings = Settings(database_url=database_url, claims_backend="redis", redis_url=server.url)
        app = create_app(settings, clock=clock)
        async with app.router.lifespan_context(app):
            assert isinstance(app.state.claim_gate, RedisGate)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://huimin.test"
            ) as http:
                async with unit_of_work(sessions) as session:
                    await campaigns.load_campaign(session, text=small_campaign(stock=5), clock=clock)
                key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
                client = SignedClient(http, key_id=key_id, secret=secret, clock=clock)
                resident = (await client.post("/api/v1/residents", resident_body(1))).json()["resident_id"]
                friday = next(
                    item
                    for item in (await http.get("/api/v1/rounds")).json()
                    if item["code"] == "friday-20220624"
                )
                clock.set(OPEN)
                body = {
                    "resident_id": resident,
                    "batch_id": friday["batches"][0]["batch_id"],
                    "location": ZIYANG_CENTRE,
                }
                path = f"/api/v1/rounds/{friday['round_id']}/claims"
                paused = await client.post(path, body, **{"Idempotency-Key": "redis-app-0001"})
                assert paused.status_code == 503
                assert paused.json()["code"] == "claims_paused"
                async with unit_of_work(sessions) as session:
                    await claims.reconcile_gate(session, gate=app.state.claim_gate, clock=clock)
                claimed = await client.post(
                    path, body, **{"Idempotency-Key": "redis-app-0001"}
                )  # same key: not stored
                assert claimed.status_code == 201, claimed.text
                again = await client.post(path, body, **{"Idempotency-Key": "redis-app-0001"})
                assert again.json() == claimed.json()  # the answer kept in Redis
                moved = {**body, "location": {**ZIYANG_CENTRE, "crs": "wgs84"}}
                other = await client.post(path, moved, **{"Idempotency-Key": "redis-app-0001"})
                assert other.json()["code"] == "idempotency_mismatch"

                redis = Redis.from_url(server.url)
                await redis.flushall()  # Redis loses everything, answers included
                async with unit_of_work(sessions) as session:
                    await claims.reconcile_gate(session, gate=app.state.claim_gate, clock=clock)
                retried = await client.post(path, body, **{"Idempotency-Key": "redis-app-0001"})
                assert retried.status_code == 201
                assert retried.json()["voucher_id"] == claimed.json()["voucher_id"]  # found in the database
                assert await vouchers(sessions) == 1
                await redis.aclose()
