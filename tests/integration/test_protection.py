"""Protection at release time on real Redis and PostgreSQL, with two app instances (two workers)
sharing both: rate limits trip at their count and come back after their window (by the injected
clock), the claim path answers 503 busy when saturated, and the sold-out flag reaches the other
worker by pub/sub, which then answers sold_out without a single Redis command."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, RoundRow
from huimin.claims import service as claims
from huimin.claims.repository import ClaimsRepository
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.schemas import ResidentIn
from huimin.kit.clock import ManualClock
from huimin.migrate import upgrade
from tests.conftest import fresh_postgres
from tests.support import ZIYANG_CENTRE, SignedClient, resident_body, small_campaign

pytestmark = pytest.mark.redis

OPEN = datetime(2022, 6, 24, 2, 0, 1, tzinfo=UTC)
# Everything off unless a test turns it on, so that each test watches one limit.
NO_LIMITS = {
    "rate_limit_claim_resident": "off",
    "rate_limit_claim_device": "off",
    "rate_limit_claim_ip": "off",
    "rate_limit_claim_global": "off",
    "rate_limit_public_ip": "off",
}
WAIT = 10.0  # a bound for a failing test, never a delay: each wait ends as soon as the event happens


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The production shape: PostgreSQL and the Redis claim gate."""
    yield from fresh_postgres(request)


@pytest.fixture
def protection_redis(redis_url: str) -> str:
    """DB 13 of the test Redis (rate-limit keys also get a prefix of their own per test)."""
    return redis_url.rsplit("/", 1)[0] + "/13"


class Release:
    """A loaded campaign, a signing partner and registered residents, served by N app instances."""

    def __init__(self, apps: list[FastAPI], clients: list[httpx.AsyncClient], sessions: Any) -> None:
        self.apps, self.clients, self.sessions = apps, clients, sessions
        self.key_id = self.secret = self.round_id = self.batch_id = ""
        self.residents: list[str] = []

    def signer(self, worker: int) -> SignedClient:
        return SignedClient(
            self.clients[worker], key_id=self.key_id, secret=self.secret, clock=self.apps[0].state.clock
        )

    async def claim(self, worker: int, resident: int, **headers: str) -> httpx.Response:
        body = {"resident_id": self.residents[resident], "batch_id": self.batch_id, "location": ZIYANG_CENTRE}
        return await self.signer(worker).post(
            f"/api/v1/rounds/{self.round_id}/claims",
            body,
            **{"Idempotency-Key": f"claim-{uuid.uuid4().hex}", **headers},
        )


@pytest.fixture
async def release_factory(
    database_url: str,
    protection_redis: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def make(
            *, workers: int = 2, stock: int = 100, residents: int = 6, **overrides: Any
        ) -> Release:
            settings = Settings(
                database_url=database_url,
                redis_url=protection_redis,
                claims_backend="redis",
                **{**NO_LIMITS, **overrides},
            )
            prefix = f"test:{uuid.uuid4().hex}:{{rl}}:"
            apps, clients = [], []
            for _ in range(workers):
                app = create_app(settings, clock=clock)
                await stack.enter_async_context(app.router.lifespan_context(app))
                app.state.protection.limiter.prefix = prefix  # shared by the workers, private to the test
                apps.append(app)
                clients.append(
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            transport=httpx.ASGITransport(app=app), base_url="http://huimin.test"
                        )
                    )
                )
            release = Release(apps, clients, sessions)
            sealer = partner_sealer(settings.secret_key.get_secret_value())
            async with unit_of_work(sessions) as session:
                await campaigns.load_campaign(session, text=small_campaign(stock=stock), clock=clock)
                created = await create_partner(
                    session, name="app", kind=PartnerKind.APP, sealer=sealer, clock=clock
                )
                release.key_id, release.secret = created.partner.key_id, created.secret
                for serial in range(residents):
                    registered = await eligibility.register_resident(
                        session,
                        partner_id=created.partner.id,
                        data=ResidentIn(**resident_body(serial)),
                        hasher=settings.hasher,
                        clock=clock,
                    )
                    release.residents.append(registered.resident.id)
                release.round_id = str(
                    await session.scalar(select(RoundRow.id).where(RoundRow.code == "friday-20220624"))
                )
                release.batch_id = str(
                    await session.scalar(select(BatchRow.id).where(BatchRow.code == "general"))
                )
            clock.set(OPEN)
            await reconcile(release)
            return release

        yield make


