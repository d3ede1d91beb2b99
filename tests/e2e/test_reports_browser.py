"""The reports page (统计报表) in Chromium: a city official opens it, its two charts draw (ECharts from
the platform itself), a breakdown by county redraws them, the English switch keeps the filters, and
nothing is fetched from another host. Screenshots in test-output/e2e/."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser
from huimin.auth.principals import Role
from huimin.db import unit_of_work
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants.domain import MerchantStatus
from huimin.reports import rollup
from tests.console_helpers import make_user, redeem_claimed, seed_claims
from tests.e2e.conftest import LiveServer, Watched
from tests.e2e.test_console_browser import assert_clean, sign_in
from tests.integration.merchant_helpers import merchant_in, new_campaign


def test_the_reports_page_draws_its_charts(watched: Watched, live_server: LiveServer) -> None:
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
        served = await seed_claims(
            sessions,
            settings,
            clock,
            campaign_id,
            {District.YANJIANG: 6, District.ANYUE: 4, District.LEZHI: 3},
        )
        for number, order in enumerate((12_000, 16_800, 23_500, 10_000, 31_200, 14_000)):
            serial = number % 3 + 1
            await redeem_claimed(
                sessions, clock, merchant_id=shops[serial - 1], terminal_id=f"T{serial:07d}", order_fen=order
            )
        clock.advance(timedelta(days=7))  # the next week's round
        await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 4}, first_serial=served)
        for order in (13_300, 19_900):
            await redeem_claimed(
                sessions, clock, merchant_id=shops[0], terminal_id="T0000001", order_fen=order
            )
        async with unit_of_work(sessions) as session:
            await rollup.rollup(session, clock=clock)
        return await make_user(sessions, settings, clock, "city.report", Role.CITY_ADMIN, display_name="王芳")

    admin = live_server.run(prepare)
    page = watched.page
    sign_in(watched, admin)
    expect(page).to_have_url(re.compile(r"/console/overview$"))
    page.get_by_role("link", name="统计报表").click()
    expect(page.locator("h1")).to_have_text("统计报表")
    expect(page.locator("[data-report-figure='redeemed'] .figure-value")).to_have_text("8")
    expect(page.locator("[data-report-figure='claimed'] .figure-value")).to_have_text("17")
    for chart in ("#chart-report-redeemed", "#chart-report-subsidy"):
        expect(page.locator(f"{chart} canvas")).to_have_count(1)
    expect(page.locator("#report-lines tbody tr")).to_have_count(2)  # two days with redemptions
    expect(page.locator("[data-download='claims']")).to_be_visible()
    expect(page.locator("[data-download='summary-pdf']")).to_be_visible()
    page.wait_for_load_state("networkidle")
    watched.screenshot("reports-zh")

    page.locator("#by").select_option("jurisdiction")
    page.get_by_role("button", name="查询").click()
    expect(page).to_have_url(re.compile(r"by=jurisdiction"))
    expect(page.locator("#report-lines tbody tr")).to_have_count(3)  # 雁江区, 安岳县, 乐至县
    expect(page.locator("#chart-report-subsidy canvas")).to_have_count(1)
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Reports")
    expect(page.locator("#report-lines")).to_contain_text("Anyue County")
    page.wait_for_load_state("networkidle")
    watched.screenshot("reports-by-jurisdiction-en")
    assert any(url.endswith("/console/static/vendor/echarts.min.js") for url in watched.requests)
    assert_clean(watched)
