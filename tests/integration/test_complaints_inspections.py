"""Market-regulation inspections and public announcements through HTTP, on SQLite and PostgreSQL: a
finding notified to the city commerce bureau, which suspends the merchant from it; announcements
published by the publicity department and read by anyone."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.models import MerchantRow
from tests.integration.complaint_helpers import (
    CITY,
    COUNTY_ANYUE,
    COUNTY_YANJIANG,
    HOTLINE,
    PUBLICITY,
    REGULATOR,
    staff_app,
)
from tests.integration.merchant_helpers import merchant_in, new_campaign
from tests.integration.staff import as_

__all__ = ["staff_app"]

INSPECTIONS = "/api/v1/staff/inspections"


@pytest.fixture
def app(staff_app: FastAPI) -> FastAPI:
    return staff_app


async def test_a_finding_reaches_the_city_which_suspends_the_merchant(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1)
    assert (await client.get(f"{INSPECTIONS}/inbox", headers=as_(CITY))).json()["unread"] == 0

    body = {
        "merchant_id": merchant_id,
        "kind": "prices",
        "severity": "severe",
        "description": "用券前先提价：同一商品标价由88元调至118元（变相加价）",
    }
    assert (await client.post(INSPECTIONS, json=body, headers=as_(CITY))).status_code == 403
    recorded = await client.post(INSPECTIONS, json=body, headers=as_(REGULATOR))
    assert recorded.status_code == 201, recorded.text
    finding_id = recorded.json()["id"]
    assert (recorded.json()["status"], recorded.json()["jurisdiction"]) == ("open", "yanjiang")

    inbox = (await client.get(f"{INSPECTIONS}/inbox", headers=as_(CITY))).json()
    assert inbox["unread"] == 1
    assert [item["id"] for item in inbox["items"]] == [finding_id]
    # a county sees its own merchants' findings only
    assert (await client.get(f"{INSPECTIONS}/{finding_id}", headers=as_(COUNTY_YANJIANG))).status_code == 200
    other = await client.get(f"{INSPECTIONS}/{finding_id}", headers=as_(COUNTY_ANYUE))
    assert (other.status_code, other.json()["code"]) == (404, "unknown_finding")
    assert (await client.get(INSPECTIONS, headers=as_(COUNTY_ANYUE))).json()["total"] == 0
    # only the commerce bureau decides
    refused = await client.post(
        f"{INSPECTIONS}/{finding_id}/suspend-merchant", json={"reason": "x"}, headers=as_(REGULATOR)
    )
    assert refused.status_code == 403

    clock.advance(timedelta(hours=2))
    suspended = await client.post(
        f"{INSPECTIONS}/{finding_id}/suspend-merchant",
        json={"reason": "查实变相加价，暂停参与活动"},
        headers=as_(CITY),
    )
    assert suspended.status_code == 200, suspended.text
    finding = suspended.json()
    assert (finding["status"], finding["decided_by"]) == ("merchant_suspended", "市商务局 王芳")
    assert finding["read_at"] is not None
    assert (await client.get(f"{INSPECTIONS}/inbox", headers=as_(CITY))).json()["unread"] == 0
    merchant = (await client.get(f"/api/v1/staff/merchants/{merchant_id}", headers=as_(CITY))).json()
    assert merchant["status"] == "suspended"
    assert finding_id in merchant["history"][-1]["reason"]
    assert merchant["history"][-1]["actor_role"] == "city_admin"

    again = await client.post(
        f"{INSPECTIONS}/{finding_id}/no-action", json={"reason": "已整改"}, headers=as_(CITY)
    )
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")


async def test_suspending_a_merchant_that_is_not_active_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(
        sessions, clock, campaign_id, MerchantStatus.LISTED, 1, Jurisdiction.LEZHI
    )
    recorded = await client.post(
        INSPECTIONS,
        json={
            "merchant_id": merchant_id,
            "kind": "food_hygiene",
            "severity": "major",
            "description": "后厨未分区",
        },
        headers=as_(REGULATOR),
    )
    finding_id = recorded.json()["id"]
    refused = await client.post(
        f"{INSPECTIONS}/{finding_id}/suspend-merchant", json={"reason": "卫生不达标"}, headers=as_(CITY)
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")
    assert (await client.get(f"{INSPECTIONS}/{finding_id}", headers=as_(CITY))).json()["status"] == "open"
    async with unit_of_work(sessions) as session:
        row = await session.get(MerchantRow, merchant_id)
        assert row is not None
        assert row.status == MerchantStatus.LISTED
    read = await client.post(f"{INSPECTIONS}/{finding_id}/read", headers=as_(CITY))
    assert read.json()["read_at"] is not None
    decided = await client.post(
        f"{INSPECTIONS}/{finding_id}/no-action", json={"reason": "已当场整改"}, headers=as_(CITY)
    )
    assert decided.json()["status"] == "no_action"


async def test_announcements_are_published_by_publicity_and_read_by_anyone(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    staff = "/api/v1/staff/announcements"
    body = {
        "kind": "rules",
        "title": "“嗨购资阳·惠民共享”消费券使用规则",
        "body": "每人每场限领一张；满100元减30元；领取后7日内有效。",
        "campaign_id": campaign_id,
    }
    assert (await client.post(staff, json=body, headers=as_(HOTLINE))).status_code == 403
    created = await client.post(staff, json=body, headers=as_(PUBLICITY))
    assert created.status_code == 201, created.text
    rules_id = created.json()["id"]
    assert (await client.get("/api/v1/announcements")).json()["total"] == 0  # a draft
    assert (await client.get(f"/api/v1/announcements/{rules_id}")).status_code == 404

    published = await client.post(f"{staff}/{rules_id}/publish", json={}, headers=as_(PUBLICITY))
    assert published.json()["status"] == "published"
    notice = await client.post(
        staff, json={"title": "第二场7月1日10:00开抢", "body": "敬请关注。"}, headers=as_(PUBLICITY)
    )
    later = (clock.now() + timedelta(days=1)).isoformat()
    await client.post(
        f"{staff}/{notice.json()['id']}/publish", json={"published_at": later}, headers=as_(PUBLICITY)
    )

    public = await client.get("/api/v1/announcements")  # no sign-in
    assert public.status_code == 200
    assert [item["id"] for item in public.json()["items"]] == [rules_id]  # the other is scheduled
    assert public.json()["items"][0]["kind_label"] == "活动规则"
    assert "status" not in public.json()["items"][0]
    clock.advance(timedelta(days=1))
    assert (await client.get("/api/v1/announcements")).json()["total"] == 2
    assert (await client.get("/api/v1/announcements", params={"kind": "rules"})).json()["total"] == 1

    withdrawn = await client.post(f"{staff}/{rules_id}/unpublish", headers=as_(PUBLICITY))
    assert withdrawn.json()["status"] == "withdrawn"
    again = await client.post(f"{staff}/{rules_id}/unpublish", headers=as_(PUBLICITY))
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    assert (await client.get(f"/api/v1/announcements/{rules_id}")).status_code == 404
    assert (await client.get("/api/v1/announcements")).json()["total"] == 1
    everything = await client.get(staff, headers=as_(PUBLICITY))
    assert everything.json()["total"] == 2
