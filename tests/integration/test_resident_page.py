"""The resident's own page inside the payment app: the app's signed link opens it once, the page lists
the open batches in offer order and claims through the same service as the API, with the phone's
location; a replayed link, a forged cookie or a missing CSRF token are refused (issues 8, 13)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.config import Settings
from huimin.kit.clock import ManualClock
from tests.integration.staff import accept_test_principals
from tests.integration.till import Till, fund, open_till

WGS84_CENTRE = {"lng": "104.6220", "lat": "30.1310"}  # central Yanjiang as a phone's GPS reports it


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    opened = await open_till(client, sessions, settings, clock)
    await fund(sessions, opened, clock)
    return opened


def _form(page: str, batch_code: str) -> dict[str, str]:
    article = page.split(f'data-offer="{batch_code}"', 1)[1].split("</article>", 1)[0]
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', article))


async def test_the_app_opens_the_page_and_the_resident_claims_there(till: Till) -> None:
    resident = await till.resident()
    link = till.app.h5_link(resident)
    entered = await till.http.get(link)
    assert entered.status_code == 303
    assert entered.headers["location"] == "/h5/me"
    replayed = await till.http.get(link)
    assert replayed.status_code == 401  # the link works once

    page = await till.http.get("/h5/me")
    assert page.status_code == 200
    offers = re.findall(r'data-offer="([a-z]+)"', page.text)
    assert sorted(offers) == sorted(till.batches)
    assert "卡包里还没有消费券" in page.text

    form = _form(page.text, "general")
    no_csrf = await till.http.post("/h5/me/claims", data={**form, "csrf_token": "x" * 32, **WGS84_CENTRE})
    assert no_csrf.status_code == 403
    nowhere = await till.http.post("/h5/me/claims", data=form)
    assert nowhere.headers["location"] == "/h5/me?refused=location_required"
    claimed = await till.http.post("/h5/me/claims", data={**form, **WGS84_CENTRE})
    assert claimed.status_code == 303
    assert claimed.headers["location"].startswith("/h5/me?claimed=")
    [code] = parse_qs(urlsplit(claimed.headers["location"]).query)["claimed"]  # a code may end in "="
    again = await till.http.post("/h5/me/claims", data={**form, **WGS84_CENTRE})  # a double tap
    assert again.headers["location"] == claimed.headers["location"]  # the same voucher, not a second one

    wallet = await till.app.get(f"/api/v1/residents/{resident}/vouchers")
    codes = [voucher["code"] for voucher in wallet.json()]
    assert code in codes
    assert len(codes) == len(set(codes))
    shown = await till.http.get(claimed.headers["location"])
    assert f'data-voucher="{code}"' in shown.text
    assert "领取成功" in shown.text

    chengdu = await till.http.post(
        "/h5/me/claims", data={**_form(shown.text, "pct"), "lng": "104.0657", "lat": "30.6595"}
    )
    assert chengdu.headers["location"] == "/h5/me?refused=not_eligible_location"
    assert "不在资阳市范围内" in (await till.http.get(chengdu.headers["location"])).text


async def test_without_the_apps_link_there_is_no_page(till: Till) -> None:
    resident = await till.resident()
    assert (await till.http.get("/h5/me")).status_code == 401
    till.http.cookies.set("h5_resident", "forged.0000", path="/h5")
    assert (await till.http.get("/h5/me")).status_code == 401
    link = till.app.h5_link(resident)
    tampered = link.replace(f"resident_id={resident}", "resident_id=res_someone_else")
    assert (await till.http.get(tampered)).status_code == 401
    terminal_link = till.terminal.h5_link(resident)
    assert (await till.http.get(terminal_link)).status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_h5_claims_count_against_the_residents_claim_rate_limit(
    database_url: str, clock: ManualClock
) -> None:
    """The page's claims pass the same rate limits as the partner API's: two attempts a minute here, the
    third is refused `rate_limited` without reaching the claim."""
    settings = Settings(database_url=database_url, rate_limit_claim_resident="2/60")
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as client:
            engine_sessions = application.state.sessions
            till = await open_till(client, engine_sessions, settings, clock)
            await fund(engine_sessions, till, clock)
            resident = await till.resident()
            await till.http.get(till.app.h5_link(resident))
            form = _form((await till.http.get("/h5/me")).text, "general")
            answers = [
                (await till.http.post("/h5/me/claims", data={**form, **WGS84_CENTRE})).headers["location"]
                for _ in range(3)
            ]
    assert answers[0].startswith("/h5/me?claimed=")
    assert answers[1] == answers[0]  # the same button: the same voucher
    assert answers[2] == "/h5/me?refused=rate_limited"
