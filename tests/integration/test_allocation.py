"""The next-round planner and personalised offers through HTTP, on both databases (issue 13): a batch
whose vouchers are spent gains stock from one whose vouchers are not, within the admin's limits; the
city admin accepts an edited split (the round's stock and shards change, the decision is audited) or
rejects with a reason; nobody else may plan; offers reorder and never hide a batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.allocation.models import AllocationPlanRow
from huimin.app import create_app
from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Role
from huimin.campaigns import service as campaigns
from huimin.campaigns.domain import ClaimMode
from huimin.campaigns.models import RoundBatchRow, StockShardRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.reports import rollup
from tests.console_helpers import make_user
from tests.integration.merchant_helpers import CITY, reviewer
from tests.integration.staff import accept_test_principals, as_
from tests.integration.test_console_pages import signed_in
from tests.integration.till import Till, fund, open_till

NEXT_OPENS = datetime(2022, 7, 1, 2, 0, tzinfo=UTC)  # the Friday after, 10:00 in Ziyang


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
    opened = await open_till(client, sessions, settings, clock)
    await fund(sessions, opened, clock)
    async with unit_of_work(sessions) as session:
        await campaigns.add_round(
            session,
            campaign_code="till-2022",
            opens_at=NEXT_OPENS,
            hours=12,
            stock={"general": 100, "pct": 100},
            mode=ClaimMode.FIRST_COME,
            clock=clock,
        )
    return opened


async def _history(till: Till, sessions: async_sessionmaker[AsyncSession]) -> str:
    """Round one: general vouchers are all spent at the restaurant, percentage vouchers never."""
    spender = await till.resident()
    for merchant in ("catering", "catering", "catering_2", "catering_2"):  # 3 a day per merchant at most
        voucher = await till.voucher("general", resident_id=spender)
        response = await till.redeem(till.body(voucher, merchant, order_amount_fen=20_000))
        assert response.status_code == 201, response.text
    for _ in range(4):
        await till.voucher("pct")
    till.clock.advance(timedelta(hours=1))
    async with unit_of_work(sessions) as session:
        await rollup.rollup(session, clock=till.clock)
    return spender


async def _stock(
    sessions: async_sessionmaker[AsyncSession], till: Till, round_id: str
) -> dict[str, tuple[int, int]]:
    """batch code -> (stock, remaining over its shards)."""
    codes = {batch_id: code for code, batch_id in till.batches.items()}
    async with unit_of_work(sessions) as session:
        stock = dict(
            (
                await session.execute(
                    select(RoundBatchRow.batch_id, RoundBatchRow.stock).where(
                        RoundBatchRow.round_id == round_id
                    )
                )
            ).all()
        )
        left = dict(
            (
                await session.execute(
                    select(StockShardRow.batch_id, func.sum(StockShardRow.remaining))
                    .where(StockShardRow.round_id == round_id)
                    .group_by(StockShardRow.batch_id)
                )
            ).all()
        )
    return {codes[batch_id]: (count, int(left[batch_id])) for batch_id, count in stock.items()}


async def test_the_planner_moves_stock_toward_vouchers_that_are_spent_and_the_admin_decides(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _history(till, sessions)
    url = f"/api/v1/staff/allocation/campaigns/{till.campaign_id}/plans"

    refused = await till.http.post(url, json={}, headers=as_(reviewer(Jurisdiction.YANJIANG)))
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    bad = await till.http.post(url, json={"max_change_bp": 20_001}, headers=as_(CITY))
    assert bad.status_code == 422

    proposed = await till.http.post(url, json={"max_change_bp": 2_000}, headers=as_(CITY))
    assert proposed.status_code == 201, proposed.text
    plan = proposed.json()
    lines = {line["batch"]: line for line in plan["lines"]}
    assert lines["general"]["planned"] == 100
    assert lines["general"]["proposed"] == 120  # spent vouchers: +20 %, the most allowed
    assert lines["pct"]["proposed"] == 80  # never spent: -20 %
    assert lines["general"]["figures"]["redemption_rate"] == 1.0
    assert lines["pct"]["figures"]["redemption_rate"] == 0.0
    assert "spent" in lines["general"]["explanation"]

    # The admin keeps more of the retail batch than proposed; an edit beyond the limit is refused.
    decision = f"/api/v1/staff/allocation/plans/{plan['id']}/decision"
    too_far = await till.http.post(
        decision, json={"accept": True, "stock": {"general": 130, "pct": 70}}, headers=as_(CITY)
    )
    assert too_far.status_code == 422
    assert too_far.json()["code"] == "invalid_allocation"
    accepted = await till.http.post(
        decision,
        json={"accept": True, "stock": {"general": 110, "pct": 90}, "note": "零售保底"},
        headers=as_(CITY),
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["applied_stock"] == {"general": 110, "pct": 90}
    again = await till.http.post(decision, json={"accept": False, "note": "late"}, headers=as_(CITY))
    assert again.status_code == 409
    assert again.json()["code"] == "plan_decided"

    assert await _stock(sessions, till, plan["round_id"]) == {"general": (110, 110), "pct": (90, 90)}
    async with unit_of_work(sessions) as session:
        actions = (
            await session.scalars(
                select(AuditRecordRow.action)
                .where(AuditRecordRow.object_id == plan["id"])
                .order_by(AuditRecordRow.id)
            )
        ).all()
    assert actions == ["allocation.proposed", "allocation.accepted"]


async def test_a_rejection_needs_a_reason_and_an_open_round_cannot_change(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _history(till, sessions)
    url = f"/api/v1/staff/allocation/campaigns/{till.campaign_id}/plans"
    plan = (await till.http.post(url, json={}, headers=as_(CITY))).json()
    decision = f"/api/v1/staff/allocation/plans/{plan['id']}/decision"
    silent = await till.http.post(decision, json={"accept": False}, headers=as_(CITY))
    assert silent.status_code == 422
    rejected = await till.http.post(decision, json={"accept": False, "note": "先观察一周"}, headers=as_(CITY))
    assert rejected.json()["status"] == "rejected"
    assert await _stock(sessions, till, plan["round_id"]) == {"general": (100, 100), "pct": (100, 100)}

    till.clock.advance(timedelta(minutes=5))
    second = (await till.http.post(url, json={}, headers=as_(CITY))).json()
    till.clock.set(NEXT_OPENS)
    late = await till.http.post(
        f"/api/v1/staff/allocation/plans/{second['id']}/decision", json={"accept": True}, headers=as_(CITY)
    )
    assert late.status_code == 409
    assert late.json()["code"] == "round_open"
    history = await till.http.get(url, headers=as_(CITY))
    assert [row["status"] for row in history.json()] == ["proposed", "rejected"]


async def test_offers_put_the_residents_habits_first_and_keep_every_batch(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    spender = await _history(till, sessions)
    offers = await till.app.get(f"/api/v1/residents/{spender}/offers")
    assert offers.status_code == 200, offers.text
    ranked = [offer["batch_code"] for offer in offers.json()]
    assert sorted(ranked) == sorted(till.batches)  # nothing hidden
    assert ranked[0] in ("general", "gross", "anyue")  # catering batches first: all they bought
    assert ranked.index("general") < ranked.index("pct")
    assert "earlier voucher" in offers.json()[0]["reason"]
    newcomer = await till.resident()
    plain = [
        offer["batch_code"] for offer in (await till.app.get(f"/api/v1/residents/{newcomer}/offers")).json()
    ]
    assert sorted(plain) == sorted(till.batches)
    unknown = await till.app.get("/api/v1/residents/res_nobody/offers")
    assert unknown.status_code == 404


async def test_the_city_admin_decides_in_the_console(
    app: FastAPI,
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    await _history(till, sessions)
    admin = await make_user(sessions, settings, clock, "city.wangfang", Role.CITY_ADMIN, display_name="王芳")
    browser = await signed_in(app, admin, clock)
    page = f"/console/allocation?campaign_id={till.campaign_id}"
    empty = await browser.http.get(page)
    assert empty.status_code == 200
    assert "尚无方案" in empty.text

    form = {"csrf_token": browser.csrf, "campaign_id": till.campaign_id}
    bad = await browser.http.post("/console/allocation/plans", data={**form, "max_change": "120%"})
    assert bad.status_code == 422
    assert 'data-error="invalid_limits"' in bad.text
    asked = await browser.http.post("/console/allocation/plans", data={**form, "max_change": "20%"})
    assert asked.status_code == 303
    shown = await browser.http.get(asked.headers["location"])
    assert 'name="stock.general" value="120"' in shown.text
    assert "Claimed 4 of 60 released" in shown.text  # the explanation, in figures
    plan_id = asked.headers["location"].rsplit("plan_id=", 1)[1]

    decision = f"/console/allocation/plans/{plan_id}/decision"
    too_far = await browser.http.post(
        decision,
        data={"csrf_token": browser.csrf, "decision": "accept", "stock.general": "150", "stock.pct": "80"},
    )
    assert too_far.status_code == 422
    assert 'data-error="invalid_allocation"' in too_far.text
    accepted = await browser.http.post(
        decision,
        data={"csrf_token": browser.csrf, "decision": "accept", "stock.general": "115", "stock.pct": "85"},
    )
    assert accepted.status_code == 303
    after = await browser.http.get(accepted.headers["location"])
    assert "data-plan-status>已采纳" in after.text
    assert await _stock(sessions, till, (await _plan_round(sessions, plan_id))) == {
        "general": (115, 115),
        "pct": (85, 85),
    }
    county = await make_user(
        sessions, settings, clock, "yj.zhang", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.YANJIANG
    )
    assert (await (await signed_in(app, county, clock)).http.get(page)).status_code == 403


async def _plan_round(sessions: async_sessionmaker[AsyncSession], plan_id: str) -> str:
    async with unit_of_work(sessions) as session:
        row = await session.get(AllocationPlanRow, plan_id)
        assert row is not None
        return row.round_id