async def reconcile(release: Release) -> None:
    async with unit_of_work(release.sessions) as session:
        await claims.reconcile_gate(
            session, gate=release.apps[0].state.claim_gate, clock=release.apps[0].state.clock
        )


def refusal(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body.get("code", ""), body.get("limit")


# --- rate limits ------------------------------------------------------------------------------------


async def test_the_resident_limit_trips_at_its_count_across_workers_and_resets_after_its_window(
    release_factory: Callable[..., Any], clock: ManualClock
) -> None:
    release: Release = await release_factory(rate_limit_claim_resident="3/60")
    answers = [(await release.claim(attempt % 2, 0)).status_code for attempt in range(3)]
    assert answers == [201, 409, 409]  # one voucher per round; the limit counted all three attempts
    tripped = await release.claim(1, 0)
    assert refusal(tripped) == (429, "rate_limited", "resident")
    assert tripped.headers["Retry-After"] == "20"  # one attempt every 60/3 s
    assert (await release.claim(0, 1)).status_code == 201  # another resident is not affected
    clock.advance(timedelta(seconds=19))
    assert refusal(await release.claim(0, 0))[1] == "rate_limited"
    clock.advance(timedelta(seconds=1))  # one attempt drips back every 20 s
    assert refusal(await release.claim(1, 0))[1] == "limit_reached"
    assert refusal(await release.claim(0, 0))[1] == "rate_limited"
    clock.advance(timedelta(seconds=60))  # after a whole window, the whole burst
    assert [refusal(await release.claim(attempt % 2, 0))[1] for attempt in range(4)] == [
        "limit_reached",
        "limit_reached",
        "limit_reached",
        "rate_limited",
    ]


async def test_device_and_address_limits_use_the_trusted_proxys_forwarded_address(
    release_factory: Callable[..., Any],
) -> None:
    release: Release = await release_factory(
        rate_limit_claim_device="2/60", rate_limit_claim_ip="4/60", trusted_proxies=["127.0.0.1"]
    )
    shared = {"X-Huimin-Device": "phone-A", "X-Forwarded-For": "198.51.100.7"}
    assert (await release.claim(0, 0, **shared)).status_code == 201
    assert (await release.claim(1, 1, **shared)).status_code == 201
    assert refusal(await release.claim(0, 2, **shared)) == (429, "rate_limited", "device")
    # a refused attempt charges no limit: the address has used 2 of 4
    other_phone = {"X-Forwarded-For": "198.51.100.7"}
    assert (await release.claim(1, 2, **{**other_phone, "X-Huimin-Device": "phone-B"})).status_code == 201
    assert (await release.claim(0, 3, **{**other_phone, "X-Huimin-Device": "phone-C"})).status_code == 201
    assert refusal(await release.claim(1, 4, **{**other_phone, "X-Huimin-Device": "phone-D"})) == (
        429,
        "rate_limited",
        "ip",
    )
    # another client behind the same proxy has its own budget
    assert (await release.claim(0, 4, **{"X-Forwarded-For": "203.0.113.9"})).status_code == 201


async def test_the_global_bucket_is_shared_by_the_workers(
    release_factory: Callable[..., Any], clock: ManualClock
) -> None:
    # (a window long enough that Redis does not expire the key in real time while the test's clock stands)
    release: Release = await release_factory(rate_limit_claim_global="4/60")
    answers = [(await release.claim(serial % 2, serial)).status_code for serial in range(4)]
    assert answers == [201] * 4
    assert refusal(await release.claim(1, 4)) == (429, "rate_limited", "global")
    clock.advance(timedelta(seconds=15))  # one attempt every 60/4 s
    assert (await release.claim(0, 4)).status_code == 201
    assert refusal(await release.claim(1, 5)) == (429, "rate_limited", "global")


async def test_public_reads_are_limited_per_address_across_workers(
    release_factory: Callable[..., Any], clock: ManualClock
) -> None:
    release: Release = await release_factory(rate_limit_public_ip="3/60")
    first, second = release.clients
    assert (await first.get("/api/v1/rounds")).status_code == 200
    assert (await second.get("/api/v1/campaigns")).status_code == 200
    assert (await first.get(f"/api/v1/rounds/{release.round_id}")).status_code == 200
    refused = await second.get("/api/v1/announcements")
    assert refusal(refused) == (429, "rate_limited", "public")
    assert refused.headers["Retry-After"] == "20"
    assert (await first.get("/healthz")).status_code == 200  # not a public read of the API
    clock.advance(timedelta(seconds=20))
    assert (await first.get("/api/v1/rounds")).status_code == 200


# --- saturation ------------------------------------------------------------------------------------


async def test_a_saturated_claim_path_answers_busy_instead_of_queueing(
    release_factory: Callable[..., Any],
) -> None:
    release: Release = await release_factory(workers=1, claim_concurrency=1, claim_queue=0)
    gate = release.apps[0].state.claim_gate
    admit = gate.admit
    entered, go_on = asyncio.Event(), asyncio.Event()

    async def held_admit(*args: Any) -> str:
        entered.set()
        await go_on.wait()
        return str(await admit(*args))

    gate.admit = held_admit
    first = asyncio.create_task(release.claim(0, 0))
    await asyncio.wait_for(entered.wait(), WAIT)
    busy = await release.claim(0, 1)
    assert (busy.status_code, busy.json()["code"], busy.headers["Retry-After"]) == (503, "busy", "1")
    go_on.set()
    assert (await first).status_code == 201
    gate.admit = admit
    assert (await release.claim(0, 1)).status_code == 201  # the slot is free again


# --- the sold-out flag -------------------------------------------------------------------------------


class CountingRedis:
    """Counts the commands a Redis client sends (scripts included: they go through execute_command)."""

    def __init__(self, redis: Any) -> None:
        self.calls = 0
        self.original = redis.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            self.calls += 1
            return await self.original(*args, **options)

        redis.execute_command = counted


async def flagged(app: FastAPI, release: Release, value: bool) -> None:
    flags = app.state.protection.flags
    await asyncio.wait_for(
        flags.until(lambda: flags.is_sold_out(release.round_id, release.batch_id) is value), WAIT
    )


async def test_the_sold_out_flag_reaches_the_other_worker_which_answers_without_redis(
    release_factory: Callable[..., Any],
) -> None:
    release: Release = await release_factory(stock=2)
    first, second = release.apps
    for app in release.apps:
        await asyncio.wait_for(app.state.protection.flags.until_connected(), WAIT)
    assert [(await release.claim(0, serial)).status_code for serial in range(2)] == [201, 201]
    assert refusal(await release.claim(0, 2))[:2] == (409, "sold_out")  # the gate's answer, published
    await flagged(second, release, True)
    await flagged(first, release, True)

    counting = CountingRedis(second.state.redis)
    answers = [await release.claim(1, serial) for serial in range(2, 6)]
    assert {refusal(answer)[:2] for answer in answers} == {(409, "sold_out")}
    assert counting.calls == 0  # no nonce, no rate limit, no gate: the flag answered

    # Stock comes back (recycled into the round, then `huimin claims reconcile`): the flag clears.
    async with unit_of_work(release.sessions) as session:
        await ClaimsRepository(session).add_stock(release.round_id, release.batch_id, 1)
    await reconcile(release)
    await flagged(second, release, False)
    assert (await release.claim(1, 2)).status_code == 201
    assert counting.calls > 0


async def test_a_worker_that_missed_a_restock_resyncs_when_it_reconnects(
    release_factory: Callable[..., Any],
) -> None:
    release: Release = await release_factory(stock=1)
    second = release.apps[1]
    flags = second.state.protection.flags
    await asyncio.wait_for(flags.until_connected(), WAIT)
    assert (await release.claim(0, 0)).status_code == 201
    assert refusal(await release.claim(0, 1))[:2] == (409, "sold_out")
    await flagged(second, release, True)

    await flags.stop()  # the second worker's subscription is gone: it misses the restock below
    async with unit_of_work(release.sessions) as session:
        await ClaimsRepository(session).add_stock(release.round_id, release.batch_id, 1)
    await reconcile(release)
    assert flags.is_sold_out(release.round_id, release.batch_id)  # stale, and it does not know
    flags.start()  # reconnects, then reads the gate's counter of every flag it holds
    await asyncio.wait_for(flags.until_connected(), WAIT)
    assert not flags.is_sold_out(release.round_id, release.batch_id)
    assert (await release.claim(1, 1)).status_code == 201


# --- the embedded shape: no Redis ---------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'huimin.db'}"
    upgrade(url)
    return url


async def test_without_redis_limits_hold_per_process_and_there_are_no_flags(
    sqlite_url: str, clock: ManualClock
) -> None:
    settings = Settings(database_url=sqlite_url, **{**NO_LIMITS, "rate_limit_public_ip": "2/60"})
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        assert not app.state.protection.flags.enabled
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://huimin.test"
        ) as http:
            assert [(await http.get("/api/v1/campaigns")).status_code for _ in range(3)] == [200, 200, 429]
