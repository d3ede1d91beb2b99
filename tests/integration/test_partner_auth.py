"""Signed partner requests: every way a signature can be wrong answers 401 with its code; partner keys
kept in process; nonces shared by the workers through Redis."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.domain import PartnerKind
from huimin.auth.models import PartnerNonceRow, PartnerRow
from huimin.auth.service import PartnerKeys, partner_sealer
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from tests.integration.test_claims_api import new_partner
from tests.support import SignedClient, resident_body


@pytest.fixture
async def signer(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> SignedClient:
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    return SignedClient(client, key_id=key_id, secret=secret, clock=clock)


BODY = json.dumps(resident_body(1)).encode()


async def send(signer: SignedClient, headers: dict[str, str], body: bytes = BODY) -> tuple[int, str]:
    response = await signer.http.post("/api/v1/residents", content=body, headers=headers)
    return response.status_code, response.json()["code"]


async def test_a_good_signature_passes(signer: SignedClient) -> None:
    response = await signer.http.post(
        "/api/v1/residents", content=BODY, headers=signer.headers("POST", "/api/v1/residents", BODY)
    )
    assert response.status_code == 201


async def test_no_signature(signer: SignedClient) -> None:
    assert await send(signer, {"Content-Type": "application/json"}) == (401, "missing_signature")


async def test_a_tampered_body(signer: SignedClient) -> None:
    headers = signer.headers("POST", "/api/v1/residents", BODY)
    assert await send(signer, headers, BODY.replace(b"user-1", b"user-2")) == (401, "bad_signature")


async def test_another_path(signer: SignedClient) -> None:
    headers = signer.headers("POST", "/api/v1/residents/x", BODY)
    assert await send(signer, headers) == (401, "bad_signature")


async def test_a_wrong_secret(signer: SignedClient) -> None:
    forger = SignedClient(signer.http, key_id=signer.key_id, secret="not-the-secret", clock=signer.clock)
    assert await send(forger, forger.headers("POST", "/api/v1/residents", BODY)) == (401, "bad_signature")


async def test_an_unknown_key(signer: SignedClient) -> None:
    stranger = SignedClient(signer.http, key_id="pk_nobody", secret=signer.secret, clock=signer.clock)
    assert await send(stranger, stranger.headers("POST", "/api/v1/residents", BODY)) == (401, "unknown_key")


async def test_a_replayed_nonce(signer: SignedClient) -> None:
    headers = signer.headers("POST", "/api/v1/residents", BODY)
    first = await signer.http.post("/api/v1/residents", content=BODY, headers=headers)
    assert first.status_code == 201
    assert await send(signer, headers) == (401, "replayed_nonce")


async def test_a_failed_request_burns_its_nonce_too(signer: SignedClient) -> None:
    body = json.dumps({**resident_body(2), "phone": "1"}).encode()
    headers = signer.headers("POST", "/api/v1/residents", body)
    assert (await signer.http.post("/api/v1/residents", content=body, headers=headers)).status_code == 422
    assert await send(signer, headers, body) == (401, "replayed_nonce")


@pytest.mark.parametrize("skew", [timedelta(seconds=301), timedelta(seconds=-301)])
async def test_a_timestamp_outside_five_minutes(
    signer: SignedClient, clock: ManualClock, skew: timedelta
) -> None:
    headers = signer.headers("POST", "/api/v1/residents", BODY)
    if skew > timedelta(0):
        clock.advance(skew)
    else:
        headers["X-Huimin-Timestamp"] = str(int((clock.now() + skew).timestamp()))
    assert await send(signer, headers) == (401, "stale_timestamp")


async def test_a_terminal_key_cannot_act_for_residents(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    key_id, secret = await new_partner(sessions, settings, PartnerKind.TERMINAL, clock)
    till = SignedClient(client, key_id=key_id, secret=secret, clock=clock)
    response = await till.post("/api/v1/residents", resident_body(3))
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_partner_kind"


# --- partner keys kept in process ------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_stops_working_within_the_cache_time(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    key_id, _ = await new_partner(sessions, settings, PartnerKind.APP, clock)
    ticks = Ticks()
    keys = PartnerKeys(
        sessions,
        partner_sealer(settings.secret_key.get_secret_value()),
        ttl=timedelta(seconds=10),
        monotonic=ticks,
    )
    assert await keys.get(key_id) is not None
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(PartnerRow).where(PartnerRow.key_id == key_id).values(revoked_at=clock.now())
        )
    ticks.now += 9.9
    assert await keys.get(key_id) is not None  # still cached: the documented delay
    ticks.now += 0.1
    assert await keys.get(key_id) is None


async def test_an_unknown_key_is_not_remembered(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    keys = PartnerKeys(
        sessions,
        partner_sealer(settings.secret_key.get_secret_value()),
        ttl=timedelta(seconds=10),
        monotonic=Ticks(),
    )
    assert await keys.get("pk_issued_a_moment_later") is None
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(PartnerRow).where(PartnerRow.key_id == key_id).values(key_id="pk_issued_a_moment_later")
        )
    found = await keys.get("pk_issued_a_moment_later")  # works at once, not after the cache time
    assert found is not None
    assert found[1] == secret


async def test_concurrent_first_requests_share_one_key_lookup(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    key_id, _ = await new_partner(sessions, settings, PartnerKind.APP, clock)
    keys = PartnerKeys(sessions, partner_sealer(settings.secret_key.get_secret_value()))
    lookups = 0
    load = keys._load

    async def counted(key: str) -> object:
        nonlocal lookups
        lookups += 1
        return await load(key)

    keys._load = counted  # type: ignore[method-assign,assignment]
    found = await asyncio.gather(*(keys.get(key_id) for _ in range(20)))
    assert lookups == 1
    assert len({partner.id for partner, _ in found if partner}) == 1  # type: ignore[misc]


# --- nonces in Redis, shared by the workers -----------------------------------------------------------


@pytest.fixture
async def two_workers(
    database_url: str, redis_url: str, clock: ManualClock
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two app instances (two workers) on one database and one Redis."""
    settings = Settings(database_url=database_url, redis_url=redis_url)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            application = create_app(settings, clock=clock)
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://huimin.test")
                )
            )
        yield clients[0], clients[1]


