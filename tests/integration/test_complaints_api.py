"""Complaints through HTTP and the service layer, on SQLite and on PostgreSQL: from the hotline's
registration to resolution with its due date, overdue flag and risk case; every refused transition;
jurisdiction and department scope; a resident's complaint through the payment app; statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit.models import AuditRecordRow
from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Principal, Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.complaints import service
from huimin.complaints.domain import TRANSITIONS, Action, Category, ComplaintStatus
from huimin.complaints.models import ComplaintEventRow, ComplaintRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.merchants.domain import MerchantStatus
from tests.console_helpers import make_user
from tests.integration.complaint_helpers import (
    CITY,
    COUNTY_ANYUE,
    COUNTY_YANJIANG,
    HOTLINE,
    OPERATOR,
    REGULATOR,
    open_risk_case,
    staff_app,
)
from tests.integration.merchant_helpers import merchant_in, new_campaign
from tests.integration.staff import as_
from tests.support import SignedClient, resident_body

__all__ = ["staff_app"]

STAFF = "/api/v1/staff/complaints"
CALLER = "13912345678"


@pytest.fixture
def app(staff_app: FastAPI) -> FastAPI:
    return staff_app


async def test_hotline_registration_to_resolution_with_due_date_overdue_and_risk_case(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: ManualClock,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1)
    case_id = await open_risk_case(sessions, clock, campaign_id=campaign_id, merchant_id=merchant_id)
    handler = await make_user(sessions, settings, clock, "ops.zhang", Role.OPERATOR, display_name="银联 张敏")
    # Wednesday 2022-06-01 08:00 in Ziyang: 5 working days are Thu, Fri, Mon, Tue, Wed
    registered = await client.post(
        STAFF,
        json={
            "category": "suspected_cash_out",
            "text": "市民来电：该商户收券后直接退现金，疑似套现。",
            "merchant_id": merchant_id,
            "phone": CALLER,
        },
        headers=as_(HOTLINE),
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    complaint_id = body["id"]
    assert body["status"] == "registered"
    assert body["channel"] == "hotline"
    assert body["department"]["code"] == "operator_risk"
    assert body["jurisdiction"]["code"] == "yanjiang"
    assert body["risk_case_id"] == case_id
    assert body["campaign_id"] == campaign_id
    assert body["sla_days"] == 5
    assert datetime.fromisoformat(body["due_at"]) == datetime(
        2022, 6, 8, 16, 0, tzinfo=UTC
    )  # Thu 00:00 local
    assert body["overdue"] is False
    assert body["complainant_phone_masked"] == "139****5678"
    assert CALLER not in registered.text
    assert body["actions"] == []  # the hotline registers and, once resolved, closes; it does not handle

    operator = {**as_(OPERATOR)}
    assigned = await client.post(
        f"{STAFF}/{complaint_id}/assign", json={"assignee_id": handler.user.id}, headers=operator
    )
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["assignee_name"]) == ("assigned", "银联 张敏")
    started = await client.post(f"{STAFF}/{complaint_id}/start", json={}, headers=operator)
    assert started.json()["status"] == "in_progress"
    noted = await client.post(
        f"{STAFF}/{complaint_id}/notes", json={"text": "已调取该商户近7日核销记录"}, headers=operator
    )
    assert noted.status_code == 200, noted.text

    # one second before it is due, then past it
    clock.set(datetime(2022, 6, 8, 15, 59, 59, tzinfo=UTC))
    assert (await client.get(f"{STAFF}/{complaint_id}", headers=operator)).json()["overdue"] is False
    overdue = await client.get(STAFF, params={"overdue": "true"}, headers=operator)
    assert overdue.json()["total"] == 0
    clock.advance(timedelta(seconds=1))
    assert (await client.get(f"{STAFF}/{complaint_id}", headers=operator)).json()["overdue"] is True
    overdue = await client.get(STAFF, params={"overdue": "true"}, headers=operator)
    assert [item["id"] for item in overdue.json()["items"]] == [complaint_id]
    stats = (
        await client.get(f"{STAFF}/stats", params={"campaign_id": campaign_id}, headers=CITY_HEADERS)
    ).json()
    [by_category] = stats["by_category"]
    assert (by_category["code"], by_category["total"], by_category["open"], by_category["overdue"]) == (
        "suspected_cash_out",
        1,
        1,
        1,
    )
    assert stats["by_department"][0]["code"] == "operator_risk"
    assert stats["by_jurisdiction"][0]["label"] == "雁江区"

    refused = await client.post(f"{STAFF}/{complaint_id}/resolve", json={"text": " "}, headers=operator)
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_step")
    resolved = await client.post(
        f"{STAFF}/{complaint_id}/resolve",
        json={"text": "经核查属实，已并入风险案件，商户已暂停参与。"},
        headers=operator,
    )
    assert resolved.status_code == 200, resolved.text
    answer = resolved.json()
    assert (answer["status"], answer["overdue"], answer["resolved_late"]) == ("resolved", False, True)
    closed = await client.post(
        f"{STAFF}/{complaint_id}/close", json={"text": "已回访，市民满意"}, headers=as_(HOTLINE)
    )
    assert closed.status_code == 200, closed.text
    detail = closed.json()
    assert detail["status"] == "closed"
    assert detail["actions"] == []
    assert [event["action"] for event in detail["history"]] == [
        "register",
        "assign",
        "start",
        "note",
        "resolve",
        "close",
    ]
    assert detail["history"][0]["actor_role"] == "hotline"
    assert detail["history"][-1]["actor_name"] == "12345热线 刘洋"

    async with unit_of_work(sessions) as session:
        actions = set(
            await session.scalars(
                select(AuditRecordRow.action).where(AuditRecordRow.object_id == complaint_id)
            )
        )
    assert actions == {
        "complaint.register",
        "complaint.assign",
        "complaint.start",
        "complaint.note",
        "complaint.resolve",
        "complaint.close",
    }


CITY_HEADERS = as_(CITY)


async def test_a_complaint_is_linked_to_a_risk_case_later(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1)
    registered = await client.post(
        STAFF,
        json={"category": "suspected_cash_out", "text": "疑似套现", "merchant_id": merchant_id},
        headers=as_(HOTLINE),
    )
    complaint_id = registered.json()["id"]
    assert registered.json()["risk_case_id"] is None  # no case yet
    case_id = await open_risk_case(sessions, clock, campaign_id=campaign_id, merchant_id=merchant_id)
    forbidden = await client.post(
        f"{STAFF}/{complaint_id}/risk-case", json={"risk_case_id": case_id}, headers=as_(HOTLINE)
    )
    assert forbidden.status_code == 403
    unknown = await client.post(
        f"{STAFF}/{complaint_id}/risk-case", json={"risk_case_id": "rcs_nope"}, headers=as_(OPERATOR)
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_case")
    linked = await client.post(
        f"{STAFF}/{complaint_id}/risk-case", json={"risk_case_id": case_id}, headers=as_(OPERATOR)
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["risk_case_id"] == case_id
    assert linked.json()["history"][-1]["action"] == "link_risk_case"


async def _complaint_in(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    campaign_id: str,
    status: ComplaintStatus,
    assignee_id: str,
) -> str:
    async with unit_of_work(sessions) as session:
        row = await service.register(
            session,
            principal=HOTLINE,
            category=Category.CANNOT_CLAIM,
            text="领不到券",
            campaign_id=campaign_id,
            hasher=settings.hasher,
            policy=service.ComplaintPolicy(),
            clock=clock,
        )
    path = {
        ComplaintStatus.REGISTERED: [],
        ComplaintStatus.ASSIGNED: [Action.ASSIGN],
        ComplaintStatus.IN_PROGRESS: [Action.ASSIGN, Action.START],
        ComplaintStatus.RESOLVED: [Action.ASSIGN, Action.START, Action.RESOLVE],
        ComplaintStatus.CLOSED: [Action.ASSIGN, Action.START, Action.RESOLVE, Action.CLOSE],
    }[status]
    for action in path:
        async with unit_of_work(sessions) as session:
            await service.step(
                session,
                principal=OPERATOR,
                complaint_id=row.id,
                action=action,
                text="已处理",
                assignee_id=assignee_id,
                clock=clock,
            )
    return row.id


async def test_every_refused_transition_changes_nothing(
    clock: ManualClock, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    handler = await make_user(sessions, settings, clock, "ops.li", Role.OPERATOR)
    refused = 0
    for status in ComplaintStatus:
        complaint_id = await _complaint_in(sessions, settings, clock, campaign_id, status, handler.user.id)
        for action, (sources, _) in TRANSITIONS.items():
            if status in sources:
                continue
            async with unit_of_work(sessions) as session:
                events = len(
                    (
                        await service.get_complaint(
                            session, principal=CITY, complaint_id=complaint_id, clock=clock
                        )
                    ).history
                )
            with pytest.raises(HuiminError) as error:
                async with unit_of_work(sessions) as session:
                    await service.step(
                        session,
                        principal=OPERATOR,
                        complaint_id=complaint_id,
                        action=action,
                        text="再试一次",
                        assignee_id=handler.user.id,
                        clock=clock,
                    )
            assert (error.value.code, error.value.status) == ("invalid_transition", 409), (status, action)
            async with unit_of_work(sessions) as session:
                row = await session.get(ComplaintRow, complaint_id)
                assert row is not None
                assert row.status == status.value
                count = len(
                    (
                        await session.scalars(
                            select(ComplaintEventRow).where(ComplaintEventRow.complaint_id == complaint_id)
                        )
                    ).all()
                )
                assert count == events
            refused += 1
    assert refused == len(ComplaintStatus) * len(TRANSITIONS) - 7
    # a note on a closed complaint is refused too
    with pytest.raises(HuiminError) as closed:
        async with unit_of_work(sessions) as session:
            await service.add_note(
                session, principal=OPERATOR, complaint_id=complaint_id, text="补充", clock=clock
            )
    assert closed.value.code == "complaint_closed"


async def test_scope_by_jurisdiction_and_department(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: ManualClock,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    anyue_merchant = await merchant_in(
        sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1, Jurisdiction.ANYUE
    )
    anyue_user = await make_user(
        sessions, settings, clock, "anyue.wang", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.ANYUE
    )
    yanjiang_user = await make_user(
        sessions, settings, clock, "yanjiang.li", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.YANJIANG
    )
    registered = await client.post(
        STAFF,
        json={
            "category": "merchant_refused_voucher",
            "text": "商家拒收消费券",
            "merchant_id": anyue_merchant,
        },
        headers=as_(PBOC_PRINCIPAL),
    )
    assert registered.status_code == 201, registered.text
    complaint_id = registered.json()["id"]
    assert (registered.json()["department"]["code"], registered.json()["jurisdiction"]["code"]) == (
        "county_commerce",
        "anyue",
    )

    # another county: it does not exist
    for method, path, body in (
        ("GET", f"{STAFF}/{complaint_id}", None),
        ("POST", f"{STAFF}/{complaint_id}/start", {}),
        ("POST", f"{STAFF}/{complaint_id}/notes", {"text": "x"}),
    ):
        answer = await client.request(method, path, json=body, headers=as_(COUNTY_YANJIANG))
        assert (answer.status_code, answer.json()["code"]) == (404, "unknown_complaint"), path
    assert (await client.get(STAFF, headers=as_(COUNTY_YANJIANG))).json()["total"] == 0
    # the market regulator neither handles it nor registered it: not in its scope
    assert (await client.get(f"{STAFF}/{complaint_id}", headers=as_(REGULATOR))).status_code == 404
    # the hotline did not register it either
    assert (await client.get(f"{STAFF}/{complaint_id}", headers=as_(HOTLINE))).status_code == 404
    # the PBOC registered it: it sees it, but does not handle it
    seen = await client.get(f"{STAFF}/{complaint_id}", headers=as_(PBOC_PRINCIPAL))
    assert (seen.status_code, seen.json()["actions"]) == (200, [])
    refused = await client.post(
        f"{STAFF}/{complaint_id}/assign",
        json={"assignee_id": anyue_user.user.id},
        headers=as_(PBOC_PRINCIPAL),
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    # its own county handles it, and assigns only to its own people
    wrong = await client.post(
        f"{STAFF}/{complaint_id}/assign",
        json={"assignee_id": yanjiang_user.user.id},
        headers=as_(COUNTY_ANYUE),
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_assignee")
    right = await client.post(
        f"{STAFF}/{complaint_id}/assign", json={"assignee_id": anyue_user.user.id}, headers=as_(COUNTY_ANYUE)
    )
    assert right.status_code == 200, right.text
    listed = await client.get(STAFF, headers=as_(COUNTY_ANYUE))
    assert [item["id"] for item in listed.json()["items"]] == [complaint_id]
    stats = (await client.get(f"{STAFF}/stats", headers=as_(COUNTY_YANJIANG))).json()
    assert stats["by_category"] == []
    # roles without complaints at all
    police = Principal(actor_id="usr_police", role=Role.POLICE, name="公安")
    assert (await client.get(STAFF, headers=as_(police))).status_code == 403
    assert (
        await client.post(
            STAFF, json={"category": "other", "text": "x", "campaign_id": campaign_id}, headers=as_(CITY)
        )
    ).status_code == 403


PBOC_PRINCIPAL = Principal(actor_id="usr_pboc", role=Role.PBOC, name="人行 孙丽")


async def test_registration_refusals(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    cases = [
        ({"category": "other", "text": "x"}, 422, "invalid_complaint"),  # no campaign
        (
            {"category": "other", "text": "x", "campaign_id": campaign_id, "phone": "123"},
            422,
            "invalid_complaint",
        ),
        ({"category": "other", "text": "x", "merchant_id": "mch_nope"}, 404, "unknown_merchant"),
        ({"category": "other", "text": "x", "voucher_code": "NOPE"}, 404, "unknown_voucher"),
        ({"category": "nonsense", "text": "x", "campaign_id": campaign_id}, 422, "invalid_request"),
        (
            {"category": "other", "text": "x", "campaign_id": campaign_id, "status": "closed"},
            422,
            "invalid_request",
        ),
        ({"category": "other", "text": "x", "campaign_id": "cmp_nope"}, 404, "unknown_campaign"),
    ]
    for body, status, code in cases:
        answer = await client.post(STAFF, json=body, headers=as_(HOTLINE))
        assert (answer.status_code, answer.json()["code"]) == (status, code), body


async def test_a_resident_complains_through_the_payment_app(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: ManualClock,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    sealer = partner_sealer(settings.secret_key.get_secret_value())
    async with unit_of_work(sessions) as session:
        created = await create_partner(
            session, name="云闪付", kind=PartnerKind.APP, sealer=sealer, clock=clock
        )
        other = await create_partner(
            session, name="另一个应用", kind=PartnerKind.APP, sealer=sealer, clock=clock
        )
    app_client = SignedClient(client, key_id=created.partner.key_id, secret=created.secret, clock=clock)
    other_client = SignedClient(client, key_id=other.partner.key_id, secret=other.secret, clock=clock)
    resident = await app_client.post("/api/v1/residents", resident_body(7))
    resident_id = resident.json()["resident_id"]
    path = f"/api/v1/residents/{resident_id}/complaints"

    sent = await app_client.post(
        path, {"category": "cannot_claim", "text": "点击领取一直转圈", "campaign_id": campaign_id}
    )
    assert sent.status_code == 201, sent.text
    answer = sent.json()
    assert (answer["status"], answer["department"]["code"]) == ("registered", "operator")
    assert (
        await other_client.post(path, {"category": "other", "text": "x", "campaign_id": campaign_id})
    ).status_code == 404
    assert (await client.post(path, json={"category": "other", "text": "x"})).status_code == 401
    unknown = await app_client.post(
        path, {"category": "other", "text": "x", "campaign_id": campaign_id, "extra": 1}
    )
    assert unknown.status_code == 422
    mine = await app_client.get(path)
    assert [item["id"] for item in mine.json()] == [answer["id"]]

    # staff see it with the resident's phone masked; the operator finds the caller's complaints by number
    detail = (await client.get(f"{STAFF}/{answer['id']}", headers=as_(OPERATOR))).json()
    assert detail["channel"] == "resident_app"
    assert detail["complainant_phone_masked"] == "138****0007"
    by_phone = await client.get(STAFF, params={"phone": "13800000007"}, headers=as_(OPERATOR))
    assert by_phone.json()["total"] == 1
    assert "13800000007" not in by_phone.text
