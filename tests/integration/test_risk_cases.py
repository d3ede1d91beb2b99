"""Alerts to cases over the staff API, on SQLite and PostgreSQL: who sees what (scope answers 404), the
lifecycle with its refused steps, referral to the police who then see the case, and the sanction that
expels the merchant through the merchants service (dishonest list, outbox event for the money side).
The alert list's score and local-day filters, within each caller's scope."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal, Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock, local_date, local_datetime
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.merchants.models import DishonestEntryRow, MerchantEventRow, MerchantRow
from huimin.risk import flows
from huimin.risk.domain import AlertStatus, Rule, SubjectKind
from huimin.risk.models import RiskAlertRow
from tests.integration import test_risk_scan as risk_scan
from tests.integration.merchant_helpers import CITY, OPERATOR, reviewer
from tests.integration.staff import as_
from tests.integration.till import Till

# the app with test principals, and the till with the risk settings for a handful of transactions
app = risk_scan.app
till = risk_scan.till
links, plant = risk_scan.links, risk_scan.plant

RISK = "/api/v1/staff/risk"
POLICE = Principal(actor_id="usr_police", role=Role.POLICE, name="市公安局 周警官")
REGULATOR = Principal(actor_id="usr_regulator", role=Role.MARKET_REGULATOR, name="市场监管局 赵敏")
HOTLINE = Principal(actor_id="usr_hotline", role=Role.HOTLINE, name="12345 孙丽")


async def scanned(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[str, Any]:
    ids = await plant(till)
    await flows.scan(sessions, links=links(settings), clock=till.clock)
    return ids


async def alert_of(http: httpx.AsyncClient, rule: str, subject_id: str) -> dict[str, Any]:
    response = await http.get(
        f"{RISK}/alerts", params={"rule": rule, "subject_id": subject_id}, headers=as_(OPERATOR)
    )
    assert response.status_code == 200, response.text
    [alert] = response.json()["items"]
    return dict(alert)


async def step(http: httpx.AsyncClient, case_id: str, who: Principal, **body: Any) -> httpx.Response:
    return await http.post(f"{RISK}/cases/{case_id}/transitions", json=body, headers=as_(who))


async def test_a_case_from_alert_to_referral_and_expulsion(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await scanned(till, sessions, settings)
    http, merchant_id = till.http, till.merchants["catering"]
    alert = await alert_of(http, "self_claim_self_redeem", merchant_id)
    assert alert["evidence"]["contact_phone_masked"] == "138****5678"

    # who sees the alert: monitoring staff and the county of the merchant; nobody else
    assert (
        await http.get(f"{RISK}/alerts/{alert['alert_id']}", headers=as_(reviewer(Jurisdiction.YANJIANG)))
    ).status_code == 200
    assert (
        await http.get(f"{RISK}/alerts/{alert['alert_id']}", headers=as_(reviewer(Jurisdiction.LEZHI)))
    ).status_code == 404
    assert (await http.get(f"{RISK}/alerts", headers=as_(HOTLINE))).status_code == 403
    assert (
        await http.get(f"{RISK}/alerts/{alert['alert_id']}", headers=as_(POLICE))
    ).status_code == 404  # not referred yet
    watch = (await http.get(f"{RISK}/watch-list", headers=as_(OPERATOR))).json()
    assert merchant_id in {entry["subject_id"] for entry in watch}

    opened = await http.post(
        f"{RISK}/cases",
        json={"alert_ids": [alert["alert_id"]], "title": "店主自领自核", "reason": "联系电话与领券人一致"},
        headers=as_(OPERATOR),
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    assert opened.json()["status"] == "open"
    again = await http.post(
        f"{RISK}/cases",
        json={"alert_ids": [alert["alert_id"]], "title": "重复", "reason": "x"},
        headers=as_(OPERATOR),
    )
    assert again.status_code == 422  # an alert belongs to one case

    refused = await step(http, case_id, OPERATOR, action="confirm", reason="属实")
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_transition"
    assert (
        await step(http, case_id, OPERATOR, action="investigate", reason="调取核销记录")
    ).status_code == 200
    assert (await step(http, case_id, OPERATOR, action="assign", assignee="李强")).status_code == 200
    assert (
        await step(http, case_id, OPERATOR, action="confirm", reason="店主本人手机领券并在本店核销")
    ).status_code == 200
    assert (
        await step(http, case_id, OPERATOR, action="refer", reason="涉嫌套现", department="police")
    ).status_code == 200

    # the police now see the case and its alert, read only
    seen = await http.get(f"{RISK}/cases", headers=as_(POLICE))
    assert [item["case_id"] for item in seen.json()["items"]] == [case_id]
    assert (await http.get(f"{RISK}/alerts/{alert['alert_id']}", headers=as_(POLICE))).status_code == 200
    assert (await http.get(f"{RISK}/cases/{case_id}", headers=as_(REGULATOR))).status_code == 404
    assert (await step(http, case_id, POLICE, action="note", reason="已受理")).status_code == 403

    # the operator may not sanction; the city expels
    assert (
        await step(http, case_id, OPERATOR, action="sanction", reason="x", measure="expel")
    ).status_code == 403
    sanctioned = await step(
        http, case_id, CITY, action="sanction", reason="查实套现，取消资格", measure="expel"
    )
    assert sanctioned.status_code == 200, sanctioned.text
    detail = sanctioned.json()
    assert (detail["status"], detail["measure"]) == ("sanctioned", "expel")
    assert [(t["action"], t["to_status"], t["actor_role"]) for t in detail["transitions"]] == [
        ("open", "open", "operator"),
        ("investigate", "investigating", "operator"),
        ("assign", "investigating", "operator"),
        ("confirm", "confirmed", "operator"),
        ("refer", "referred", "operator"),
        ("sanction", "sanctioned", "city_admin"),
    ]
    assert [r["department"] for r in detail["referrals"]] == ["police"]
    assert [a["status"] for a in detail["alerts"]] == ["confirmed"]
    assert detail["allowed_actions"] == ["note"]
    async with unit_of_work(sessions) as session:
        merchant = await session.get(MerchantRow, merchant_id)
        assert merchant is not None
        assert merchant.status == "expelled"
        events = (
            await session.scalars(
                select(MerchantEventRow.kind).where(MerchantEventRow.merchant_id == merchant_id)
            )
        ).all()
        assert "merchant.expelled" in events
        listed = await session.scalar(
            select(DishonestEntryRow).where(DishonestEntryRow.merchant_id == merchant_id)
        )
        assert listed is not None
        assert case_id in listed.reason
        audited = (
            await session.scalars(
                select(AuditRecordRow.action)
                .where(AuditRecordRow.object_id == case_id)
                .order_by(AuditRecordRow.id)
            )
        ).all()
    # Every step of the case is in the tamper-evident audit trail too (issue 9).
    assert audited == [
        "risk.case_open",
        "risk.case_investigate",
        "risk.case_assign",
        "risk.case_confirm",
        "risk.case_refer",
        "risk.case_sanction",
    ]


async def test_a_dismissed_case_takes_its_alerts_off_the_watch_list(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await scanned(till, sessions, settings)
    http, merchant_id = till.http, till.merchants["catering_2"]
    listed = {
        entry["subject_id"]: entry
        for entry in (await http.get(f"{RISK}/watch-list", headers=as_(CITY))).json()
    }
    assert set(listed[merchant_id]["rules"]) == {"split_orders", "threshold_hugging", "velocity"}
    alert_ids = [
        (await alert_of(http, rule, merchant_id))["alert_id"]
        for rule in ("split_orders", "threshold_hugging", "velocity")
    ]
    opened = await http.post(
        f"{RISK}/cases",
        json={"alert_ids": alert_ids, "title": "拆单嫌疑", "reason": "同一人连续核销"},
        headers=as_(CITY),
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    dismissed = await step(http, case_id, CITY, action="dismiss", reason="家庭聚餐分单结账，已电话核实")
    assert dismissed.json()["status"] == "dismissed"
    assert (await step(http, case_id, CITY, action="investigate", reason="重开")).status_code == 409
    watch = (await http.get(f"{RISK}/watch-list", headers=as_(CITY))).json()
    assert merchant_id not in {entry["subject_id"] for entry in watch}


async def _alert_now(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    campaign_id: str,
    subject_id: str,
    score: int,
    jurisdiction: Jurisdiction = Jurisdiction.YANJIANG,
    updated_at: datetime | None = None,
) -> str:
    """An alert raised now by the clock, as the scanner stores it (the scan has its own tests)."""
    now = clock.now()
    async with unit_of_work(sessions) as session:
        row = RiskAlertRow(
            id=new_id("alr"),
            campaign_id=campaign_id,
            rule=Rule.VELOCITY.value,
            subject_kind=SubjectKind.MERCHANT.value,
            subject_id=subject_id,
            jurisdiction=jurisdiction.value,
            period=local_date(now).isoformat(),
            status=AlertStatus.OPEN.value,
            score=score,
            figure=12,
            threshold=4,
            unit="per_hour",
            summary="12 redemptions in an hour",
            evidence={"redemption_count": 12},
            hits=1,
            raised_at=now,
            updated_at=updated_at or now,
            last_event_at=now,
        )
        session.add(row)
    return row.id


async def _listed(http: httpx.AsyncClient, who: Principal, **params: Any) -> list[str]:
    response = await http.get(f"{RISK}/alerts", params=params, headers=as_(who))
    assert response.status_code == 200, response.text
    return [item["subject_id"] for item in response.json()["items"]]


async def test_the_alert_list_filters_by_score_and_local_day_within_the_scope(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock, campaign_id = till.clock, till.campaign_id
    day = local_date(clock.now()) + timedelta(days=2)  # the day an investigator asks about

    async def raised(at: datetime, subject_id: str, score: int, **extra: Any) -> None:
        clock.set(at)
        await _alert_now(
            sessions, clock, campaign_id=campaign_id, subject_id=subject_id, score=score, **extra
        )

    # raised one second before the day, updated during it: the day it was raised counts
    await raised(
        local_datetime(day, time()) - timedelta(seconds=1),
        "eve",
        80,
        updated_at=local_datetime(day, time(10)),
    )
    await raised(local_datetime(day, time()), "midnight", 60)  # the first instant of the day, at the line
    await raised(local_datetime(day, time(12)), "below", 59)
    await raised(local_datetime(day, time(23, 30)), "late", 75)  # 15:30 UTC: still this Beijing day
    await raised(local_datetime(day, time(23, 30, 1)), "lezhi", 90, jurisdiction=Jurisdiction.LEZHI)
    await raised(local_datetime(day + timedelta(days=1), time()), "next", 95)
    http = till.http
    today = {"min_score": 60, "raised_from": day.isoformat(), "raised_to": day.isoformat()}

    assert await _listed(http, OPERATOR, **today) == ["lezhi", "late", "midnight"]
    late = (await http.get(f"{RISK}/alerts", params=today, headers=as_(OPERATOR))).json()["items"][1]
    assert late["raised_at"].startswith(f"{day.isoformat()}T15:30:00")  # UTC
    assert await _listed(http, OPERATOR, min_score=60) == ["next", "lezhi", "eve", "late", "midnight"]
    assert await _listed(http, OPERATOR, min_score=61) == ["next", "lezhi", "eve", "late"]
    assert await _listed(http, OPERATOR, min_score=0, raised_to=(day - timedelta(days=1)).isoformat()) == [
        "eve"
    ]
    assert await _listed(http, OPERATOR, raised_from=(day + timedelta(days=1)).isoformat()) == ["next"]
    assert await _listed(http, OPERATOR, raised_from=day.isoformat(), raised_to=day.isoformat()) == [
        "lezhi",
        "late",
        "midnight",
        "below",
    ]

    # the filters narrow the caller's scope, never widen it
    assert await _listed(http, reviewer(Jurisdiction.YANJIANG), **today) == ["late", "midnight"]
    assert await _listed(http, reviewer(Jurisdiction.LEZHI), **today) == ["lezhi"]
    assert await _listed(http, POLICE, **today) == []  # nothing referred to the police
    assert (await http.get(f"{RISK}/alerts", params=today, headers=as_(HOTLINE))).status_code == 403


async def test_the_alert_list_refuses_an_inverted_day_range_and_a_negative_score(till: Till) -> None:
    day = date(2022, 6, 24)
    inverted = await till.http.get(
        f"{RISK}/alerts",
        params={"raised_from": day.isoformat(), "raised_to": (day - timedelta(days=1)).isoformat()},
        headers=as_(OPERATOR),
    )
    assert inverted.status_code == 422
    assert inverted.json()["code"] == "invalid_request"
    assert [problem["field"] for problem in inverted.json()["problems"]] == ["raised_from"]
    same_day = await till.http.get(
        f"{RISK}/alerts",
        params={"raised_from": day.isoformat(), "raised_to": day.isoformat()},
        headers=as_(OPERATOR),
    )
    assert same_day.status_code == 200  # one day: from and to are both included
    negative = await till.http.get(f"{RISK}/alerts", params={"min_score": -1}, headers=as_(OPERATOR))
    assert negative.status_code == 422
    assert negative.json()["code"] == "invalid_request"
    not_a_day = await till.http.get(f"{RISK}/alerts", params={"raised_to": "6/24"}, headers=as_(OPERATOR))
    assert not_a_day.status_code == 422
    assert not_a_day.json()["code"] == "invalid_request"
