"""The console's risk, complaint, inspection and announcement pages, the till's refunds and the resident
page's announcements, through HTTP on SQLite and PostgreSQL: the authorization matrix of these pages and
forms (every role, another jurisdiction's ids: 404, never data), pages in Chinese and English, the
actions changing state and writing audit records, and no unmasked phone or ID number on any page.

Issue #9's "a complaint moves from hotline registration to resolution with its due date, overdue flag
and link to a risk case, through API and console": the console half is
`test_a_complaint_from_hotline_registration_to_resolution`; the API half is in test_complaints_api.py."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.announcements import service as announcements
from huimin.announcements.domain import Action as AnnouncementAction
from huimin.announcements.domain import AnnouncementKind
from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Role
from huimin.complaints import service as complaints
from huimin.complaints.domain import Category
from huimin.complaints.models import ComplaintRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock, local_datetime
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.risk import service as risk
from huimin.risk.domain import AlertStatus, Rule, SubjectKind
from huimin.risk.models import RiskAlertRow, RiskCaseRow, RiskCaseTransitionRow
from huimin.supervision import service as supervision
from huimin.supervision.domain import FindingKind, Severity
from tests.console_helpers import make_user
from tests.integration.complaint_helpers import HOTLINE, OPERATOR, PUBLICITY, REGULATOR
from tests.integration.test_console_pages import (
    EVERY_ROLE,
    Browser,
    World,
    _client,
    assert_page_is_clean,
    clock,
    signed_in,
    world,
)
from tests.integration.till import Till, open_till

__all__ = ["clock", "world"]  # the authorization matrix's world, shared with test_console_pages.py

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
CALLER = "13912345678"
CITY, COUNTY, OPS = Role.CITY_ADMIN, Role.COUNTY_REVIEWER, Role.OPERATOR
REG, POLICE, PBOC, LINE, PUB = Role.MARKET_REGULATOR, Role.POLICE, Role.PBOC, Role.HOTLINE, Role.PUBLICITY


def assert_masked(text: str, where: str) -> None:
    assert not MOBILE.search(text), f"{where} shows a mobile number: {MOBILE.search(text)}"
    assert not ID_NUMBER.search(text), f"{where} shows an ID number: {ID_NUMBER.search(text)}"


async def _alert(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    campaign_id: str,
    merchant_id: str,
    jurisdiction: Jurisdiction,
    rule: Rule = Rule.THRESHOLD_HUGGING,
    period: str = "2022-06-24",
    evidence: dict[str, object] | None = None,
    score: int = 45,
) -> str:
    """An alert raised now by the clock, as the scanner stores it (the rules have their own tests), about
    a merchant."""
    now = clock.now()
    async with unit_of_work(sessions) as session:
        row = RiskAlertRow(
            id=new_id("alr"),
            campaign_id=campaign_id,
            rule=rule.value,
            subject_kind=SubjectKind.MERCHANT.value,
            subject_id=merchant_id,
            jurisdiction=jurisdiction.value,
            period=period,
            status=AlertStatus.OPEN.value,
            score=score,
            figure=9000,
            threshold=7000,
            unit="bp",
            summary="9 of 10 threshold redemptions just above the threshold",
            evidence=evidence
            or {
                "contact_phone_masked": "138****5678",
                "redemption_ids": ["rdm_evidence_1", "rdm_evidence_2"],
                "redemptions": [
                    {"redemption_id": "rdm_evidence_1", "person_id": "prs_1", "linked_by": ["phone"]}
                ],
                "devices": ["a1b2c3d4e5f6"],
                "hugging": 9,
            },
            hits=1,
            raised_at=now,
            updated_at=now,
            last_event_at=now,
        )
        session.add(row)
    return row.id


@dataclass(frozen=True)
class Scene:
    world: World
    alert_own: str  # about `shop` (雁江区)
    alert_own_2: str
    alert_other: str  # about `shop_other` (安岳县), in `case_other`
    case_other: str
    complaint_own: str  # about `shop`, routed to 雁江区's commerce office
    complaint_other: str  # about `shop_other`
    finding_own: str
    finding_other: str
    published: str
    withdrawn: str


@pytest.fixture
async def scene(
    world: World, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> Scene:
    alert_own = await _alert(
        sessions,
        clock,
        campaign_id=world.campaign_id,
        merchant_id=world.shop,
        jurisdiction=Jurisdiction.YANJIANG,
    )
    alert_own_2 = await _alert(
        sessions,
        clock,
        campaign_id=world.campaign_id,
        merchant_id=world.shop,
        jurisdiction=Jurisdiction.YANJIANG,
        rule=Rule.OFF_HOURS,
    )
    alert_other = await _alert(
        sessions,
        clock,
        campaign_id=world.campaign_id,
        merchant_id=world.shop_other,
        jurisdiction=Jurisdiction.ANYUE,
    )
    policy = complaints.ComplaintPolicy()
    async with unit_of_work(sessions) as session:
        case = await risk.open_case(
            session,
            principal=OPERATOR,
            alert_ids=[alert_other],
            title="安岳疑似套现",
            reason="核查",
            clock=clock,
        )
        filed = []
        for merchant in (world.shop, world.shop_other):
            row = await complaints.register(
                session,
                principal=HOTLINE,
                category=Category.MERCHANT_REFUSED_VOUCHER,
                text="商家拒收消费券",
                merchant_id=merchant,
                phone=CALLER,
                hasher=settings.hasher,
                policy=policy,
                clock=clock,
            )
            filed.append(row.id)
        findings = []
        for merchant in (world.shop, world.shop_other):
            finding = await supervision.record_finding(
                session,
                principal=REGULATOR,
                merchant_id=merchant,
                kind=FindingKind.PRICES,
                severity=Severity.MAJOR,
                description="先提价后打折",
                clock=clock,
            )
            findings.append(finding.id)
        notices = []
        for title in ("第二轮消费券发放公告", "已撤回的公告"):
            notice = await announcements.create(
                session,
                principal=PUBLICITY,
                kind=AnnouncementKind.ANNOUNCEMENT,
                title=title,
                body=f"{title}正文",
                clock=clock,
            )
            await announcements.step(
                session,
                principal=PUBLICITY,
                announcement_id=notice.id,
                action=AnnouncementAction.PUBLISH,
                clock=clock,
            )
            notices.append(notice.id)
        await announcements.step(
            session,
            principal=PUBLICITY,
            announcement_id=notices[1],
            action=AnnouncementAction.UNPUBLISH,
            clock=clock,
        )
    return Scene(
        world,
        alert_own,
        alert_own_2,
        alert_other,
        case.case.id,
        filed[0],
        filed[1],
        findings[0],
        findings[1],
        notices[0],
        notices[1],
    )


def _routes(scene: Scene) -> list[tuple[str, frozenset[Role], frozenset[Role]]]:
    """(path, roles shown the page, roles answered 404: the object is outside their scope)."""
    nobody: frozenset[Role] = frozenset()
    monitors = frozenset({CITY, COUNTY, OPS})
    receivers = frozenset({REG, POLICE})
    readers = frozenset({CITY, COUNTY, OPS, REG, PBOC, LINE, PUB})
    world = scene.world
    return [
        ("/console/risk", monitors | receivers, nobody),
        (
            "/console/risk?rule=threshold_hugging&status=open&subject_kind=merchant",
            monitors | receivers,
            nobody,
        ),
        (
            "/console/risk?min_score=45&raised_from=2022-06-24&raised_to=2022-06-24",
            monitors | receivers,
            nobody,
        ),
        ("/console/risk?min_score=&raised_from=&raised_to=", monitors | receivers, nobody),  # an empty form
        ("/console/risk/watch-list", monitors, nobody),
        ("/console/risk/watch-list?min_score=10", monitors, nobody),
        ("/console/risk/watch-list?campaign_id=&min_score=", monitors, nobody),  # the form sent empty
        ("/console/risk/cases", monitors | receivers, nobody),
        (f"/console/risk/alerts/{scene.alert_own}", monitors, receivers),
        (f"/console/risk/alerts/{scene.alert_other}", frozenset({CITY, OPS}), receivers | {COUNTY}),
        (f"/console/risk/cases/{scene.case_other}", frozenset({CITY, OPS}), receivers | {COUNTY}),
        ("/console/complaints", readers, nobody),
        ("/console/complaints?overdue=yes&category=other&status=registered", readers, nobody),
        ("/console/complaints/stats", readers, nobody),
        ("/console/complaints/new", frozenset({REG, PBOC, LINE}), nobody),
        (
            f"/console/complaints/{scene.complaint_own}",
            frozenset({CITY, COUNTY, PUB, LINE}),
            frozenset({REG, OPS, PBOC}),
        ),
        (
            f"/console/complaints/{scene.complaint_other}",
            frozenset({CITY, PUB, LINE}),
            frozenset({COUNTY, REG, OPS, PBOC}),
        ),
        ("/console/inspections", frozenset({CITY, COUNTY, REG}), nobody),
        ("/console/inspections/new", frozenset({REG}), nobody),
        (f"/console/inspections/{scene.finding_own}", frozenset({CITY, COUNTY, REG}), nobody),
        (f"/console/inspections/{scene.finding_other}", frozenset({CITY, REG}), frozenset({COUNTY})),
        ("/console/announcements", frozenset({PUB}), nobody),
        ("/console/till/refunds", frozenset({Role.MERCHANT}), nobody),
        (f"/console/till/refunds/{world.redemption}", nobody, frozenset({Role.MERCHANT})),  # not its shop's
    ]


async def test_every_page_for_every_role_in_both_languages(
    app: FastAPI, scene: Scene, clock: ManualClock
) -> None:
    routes = _routes(scene)
    anonymous = _client(app)
    for path, _, _ in routes:
        response = await anonymous.get(path)
        assert response.status_code == 303, path
    for role in EVERY_ROLE:
        browser = await signed_in(app, scene.world.users[role], clock)
        for path, shown, hidden in routes:
            response = await browser.http.get(path)
            expected = 200 if role in shown else 404 if role in hidden else 403
            assert response.status_code == expected, (role, path, response.status_code)
            assert_page_is_clean(response)
            assert_masked(response.text, f"{role} {path}")
            if expected != 200:
                assert "错误代码" in response.text
                for secret in ("安岳疑似套现", "先提价后打折", "商家拒收消费券"):
                    assert secret not in response.text, (role, path)
                continue
            english = await browser.http.get(path + ("&" if "?" in path else "?") + "lang=en")
            assert english.status_code == 200
            assert 'lang="en"' in english.text
            assert not re.search(r"<title>[^<]*[\u4e00-\u9fff]", english.text), (role, path)
            await browser.http.get("/console/overview?lang=zh")  # back to Chinese for the next page


async def test_the_navigation_offers_these_pages_by_role(
    app: FastAPI, scene: Scene, clock: ManualClock
) -> None:
    expected = {
        CITY: {"/console/risk", "/console/complaints", "/console/inspections"},
        COUNTY: {"/console/risk", "/console/complaints", "/console/inspections"},
        OPS: {"/console/risk", "/console/complaints"},
        REG: {"/console/risk/cases", "/console/complaints", "/console/inspections"},
        POLICE: {"/console/risk/cases"},
        LINE: {"/console/complaints"},
        PUB: {"/console/complaints", "/console/announcements"},
        Role.FINANCE: set(),
    }
    mine = {
        "/console/risk",
        "/console/risk/cases",
        "/console/complaints",
        "/console/inspections",
        "/console/announcements",
    }
    for role, hrefs in expected.items():
        browser = await signed_in(app, scene.world.users[role], clock)
        page = (await browser.http.get("/console/overview")).text
        nav = page.split('class="sidenav"', 1)[1].split("</nav>", 1)[0]
        shown = {href for href in mine if f'href="{href}"' in nav}
        assert shown == hrefs, role


@dataclass(frozen=True)
class Form:
    path: str
    data: dict[str, str]
    allowed: frozenset[Role]  # answered with the form again, refused as invalid: nothing changes
    hidden: frozenset[Role] = frozenset()  # 404
    refused: int = 422


def _forms(scene: Scene) -> list[Form]:
    return [
        Form("/console/complaints", {"category": "other", "text": " "}, frozenset({REG, PBOC, LINE})),
        Form(
            "/console/risk/cases",
            {"alert_id": scene.alert_own, "title": "", "reason": "x"},
            frozenset({CITY, OPS}),
        ),
        Form(
            f"/console/risk/cases/{scene.case_other}/steps",
            {"action": "confirm", "reason": "x"},  # an open case is investigated before it is confirmed
            frozenset({CITY, OPS}),
            refused=409,
        ),
        Form(
            f"/console/complaints/{scene.complaint_own}/steps",
            {"action": "resolve", "text": "x"},  # registered: not in progress yet
            frozenset({CITY, COUNTY}),
            frozenset({REG, OPS, PBOC}),
            refused=409,
        ),
        Form(
            f"/console/complaints/{scene.complaint_other}/notes",
            {"text": " "},
            frozenset({CITY}),
            frozenset({COUNTY, REG, OPS, PBOC}),
        ),
        Form("/console/inspections", {"merchant_id": scene.world.shop, "kind": "prices"}, frozenset({REG})),
        Form(
            f"/console/inspections/{scene.finding_own}/decision",
            {"decision": "suspend", "reason": ""},
            frozenset({CITY}),
        ),
        Form("/console/announcements", {"kind": "announcement", "title": "", "body": ""}, frozenset({PUB})),
        Form(
            f"/console/announcements/{scene.withdrawn}/unpublish",
            {},
            frozenset({PUB}),
            refused=409,
        ),
        Form(
            f"/console/till/refunds/{scene.world.redemption}",
            {"amount": "1", "step": "confirm"},
            frozenset(),
            frozenset({Role.MERCHANT}),
        ),
    ]


async def test_every_form_for_every_role_changes_nothing_it_may_not(
    app: FastAPI, scene: Scene, clock: ManualClock
) -> None:
    for role in EVERY_ROLE:
        browser = await signed_in(app, scene.world.users[role], clock)
        for form in _forms(scene):
            without = await browser.http.post(form.path, data=form.data)
            assert without.status_code == 403, (role, form.path)
            response = await browser.http.post(form.path, data={**form.data, "csrf_token": browser.csrf})
            expected = form.refused if role in form.allowed else 404 if role in form.hidden else 403
            assert response.status_code == expected, (role, form.path, response.text[:400])
            assert_page_is_clean(response)
            assert_masked(response.text, f"{role} {form.path}")
    async with unit_of_work(app.state.sessions) as session:
        assert {row.status for row in await session.scalars(select(ComplaintRow))} == {"registered"}
        assert len((await session.scalars(select(RiskCaseRow))).all()) == 1
        assert {
            row.status for row in await session.scalars(select(MerchantRow)) if row.id == scene.world.shop
        } == {"active"}
        assert not (await session.scalars(select(RefundRow))).all()


async def _csrf_post(browser: Browser, path: str, **data: str) -> httpx.Response:
    return await browser.http.post(path, data={**data, "csrf_token": browser.csrf})


async def _audit_actions(app: FastAPI, object_id: str) -> list[str]:
    async with unit_of_work(app.state.sessions) as session:
        rows = await session.scalars(
            select(AuditRecordRow).where(AuditRecordRow.object_id == object_id).order_by(AuditRecordRow.id)
        )
        return [row.action for row in rows]


async def test_a_complaint_from_hotline_registration_to_resolution(
    app: FastAPI, scene: Scene, clock: ManualClock, settings: Settings
) -> None:
    world = scene.world
    # The operator's risk team has a live case about the shop: a cash-out complaint joins it.
    async with unit_of_work(app.state.sessions) as session:
        case = await risk.open_case(
            session,
            principal=OPERATOR,
            alert_ids=[scene.alert_own],
            title="疑似套现",
            reason="核销集中",
            clock=clock,
        )
    hotline = await signed_in(app, world.users[LINE], clock)
    form = await hotline.http.get("/console/complaints/new")
    assert "登记投诉" in form.text
    refused = await _csrf_post(
        hotline, "/console/complaints", category="suspected_cash_out", merchant_id="mch_nobody", text="x"
    )
    assert refused.status_code == 422
    assert "没有该商户" in refused.text
    registered = await _csrf_post(
        hotline,
        "/console/complaints",
        campaign_id=world.campaign_id,
        category="suspected_cash_out",
        merchant_id=world.shop,
        phone=CALLER,
        text="市民反映该店收券后按七折回收现金",
    )
    assert registered.status_code == 303
    location = registered.headers["location"]
    complaint_id = location.split("/")[-1].split("?")[0]
    page = await hotline.http.get(location)
    assert "已登记。" in page.text
    assert "银联风险监测" in page.text  # routed to the operator's risk team
    assert f'href="/console/risk/cases/{case.case.id}"' in page.text  # linked to the live risk case
    assert "139****5678" in page.text
    assert_masked(page.text, "the complaint")
    assert "2022-07-02 00:00" in page.text  # 5 working days from Friday 24 June: due at the end of 1 July

    operator_user = await make_user(
        app.state.sessions, settings, clock, "risk.zhao", OPS, display_name="银联风控 赵敏"
    )
    operator = await signed_in(app, world.users[OPS], clock)
    detail = await operator.http.get(f"/console/complaints/{complaint_id}")
    assert operator_user.user.id in detail.text  # a choice of the assign form
    steps = [
        {"action": "assign", "assignee_id": operator_user.user.id},
        {"action": "start"},
    ]
    for step in steps:
        done = await _csrf_post(operator, f"/console/complaints/{complaint_id}/steps", **step)
        assert done.status_code == 303, step
    noted = await _csrf_post(operator, f"/console/complaints/{complaint_id}/notes", text="已调取该店核销流水")
    assert noted.status_code == 303

    clock.advance(timedelta(days=8))  # past the due date, still in progress
    operator = await signed_in(app, world.users[OPS], clock)  # the sessions have ended meanwhile
    hotline = await signed_in(app, world.users[LINE], clock)
    overdue = await operator.http.get("/console/complaints?overdue=yes")
    assert complaint_id in overdue.text
    assert "data-overdue" in overdue.text
    assert 'class="row-overdue"' in overdue.text
    english = await operator.http.get(f"/console/complaints/{complaint_id}?lang=en")
    assert "Overdue" in english.text
    assert "UnionPay risk monitoring" in english.text
    await operator.http.get("/console/complaints?lang=zh")
    stats = await operator.http.get("/console/complaints/stats")
    assert re.search(
        r'data-key="suspected_cash_out">\s*<td>[^<]+</td>\s*<td class="num">1</td>\s*<td class="num">1</td>\s*<td class="num">1</td>',
        stats.text,
    )

    empty = await _csrf_post(
        operator, f"/console/complaints/{complaint_id}/steps", action="resolve", text=" "
    )
    assert empty.status_code == 422
    resolved = await _csrf_post(
        operator,
        f"/console/complaints/{complaint_id}/steps",
        action="resolve",
        text="经核查属实，已移交风险案件处理并回复市民",
    )
    assert resolved.status_code == 303
    page = await operator.http.get(f"/console/complaints/{complaint_id}")
    assert "经核查属实" in page.text
    assert "超期办结" in page.text
    assert "data-overdue" not in page.text  # resolved: no longer overdue

    closed = await _csrf_post(
        hotline, f"/console/complaints/{complaint_id}/steps", action="close", text="回访满意"
    )
    assert closed.status_code == 303
    assert "已关闭" in (await hotline.http.get(f"/console/complaints/{complaint_id}")).text
    assert await _audit_actions(app, complaint_id) == [
        "complaint.register",
        "complaint.assign",
        "complaint.start",
        "complaint.note",
        "complaint.resolve",
        "complaint.close",
    ]
    async with unit_of_work(app.state.sessions) as session:
        row = await session.get(ComplaintRow, complaint_id)
    assert row is not None
    assert (row.status, row.risk_case_id, row.assignee_id) == ("closed", case.case.id, operator_user.user.id)


async def test_an_alert_becomes_a_case_referred_and_sanctioned(
    app: FastAPI, scene: Scene, clock: ManualClock
) -> None:
    world = scene.world
    county = await signed_in(app, world.users[COUNTY], clock)
    alert_page = await county.http.get(f"/console/risk/alerts/{scene.alert_own}")
    assert "138****5678" in alert_page.text  # the evidence, masked
    assert 'href="/console/redemptions/rdm_evidence_1"' in alert_page.text
    assert "90.00%" in alert_page.text
    assert "70.00%" in alert_page.text
    assert "立案调查" not in alert_page.text  # a county reads; the city and the operator investigate
    watch = await county.http.get("/console/risk/watch-list?min_score=60")
    assert f'data-watch="merchant:{world.shop}"' in watch.text  # 45 + 45
    assert world.shop_other not in watch.text  # 安岳县's

    operator = await signed_in(app, world.users[OPS], clock)
    page = await operator.http.get(f"/console/risk/alerts/{scene.alert_own}")
    assert scene.alert_own_2 in page.text  # the subject's other open alert may join the case
    opened = await operator.http.post(
        "/console/risk/cases",
        data={
            "alert_id": [scene.alert_own, scene.alert_own_2],
            "title": "疑似套现",
            "reason": "金额集中在门槛之上",
            "csrf_token": operator.csrf,
        },
    )
    assert opened.status_code == 303
    case_path = opened.headers["location"].split("?")[0]
    for step in ({"action": "investigate", "reason": "调取流水"}, {"action": "confirm", "reason": "属实"}):
        assert (await _csrf_post(operator, f"{case_path}/steps", **step)).status_code == 303
    regulator = await signed_in(app, world.users[REG], clock)
    assert (await regulator.http.get(case_path)).status_code == 404  # not referred yet
    referred = await _csrf_post(
        operator, f"{case_path}/steps", action="refer", department="market_regulator", reason="移交查处"
    )
    assert referred.status_code == 303
    seen = await regulator.http.get(case_path)
    assert seen.status_code == 200
    assert "data-step-form" not in seen.text  # read only
    assert (await regulator.http.get(f"/console/risk/alerts/{scene.alert_own}")).status_code == 200

    refused = await _csrf_post(
        operator, f"{case_path}/steps", action="sanction", measure="suspend", reason="x"
    )
    assert refused.status_code == 403  # the city decides sanctions
    city = await signed_in(app, world.users[CITY], clock)
    sanctioned = await _csrf_post(
        city, f"{case_path}/steps", action="sanction", measure="suspend", reason="查实套现"
    )
    assert sanctioned.status_code == 303
    page = await city.http.get(sanctioned.headers["location"])
    assert "已处罚" in page.text
    english = await city.http.get(case_path + "?lang=en")
    assert "Sanctioned" in english.text

    case_id = case_path.rsplit("/", 1)[1]
    async with unit_of_work(app.state.sessions) as session:
        merchant = await session.get(MerchantRow, world.shop)
        steps = (
            await session.scalars(
                select(RiskCaseTransitionRow).where(RiskCaseTransitionRow.case_id == case_id)
            )
        ).all()
    assert merchant is not None
    assert merchant.status == "suspended"
    assert [step.action for step in steps] == ["open", "investigate", "confirm", "refer", "sanction"]
    assert steps[-1].actor_role == "city_admin"
    assert "merchant.suspend" in await _audit_actions(app, world.shop)


def _listed_alerts(page: str) -> list[str]:
    return re.findall(r'<tr data-alert="([^"]+)"', page)


async def test_the_alert_list_filters_by_score_and_local_day(
    app: FastAPI, world: World, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """ "Today's alerts scoring 60 or more", as the city's investigator asks every morning: the day is
    Beijing's, the score at the line is in, a county still sees only its own merchants, and the values
    stay in the form and in the paging links."""
    day = date(2022, 6, 24)  # the clock stands at 11:00 Beijing time on it

    async def raised(score: int, period: str, merchant_id: str | None = None) -> str:
        return await _alert(
            sessions,
            clock,
            campaign_id=world.campaign_id,
            merchant_id=merchant_id or world.shop,
            jurisdiction=Jurisdiction.YANJIANG if merchant_id is None else Jurisdiction.ANYUE,
            period=period,
            score=score,
        )

    at_line = await raised(60, "at line")
    below = await raised(59, "below")
    filler = [await raised(65, f"filler {serial}") for serial in range(50)]  # a second page
    clock.set(local_datetime(day, time(23, 30)))  # 15:30 UTC, still 24 June in Beijing
    late = await raised(70, "late")
    other = await raised(80, "other", world.shop_other)  # 安岳县's
    clock.set(local_datetime(day + timedelta(days=1), time()))
    tomorrow = await raised(90, "tomorrow")

    city = await signed_in(app, world.users[CITY], clock)
    query = "min_score=60&raised_from=2022-06-24&raised_to=2022-06-24"
    first = await city.http.get(f"/console/risk?{query}")
    assert first.status_code == 200
    assert_page_is_clean(first)
    assert _listed_alerts(first.text)[:2] == [other, late]  # highest score first
    assert len(_listed_alerts(first.text)) == 50
    assert 'id="min_score" name="min_score" type="number" min="0" max="99999" value="60"' in first.text
    assert 'id="raised_from" name="raised_from" type="date" value="2022-06-24"' in first.text
    assert 'id="raised_to" name="raised_to" type="date" value="2022-06-24"' in first.text
    [next_link] = re.findall(r'<a class="button button-quiet" href="(\?[^"]*page=2)"', first.text)
    second = await city.http.get("/console/risk" + html.unescape(next_link))
    assert second.status_code == 200
    assert 'value="60"' in second.text
    shown = set(_listed_alerts(first.text)) | set(_listed_alerts(second.text))
    assert shown == {at_line, late, other, *filler}  # 53: not 59 points, not the next day
    assert _listed_alerts(second.text)[-1] == at_line  # the lowest score, on the last page
    one_less = await city.http.get(
        "/console/risk?min_score=59&raised_from=2022-06-24&raised_to=2022-06-24&page=2"
    )
    assert _listed_alerts(one_less.text)[-2:] == [at_line, below]

    # a county reviewer: the same filters, within its jurisdiction
    county = await signed_in(app, world.users[COUNTY], clock)
    seen = [await county.http.get(f"/console/risk?{query}&page={page}") for page in (1, 2)]
    assert [len(_listed_alerts(page.text)) for page in seen] == [50, 2]  # 雁江区's 52
    assert _listed_alerts(seen[0].text)[0] == late
    assert _listed_alerts(seen[1].text)[-1] == at_line
    assert all(other not in page.text for page in seen)
    only_late = await county.http.get(
        "/console/risk?min_score=70&raised_from=2022-06-24&raised_to=2022-06-24"
    )
    assert _listed_alerts(only_late.text) == [late]
    next_day = await county.http.get("/console/risk?raised_from=2022-06-25")
    assert _listed_alerts(next_day.text) == [tomorrow]

    english = await city.http.get(f"/console/risk?{query}&lang=en")
    assert "Minimum score" in english.text
    assert "Raised from" in english.text
    assert "Raised to" in english.text
    await city.http.get("/console/overview?lang=zh")

    inverted = await city.http.get("/console/risk?raised_from=2022-06-25&raised_to=2022-06-24")
    assert inverted.status_code == 422
    assert "invalid_request" in inverted.text
    assert "raised_from" in inverted.text
    for bad in ("min_score=-1", "min_score=sixty", "raised_to=24/06/2022"):
        refused = await city.http.get(f"/console/risk?{bad}")
        assert refused.status_code == 422, bad
        assert "invalid_request" in refused.text, bad


async def test_a_finding_is_recorded_and_the_city_suspends_from_it(
    app: FastAPI, scene: Scene, clock: ManualClock
) -> None:
    world = scene.world
    regulator = await signed_in(app, world.users[REG], clock)
    recorded = await _csrf_post(
        regulator,
        "/console/inspections",
        merchant_id=world.shop,
        kind="food_hygiene",
        severity="severe",
        description="后厨卫生不达标，责令整改",
        complaint_id=scene.complaint_other,  # another merchant's complaint
    )
    assert recorded.status_code == 422
    recorded = await _csrf_post(
        regulator,
        "/console/inspections",
        merchant_id=world.shop,
        kind="food_hygiene",
        severity="severe",
        description="后厨卫生不达标，责令整改",
        complaint_id=scene.complaint_own,
    )
    assert recorded.status_code == 303
    finding_id = recorded.headers["location"].split("/")[-1].split("?")[0]

    city = await signed_in(app, world.users[CITY], clock)
    inbox = await city.http.get("/console/inspections")
    assert "有 3 条新的检查通报待阅" in inbox.text
    read = await _csrf_post(city, f"/console/inspections/{finding_id}/read")
    assert read.status_code == 303
    assert "有 2 条新的检查通报待阅" in (await city.http.get("/console/inspections")).text
    suspended = await _csrf_post(
        city, f"/console/inspections/{finding_id}/decision", decision="suspend", reason="严重违规"
    )
    assert suspended.status_code == 303
    page = await city.http.get(suspended.headers["location"])
    assert "已暂停该商户" in page.text
    again = await _csrf_post(
        city, f"/console/inspections/{finding_id}/decision", decision="no_action", reason="x"
    )
    assert again.status_code == 409
    async with unit_of_work(app.state.sessions) as session:
        merchant = await session.get(MerchantRow, world.shop)
    assert merchant is not None
    assert merchant.status == "suspended"
    assert await _audit_actions(app, finding_id) == ["inspection.record", "inspection.suspend"]


async def test_announcements_are_published_and_withdrawn_for_the_resident_page(
    app: FastAPI, client: httpx.AsyncClient, scene: Scene, clock: ManualClock
) -> None:
    publicity = await signed_in(app, scene.world.users[PUB], clock)
    created = await _csrf_post(
        publicity,
        "/console/announcements",
        kind="rules",
        title="活动规则（第三轮）",
        body="每人每场限领一张。\n不找零。",
    )
    assert created.status_code == 303
    page = await publicity.http.get("/console/announcements")
    draft = re.search(
        r'data-announcement="(ann_[^"]+)">\s*<td><details><summary>活动规则（第三轮）', page.text
    )
    assert draft
    h5 = await client.get("/h5")
    assert "第二轮消费券发放公告" in h5.text
    assert "已撤回的公告" not in h5.text
    assert "活动规则（第三轮）" not in h5.text  # a draft is not public
    published = await _csrf_post(publicity, f"/console/announcements/{draft.group(1)}/publish")
    assert published.status_code == 303
    h5 = await client.get("/h5")
    assert "活动规则（第三轮）" in h5.text
    assert_page_is_clean(h5)
    assert "Announcements" in (await client.get("/h5?lang=en")).text
    withdrawn = await _csrf_post(publicity, f"/console/announcements/{draft.group(1)}/unpublish")
    assert withdrawn.status_code == 303
    assert "活动规则（第三轮）" not in (await client.get("/h5?lang=zh")).text
    assert await _audit_actions(app, draft.group(1)) == [
        "announcement.create",
        "announcement.publish",
        "announcement.unpublish",
    ]


def _key(page: str) -> str:
    match = re.search(r'name="form_key" value="([^"]+)"', page)
    assert match
    return match.group(1)


class TestTillRefunds:
    """The till's refunds, on the till test campaign (its own clock: before the campaign's first round)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(datetime(2022, 6, 1, tzinfo=UTC))

    @pytest.fixture
    async def till(
        self,
        client: httpx.AsyncClient,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: ManualClock,
    ) -> Till:
        return await open_till(client, sessions, settings, clock)

    async def test_the_till_refunds_its_own_purchase_in_part_then_in_full(
        self, app: FastAPI, till: Till, settings: Settings
    ) -> None:
        user = await make_user(
            app.state.sessions,
            settings,
            till.clock,
            "shop.sun",
            Role.MERCHANT,
            merchant_id=till.merchants["catering"],
        )
        cashier = await signed_in(app, user, till.clock)
        voucher = await till.voucher("general")
        key = _key((await cashier.http.get("/console/till")).text)
        redeemed = await _csrf_post(
            cashier,
            "/console/till",
            step="confirm",
            voucher_code=voucher["code"],
            order_amount="120",
            merchant_discount="0",
            terminal_id=till.terminals["catering"],
            form_key=key,
        )
        assert redeemed.status_code == 303
        receipt_path = redeemed.headers["location"]
        redemption_id = receipt_path.rsplit("/", 1)[1]
        receipt = await cashier.http.get(receipt_path)
        assert f'href="/console/till/refunds/{redemption_id}"' in receipt.text
        listed = await cashier.http.get("/console/till/refunds")
        assert f'data-refundable="{redemption_id}"' in listed.text
        # A purchase sent by the terminal API is refunded there: the page neither lists nor refunds it.
        other = await till.redeem(till.body(await till.voucher("general"), "catering"))
        assert other.status_code == 201
        assert other.json()["redemption_id"] not in listed.text
        assert (
            await cashier.http.get(f"/console/till/refunds/{other.json()['redemption_id']}")
        ).status_code == 404

        form_page = await cashier.http.get(f"/console/till/refunds/{redemption_id}")
        assert re.search(r'data-refund="left">¥120.00<', form_page.text)  # the payable amount
        refund_key = _key(form_page.text)
        path = f"/console/till/refunds/{redemption_id}"
        too_much = await _csrf_post(cashier, path, step="preview", amount="500", form_key=refund_key)
        assert too_much.status_code == 422
        assert "超过可退金额" in too_much.text
        preview = await _csrf_post(cashier, path, step="preview", amount="30", form_key=refund_key)
        assert preview.status_code == 200
        assert re.search(r'data-refund="subsidy">¥7.50<', preview.text)
        assert re.search(r'data-refund="resident">¥22.50<', preview.text)
        done = await _csrf_post(cashier, path, step="confirm", amount="30", form_key=refund_key)
        assert done.status_code == 303
        again = await _csrf_post(
            cashier, path, step="confirm", amount="30", form_key=refund_key
        )  # a double click
        assert again.headers["location"] == done.headers["location"]
        reused = await _csrf_post(cashier, path, step="confirm", amount="31", form_key=refund_key)
        assert reused.status_code == 422
        refund_receipt = await cashier.http.get(done.headers["location"])
        assert "退款成功：¥30.00" in refund_receipt.text
        assert re.search(r'data-refund-receipt-amount="resident">¥22.50<', refund_receipt.text)

        rest = await cashier.http.get(path)
        assert re.search(r'data-refund="left">¥90.00<', rest.text)
        full = await _csrf_post(cashier, path, step="confirm", amount="90", form_key=_key(rest.text))
        assert full.status_code == 303
        async with unit_of_work(app.state.sessions) as session:
            row = await session.get(RedemptionRow, redemption_id)
            refunds = (
                await session.scalars(select(RefundRow).where(RefundRow.redemption_id == redemption_id))
            ).all()
        assert row is not None
        assert (row.status, row.refunded_fen, row.subsidy_returned_fen) == (
            "refunded",
            120_00,
            30_00,
        )
        assert [(refund.amount_fen, refund.partner_id) for refund in refunds] == [
            (30_00, user.user.id),
            (90_00, user.user.id),
        ]
        finished = await cashier.http.get(receipt_path)
        assert f'href="/console/till/refunds/{redemption_id}"' not in finished.text  # nothing left to refund
        english = await cashier.http.get(f"{receipt_path}?lang=en")
        assert "Refund" in english.text
