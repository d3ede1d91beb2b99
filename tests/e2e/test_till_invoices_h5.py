"""The till, the county's invoice check and the resident page in Chromium: a cashier redeems a voucher
end to end and is refused the same voucher again (已使用); a county reviewer verifies a car purchase's
invoices; the resident page on a phone shows the rounds and the merchants. No request leaves the
server (127.0.0.1), no script fails."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.principals import Role
from huimin.campaigns.service import load_campaign
from huimin.claims.models import VoucherRow
from huimin.db import unit_of_work
from huimin.kit.money import Fen
from huimin.kit.terms import Category, District, Jurisdiction
from huimin.merchants.domain import MerchantStatus
from huimin.redemptions import service as redemptions
from huimin.redemptions.service import Invoice, RedemptionRequest
from tests.conftest import ROOT
from tests.console_helpers import make_user, seed_claims
from tests.e2e.conftest import LiveServer, Watched
from tests.e2e.test_console_browser import UPDATE_DOCS, assert_clean, sign_in
from tests.integration.merchant_helpers import merchant_in, new_campaign
from tests.integration.till import TILL_CAMPAIGN

DOCS = ROOT / "docs" / "img"


def _keep(shot: object, name: str) -> None:
    if UPDATE_DOCS:
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(str(shot), DOCS / name)


async def _claimed_code(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with unit_of_work(sessions) as session:
        code = await session.scalar(select(VoucherRow.code).where(VoucherRow.status == "claimed").limit(1))
    assert code is not None
    return code


def test_a_cashier_redeems_a_voucher_and_cannot_redeem_it_twice(
    watched: Watched, live_server: LiveServer
) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> tuple[NewUser, str]:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        shop = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 21)
        await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 1})
        cashier = await make_user(
            sessions, settings, clock, "shop.chen", Role.MERCHANT, display_name="陈静", merchant_id=shop
        )
        return cashier, await _claimed_code(sessions)

    cashier, code = live_server.run(prepare)
    page = watched.page
    sign_in(watched, cashier)
    expect(page).to_have_url(re.compile(r"/console/till$"))  # a cashier lands on the till
    spaced = f"{code[:4]}-{code[4:8]}-{code[8:12]}-{code[12:16]}-{code[16:]}".lower()  # as read aloud
    page.get_by_label("券码").fill(spaced)
    page.get_by_label("订单金额（元）").fill("128.50")
    page.get_by_label("本店优惠（元）").fill("8.50")
    page.get_by_role("button", name="计算").click()
    expect(page.locator("[data-quote='subsidy']")).to_have_text("− ¥30.00")
    expect(page.locator("[data-quote='resident']")).to_have_text("¥90.00")
    shot = watched.screenshot("till-preview")
    _keep(shot, "console-till.png")
    page.get_by_role("button", name="确认核销").click()
    expect(page.locator("[data-receipt]")).to_contain_text("核销成功")
    expect(page.locator("[data-receipt-amount='resident']")).to_have_text("¥90.00")
    watched.screenshot("till-receipt")

    page.get_by_role("link", name="下一笔").click()
    page.get_by_label("券码").fill(code)
    page.get_by_label("订单金额（元）").fill("150")
    page.get_by_role("button", name="计算").click()
    expect(page.locator("[data-refusal]")).to_contain_text("已使用")
    watched.screenshot("till-refused")
    page.get_by_role("link", name="核销查询").click()
    expect(page.locator("[data-total='count']")).to_have_text("1")
    assert_clean(watched, refusals=(409,))


def test_a_county_reviewer_verifies_a_car_purchase(watched: Watched, live_server: LiveServer) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> tuple[NewUser, str]:
        clock, settings = live_server.clock, live_server.settings
        async with unit_of_work(sessions) as session:
            campaign_id = (await load_campaign(session, text=TILL_CAMPAIGN, clock=clock)).campaign_id
        dealer = await merchant_in(
            sessions, clock, campaign_id, MerchantStatus.ACTIVE, 31, category=Category.CARS
        )
        await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 1}, batch_code="cars")
        code = await _claimed_code(sessions)
        async with unit_of_work(sessions) as session:
            redeemed = await redemptions.redeem(
                session,
                partner_id="ptn_e2e",
                request=RedemptionRequest(
                    voucher_code=code,
                    merchant_id=dealer,
                    terminal_id="T0000031",
                    order_amount=Fen(12_800_000),
                    merchant_discount=Fen(300_000),
                    category=Category.CARS,
                    invoice=Invoice("04400221", Fen(12_500_000), "3301220988"),
                ),
                clock=clock,
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
        return reviewer, redeemed.redemption.id

    reviewer, redemption_id = live_server.run(prepare)
    page = watched.page
    sign_in(watched, reviewer)
    page.get_by_role("link", name="发票核验").click()
    row = page.locator(f"tr[data-redemption='{redemption_id}']")
    expect(row).to_contain_text("04400221")
    expect(row).to_contain_text("¥125,000.00")
    row.get_by_role("link", name="核验").click()
    expect(page.locator("main")).to_contain_text("与应付金额一致")
    page.get_by_label("核验意见").fill("发票真实有效，金额一致")
    shot = watched.screenshot("invoice-check")
    _keep(shot, "console-invoice.png")
    page.get_by_role("button", name="核验通过").click()  # confirmed in the dialog
    expect(page.locator(".alert-success")).to_contain_text("发票核验通过")
    expect(page.locator("main")).to_contain_text("已确认")
    page.get_by_role("link", name="发票核验").first.click()
    expect(page.locator("[data-total='count']")).to_have_text("0")
    assert_clean(watched)


@pytest.fixture
def phone(browser: Browser, live_server: LiveServer) -> Iterator[Watched]:
    context = browser.new_context(
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    record = Watched(page, live_server)
    page.on(
        "console", lambda message: record.errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: record.errors.append(str(error)))
    page.on("request", lambda request: record.requests.append(request.url))
    page.on("requestfailed", lambda request: record.failed.append(f"{request.url}: {request.failure}"))
    yield record
    context.close()


def test_the_resident_page_on_a_phone(phone: Watched, live_server: LiveServer) -> None:
    async def prepare(sessions: async_sessionmaker[AsyncSession]) -> None:
        clock, settings = live_server.clock, live_server.settings
        campaign_id = await new_campaign(sessions, clock)
        for serial, jurisdiction, category in (
            (41, Jurisdiction.YANJIANG, Category.CATERING),
            (42, Jurisdiction.ANYUE, Category.RETAIL),
            (43, Jurisdiction.LEZHI, Category.CATERING),
        ):
            await merchant_in(
                sessions, clock, campaign_id, MerchantStatus.ACTIVE, serial, jurisdiction, category=category
            )
        await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 3})

    live_server.run(prepare)
    page = phone.page
    page.goto(f"{live_server.url}/h5")
    expect(page.locator(".h5-claim-note")).to_contain_text("请在云闪付APP内领取")
    rounds = page.locator("[data-round]")
    expect(rounds.first).to_contain_text("进行中")
    expect(rounds.first.locator("[data-remaining]").first).to_have_text("97")
    expect(page.locator("[data-countdown]")).to_contain_text("距下一场开抢")
    expect(page.locator("[data-merchants] li")).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px phone"
    shot = phone.screenshot("h5-resident-phone")
    _keep(shot, "h5-resident.png")
    page.locator("#category").select_option("catering")
    page.locator("#district").select_option("lezhi")
    page.get_by_role("button", name="查询").click()
    expect(page.locator("[data-merchants] li")).to_have_count(1)
    expect(page.locator("[data-merchants]")).to_contain_text("43号店")
    assert phone.errors == [], phone.errors
    assert phone.failed == [], phone.failed
    assert phone.offsite() == [], phone.offsite()
    assert all(url.startswith(f"{live_server.url}/") for url in phone.requests)
