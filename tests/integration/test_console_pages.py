"""The console's pages through HTTP, on SQLite and PostgreSQL: the authorization matrix (every page and
form × every role: refused with a redirect to sign-in, 403 or 404, or shown), CSRF on every form, the
sign-in form (wrong password, lockout, expired sessions), and the writes (review, final list, users).
The redemption, invoice, money and till pages have their own tests in test_console_money_and_till.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.models import UserRow
from huimin.auth.principals import GOVERNMENT_ROLES, Principal, Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.money import Fen
from huimin.kit.terms import District, Jurisdiction
from huimin.ledger import service as ledger
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.models import MerchantRow, MerchantTransitionRow
from tests.console_helpers import PASSWORD, make_user, redeem_claimed, seed_claims
from tests.integration.merchant_helpers import CITY, merchant_in, new_campaign

# The campaign's first round is open (2022-06-24 10:00-22:00 Beijing time).
ROUND_OPEN = datetime(2022, 6, 24, 3, 0, tzinfo=UTC)
GOVERNMENT = frozenset(GOVERNMENT_ROLES)
CAMPAIGN_READERS = frozenset(
    {Role.CITY_ADMIN, Role.COUNTY_REVIEWER, Role.OPERATOR, Role.UNION_ADMIN, Role.FINANCE}
)
MERCHANT_READERS = frozenset(
    {Role.CITY_ADMIN, Role.COUNTY_REVIEWER, Role.OPERATOR, Role.MARKET_REGULATOR, Role.MERCHANT}
)
EVERY_ROLE = [role for role in Role if role is not Role.SYSTEM]


FINANCE = Principal(actor_id="usr_finance_checker", role=Role.FINANCE, name="市财政局 李强")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ROUND_OPEN)


REDEMPTION_READERS = frozenset(
    {Role.CITY_ADMIN, Role.COUNTY_REVIEWER, Role.OPERATOR, Role.FINANCE, Role.MARKET_REGULATOR, Role.MERCHANT}
)
LEDGER_READERS = frozenset({Role.CITY_ADMIN, Role.OPERATOR, Role.FINANCE})
SETTLEMENT_READERS = frozenset({Role.CITY_ADMIN, Role.OPERATOR, Role.FINANCE})


@dataclass(frozen=True)
class World:
    campaign_id: str
    own: str  # a submitted merchant of 雁江区: the reviewer's and the merchant user's
    other: str  # a submitted merchant of 安岳县
    approved: str  # a county-approved merchant of 雁江区, waiting for the final list
    users: dict[Role, NewUser]
    shop: str  # an active merchant of 雁江区 (terminal T0000004)
    shop_other: str  # an active merchant of 安岳县 (terminal T0000005)
    redemption: str  # at `shop`: 雁江区's
    redemption_other: str  # at `shop_other`: 安岳县's
    deposit: str  # an approved deposit


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock) -> World:
    campaign_id = await new_campaign(sessions, clock)
    own = await merchant_in(sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 1)
    other = await merchant_in(
        sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 2, jurisdiction=Jurisdiction.ANYUE
    )
    approved = await merchant_in(sessions, clock, campaign_id, MerchantStatus.COUNTY_APPROVED, 3)
    users = {}
    for role in EVERY_ROLE:
        users[role] = await make_user(
            sessions,
            settings,
            clock,
            f"user.{role.value}",
            role,
            jurisdiction=Jurisdiction.YANJIANG if role is Role.COUNTY_REVIEWER else None,
            merchant_id=own if role is Role.MERCHANT else None,
        )
    await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 2, District.ANYUE: 1})
    shop = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 4)
    shop_other = await merchant_in(
        sessions, clock, campaign_id, MerchantStatus.ACTIVE, 5, jurisdiction=Jurisdiction.ANYUE
    )
    redemption = await redeem_claimed(
        sessions, clock, merchant_id=shop, terminal_id="T0000004", order_fen=12_000
    )
    redemption_other = await redeem_claimed(
        sessions, clock, merchant_id=shop_other, terminal_id="T0000005", order_fen=15_000
    )
    async with unit_of_work(sessions) as session:
        deposit = await ledger.request_deposit(
            session,
            principal=CITY,
            campaign_id=campaign_id,
            funder_code="fiscal",
            amount=Fen(500_00),
            clock=clock,
        )
        await ledger.approve_deposit(session, principal=FINANCE, deposit_id=deposit.row.id, clock=clock)
    return World(
        campaign_id,
        own,
        other,
        approved,
        users,
        shop,
        shop_other,
        redemption,
        redemption_other,
        deposit.row.id,
    )


@dataclass
class Browser:
    """An HTTP client with its own cookie jar, signed in as one user."""

    http: httpx.AsyncClient
    csrf: str = ""


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huimin.test")


async def signed_in(app: FastAPI, user: NewUser, clock: ManualClock) -> Browser:
    http = _client(app)
    code = pyotp.TOTP(user.totp_secret).at(clock.now()) if user.totp_secret else None
    response = await http.post(
        "/api/v1/staff/sign-in",
        json={"username": user.user.username, "password": PASSWORD, "totp": code},
    )
    assert response.status_code == 200, response.text
    return Browser(http, response.json()["csrf_token"])


def assert_page_is_clean(response: httpx.Response) -> None:
    """Pages hold under the CSP: no inline script, no style attributes, nothing from elsewhere."""
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    text = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline script"
    assert not re.search(r"<style\b|\sstyle=", text), "inline style"
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "an asset from another host"


def get_routes(world: World) -> list[tuple[str, frozenset[Role], frozenset[Role]]]:
    """(path, roles shown the page, roles answered 404 because the object is outside their scope)."""
    nobody: frozenset[Role] = frozenset()
    return [
        ("/console/overview", GOVERNMENT, nobody),
        ("/console/campaigns", CAMPAIGN_READERS, nobody),
        (f"/console/campaigns/{world.campaign_id}", CAMPAIGN_READERS, nobody),
        ("/console/merchants", MERCHANT_READERS, nobody),
        ("/console/merchants?status=submitted&q=%E8%B5%84%E9%98%B3", MERCHANT_READERS, nobody),
        ("/console/merchants/review", frozenset({Role.COUNTY_REVIEWER}), nobody),
        ("/console/merchants/final-list", frozenset({Role.CITY_ADMIN}), nobody),
        ("/console/allocation", frozenset({Role.CITY_ADMIN}), nobody),
        (f"/console/merchants/{world.own}", MERCHANT_READERS, nobody),
        (
            f"/console/merchants/{world.other}",
            MERCHANT_READERS - {Role.COUNTY_REVIEWER, Role.MERCHANT},
            frozenset({Role.COUNTY_REVIEWER, Role.MERCHANT}),
        ),
        ("/console/users", frozenset({Role.CITY_ADMIN}), nobody),
        ("/console/users/new", frozenset({Role.CITY_ADMIN}), nobody),
        ("/console/redemptions", REDEMPTION_READERS, nobody),
        (
            "/console/redemptions?status=confirmed&big_ticket=no&since=2022-06-01&until=2022-06-30",
            REDEMPTION_READERS,
            nobody,
        ),
        (
            f"/console/redemptions/{world.redemption}",
            REDEMPTION_READERS - {Role.MERCHANT},
            frozenset({Role.MERCHANT}),  # not the merchant user's own shop
        ),
        (
            f"/console/redemptions/{world.redemption_other}",
            REDEMPTION_READERS - {Role.COUNTY_REVIEWER, Role.MERCHANT},
            frozenset({Role.COUNTY_REVIEWER, Role.MERCHANT}),
        ),
        ("/console/invoices", frozenset({Role.COUNTY_REVIEWER}), nobody),
        (f"/console/invoices/{world.redemption}", frozenset({Role.COUNTY_REVIEWER}), nobody),
        (f"/console/invoices/{world.redemption_other}", nobody, frozenset({Role.COUNTY_REVIEWER})),
        ("/console/money", LEDGER_READERS, nobody),
        ("/console/money/balances", LEDGER_READERS, nobody),
        ("/console/money/check", LEDGER_READERS, nobody),
        ("/console/till", frozenset({Role.MERCHANT}), nobody),
        (f"/console/till/receipts/{world.redemption}", nobody, frozenset({Role.MERCHANT})),
        ("/console/settlement", SETTLEMENT_READERS, nobody),
        ("/console/settlement/runs/stl_unknown", nobody, SETTLEMENT_READERS),
        ("/console/settlement/reconciliation", SETTLEMENT_READERS, nobody),
        ("/console/settlement/recovery", SETTLEMENT_READERS, nobody),
        ("/console/reports", GOVERNMENT, nobody),
        ("/console/reports?by=category&since=2022-06-01", GOVERNMENT, nobody),
        (
            "/console/reports?jurisdiction=anyue",
            GOVERNMENT - {Role.COUNTY_REVIEWER},
            frozenset({Role.COUNTY_REVIEWER}),  # another county's figures
        ),
        ("/console/audit", frozenset({Role.CITY_ADMIN}), nobody),
        ("/console/audit?action=staff.&since=2022-06-01", frozenset({Role.CITY_ADMIN}), nobody),
    ]


async def test_every_page_for_every_role(app: FastAPI, world: World, clock: ManualClock) -> None:
    routes = get_routes(world)
    anonymous = _client(app)
    for path, _, _ in routes:
        response = await anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in?next=/console/")

    for role in EVERY_ROLE:
        browser = await signed_in(app, world.users[role], clock)
        home = await browser.http.get("/console/")
        assert home.status_code == 303
        first = await browser.http.get(home.headers["location"])
        assert first.status_code == 200, (role, home.headers["location"])
        for path, shown, hidden in routes:
            response = await browser.http.get(path)
            expected = 200 if role in shown else 404 if role in hidden else 403
            assert response.status_code == expected, (role, path, response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            assert_page_is_clean(response)
            if expected == 200:
                assert world.users[role].user.display_name in response.text  # the header names the user
            else:
                assert "错误代码" in response.text  # a page in the console's frame, not JSON


async def test_the_navigation_shows_what_the_role_may_open(
    app: FastAPI, world: World, clock: ManualClock
) -> None:
    reviewer = await signed_in(app, world.users[Role.COUNTY_REVIEWER], clock)
    page = (await reviewer.http.get("/console/overview")).text
    assert "商户审核" in page
    assert "用户管理" not in page
    assert "参与商家名单" not in page
    assert "县（区）商务主管部门" in page
    assert "雁江区" in page

    police = await signed_in(app, world.users[Role.POLICE], clock)
    page = (await police.http.get("/console/overview")).text
    assert 'href="/console/merchants' not in page
    assert 'href="/console/campaigns' not in page

    merchant = await signed_in(app, world.users[Role.MERCHANT], clock)
    home = await merchant.http.get("/console/")
    assert home.headers["location"] == "/console/till"  # a cashier lands on the till


@dataclass(frozen=True)
class Form:
    path: str
    data: dict[str, str]
    allowed: frozenset[Role]  # answered with the form again (`refused`: the data is refused)
    hidden: frozenset[Role] = frozenset()  # 404
    refused: int = 422


def forms(world: World) -> list[Form]:
    """Each form, with data that an allowed role gets refused as invalid, so nothing changes."""
    return [
        Form(
            f"/console/merchants/{world.own}/review",
            {"decision": "reject", "reason": ""},  # a rejection needs a reason
            frozenset({Role.COUNTY_REVIEWER}),
        ),
        Form(
            f"/console/merchants/{world.other}/review",
            {"decision": "approve", "reason": ""},
            frozenset(),
            frozenset({Role.COUNTY_REVIEWER}),
        ),
        Form(
            "/console/merchants/final-list",
            {"campaign_id": world.campaign_id},  # nothing selected
            frozenset({Role.CITY_ADMIN}),
        ),
        Form(
            "/console/users",
            {"username": "new.user", "role": "finance", "password": "short"},
            frozenset({Role.CITY_ADMIN}),
        ),
        Form(
            f"/console/invoices/{world.redemption}/verification",
            {"decision": "reject", "note": ""},  # confirmed already: not pending
            frozenset({Role.COUNTY_REVIEWER}),
            refused=409,
        ),
        Form(
            f"/console/invoices/{world.redemption_other}/verification",
            {"decision": "approve", "note": ""},
            frozenset(),
            frozenset({Role.COUNTY_REVIEWER}),
        ),
        Form(
            "/console/money/deposits",
            {"campaign_id": world.campaign_id, "funder": "fiscal", "amount": "12.345"},  # three decimals
            frozenset({Role.CITY_ADMIN, Role.OPERATOR}),
        ),
        Form(
            f"/console/money/deposits/{world.deposit}/approve",
            {"campaign_id": world.campaign_id},  # approved already
            frozenset({Role.FINANCE}),
            refused=409,
        ),
        Form(
            "/console/till",
            {"step": "confirm", "voucher_code": "", "order_amount": "0"},
            frozenset({Role.MERCHANT}),
        ),
        Form(
            "/console/settlement/runs",
            {"campaign_id": world.campaign_id, "business_day": "24/06/2022"},  # not a date
            frozenset({Role.OPERATOR}),
        ),
        Form(
            "/console/settlement/runs/stl_unknown/approval",
            {},
            frozenset(),
            frozenset({Role.FINANCE}),
        ),
        Form(
            "/console/settlement/bank-confirmations",
            {"campaign_id": world.campaign_id},  # no file
            frozenset({Role.OPERATOR}),
        ),
        Form(
            "/console/settlement/recovery",
            {"campaign_id": world.campaign_id},  # the campaign is running
            frozenset({Role.OPERATOR}),
            refused=409,
        ),
        Form(
            "/console/settlement/recovery/rec_unknown/approval",
            {"campaign_id": world.campaign_id},
            frozenset(),
            frozenset({Role.FINANCE}),
        ),
    ]


async def test_every_form_for_every_role_and_csrf(app: FastAPI, world: World, clock: ManualClock) -> None:
    anonymous = _client(app)
    for form in forms(world):
        refused = await anonymous.post(form.path, data=form.data)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/console/sign-in"

    for role in EVERY_ROLE:
        browser = await signed_in(app, world.users[role], clock)
        for form in forms(world):
            without = await browser.http.post(form.path, data=form.data)
            assert without.status_code == 403, (role, form.path)
            assert "表单校验失败" in without.text
            wrong = await browser.http.post(form.path, data={**form.data, "csrf_token": "not-the-token"})
            assert wrong.status_code == 403, (role, form.path)

            response = await browser.http.post(form.path, data={**form.data, "csrf_token": browser.csrf})
            expected = form.refused if role in form.allowed else 404 if role in form.hidden else 403
            assert response.status_code == expected, (role, form.path, response.text[:300])
            assert_page_is_clean(response)
        by_header = await browser.http.post(
            "/console/sign-out", headers={"X-CSRF-Token": browser.csrf}, data={}
        )
        assert by_header.status_code == 303
        assert (await browser.http.get("/console/overview")).status_code == 303  # signed out

    async with unit_of_work(app.state.sessions) as session:
        statuses = {row.id: row.status for row in await session.scalars(select(MerchantRow))}
        users = await session.scalars(select(UserRow.username))
        assert "new.user" not in set(users)
    assert statuses == {
        world.own: "submitted",
        world.other: "submitted",
        world.approved: "county_approved",
        world.shop: "active",
        world.shop_other: "active",
    }


def _form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def _sign_in_form(
    http: httpx.AsyncClient, username: str, password: str, totp: str = "", token: str | None = None
) -> httpx.Response:
    page = await http.get("/console/sign-in")
    return await http.post(
        "/console/sign-in",
        data={
            "username": username,
            "password": password,
            "totp": totp,
            "form_token": _form_token(page.text) if token is None else token,
        },
    )


async def test_the_sign_in_form(app: FastAPI, world: World, clock: ManualClock) -> None:
    admin = world.users[Role.CITY_ADMIN]
    assert admin.totp_secret
    http = _client(app)
    wrong = await _sign_in_form(http, admin.user.username, "not the password", "123456")
    assert wrong.status_code == 401
    assert "用户名、密码或动态验证码错误" in wrong.text
    assert_page_is_clean(wrong)

    forged = await _sign_in_form(
        http, admin.user.username, PASSWORD, pyotp.TOTP(admin.totp_secret).at(clock.now()), token="forged"
    )
    assert forged.status_code == 403  # no form token from this browser: no sign-in
    assert "huimin_session" not in forged.cookies

    good = await _sign_in_form(
        http, admin.user.username, PASSWORD, pyotp.TOTP(admin.totp_secret).at(clock.now())
    )
    assert good.status_code == 303
    assert good.headers["location"] == "/console/overview"
    cookie = good.headers["set-cookie"]
    assert "huimin_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie

    english = await http.get("/console/overview?lang=en")
    assert "Overview" in english.text
    assert 'lang="en"' in english.text
    assert "lang=en" in english.headers["set-cookie"]
    assert 'lang="en"' in (await http.get("/console/campaigns")).text  # remembered

    clock.advance(timedelta(minutes=31))
    expired = await http.get("/console/campaigns")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/console/sign-in?reason=expired&next=/console/campaigns"
    notice = await http.get(expired.headers["location"] + "&lang=zh")
    assert "会话已超时" in notice.text


async def test_five_failures_lock_the_account(app: FastAPI, world: World, clock: ManualClock) -> None:
    finance = world.users[Role.FINANCE]
    assert finance.totp_secret
    http = _client(app)
    for _ in range(5):
        assert (await _sign_in_form(http, finance.user.username, "wrong password!!")).status_code == 401
    clock.advance(timedelta(seconds=30))
    locked = await _sign_in_form(
        http, finance.user.username, PASSWORD, pyotp.TOTP(finance.totp_secret).at(clock.now())
    )
    assert locked.status_code == 423
    assert "已被锁定" in locked.text
    await http.get("/console/sign-in?lang=en")  # the language is remembered in a cookie
    locked = await _sign_in_form(http, finance.user.username, PASSWORD)
    assert locked.status_code == 423
    assert "This account is locked" in locked.text


async def test_a_reviewer_approves_and_the_city_publishes(
    app: FastAPI, world: World, clock: ManualClock
) -> None:
    reviewer = await signed_in(app, world.users[Role.COUNTY_REVIEWER], clock)
    queue = await reviewer.http.get("/console/merchants/review")
    assert world.own in queue.text
    assert world.other not in queue.text
    approved = await reviewer.http.post(
        f"/console/merchants/{world.own}/review",
        data={"decision": "approve", "reason": "材料齐全", "csrf_token": reviewer.csrf},
    )
    assert approved.status_code == 303
    page = await reviewer.http.get(approved.headers["location"])
    assert "已审核通过" in page.text
    assert "材料齐全" in page.text

    admin = await signed_in(app, world.users[Role.CITY_ADMIN], clock)
    board = await admin.http.get("/console/merchants/final-list")
    assert world.own in board.text
    assert world.approved in board.text
    published = await admin.http.post(
        "/console/merchants/final-list",
        data={
            "campaign_id": world.campaign_id,
            "merchant_id": [world.own, world.approved],
            "csrf_token": admin.csrf,
        },
    )
    assert published.status_code == 303
    assert "已列入名单 2 户" in (await admin.http.get(published.headers["location"])).text

    async with unit_of_work(app.state.sessions) as session:
        rows = {row.id: row for row in await session.scalars(select(MerchantRow))}
        transitions = (
            await session.scalars(
                select(MerchantTransitionRow).where(MerchantTransitionRow.merchant_id == world.own)
            )
        ).all()
    assert rows[world.own].status == rows[world.approved].status == "listed"
    assert rows[world.other].status == "submitted"
    assert [step.action for step in transitions][-2:] == ["approve", "publish"]
    assert transitions[-2].actor_jurisdiction == "yanjiang"


async def test_the_city_admin_creates_an_account(app: FastAPI, world: World, clock: ManualClock) -> None:
    admin = await signed_in(app, world.users[Role.CITY_ADMIN], clock)
    refused = await admin.http.post(
        "/console/users",
        data={
            "username": "anyue.liu",
            "role": "county_reviewer",
            "password": PASSWORD,
            "csrf_token": admin.csrf,
        },
    )
    assert refused.status_code == 422
    assert "a county reviewer needs the jurisdiction" in refused.text
    created = await admin.http.post(
        "/console/users",
        data={
            "username": "anyue.liu",
            "display_name": "刘洋",
            "role": "county_reviewer",
            "jurisdiction": "anyue",
            "password": PASSWORD,
            "csrf_token": admin.csrf,
        },
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    match = re.search(r"data-totp-secret>([A-Z2-7]+)<", created.text)
    assert match
    assert "otpauth://totp/" in created.text
    again = await admin.http.post(
        "/console/users",
        data={"username": "anyue.liu", "role": "finance", "password": PASSWORD, "csrf_token": admin.csrf},
    )
    assert again.status_code == 409

    listed = await admin.http.get("/console/users")
    assert "anyue.liu" in listed.text
    assert match.group(1) not in listed.text
    newcomer = _client(app)
    signed = await newcomer.post(
        "/api/v1/staff/sign-in",
        json={
            "username": "anyue.liu",
            "password": PASSWORD,
            "totp": pyotp.TOTP(match.group(1)).at(clock.now()),
        },
    )
    assert signed.status_code == 200
    assert signed.json()["jurisdiction"] == "anyue"


async def test_the_overview_shows_live_figures(app: FastAPI, world: World, clock: ManualClock) -> None:
    reviewer = await signed_in(app, world.users[Role.COUNTY_REVIEWER], clock)
    page = (await reviewer.http.get("/console/overview")).text

    def figure(key: str) -> str:
        match = re.search(
            rf'data-figure="{key}">\s*<div class="figure-label">[^<]*</div>\s*<div class="figure-value">([^<]*)<',
            page,
        )
        assert match, key
        return match.group(1)

    assert figure("vouchers_released") == "200"  # the open round: 100 general + 100 union
    assert figure("vouchers_claimed") == "3"
    assert figure("value_claimed") == "¥90.00"
    assert figure("remaining_stock") == "197"
    assert figure("upcoming_stock") == "100"
    # Two of the three claimed vouchers redeemed: ¥120 and ¥150 purchases, ¥30 each.
    assert figure("redemptions") == "2"
    assert figure("redemption_rate") == "66.7%"
    assert figure("subsidy") == "¥60.00"
    assert figure("consumption_driven") == "¥270.00"
    assert figure("leverage") == "1 : 4.50"
    assert re.search(
        r'data-status="confirmed"><td>.*?</td><td class="num">2</td><td class="num">¥60.00</td>', page
    )
    assert "已结算补贴" in page  # shown as "—" until settlement lands
    # Redemptions by district (the merchants'): one in 雁江区, one in 安岳县, for the map's other layer.
    assert "data-series-redemptions" in page
    # The map's data: claims by district, and merchants counted in the reviewer's jurisdiction only.
    assert "&#34;雁江区&#34;,&#34;value&#34;:2" in page
    assert "&#34;安岳县&#34;,&#34;value&#34;:1" in page
    assert "范围：雁江区" in page
    assert re.search(r"<td>待县级审核</td><td class=\"num\">1</td>", page)  # not 安岳县's


async def test_docs_and_assets_are_served_offline(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert_page_is_clean_docs(docs)
    for path in (
        "/console/static/vendor/swagger-ui-bundle.js",
        "/console/static/vendor/swagger-ui.css",
        "/console/static/vendor/echarts.min.js",
        "/console/static/console.css",
        "/console/static/overview.js",
        "/console/static/geo/ziyang-districts.json",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
    assert (await client.get("/console/static/vendor/package.json")).status_code == 404
    assert (await client.get("/console/static/vendor/..%2Fpackage.json")).status_code == 404
    root = await client.get("/")
    assert (root.status_code, root.headers["location"]) == (303, "/console/")
    assert (await client.get("/redoc")).status_code == 404


def assert_page_is_clean_docs(response: httpx.Response) -> None:
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "cdn" not in response.text.lower()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
