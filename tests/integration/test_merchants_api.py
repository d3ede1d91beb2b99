"""The merchant workflow through HTTP, on SQLite and on PostgreSQL.

The console's session layer is stood in for by a test middleware: it puts the principal named in the
`X-Test-Principal` header on the request, which `StaffDep` takes as the signed-in user.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import Workbook, load_workbook

from huimin.app import create_app
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.merchants.domain import MerchantStatus as Status
from huimin.merchants.models import MerchantRow
from tests.integration.merchant_helpers import (
    CITY,
    OPERATOR,
    credit_code,
    merchant_in,
    merchant_principal,
    new_campaign,
    reviewer,
)
from tests.integration.staff import accept_test_principals, as_

STAFF = "/api/v1/staff/merchants"


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


def invitation_body(campaign_id: str, serial: int, jurisdiction: str = "雁江区") -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "credit_code": credit_code(serial),
        "legal_name": f"资阳市测试商贸有限公司{serial}号店",
        "jurisdiction": jurisdiction,
        "category": "餐饮",
        "merchant_class": "限上",
        "registered_address": f"资阳市测试路{serial}号",
    }


def application_body(serial: int) -> dict[str, Any]:
    return {
        "registered_address": f"资阳市雁江区测试路{serial}号",
        "business_hours": "10:00-14:00, 17:00-22:00",
        "terminals": [f"T{serial:07d}"],
        "bank_name": "中国工商银行资阳分行",
        "bank_account": "6222 0212 3456 7890 123",
        "contact_name": "陈静",
        "contact_phone": "028-26123456",
    }


async def test_the_whole_workflow_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    campaign_id = await new_campaign(app.state.sessions, clock)
    county = reviewer(Jurisdiction.ANYUE)

    invited = await client.post(
        f"{STAFF}/invitations", json=invitation_body(campaign_id, 1, "安岳县"), headers=as_(CITY)
    )
    assert invited.status_code == 201, invited.text
    merchant = invited.json()
    merchant_id = merchant["id"]
    assert (merchant["status"], merchant["jurisdiction"]) == ("invited", {"code": "anyue", "label": "安岳县"})

    applied = await client.post(
        f"{STAFF}/{merchant_id}/application", json=application_body(1), headers=as_(OPERATOR)
    )
    assert applied.status_code == 200, applied.text
    detail = applied.json()
    assert detail["bank_account_masked"] == "622************0123"
    assert detail["contact_phone_masked"] == "028****3456"
    assert "bank_account" not in detail
    assert detail["business_hours"] == "10:00-14:00,17:00-22:00"
    assert detail["actions"] == ["apply", "submit"]

    assert (await client.post(f"{STAFF}/{merchant_id}/submit", headers=as_(OPERATOR))).status_code == 200
    listing = await client.get(
        STAFF, params={"campaign_id": campaign_id, "status": "submitted"}, headers=as_(county)
    )
    assert [item["id"] for item in listing.json()["items"]] == [merchant_id]
    approved = await client.post(
        f"{STAFF}/{merchant_id}/review",
        json={"decision": "approve", "reason": "材料齐全"},
        headers=as_(county),
    )
    assert approved.json()["status"] == "county_approved"

    published = await client.post(f"{STAFF}/final-list", json={"campaign_id": campaign_id}, headers=as_(CITY))
    assert published.json() == {"published": 1, "merchant_ids": [merchant_id]}

    commitment = (await client.get("/api/v1/merchants/commitment")).json()
    assert commitment["version"] == "v1"
    assert "变相加价" in commitment["text"]
    me = merchant_principal(merchant_id)
    committed = await client.post(
        f"{STAFF}/{merchant_id}/commitment",
        json={"version": "v1", "sha256": commitment["sha256"], "signatory": "陈静"},
        headers=as_(me),
    )
    assert committed.status_code == 200, committed.text
    body = committed.json()
    assert body["status"] == "active"
    assert body["commitment"]["sha256"] == commitment["sha256"]
    assert (body["commitment"]["signatory"], body["commitment"]["accepted_by_role"]) == ("陈静", "merchant")

    public = (await client.get("/api/v1/merchants", params={"district": "安岳县"})).json()
    assert [item["id"] for item in public["items"]] == [merchant_id]
    assert public["items"][0]["district"] == {"code": "anyue", "label": "安岳县"}

    for action, status in (("suspend", "suspended"), ("reinstate", "active"), ("expel", "expelled")):
        answer = await client.post(
            f"{STAFF}/{merchant_id}/{action}", json={"reason": "虚假交易"}, headers=as_(CITY)
        )
        assert answer.json()["status"] == status, answer.text
    assert (await client.get("/api/v1/merchants")).json()["total"] == 0

    history = (await client.get(f"{STAFF}/{merchant_id}", headers=as_(CITY))).json()["history"]
    assert [(step["action"], step["actor_role"]) for step in history] == [
        ("invite", "city_admin"),
        ("apply", "operator"),
        ("submit", "operator"),
        ("approve", "county_reviewer"),
        ("publish", "city_admin"),
        ("commit", "merchant"),
        ("suspend", "city_admin"),
        ("reinstate", "city_admin"),
        ("expel", "city_admin"),
    ]
    dishonest = (await client.get("/api/v1/staff/dishonest-list", headers=as_(CITY))).json()
    assert [entry["credit_code"] for entry in dishonest] == [credit_code(1)]

    later = await new_campaign(app.state.sessions, clock, "test-2023")
    refused = await client.post(f"{STAFF}/invitations", json=invitation_body(later, 1), headers=as_(CITY))
    assert refused.status_code == 409
    assert refused.json()["code"] == "merchant_dishonest"

    delisted = await client.post(
        f"/api/v1/staff/dishonest-list/{credit_code(1)}/delist",
        json={"reason": "复议撤销"},
        headers=as_(CITY),
    )
    assert delisted.json()["delist_reason"] == "复议撤销"
    again = await client.post(f"{STAFF}/invitations", json=invitation_body(later, 1), headers=as_(CITY))
    assert again.status_code == 201


async def test_refusals_carry_their_codes(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    campaign_id = await new_campaign(app.state.sessions, clock)
    yanjiang = await merchant_in(app.state.sessions, clock, campaign_id, Status.SUBMITTED, 1)

    unsigned = await client.get(STAFF)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "not_signed_in")
    assert (await client.post(f"{STAFF}/{yanjiang}/submit")).status_code == 401

    other_county = await client.post(
        f"{STAFF}/{yanjiang}/review", json={"decision": "approve"}, headers=as_(reviewer(Jurisdiction.LEZHI))
    )
    assert (other_county.status_code, other_county.json()["code"]) == (404, "unknown_merchant")
    assert (
        await client.get(f"{STAFF}/{yanjiang}", headers=as_(reviewer(Jurisdiction.LEZHI)))
    ).status_code == 404

    operator_reviews = await client.post(
        f"{STAFF}/{yanjiang}/review", json={"decision": "approve"}, headers=as_(OPERATOR)
    )
    assert (operator_reviews.status_code, operator_reviews.json()["code"]) == (403, "forbidden")

    too_early = await client.post(f"{STAFF}/{yanjiang}/suspend", json={"reason": "x"}, headers=as_(CITY))
    assert (too_early.status_code, too_early.json()["code"]) == (409, "invalid_transition")

    no_reason = await client.post(
        f"{STAFF}/{yanjiang}/review",
        json={"decision": "reject"},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "reason_required")

    # a client never sets a status, an id or an actor
    sneaky = await client.post(
        f"{STAFF}/invitations",
        json={**invitation_body(campaign_id, 2), "status": "active"},
        headers=as_(CITY),
    )
    assert (sneaky.status_code, sneaky.json()["code"]) == (422, "invalid_request")
    bad = await client.post(
        f"{STAFF}/invitations",
        json={**invitation_body(campaign_id, 3), "credit_code": credit_code(3)[:17] + "0", "legal_name": " "},
        headers=as_(CITY),
    )
    assert bad.status_code == 422
    assert [problem["field"] for problem in bad.json()["problems"]] == ["credit_code", "legal_name"]
    assert bad.json()["code"] == "invalid_invitation"


async def test_the_public_list_shows_active_merchants_by_category_and_district(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    sessions = app.state.sessions
    campaign_id = await new_campaign(sessions, clock)
    active = {
        jurisdiction: await merchant_in(sessions, clock, campaign_id, Status.ACTIVE, serial, jurisdiction)
        for serial, jurisdiction in enumerate(Jurisdiction, start=1)
    }
    await merchant_in(sessions, clock, campaign_id, Status.LISTED, 10)
    await merchant_in(sessions, clock, campaign_id, Status.SUSPENDED, 11)
    async with unit_of_work(sessions) as session:
        row = await session.get(MerchantRow, active[Jurisdiction.LEZHI])
        assert row is not None
        row.category = "retail"

    everything = (await client.get("/api/v1/merchants")).json()
    assert everything["total"] == 5
    assert set(everything["items"][0]) == {
        "id",
        "campaign_id",
        "name",
        "category",
        "address",
        "district",
        "jurisdiction",
        "business_hours",
    }
    yanjiang = (await client.get("/api/v1/merchants", params={"district": "雁江区"})).json()
    assert {item["id"] for item in yanjiang["items"]} == {
        active[Jurisdiction.YANJIANG],
        active[Jurisdiction.GAOXIN],
        active[Jurisdiction.LINKONG],
    }
    assert {item["district"]["label"] for item in yanjiang["items"]} == {"雁江区"}
    gaoxin = (await client.get("/api/v1/merchants", params={"district": "高新区"})).json()
    assert [item["id"] for item in gaoxin["items"]] == [active[Jurisdiction.GAOXIN]]
    retail = (await client.get("/api/v1/merchants", params={"category": "零售"})).json()
    assert [item["id"] for item in retail["items"]] == [active[Jurisdiction.LEZHI]]
    assert (
        await client.get("/api/v1/merchants", params={"category": "retail", "district": "安岳县"})
    ).json()["total"] == 0

    pages = [
        (await client.get("/api/v1/merchants", params={"page": page, "page_size": 2})).json()
        for page in (1, 2, 3)
    ]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert {item["id"] for page in pages for item in page["items"]} == set(active.values())
    assert all(page["total"] == 5 for page in pages)

    unknown = await client.get("/api/v1/merchants", params={"district": "成都市"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "invalid_request")
    assert (await client.get("/api/v1/merchants", params={"page_size": 1000})).status_code == 422


async def test_import_and_export_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    campaign_id = await new_campaign(app.state.sessions, clock)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["企业名称", "统一社会信用代码", "所属区县", "行业类别", "商家类型"])
    sheet.append(["一号店", credit_code(1), "乐至县", "零售", "限下抽样"])
    sheet.append(["", credit_code(2), "乐至县", "零售", "限下抽样"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    path = f"{STAFF}/invitations/import?campaign_id={campaign_id}&file_name={quote('邀约名单.xlsx')}"

    imported = await client.post(path, content=buffer.getvalue(), headers=as_(CITY))
    assert imported.status_code == 200, imported.text
    assert imported.json() == {
        "total_rows": 2,
        "invited": 1,
        "already_invited": 0,
        "rejected": [{"row": 3, "reason": "企业名称: empty name"}],
    }
    again = await client.post(path, content=buffer.getvalue(), headers=as_(CITY))
    assert again.json()["already_invited"] == 1
    wrong = await client.post(
        f"{STAFF}/invitations/import?campaign_id={campaign_id}&file_name=list.xls",
        content=b"x",
        headers=as_(CITY),
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_invitation_file")
    assert (await client.post(path, content=buffer.getvalue(), headers=as_(OPERATOR))).status_code == 403

    exported = await client.get(
        f"{STAFF}/final-list.xlsx",
        params={"campaign_id": campaign_id, "jurisdiction": "乐至县"},
        headers=as_(CITY),
    )
    assert exported.status_code == 200
    assert (
        exported.headers["content-type"]
        == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert exported.headers["content-disposition"].startswith("attachment; filename*=UTF-8''test-2022-")
    assert load_workbook(io.BytesIO(exported.content)).sheetnames == ["乐至县"]
    hidden = await client.get(
        f"{STAFF}/final-list.xlsx",
        params={"campaign_id": campaign_id, "jurisdiction": "乐至县"},
        headers=as_(reviewer(Jurisdiction.ANYUE)),
    )
    assert (hidden.status_code, hidden.json()["code"]) == (404, "unknown_jurisdiction")
