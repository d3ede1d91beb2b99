"""位置伪造 end to end, on SQLite and PostgreSQL: claims through the signed partner API from two client
networks, the IP-region table imported, a scan of the event logs. A claim from a network outside the
city, and two claims 70 km apart eight minutes apart (evaluated in two scans), raise their alerts with
their evidence; the ordinary claimers beside them raise nothing. The voucher keeps the position to three
decimals and the client's /24, never its address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from itertools import count
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.risk import flows
from huimin.risk.ip_regions import parse_ip_regions
from huimin.risk.models import RiskAlertRow
from huimin.risk.repository import RiskRepository
from huimin.risk.service import MerchantLinks
from tests.integration.merchant_helpers import SEALER
from tests.integration.till import Till
from tests.support import SignedClient, resident_body

YANJIANG_IP = "222.209.80.5"  # the city's own network: every request of the `client` fixture
CHENGDU_IP = "175.152.34.77"
IP_REGIONS = "network,region,in_city\n222.209.80.0/20,雁江区,true\n175.152.0.0/16,成都市,false\n"
CENTRE = {"lng": 104.62764, "lat": 30.12881, "crs": "gcj02"}  # 雁江区
ANYUE = {"lng": 105.336, "lat": 30.099, "crs": "gcj02"}  # 安岳县, 68 km east
_KEYS = count(1)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


def _http(app: FastAPI, address: str) -> httpx.AsyncClient:
    # the transport's client address is what uvicorn hands the app as request.client
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40_000)), base_url="http://huimin.test"
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(app, YANJIANG_IP) as http:
        yield http


async def resident(till: Till, serial: int) -> str:
    response = await till.app.post("/api/v1/residents", resident_body(serial))
    assert response.status_code == 201, response.text
    return str(response.json()["resident_id"])


async def claim(app: SignedClient, till: Till, resident_id: str, location: dict[str, Any]) -> str:
    response = await app.post(
        f"/api/v1/rounds/{till.round_id}/claims",
        {"resident_id": resident_id, "batch_id": till.batches["general"], "location": location},
        **{"Idempotency-Key": f"spoof-claim-{next(_KEYS)}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["voucher_id"])


async def scan(sessions: async_sessionmaker[AsyncSession], settings: Settings, till: Till) -> None:
    till.clock.advance(timedelta(minutes=1))  # past the settle line
    await flows.scan(
        sessions, links=MerchantLinks(hasher=settings.hasher, sealer=SEALER), clock=till.clock, batch_size=3
    )


async def test_a_foreign_network_and_impossible_travel_raise_alerts_with_their_evidence(
    app: FastAPI, till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with unit_of_work(sessions) as session:
        await RiskRepository(session).replace_ip_regions(parse_ip_regions(IP_REGIONS), at=till.clock.now())
    async with _http(app, CHENGDU_IP) as chengdu_http:
        chengdu = SignedClient(chengdu_http, key_id=till.app.key_id, secret=till.app.secret, clock=till.clock)
        spoofer, traveller, commuter, local = [await resident(till, 960 + i) for i in range(4)]
        # 10:00: in 雁江区 by the position, in 成都 by the network
        spoofed = await claim(chengdu, till, spoofer, CENTRE)
        # 10:00 in the centre, and (after a scan has evaluated that) 10:08 in 安岳县
        first_trip = await claim(till.app, till, traveller, CENTRE)
        await claim(till.app, till, commuter, CENTRE)
        await claim(till.app, till, local, CENTRE)
    await scan(sessions, settings, till)
    till.clock.advance(timedelta(minutes=7))
    second_trip = await claim(till.app, till, traveller, ANYUE)
    till.clock.advance(timedelta(minutes=82))  # the commuter drives: 68 km in an hour and a half
    await claim(till.app, till, commuter, ANYUE)
    await scan(sessions, settings, till)

    async with unit_of_work(sessions) as session:
        vouchers = {row.id: row for row in (await session.scalars(select(VoucherRow))).all()}
        rows = (
            await session.scalars(select(RiskAlertRow).where(RiskAlertRow.rule == "location_spoofing"))
        ).all()
    # minimised: the position to three decimals, the /24 of the client, never the address
    assert (vouchers[spoofed].claim_lng, vouchers[spoofed].claim_lat) == (104.628, 30.129)
    assert vouchers[spoofed].claim_ip_prefix == "175.152.34.0/24"
    assert vouchers[first_trip].claim_ip_prefix == "222.209.80.0/24"
    assert vouchers[second_trip].district == "anyue"

    persons = {vouchers[spoofed].person_id: "spoofer", vouchers[first_trip].person_id: "traveller"}
    found = {persons.get(row.subject_id, row.subject_id): row for row in rows}
    assert set(found) == {"spoofer", "traveller"}  # not the commuter, not the local

    by_network = found["spoofer"]
    assert (by_network.subject_kind, by_network.period, by_network.status) == ("person", "2022-06-24", "open")
    assert by_network.evidence["crossed"] == ["ip_region"]
    assert by_network.evidence["ip_outside"] == [
        {
            "voucher_id": spoofed,
            "at": vouchers[spoofed].claimed_at.isoformat(),
            "district": "yanjiang",
            "ip_prefix": "175.152.34.0/24",
            "ip_region": "成都市",
        }
    ]
    assert by_network.score == 35

    by_travel = found["traveller"]
    assert by_travel.evidence["crossed"] == ["travel"]
    assert by_travel.evidence["claim_ids"] == [first_trip, second_trip]
    [trip] = by_travel.evidence["impossible_travel"]
    assert (trip["first_voucher_id"], trip["second_voucher_id"]) == (first_trip, second_trip)
    assert (trip["first_district"], trip["second_district"]) == ("yanjiang", "anyue")
    assert trip["distance_km"] == pytest.approx(68.3, abs=0.5)
    assert trip["minutes"] == 8
    assert trip["speed_kmh"] == pytest.approx(512, abs=5)
    assert (by_travel.figure, by_travel.threshold, by_travel.unit) == (trip["speed_kmh"], 200, "km_per_hour")
    assert by_travel.score == 70  # more than twice the limit: twice the weight
