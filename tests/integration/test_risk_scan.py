"""Fraud planted through the real services (claims and redemptions over the signed partner API), found by a
scan of the event logs, on SQLite and PostgreSQL: every pattern raises its alert with its evidence, the
ordinary customers beside them raise nothing, a second scan raises nothing again, and a scan that dies
mid-way leaves nothing half-applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time, timedelta
from itertools import count
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.principals import Principal, Role
from huimin.claims.models import VoucherEventRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock, local_datetime
from huimin.risk import flows, service
from huimin.risk.domain import Finding, Rule, SubjectKind
from huimin.risk.models import RiskAlertRow, RiskCursorRow
from huimin.risk.rules import EventBatch
from huimin.risk.service import MerchantLinks
from tests.integration.merchant_helpers import PHONE, SEALER
from tests.integration.staff import accept_test_principals
from tests.integration.till import Till, open_till
from tests.support import ZIYANG_CENTRE, resident_body

_KEYS = count(1)
OPERATOR = Principal(actor_id="usr_operator", role=Role.OPERATOR, name="银联 李强")
# small enough for a handful of planted transactions; the defaults are for a city
TEST_SETTINGS: dict[str, Any] = {
    "hug_min_redemptions": 3,
    "velocity_min_per_hour": 4,
    "velocity_factor": 4,
    "velocity_baseline_floor": 1,
    "refund_soon_min_refunds": 1,
    "farm_persons_per_device": 3,
    "ring_min_redeemers": 3,
    "ring_linked_share_bp": 5000,
}


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


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


def links(settings: Settings) -> MerchantLinks:
    return MerchantLinks(hasher=settings.hasher, sealer=SEALER)  # the helpers seal phones with SEALER


async def resident(till: Till, serial: int, **overrides: Any) -> str:
    response = await till.app.post("/api/v1/residents", resident_body(serial, **overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["resident_id"])


async def claim(till: Till, resident_id: str, batch: str = "general") -> dict[str, Any]:
    response = await till.app.post(
        f"/api/v1/rounds/{till.round_id}/claims",
        {"resident_id": resident_id, "batch_id": till.batches[batch], "location": ZIYANG_CENTRE},
        **{"Idempotency-Key": f"risk-claim-{next(_KEYS)}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def redeem_at(
    till: Till, hour: int, minute: int, voucher: dict[str, Any], merchant: str, **fields: Any
) -> str:
    till.clock.set(local_datetime(till.clock.now().date(), time(hour, minute)))
    response = await till.redeem(till.body(voucher, merchant, **fields))
    assert response.status_code == 201, response.text
    return str(response.json()["redemption_id"])


async def alerts(sessions: async_sessionmaker[AsyncSession]) -> list[RiskAlertRow]:
    async with unit_of_work(sessions) as session:
        return list((await session.scalars(select(RiskAlertRow).order_by(RiskAlertRow.rule))).all())


async def plant(till: Till) -> dict[str, Any]:
    """Claims from 10:00 local on 2022-06-24, redemptions through the day; returns the ids to look for."""
    ids: dict[str, Any] = {}
    # 自领自核: a resident whose phone is the merchants' contact phone spends at 'catering'
    owner = await resident(till, 900, phone=PHONE, device_id="owner-phone")
    owner_voucher = await claim(till, owner)
    # 拆单: one person, four 'gross' vouchers (满100减30 on the order) spent at 'catering_2' minutes apart
    splitter = await resident(till, 901)
    split_vouchers = [await claim(till, splitter, "gross") for _ in range(4)]
    # 设备聚集 and 倒卖: three persons on one device, their vouchers all spent at 'anyue_above'
    farm = [await resident(till, 910 + i, device_id="farm-device") for i in range(3)]
    farm_vouchers = [await claim(till, person) for person in farm]
    # ordinary customers at 'catering', and two night redemptions plus a quick refund at 'retail'
    normal_vouchers = [await claim(till, await resident(till, 920 + i), "gross") for i in range(3)]
    retail_vouchers = [await claim(till, await resident(till, 930 + i)) for i in range(3)]

    ids["self_claim"] = await redeem_at(till, 11, 30, owner_voucher, "catering")
    ids["split"] = [
        await redeem_at(till, 12, 5 * i, voucher, "catering_2", order_amount_fen=10_100)
        for i, voucher in enumerate(split_vouchers)
    ]
    quick = await redeem_at(till, 13, 0, retail_vouchers[0], "retail", category="retail")
    till.clock.advance(timedelta(minutes=2))
    refunded = await till.refund(quick, 12_000)
    assert refunded.status_code == 201, refunded.text
    ids["refund"] = quick
    for hour, voucher in zip((14, 15, 16), normal_vouchers, strict=True):
        await redeem_at(till, hour, 10, voucher, "catering")
    ids["ring"] = [
        await redeem_at(till, hour, 20, voucher, "anyue_above")
        for hour, voucher in zip((17, 18, 19), farm_vouchers, strict=True)
    ]
    ids["night"] = [
        await redeem_at(till, 23, minute, voucher, "retail", category="retail")
        for minute, voucher in zip((0, 10), retail_vouchers[1:], strict=True)
    ]
    till.clock.advance(timedelta(minutes=5))  # past the settle line
    return ids


def one_alert_per_claim(batch: EventBatch) -> list[Finding]:
    """A stand-in rule that leaves a trace of every claim it evaluates: an alert per claim event, whose
    `hits` counts how often that event was evaluated."""
    return [
        Finding(
            rule=Rule.DEVICE_FARM,
            campaign_id=claim.campaign_id,
            subject_kind=SubjectKind.PERSON,
            subject_id=claim.person_id,
            window=f"event-{claim.event_id}",
            figure=1,
            threshold=1,
            unit="count",
            summary="trace",
            evidence={},
            at=claim.at,
        )
        for claim in batch.claims
    ]


async def test_scan_raises_each_planted_pattern_with_its_evidence_and_nothing_else(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    ids = await plant(till)
    report = await flows.scan(sessions, links=links(settings), clock=till.clock, batch_size=7)
    assert report.events > 0
    assert report.batches > 2

    found = {(row.rule, row.subject_id): row for row in await alerts(sessions)}
    merchants, farm_device = till.merchants, settings.hasher.digest("device", "farm-device")
    assert set(found) == {
        ("self_claim_self_redeem", merchants["catering"]),
        ("split_orders", merchants["catering_2"]),
        ("threshold_hugging", merchants["catering_2"]),
        ("velocity", merchants["catering_2"]),
        ("refund_soon", merchants["retail"]),
        ("off_hours", merchants["retail"]),
        ("device_farm", farm_device),
        ("resale_ring", merchants["anyue_above"]),
    }
    self_claim = found[("self_claim_self_redeem", merchants["catering"])]
    assert [entry["redemption_id"] for entry in self_claim.evidence["redemptions"]] == [ids["self_claim"]]
    assert self_claim.evidence["redemptions"][0]["linked_by"] == ["phone", "device"]
    split = found[("split_orders", merchants["catering_2"])]
    assert split.evidence["redemption_ids"] == ids["split"]
    assert split.figure == 4
    hugging = found[("threshold_hugging", merchants["catering_2"])]
    assert (hugging.figure, hugging.threshold) == (10_000, 7_000)
    assert (
        found[("refund_soon", merchants["retail"])].evidence["refunds"][0]["redemption_id"] == ids["refund"]
    )
    assert found[("off_hours", merchants["retail"])].evidence["redemption_ids"] == ids["night"]
    assert found[("device_farm", farm_device)].figure == 3
    ring = found[("resale_ring", merchants["anyue_above"])]
    assert ring.evidence["crossed"] == "linked"
    assert sorted(ring.evidence["redemption_ids"]) == sorted(ids["ring"])
    assert all(row.score > 0 and row.status == "open" for row in found.values())

    # a pattern seen again in a later batch updated its alert; a second scan sees no new event at all
    hits = {(row.rule, row.subject_id, row.hits) for row in found.values()}
    again = await flows.scan(sessions, links=links(settings), clock=till.clock)
    assert (again.events, again.raised, again.updated) == (0, 0, 0)
    assert {(row.rule, row.subject_id, row.hits) for row in await alerts(sessions)} == hits


async def test_a_scan_that_dies_mid_batch_leaves_nothing_half_applied(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await plant(till)
    calls = {"n": 0}  # batches evaluated, all sources

    def dies_on_the_third_batch(batch: EventBatch) -> list[Finding]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return []

    async def traces() -> list[RiskAlertRow]:
        return [row for row in await alerts(sessions) if row.period.startswith("event-")]

    with pytest.raises(RuntimeError):
        await flows.scan(
            sessions,
            links=links(settings),
            clock=till.clock,
            batch_size=5,
            rules=[one_alert_per_claim, dies_on_the_third_batch],
        )
    async with unit_of_work(sessions) as session:
        cursor = await session.get(RiskCursorRow, "voucher_events")
        assert cursor is not None
        assert cursor.events == 10  # two whole batches; the third rolled back, its alerts with it
        after_crash = cursor.last_id
    assert sorted(int(row.period.removeprefix("event-")) for row in await traces()) == list(
        range(1, after_crash + 1)
    )

    await flows.scan(
        sessions, links=links(settings), clock=till.clock, batch_size=5, rules=[one_alert_per_claim]
    )
    async with unit_of_work(sessions) as session:
        claims = list(
            (await session.scalars(select(VoucherEventRow.id).where(VoucherEventRow.kind == "claimed"))).all()
        )
    # every claim evaluated in exactly one committed batch: one alert each, found once
    assert len(claims) > 10  # (a full refund restores a voucher with another "claimed" event)
    assert sorted(int(row.period.removeprefix("event-")) for row in await traces()) == sorted(claims)
    assert {row.hits for row in await traces()} == {1}