@pytest.mark.redis
async def test_a_nonce_spent_on_one_worker_is_refused_on_another(
    two_workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    first, second = two_workers
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    headers = SignedClient(first, key_id=key_id, secret=secret, clock=clock).headers(
        "POST", "/api/v1/residents", BODY
    )
    assert (await first.post("/api/v1/residents", content=BODY, headers=headers)).status_code == 201
    replay = await second.post("/api/v1/residents", content=BODY, headers=headers)
    assert (replay.status_code, replay.json()["code"]) == (401, "replayed_nonce")
    assert (await first.post("/api/v1/residents", content=BODY, headers=headers)).status_code == 401
    async with unit_of_work(sessions) as session:  # Redis, not the table, holds them in this shape
        assert await session.scalar(select(func.count()).select_from(PartnerNonceRow)) == 0


@pytest.mark.redis
async def test_a_failed_request_burns_its_nonce_in_redis_too(
    two_workers: tuple[httpx.AsyncClient, httpx.AsyncClient],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    first, second = two_workers
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    body = json.dumps({**resident_body(2), "phone": "1"}).encode()
    headers = SignedClient(first, key_id=key_id, secret=secret, clock=clock).headers(
        "POST", "/api/v1/residents", body
    )
    assert (await first.post("/api/v1/residents", content=body, headers=headers)).status_code == 422
    replay = await second.post("/api/v1/residents", content=body, headers=headers)
    assert (replay.status_code, replay.json()["code"]) == (401, "replayed_nonce")


async def test_an_unreachable_redis_refuses_signed_requests_with_503(
    database_url: str, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    application = create_app(
        Settings(database_url=database_url, redis_url=f"redis://127.0.0.1:{port}/0"), clock=clock
    )
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            signer = SignedClient(http, key_id=key_id, secret=secret, clock=clock)
            response = await signer.post("/api/v1/residents", resident_body(4))
    assert (response.status_code, response.json()["code"]) == (503, "nonce_check_unavailable")
