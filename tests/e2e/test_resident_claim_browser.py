"""Issue 8's walk in Chromium: the payment app opens the resident's own page with a signed link, the
resident claims a voucher there with the phone's location, the cashier redeems it on the till page,
and the city's overview counts both."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.schemas import ResidentIn
from huimin.merchants.domain import MerchantStatus
from tests.console_helpers import make_user
from tests.e2e.conftest import LiveServer, Watched
from tests.e2e.test_console_browser import assert_clean, sign_in
from tests.integration.merchant_helpers import merchant_in, new_campaign
from tests.support import SignedClient, id_number, phone

PHONE_FIX = {"latitude": 30.1310, "longitude": 104.6220}  # central Yanjiang, as the phone's GPS says


def _count(watched: Watched, name: str) -> int:
    return int(watched.page.locator(f"[data-figure='{name}'] .figure-value").inner_text().replace(",", ""))


def test_a_resident_claims_in_the_app_the_cashier_redeems_and_the_overview_counts_it(
    watched: Watched, live_server: LiveServer, browser: Browser
) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> tuple[NewUser, NewUser, str, str, str]:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        shop = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 21)
        async with unit_of_work(sessions) as session:
            app = await create_partner(
                session,
                name="云闪付",
                kind=PartnerKind.APP,
                sealer=partner_sealer(settings.secret_key.get_secret_value()),
                clock=clock,
            )
            resident = await eligibility.register_resident(
                session,
                partner_id=app.partner.id,
                data=ResidentIn(
                    app_user_id="user-501",
                    real_name_verified=True,
                    id_number=id_number(501),
                    phone=phone(501),
                    device_id="device-501",
                ),
                hasher=settings.hasher,
                clock=clock,
            )
        cashier = await make_user(
            sessions, settings, clock, "shop.chen", Role.MERCHANT, display_name="陈静", merchant_id=shop
        )
        admin = await make_user(
            sessions, settings, clock, "city.wangfang", Role.CITY_ADMIN, display_name="王芳"
        )
        return cashier, admin, app.partner.key_id, app.secret, resident.resident.id

    cashier, admin, key_id, secret, resident_id = live_server.run(prepare)
    page = watched.page  # the city admin's browser, signed in throughout

    sign_in(watched, admin)
    expect(page).to_have_url(re.compile(r"/console/overview$"))
    claimed_before, redeemed_before = _count(watched, "vouchers_claimed"), _count(watched, "redemptions")

    # The app opens the page in its webview with a signed link; the phone shares its location.
    phone_context = browser.new_context(
        viewport={"width": 390, "height": 844},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        geolocation=PHONE_FIX,
        permissions=["geolocation"],
    )
    phone_page = phone_context.new_page()
    phone_page.set_default_timeout(15_000)
    handset = Watched(phone_page, live_server)
    link = SignedClient(None, key_id=key_id, secret=secret, clock=live_server.clock).h5_link(resident_id)  # type: ignore[arg-type]
    phone_page.goto(f"{live_server.url}{link}")
    expect(phone_page).to_have_url(re.compile(r"/h5/me$"))
    expect(phone_page.locator("h1")).to_have_text("我的消费券")
    phone_page.locator("[data-offer='general']").get_by_role("button", name="立即领取").click()
    expect(phone_page.locator("[data-claimed]")).to_contain_text("领取成功")
    code = phone_page.locator("[data-claimed]").get_attribute("data-claimed")
    assert code
    expect(phone_page.locator(f"[data-voucher='{code}']")).to_contain_text("待使用")
    handset.screenshot("h5-me-claimed")

    # The cashier, on the shop's own browser.
    phone_context.clear_cookies()
    sign_in(handset, cashier)
    expect(phone_page).to_have_url(re.compile(r"/console/till$"))
    phone_page.get_by_label("券码").fill(code)
    phone_page.get_by_label("订单金额（元）").fill("120")
    phone_page.get_by_role("button", name="计算").click()
    phone_page.get_by_role("button", name="确认核销").click()
    expect(phone_page.locator("[data-receipt]")).to_contain_text("核销成功")
    phone_context.close()

    page.reload()
    assert _count(watched, "vouchers_claimed") == claimed_before + 1
    assert _count(watched, "redemptions") == redeemed_before + 1
    watched.screenshot("overview-after-claim-and-redemption")
    assert_clean(watched)
