"""Express claims (HUIMIN_CLAIMS_ACK=redis) from the two other doors: the resident's H5 page claims through
the Redis script like the partner API (a double tap claims once), and an accepted allocation plan sets the
express stock of its round, so that its claims stop at the accepted figure. PostgreSQL and a private
redis-server with `appendfsync always`, like test_express_claims."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.principals import Role
from huimin.campaigns.models import CampaignRow, RoundBatchRow, StockShardRow
from huimin.claims.express import campaign_keys
from huimin.claims.models import ClaimCounterRow, VoucherRow
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.ledger.checks import run_checks
from tests.console_helpers import PASSWORD, make_user
from tests.integration.merchant_helpers import CITY
from tests.integration.redis_servers import RedisProcess
from tests.integration.staff import accept_test_principals, as_
from tests.integration.test_express_claims import (
    PERSISTED_WITHIN,
    City,
    assert_books_agree,
    database_url,
    express_settings,
    http,
    open_city,
    persisted,
    redis_server,
)

__all__ = ["database_url", "http", "redis_server"]

LATER_OPENS = datetime(2022, 7, 1, 2, 0, 1, tzinfo=UTC)  # the later round: Friday 1 July, 10:00:01 in Ziyang
WGS84_CENTRE = {"lng": "104.6220", "lat": "30.1310"}  # central Yanjiang as a phone's GPS reports it
WGS84_CHENGDU = {"lng": "104.0657", "lat": "30.6595"}


@pytest.fixture
async def express_app(
    database_url: str, redis_server: RedisProcess, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    application = create_app(express_settings(database_url, redis_server.url), clock=clock)
    accept_test_principals(application)  # the allocation API's staff, by header
    async with application.router.lifespan_context(application):
        yield application


def _form(page: str, batch_code: str) -> dict[str, str]:
    """The hidden fields of a batch's 领取 button (each rendered button has a form_key of its own)."""
    article = page.split(f'data-offer="{batch_code}"', 1)[1].split("</article>", 1)[0]
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', article))


async def _enter(http: httpx.AsyncClient, city: City, resident_id: str) -> str:
    """Open the resident's page as the app does (its signed link sets the cookie); the page's HTML."""
    entered = await http.get(city.signed.h5_link(resident_id))
    assert entered.status_code == 303, entered.text
    page = await http.get("/h5/me")
    assert page.status_code == 200, page.text
    return page.text


