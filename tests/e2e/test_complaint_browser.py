"""A complaint in Chromium, from the 12345 hotline's registration to the county's resolution: the
hotline registers a merchant's refusal of a voucher, the complaint is routed to the merchant's county
with its due date, the county reviewer assigns it, starts, writes the resolution. No request leaves the
server, no script fails, and no page shows the caller's number in clear."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.principals import Role
from huimin.kit.terms import Jurisdiction
from huimin.merchants.domain import MerchantStatus
from tests.console_helpers import make_user
from tests.e2e.conftest import LiveServer, Watched
from tests.e2e.test_console_browser import assert_clean, sign_in
from tests.integration.merchant_helpers import merchant_in, new_campaign

CALLER = "13912345678"


def test_a_complaint_from_hotline_registration_to_resolution(
    watched: Watched, live_server: LiveServer
) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, NewUser, NewUser]:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        shop = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 31)
        hotline = await make_user(
            sessions, settings, clock, "hotline.liu", Role.HOTLINE, display_name="12345热线 刘洋"
        )
        county = await make_user(
            sessions,
            settings,
            clock,
            "yanjiang.zhang",
            Role.COUNTY_REVIEWER,
            display_name="雁江区商务局 张伟",
            jurisdiction=Jurisdiction.YANJIANG,
        )
        return shop, hotline, county

    shop, hotline, county = live_server.run(prepare)
    page = watched.page
    sign_in(watched, hotline)
    page.get_by_role("link", name="投诉处理").click()
    page.get_by_role("link", name="登记投诉").click()
    page.get_by_label("类别").select_option("merchant_refused_voucher")
    page.get_by_label("被投诉商户编号").fill(shop)
    page.get_by_label("来电号码").fill(CALLER)
    page.get_by_label("投诉内容").fill("市民反映该店以“系统维护”为由拒收消费券。")
    page.get_by_role("button", name="登记", exact=True).click()
    expect(page.locator(".alert-success")).to_contain_text("已登记")
    expect(page.locator("[data-due]")).to_contain_text("2022-06-30 00:00")  # 3 working days from Friday
    expect(page.locator(".content")).to_contain_text("县（区）商务主管部门")
    expect(page.locator(".content")).to_contain_text("139****5678")
    complaint_url = page.url.split("?")[0]
    watched.screenshot("complaint-registered")
    page.get_by_role("button", name="退出登录").click()

    sign_in(watched, county)
    page.goto(complaint_url)
    page.locator("#assignee_id").select_option(index=1)  # the only colleague: the reviewer itself
    page.locator("[data-step-form='assign'] button").click()
    expect(page.locator("[data-assignee]")).to_have_text("雁江区商务局 张伟")
    page.locator("[data-step-form='start'] button").click()
    expect(page.locator(".alert-success")).to_contain_text("开始办理")
    page.get_by_label("记录内容").fill("已电话联系商户，商户承认拒收。")
    page.get_by_role("button", name="添加办理记录").click()
    page.locator("#text-resolve").fill("责令商户整改并向市民致歉，市民表示满意。")
    page.locator("[data-step-form='resolve'] button").click()
    expect(page.locator(".alert-success")).to_contain_text("办结")
    expect(page.locator("[data-resolution]")).to_contain_text("责令商户整改")
    expect(page.locator("#complaint-history")).to_contain_text("已电话联系商户")
    assert CALLER not in page.content()
    watched.screenshot("complaint-resolved")
    page.goto(f"{live_server.url}/console/complaints")
    expect(page.locator("#complaints")).to_contain_text("已办结")
    assert_clean(watched)
