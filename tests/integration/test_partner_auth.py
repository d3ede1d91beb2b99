"""Signed partner requests: every way a signature can be wrong answers 401 with its code."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.config import Settings
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