async def _campaign_id(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with unit_of_work(sessions) as session:
        return str(await session.scalar(select(CampaignRow.id)))


async def _stock_key_value(app: FastAPI, key: str) -> int | None:
    value = await app.state.express.gate.redis.get(key)
    return None if value is None else int(value)


async def test_an_h5_claim_is_decided_in_redis_persisted_and_a_double_tap_claims_once(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    city = await open_city(express_app, http, clock, residents=2, stock=5)
    sessions = express_app.state.sessions
    stock_key = campaign_keys(await _campaign_id(sessions)).stock(city.round_id, city.batch_id)
    resident = city.residents[0]
    form = _form(await _enter(http, city, resident), "general")

    claimed = await http.post("/h5/me/claims", data={**form, **WGS84_CENTRE})
    assert claimed.status_code == 303
    assert claimed.headers["location"].startswith("/h5/me?claimed="), claimed.headers["location"]
    [code] = parse_qs(urlsplit(claimed.headers["location"]).query)["claimed"]
    # a double tap (the same button, the phone's fix a little off): the stored answer, the same voucher
    again = await http.post("/h5/me/claims", data={**form, "lng": "104.6221", "lat": "30.1311"})
    assert (again.status_code, again.headers["location"]) == (303, claimed.headers["location"])
    assert await _stock_key_value(express_app, stock_key) == 4  # taken from Redis's stock, once

    await persisted(sessions, 1, within=PERSISTED_WITHIN)
    async with unit_of_work(sessions) as session:
        row = await session.scalar(select(VoucherRow))
        assert row is not None
        assert (row.code, row.resident_id, row.round_id, row.batch_id, row.idempotency_key) == (
            code,
            resident,
            city.round_id,
            city.batch_id,
            f"h5:{resident}:{form['form_key']}",
        )
    shown = await http.get(claimed.headers["location"])
    assert f'data-voucher="{code}"' in shown.text  # the wallet, read from PostgreSQL
    assert "领取成功" in shown.text

    # another button of a fresh page is another claim: the round's limit of one answers it
    limit = await http.post("/h5/me/claims", data={**_form(shown.text, "general"), **WGS84_CENTRE})
    assert limit.headers["location"] == "/h5/me?refused=limit_reached"

    other = _form(await _enter(http, city, city.residents[1]), "general")
    chengdu = await http.post("/h5/me/claims", data={**other, **WGS84_CHENGDU})
    assert chengdu.headers["location"] == "/h5/me?refused=not_eligible_location"
    assert await _stock_key_value(express_app, stock_key) == 4
    await persisted(sessions, 1, within=PERSISTED_WITHIN)
    await assert_books_agree(sessions, 5)


async def _assert_books_agree(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Each round's batch: its stock shards hold its stock less its vouchers; the per-round counters agree
    with the vouchers; the ledger's checks pass. (`assert_books_agree` assumes every round's stock is the
    campaign file's.)"""
    async with unit_of_work(sessions) as session:
        issued = Counter(
            (r, b) for r, b in await session.execute(select(VoucherRow.round_id, VoucherRow.batch_id))
        )
        shards = select(StockShardRow.round_id, StockShardRow.batch_id, func.sum(StockShardRow.remaining))
        left = {
            (round_id, batch_id): int(n)
            for round_id, batch_id, n in await session.execute(
                shards.group_by(StockShardRow.round_id, StockShardRow.batch_id)
            )
        }
        expected = {
            (row.round_id, row.batch_id): row.stock + row.recycled_in - issued[row.round_id, row.batch_id]
            for row in (await session.scalars(select(RoundBatchRow))).all()
        }
        counters = select(ClaimCounterRow.scope, func.sum(ClaimCounterRow.claimed))
        counted = {
            scope: int(n)
            for scope, n in await session.execute(counters.group_by(ClaimCounterRow.scope))
            if scope.startswith("r:")
        }
        for campaign in (await session.scalars(select(CampaignRow))).all():
            report = await run_checks(session, campaign)
            assert report.ok, [result for result in report.results if not result.ok]
    assert left == expected
    assert counted == {f"r:{round_id}:b:{batch_id}": n for (round_id, batch_id), n in issued.items()}


@pytest.mark.parametrize("door", ["api", "console"])
async def test_an_accepted_allocation_sets_the_rounds_express_stock_and_its_claims_stop_there(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock, door: str
) -> None:
    city = await open_city(express_app, http, clock, residents=5, stock=5)
    sessions = express_app.state.sessions
    campaign_id = await _campaign_id(sessions)
    stock_key = campaign_keys(campaign_id).stock(city.later_round_id, city.batch_id)
    assert await _stock_key_value(express_app, stock_key) == 5  # provisioned from the campaign file

    proposed = await http.post(
        f"/api/v1/staff/allocation/campaigns/{campaign_id}/plans",
        json={"max_change_bp": 5_000},
        headers=as_(CITY),
    )
    assert proposed.status_code == 201, proposed.text
    plan = proposed.json()
    assert plan["round_id"] == city.later_round_id  # the next round to open
    if door == "api":
        decided = await http.post(
            f"/api/v1/staff/allocation/plans/{plan['id']}/decision",
            json={"accept": True, "stock": {"general": 3}},
            headers=as_(CITY),
        )
        assert decided.status_code == 200, decided.text
    else:
        settings = express_app.state.settings
        admin = await make_user(sessions, settings, clock, "city.wangfang", Role.CITY_ADMIN)
        totp = pyotp.TOTP(admin.totp_secret).at(clock.now()) if admin.totp_secret else None
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=express_app), base_url="http://huimin.test"
        ) as browser:  # a cookie jar of its own: the city admin's console session
            signed = await browser.post(
                "/api/v1/staff/sign-in",
                json={"username": admin.user.username, "password": PASSWORD, "totp": totp},
            )
            assert signed.status_code == 200, signed.text
            decided = await browser.post(
                f"/console/allocation/plans/{plan['id']}/decision",
                data={"csrf_token": signed.json()["csrf_token"], "decision": "accept", "stock.general": "3"},
            )
        assert decided.status_code == 303, decided.text
    assert await _stock_key_value(express_app, stock_key) == 3

    clock.set(LATER_OPENS)
    answers = []
    for resident in city.residents:
        response = await city.claim(resident, round_id=city.later_round_id)
        answers.append("201" if response.status_code == 201 else response.json()["code"])
    assert answers == ["201", "201", "201", "sold_out", "sold_out"]
    assert await _stock_key_value(express_app, stock_key) == 0
    await persisted(sessions, 3, within=PERSISTED_WITHIN)
    await _assert_books_agree(sessions)
    async with unit_of_work(sessions) as session:
        accepted = await session.get(RoundBatchRow, (city.later_round_id, city.batch_id))
        assert accepted is not None
        assert (accepted.stock, accepted.recycled_in) == (3, 0)
