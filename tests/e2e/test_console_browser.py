"""The console in Chromium: sign in with password and TOTP, the overview with its district map, the
English switch, a county reviewer's approval and another county's merchant refused, wrong passwords
and the lockout. Every page must load without console errors and without a single request that leaves
the server (government intranets have no internet)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta

import pyotp
from playwright.sync_api import expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.principals import Role
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants.domain import MerchantStatus
from tests.conftest import ROOT
from tests.console_helpers import PASSWORD, make_user, redeem_claimed, seed_claims
from tests.e2e.conftest import LiveServer, Watched
from tests.integration.merchant_helpers import merchant_in, new_campaign

# `HUIMIN_UPDATE_DOCS_SCREENSHOTS=1 pytest tests/e2e` refreshes the screenshot in docs/ (committed).
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "console-overview.png"
UPDATE_DOCS = os.environ.get("HUIMIN_UPDATE_DOCS_SCREENSHOTS") == "1"


def sign_in(watched: Watched, user: NewUser, *, password: str = PASSWORD, navigate: bool = True) -> None:
    page = watched.page
    if navigate:
        page.goto(f"{watched.server.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("用户名").fill(user.user.username)
    page.get_by_label("密码").fill(password)
    if user.totp_secret:
        page.get_by_label("动态验证码").fill(pyotp.TOTP(user.totp_secret).at(watched.server.clock.now()))
    page.get_by_role("button", name="登录").click()


def assert_clean(watched: Watched, *, refusals: tuple[int, ...] = ()) -> None:
    """No script error, no failed request, nothing from another host. The browser logs a page answered
    with an error status as a console error: `refusals` are the statuses the test expected."""
    expected = tuple(f"status of {status} " for status in refusals)
    errors = [error for error in watched.errors if not any(status in error for status in expected)]
    assert errors == [], errors
    assert watched.failed == [], watched.failed
    assert watched.offsite() == [], watched.offsite()
    assert all(url.startswith(f"{watched.server.url}/") for url in watched.requests)


def test_an_official_signs_in_and_reads_the_overview(watched: Watched, live_server: LiveServer) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> NewUser:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        shops = [
            await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, serial, jurisdiction)
            for serial, jurisdiction in (
                (1, Jurisdiction.YANJIANG),
                (2, Jurisdiction.LEZHI),
                (3, Jurisdiction.ANYUE),
            )
        ]
        await merchant_in(
            sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 4, jurisdiction=Jurisdiction.ANYUE
        )
        await merchant_in(sessions, clock, campaign_id, MerchantStatus.COUNTY_APPROVED, 5)
        served = await seed_claims(
            sessions,
            settings,
            clock,
            campaign_id,
            {District.YANJIANG: 9, District.ANYUE: 5, District.LEZHI: 2},
        )
        for number, order in enumerate((12_000, 16_800, 23_500, 10_000, 31_200)):
            serial = number % 3 + 1
            await redeem_claimed(
                sessions, clock, merchant_id=shops[serial - 1], terminal_id=f"T{serial:07d}", order_fen=order
            )
        clock.advance(timedelta(days=7))  # the second round, a week later
        await seed_claims(
            sessions,
            settings,
            clock,
            campaign_id,
            {District.YANJIANG: 6, District.ANYUE: 2, District.LEZHI: 4},
            first_serial=served,
        )
        for order in (13_300, 19_900, 45_000, 11_000):
            await redeem_claimed(
                sessions, clock, merchant_id=shops[0], terminal_id="T0000001", order_fen=order
            )
        return await make_user(
            sessions, settings, clock, "city.wangfang", Role.CITY_ADMIN, display_name="王芳"
        )

    admin = live_server.run(prepare)
    page = watched.page
    sign_in(watched, admin)
    expect(page).to_have_url(re.compile(r"/console/overview$"))
    expect(page.locator("header")).to_contain_text("王芳")
    expect(page.locator("header")).to_contain_text("市商务局")
    expect(page.locator("[data-figure='vouchers_claimed'] .figure-value")).to_have_text("28")
    expect(page.locator("[data-figure='redemptions'] .figure-value")).to_have_text("9")
    expect(page.locator("[data-figure='redemption_rate'] .figure-value")).to_have_text("32.1%")  # 9 of 28
    expect(page.locator("[data-figure='subsidy'] .figure-value")).to_have_text("¥270.00")
    expect(page.locator("[data-figure='consumption_driven'] .figure-value")).to_have_text("¥1,827.00")
    expect(page.locator("[data-figure='leverage'] .figure-value")).to_have_text("1 : 6.77")
    for chart in (
        "#chart-claims-by-day",
        "#chart-redemptions-by-day",
        "#chart-district-map",
        "#chart-merchants-by-status",
    ):
        expect(page.locator(f"{chart} canvas")).to_have_count(1)
    page.wait_for_load_state("networkidle")  # the boundary file is fetched by the map
    assert any(url.endswith("/console/static/geo/ziyang-districts.json") for url in watched.requests)
    assert any(url.endswith("/console/static/vendor/echarts.min.js") for url in watched.requests)
    shot = watched.screenshot("overview-zh")
    if UPDATE_DOCS:
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("header")).to_contain_text("City commerce bureau")
    expect(page.locator("#chart-district-map canvas")).to_have_count(1)
    page.locator("[data-map-switch='redemptions']").click()  # the map switches in place
    expect(page.locator("#chart-district-map")).to_have_attribute("data-layer", "redemptions")
    expect(page.locator("#by-district-heading")).to_contain_text("Redemptions by district")
    page.get_by_role("link", name="Campaigns and rounds").click()
    expect(page.locator("h1")).to_have_text("Campaigns and rounds")  # the language is remembered
    page.get_by_role("link", name="测试活动").first.click()
    expect(page.locator("table.table-rounds")).to_contain_text("Open")
    watched.screenshot("campaign-en")
    page.get_by_role("link", name="中文").click()
    expect(page.locator("table.table-rounds")).to_contain_text("进行中")

    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in\?reason=signed_out"))
    expect(page.locator(".alert")).to_contain_text("您已安全退出")
    assert_clean(watched)


def test_a_county_reviewer_approves_its_own_and_cannot_open_another_county(
    watched: Watched, live_server: LiveServer
) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> tuple[NewUser, str, str]:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        own = await merchant_in(sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 11)
        other = await merchant_in(
            sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 12, jurisdiction=Jurisdiction.ANYUE
        )
        reviewer = await make_user(
            sessions,
            settings,
            clock,
            "yanjiang.zhang",
            Role.COUNTY_REVIEWER,
            display_name="张伟",
            jurisdiction=Jurisdiction.YANJIANG,
        )
        return reviewer, own, other

    reviewer, own, other = live_server.run(prepare)
    page = watched.page
    sign_in(watched, reviewer)
    expect(page.locator("header")).to_contain_text("雁江区")
    page.get_by_role("link", name="商户审核").click()
    queue = page.locator("main table")
    expect(queue).to_contain_text("资阳市测试商贸有限公司11号店")
    expect(queue).not_to_contain_text("12号店")  # 安岳县's merchant is not in 雁江区's queue
    watched.screenshot("review-queue")
    queue.get_by_role("link", name="资阳市测试商贸有限公司11号店").click()
    page.get_by_label("审核意见").fill("材料齐全，符合参与条件")
    page.get_by_role("button", name="审核通过").click()  # confirmed in the dialog
    expect(page.locator(".alert-success")).to_contain_text("已审核通过")
    expect(page.locator("main")).to_contain_text("县级审核通过")
    expect(page.locator("main")).to_contain_text("材料齐全，符合参与条件")
    watched.screenshot("merchant-approved")

    response = page.goto(f"{live_server.url}/console/merchants/{other}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("不在您的管辖范围内")
    assert own != other
    assert_clean(watched, refusals=(404,))


def test_wrong_passwords_are_explained_and_five_lock_the_account(
    watched: Watched, live_server: LiveServer
) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> NewUser:
        return await make_user(
            sessions, live_server.settings, live_server.clock, "finance.li", Role.FINANCE, display_name="李静"
        )

    official = live_server.run(prepare)
    page = watched.page
    for attempt in range(5):
        sign_in(watched, official, password=f"not my password {attempt}")
        expect(page.locator(".alert-error")).to_contain_text("用户名、密码或动态验证码错误")
        expect(page.get_by_label("用户名")).to_have_value("finance.li")
    watched.screenshot("sign-in-refused")
    live_server.clock.advance(timedelta(seconds=30))  # a fresh code: the right one, too late
    sign_in(watched, official)
    expect(page.locator(".alert-error")).to_contain_text("已被锁定")
    watched.screenshot("sign-in-locked")
    assert_clean(watched, refusals=(401, 423))


def test_an_idle_session_ends_after_30_minutes(watched: Watched, live_server: LiveServer) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> NewUser:
        return await make_user(
            sessions, live_server.settings, live_server.clock, "operator.chen", Role.OPERATOR
        )

    operator = live_server.run(prepare)
    page = watched.page
    sign_in(watched, operator)
    expect(page).to_have_url(re.compile(r"/console/overview"))
    live_server.clock.advance(timedelta(minutes=31))
    page.get_by_role("link", name="商户管理").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in\?reason=expired"))
    expect(page.locator(".alert-info")).to_contain_text("会话已超时")
    sign_in(watched, operator, navigate=False)  # and back, to the page asked for
    expect(page.locator("h1")).to_have_text("商户管理")
    assert_clean(watched)


def test_the_api_docs_load_offline(watched: Watched, live_server: LiveServer) -> None:
    page = watched.page
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Huimin")
    expect(page.locator(".opblock").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    watched.screenshot("api-docs")
    assert any(url.endswith("/openapi.json") for url in watched.requests)
    assert_clean(watched)
