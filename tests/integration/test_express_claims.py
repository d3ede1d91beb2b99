"""Express claims (HUIMIN_CLAIMS_ACK=redis) through HTTP: answered once Redis has decided, persisted to
PostgreSQL by the workers' consumer. Each test starts its own redis-server with AOF and
`appendfsync always` (the durability express claims require), on loopback ports."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.domain import PartnerKind
from huimin.auth.service import NewPartner, create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, CampaignRow, RoundRow, StockShardRow
from huimin.claims import flows
from huimin.claims import service as claims_service
from huimin.claims.express import ExpressPersister, campaign_keys, paused_for_the_database, reconcile_express
from huimin.claims.models import ClaimCounterRow, VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location
from huimin.eligibility.models import UnionMemberRow
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import ConfigurationError, HuiminError
from huimin.kit.clock import ManualClock, SystemClock
from huimin.kit.money import Fen
from huimin.ledger import service as ledger
from huimin.ledger.checks import run_checks
from tests.conftest import fresh_postgres
from tests.integration.merchant_helpers import OPERATOR
from tests.integration.redis_servers import RedisProcess, free_port, redis_process
from tests.integration.test_lottery_and_recycling import CAMPAIGN as LOTTERY_CAMPAIGN
from tests.integration.till import FINANCE
from tests.support import CHENGDU, ZIYANG_CENTRE, SignedClient, id_number, resident_body, small_campaign

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
OPEN = datetime(2022, 6, 24, 2, 0, 1, tzinfo=UTC)  # Friday 10:00:01 in Ziyang
PERSISTED_WITHIN = 2.0  # seconds: the issue's bound from acknowledgement to PostgreSQL


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Express claims are the production shape: PostgreSQL only."""
    yield from fresh_postgres(request)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with redis_process(tmp_path / "redis", *DURABLE) as server:
        yield server


def express_settings(database_url: str, redis_url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        claims_backend="redis",
        claims_ack="redis",
        rate_limit_claim_resident="off",
        rate_limit_claim_device="off",
        rate_limit_claim_ip="off",
        rate_limit_claim_global="off",
        **extra,
    )


@pytest.fixture
async def express_app(
    database_url: str, redis_server: RedisProcess, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    application = create_app(express_settings(database_url, redis_server.url), clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(express_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=express_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as client:
        yield client


class City:
    def __init__(self, app: FastAPI, signed: SignedClient, partner_id: str, residents: list[str]) -> None:
        self.app, self.signed, self.partner_id, self.residents = app, signed, partner_id, residents
        self.round_id = self.batch_id = self.union_batch_id = self.later_round_id = ""

    async def claim(
        self,
        resident: str,
        *,
        key: str | None = None,
        batch_id: str | None = None,
        round_id: str | None = None,
        location: dict[str, Any] | None = None,
    ) -> httpx.Response:
        body = {
            "resident_id": resident,
            "batch_id": batch_id or self.batch_id,
            "location": location or ZIYANG_CENTRE,
        }
        headers = {"Idempotency-Key": key or f"k-{resident}-{time.monotonic_ns()}"}
        return await self.signed.post(f"/api/v1/rounds/{round_id or self.round_id}/claims", body, **headers)

    async def reconcile(self, clock: ManualClock) -> None:
        express = self.app.state.express
        await reconcile_express(
            self.app.state.sessions, gate=express.gate, persister=express.persister, clock=clock
        )


async def load_city(
    app: FastAPI, clock: ManualClock, *, campaign: str, funders: dict[str, int], residents: int
) -> tuple[NewPartner, list[str]]:
    """The campaign loaded, its funders' budgets deposited, an app partner and its residents registered."""
    sessions: async_sessionmaker[AsyncSession] = app.state.sessions
    settings: Settings = app.state.settings
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=campaign, clock=clock)
        campaign_id = str(await session.scalar(select(CampaignRow.id)))
        for funder, yuan in funders.items():
            deposit = await ledger.request_deposit(
                session,
                principal=OPERATOR,
                campaign_id=campaign_id,
                funder_code=funder,
                amount=Fen.yuan(yuan),
                clock=clock,
            )
            await ledger.approve_deposit(session, principal=FINANCE, deposit_id=deposit.row.id, clock=clock)
        created = await create_partner(
            session,
            name="app",
            kind=PartnerKind.APP,
            sealer=partner_sealer(settings.secret_key.get_secret_value()),
            clock=clock,
        )
        ids = [
            (
                await eligibility.register_resident(
                    session,
                    partner_id=created.partner.id,
                    data=ResidentIn(**resident_body(serial)),
                    hasher=settings.hasher,
                    clock=clock,
                )
            ).resident.id
            for serial in range(residents)
        ]
    return created, ids


async def open_city(
    app: FastAPI, http: httpx.AsyncClient, clock: ManualClock, *, residents: int, stock: int, **options: Any
) -> City:
    created, ids = await load_city(
        app,
        clock,
        campaign=small_campaign(stock=stock, **options),
        funders={"fiscal": 900_000, "union": 100_000},
        residents=residents,
    )
    async with unit_of_work(app.state.sessions) as session:
        city = City(
            app,
            SignedClient(http, key_id=created.partner.key_id, secret=created.secret, clock=clock),
            created.partner.id,
            ids,
        )
        city.round_id = str(
            await session.scalar(select(RoundRow.id).where(RoundRow.code == "friday-20220624"))
        )
        city.later_round_id = str(
            await session.scalar(select(RoundRow.id).where(RoundRow.code == "later-20220701"))
        )
        city.batch_id = str(await session.scalar(select(BatchRow.id).where(BatchRow.code == "general")))
        city.union_batch_id = str(await session.scalar(select(BatchRow.id).where(BatchRow.code == "union")))
    await city.reconcile(clock)
    clock.set(OPEN)
    return city


async def persisted(sessions: async_sessionmaker[AsyncSession], expected: int, *, within: float) -> float:
    """Wait until the database holds `expected` vouchers; how long it took (fails after `within`)."""
    started = time.monotonic()
    while True:
        async with unit_of_work(sessions) as session:
            count = int(await session.scalar(select(func.count()).select_from(VoucherRow)) or 0)
        waited = time.monotonic() - started
        if count == expected:
            return waited
        assert count < expected, f"{count} vouchers in the database, {expected} acknowledged"
        assert waited < within, f"{count} of {expected} acknowledged vouchers persisted after {within} s"
        await asyncio.sleep(0.02)


async def assert_books_agree(sessions: async_sessionmaker[AsyncSession], stock: int) -> None:
    """Counters agree with the voucher rows, stock shards with what was taken, and the ledger balances."""
    async with unit_of_work(sessions) as session:
        rows = (
            await session.execute(select(VoucherRow.person_id, VoucherRow.round_id, VoucherRow.batch_id))
        ).all()
        counters = {
            (person, scope): claimed
            for person, scope, claimed in (
                await session.execute(
                    select(ClaimCounterRow.person_id, ClaimCounterRow.scope, ClaimCounterRow.claimed)
                )
            ).all()
        }
        by_round = Counter((person, f"r:{round_id}:b:{batch_id}") for person, round_id, batch_id in rows)
        assert {key: value for key, value in counters.items() if key[1].startswith("r:")} == dict(by_round)
        events = int(
            await session.scalar(
                select(func.count()).select_from(VoucherEventRow).where(VoucherEventRow.kind == "claimed")
            )
            or 0
        )
        assert events == len(rows)
        left = int(await session.scalar(select(func.sum(StockShardRow.remaining))) or 0)
        # the general and union batches of the Friday round and the general of the later one
        assert left == 3 * stock - len(rows)
        for campaign in (await session.scalars(select(CampaignRow))).all():
            report = await run_checks(session, campaign)
            assert report.ok, [result for result in report.results if not result.ok]


async def test_a_claim_is_answered_from_redis_and_persisted_within_two_seconds(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    city = await open_city(express_app, http, clock, residents=2, stock=5)
    response = await city.claim(city.residents[0], key="first-claim-1")
    assert response.status_code == 201, response.text
    voucher = response.json()
    assert voucher["batch_id"] == city.batch_id
    assert voucher["face_value_fen"] == 3000
    assert voucher["threshold_fen"] == 10000
    assert voucher["status"] == "claimed"
    assert voucher["qr_payload"] == f"HUIMIN:V1:{voucher['code']}"
    assert voucher["valid_until"] == "2022-06-30T16:00:00Z"  # 7 days counting Friday, local midnight
    took = await persisted(express_app.state.sessions, 1, within=PERSISTED_WITHIN)
    async with unit_of_work(express_app.state.sessions) as session:
        row = await session.get(VoucherRow, voucher["voucher_id"])
        assert row is not None
        assert (row.code, row.status, row.district, row.idempotency_key) == (
            voucher["code"],
            "claimed",
            "yanjiang",  # 雁江区
            "first-claim-1",
        )
        assert (row.claim_lng, row.claim_lat) == (104.628, 30.129)
        # the database holds the instants the resident was told, to the microsecond
        assert row.claimed_at == datetime.fromisoformat(voucher["claimed_at"].replace("Z", "+00:00"))
        assert row.valid_until == datetime.fromisoformat(voucher["valid_until"].replace("Z", "+00:00"))
    await assert_books_agree(express_app.state.sessions, 5)
    assert took < PERSISTED_WITHIN
    # the backlog is on /metrics: the stream's entries not yet persisted (none now)
    async with unit_of_work(express_app.state.sessions) as session:
        stream = campaign_keys(str(await session.scalar(select(CampaignRow.id)))).stream
    await asyncio.sleep(0.2)  # the consumer reports after each read, every 50 ms when idle
    assert REGISTRY.get_sample_value("huimin_stream_lag_entries", {"stream": stream, "group": "persist"}) == 0

    # /metrics reads the stock left from express claims' counters
    metrics = (await http.get("/metrics")).text
    assert (
        'huimin_stock_remaining{batch="general",campaign="test-2022",round="friday-20220624",source="redis"} 4.0'
        in metrics
    )

    # the same request again: the same voucher; another body under the key: refused
    again = await city.claim(city.residents[0], key="first-claim-1")
    assert (again.status_code, again.json()) == (201, voucher)
    other = await city.claim(city.residents[1], key="first-claim-1")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_mismatch")


async def test_every_refusal_keeps_its_code(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    city = await open_city(express_app, http, clock, residents=4, stock=2)
    sessions = express_app.state.sessions
    async with unit_of_work(sessions) as session:
        session.add(
            UnionMemberRow(
                id_number_digest=express_app.state.settings.hasher.digest("id_number", id_number(3)),
                id_number_masked="512***",
                source="test",
                imported_at=clock.now(),
            )
        )
    refusals = {
        "not_eligible_location": await city.claim(city.residents[0], location=CHENGDU),
        "unknown_round": await city.claim(city.residents[0], round_id="rnd_nosuchround"),
        "unknown_batch": await city.claim(city.residents[0], batch_id="bat_nosuchbatch"),
        "unknown_resident": await city.claim("res_nosuchresident"),
        "not_union_member": await city.claim(city.residents[0], batch_id=city.union_batch_id),
    }
    refusals["round_not_open"] = await city.claim(city.residents[0], round_id=city.later_round_id)
    for code, response in refusals.items():
        assert response.json()["code"] == code, (code, response.text)
    assert (await city.claim(city.residents[3], batch_id=city.union_batch_id)).status_code == 201

    no_key = await city.signed.post(
        f"/api/v1/rounds/{city.round_id}/claims",
        {"resident_id": city.residents[2], "batch_id": city.batch_id, "location": ZIYANG_CENTRE},
    )
    assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_required")
    bad_body = await city.signed.post(
        f"/api/v1/rounds/{city.round_id}/claims",
        {"resident_id": city.residents[2], "batch_id": city.batch_id, "location": {"lng": 1}},
        **{"Idempotency-Key": "bad-body-1"},
    )
    assert (bad_body.status_code, bad_body.json()["code"]) == (422, "invalid_request")
    assert "body.location.lat" in bad_body.text
    async with unit_of_work(sessions) as session:
        till = await create_partner(
            session,
            name="till",
            kind=PartnerKind.TERMINAL,
            sealer=partner_sealer(express_app.state.settings.secret_key.get_secret_value()),
            clock=clock,
        )
    terminal = SignedClient(http, key_id=till.partner.key_id, secret=till.secret, clock=clock)
    wrong_kind = await terminal.post(
        f"/api/v1/rounds/{city.round_id}/claims",
        {"resident_id": city.residents[2], "batch_id": city.batch_id, "location": ZIYANG_CENTRE},
        **{"Idempotency-Key": "wrong-kind-1"},
    )
    assert (wrong_kind.status_code, wrong_kind.json()["code"]) == (403, "wrong_partner_kind")
    unsigned = await http.post(f"/api/v1/rounds/{city.round_id}/claims", content=b"{}")
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "missing_signature")
    tampered = city.signed.headers("POST", f"/api/v1/rounds/{city.round_id}/claims", b"{}")
    forged = await http.post(f"/api/v1/rounds/{city.round_id}/claims", content=b'{"x":1}', headers=tampered)
    assert (forged.status_code, forged.json()["code"]) == (401, "bad_signature")
    # (a batch flagged sold out is refused before any of these checks, as on the FastAPI route)

    assert (await city.claim(city.residents[0])).status_code == 201
    limit = await city.claim(city.residents[0])
    assert (limit.status_code, limit.json()["code"]) == (409, "limit_reached")
    assert "1 per person in this round" in limit.json()["message"]
    assert (await city.claim(city.residents[1])).status_code == 201
    sold = await city.claim(city.residents[2], key="sold-out-key")
    assert (sold.status_code, sold.json()["code"]) == (409, "sold_out")
    # a stored refusal is the answer to its key, like any other
    assert (await city.claim(city.residents[2], key="sold-out-key")).json()["code"] == "sold_out"

    await persisted(sessions, 3, within=PERSISTED_WITHIN)
    await assert_books_agree(sessions, 2)


async def test_claims_are_paused_until_the_campaign_is_reconciled(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    city = await open_city(express_app, http, clock, residents=2, stock=3)
    assert (await city.claim(city.residents[0])).status_code == 201
    await persisted(express_app.state.sessions, 1, within=PERSISTED_WITHIN)
    redis = express_app.state.express.gate.redis
    await redis.flushall()  # Redis lost its memory
    paused = await city.claim(city.residents[1])
    assert (paused.status_code, paused.json()["code"]) == (503, "claims_paused")
    await city.reconcile(clock)
    # rebuilt from the database: the first resident's voucher still counts against their limit
    assert (await city.claim(city.residents[0])).json()["code"] == "limit_reached"
    assert (await city.claim(city.residents[1])).status_code == 201
    await persisted(express_app.state.sessions, 2, within=PERSISTED_WITHIN)
    await assert_books_agree(express_app.state.sessions, 3)


async def test_2000_concurrent_attempts_for_100_vouchers_issue_exactly_100(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    city = await open_city(express_app, http, clock, residents=500, stock=100, per_round=2)
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(200)

    async def attempt(serial: int) -> None:
        async with gate:
            response = await city.claim(city.residents[serial % 500])
            code = "" if response.status_code == 201 else response.json()["code"]
            outcomes[f"{response.status_code} {code}".strip()] += 1

    await asyncio.gather(*(attempt(serial) for serial in range(2000)))
    assert outcomes["201"] == 100, outcomes
    assert outcomes["409 sold_out"] + outcomes["409 limit_reached"] == 1900, outcomes
    await persisted(express_app.state.sessions, 100, within=PERSISTED_WITHIN)
    async with unit_of_work(express_app.state.sessions) as session:
        held = Counter((await session.scalars(select(VoucherRow.person_id))).all())
    assert max(held.values()) <= 2
    await assert_books_agree(express_app.state.sessions, 100)


async def test_redis_killed_mid_round_loses_nothing_it_acknowledged(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock, redis_server: RedisProcess
) -> None:
    """kill -9 of a Redis with `appendfsync always` while claims are decided: every voucher a resident
    was told about reaches PostgreSQL after the restart, and nothing is issued beyond the stock."""
    city = await open_city(express_app, http, clock, residents=300, stock=150)
    acknowledged: set[str] = set()
    answers: Counter[str] = Counter()

    async def attempt(serial: int) -> None:
        try:
            response = await city.claim(city.residents[serial % 300])
        except Exception as error:
            answers[type(error).__name__] += 1
            return
        answers[str(response.status_code)] += 1
        if response.status_code == 201:
            acknowledged.add(response.json()["voucher_id"])

    first = [asyncio.ensure_future(attempt(serial)) for serial in range(200)]
    await asyncio.sleep(0.05)
    redis_server.kill()
    await asyncio.gather(*first)
    redis_server.start()  # the same port and directory: Redis replays its AOF
    await asyncio.gather(*(attempt(serial) for serial in range(200, 400)))
    assert acknowledged, answers
    await persisted(express_app.state.sessions, len(acknowledged), within=15)
    async with unit_of_work(express_app.state.sessions) as session:
        ids = set((await session.scalars(select(VoucherRow.id))).all())
    assert ids == acknowledged, answers
    assert len(ids) <= 150
    await assert_books_agree(express_app.state.sessions, 150)


async def test_express_claims_refuse_a_redis_that_may_lose_them(database_url: str, tmp_path: Path) -> None:
    with redis_process(tmp_path / "volatile") as volatile:
        application = create_app(express_settings(database_url, volatile.url))
        with pytest.raises(ConfigurationError, match="appendfsync always"):
            async with application.router.lifespan_context(application):
                pass
        allowed = create_app(express_settings(database_url, volatile.url, claims_ack_volatile_redis=True))
        async with allowed.router.lifespan_context(allowed):
            assert allowed.state.express is not None


def test_express_claims_need_the_redis_gate() -> None:
    with pytest.raises(ConfigurationError, match="HUIMIN_CLAIMS_BACKEND=redis"):
        Settings(claims_ack="redis", redis_url="redis://127.0.0.1:1/0").check_backends()


# The lottery campaign of test_lottery_and_recycling (5 drawn on 22 June, then Friday rounds of 3), with
# one voucher per person in the whole campaign.
LOTTERY_THEN_FLASH = LOTTERY_CAMPAIGN.replace(
    'budget = "100000"\n', 'budget = "100000"\nlimits = { per_person_total = 1 }\n', 1
)


async def test_a_lottery_draw_pauses_express_claims_and_its_winners_count_against_the_limits(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """One voucher per person in the campaign: the draw's five winners, whose vouchers the database
    issued, are refused by Redis in the Friday round afterwards; the sixth gets one."""
    sessions: async_sessionmaker[AsyncSession] = express_app.state.sessions
    created, residents = await load_city(
        express_app, clock, campaign=LOTTERY_THEN_FLASH, funders={"fiscal": 100_000}, residents=6
    )
    async with unit_of_work(sessions) as session:
        campaign_id = str(await session.scalar(select(CampaignRow.id)))
        rounds = {row.code: row.id for row in (await session.scalars(select(RoundRow))).all()}
        batch_id = str(await session.scalar(select(BatchRow.id)))
    express = express_app.state.express
    await reconcile_express(sessions, gate=express.gate, persister=express.persister, clock=clock)
    clock.set(datetime(2022, 6, 22, 2, 1, tzinfo=UTC))  # registration open
    for resident in residents:
        async with unit_of_work(sessions) as session:
            await claims_service.enter_lottery(
                session,
                partner_id=created.partner.id,
                resident_id=resident,
                round_id=rounds["draw-20220622"],
                batch_id=batch_id,
                location=Location(104.6276, 30.1288, Crs.GCJ02),
                geofence=express_app.state.geofence,
                sealer=express_app.state.lottery_sealer,
                clock=clock,
            )
    clock.set(datetime(2022, 6, 24, 2, 0, tzinfo=UTC))  # registration closed
    async with (
        paused_for_the_database(
            sessions,
            gate=express.gate,
            persister=ExpressPersister(express.gate.redis, sessions, consumer="draw"),
            clock=clock,
            campaign_id=campaign_id,
        ),
        unit_of_work(sessions) as session,
    ):
        report = await flows.draw_lottery(
            session, round_id=rounds["draw-20220622"], sealer=express_app.state.lottery_sealer, clock=clock
        )
    assert report.vouchers == 5
    async with unit_of_work(sessions) as session:
        winners = set((await session.scalars(select(VoucherRow.resident_id))).all())

    clock.set(datetime(2022, 6, 24, 2, 0, 1, tzinfo=UTC))  # the Friday round is open
    signed = SignedClient(http, key_id=created.partner.key_id, secret=created.secret, clock=clock)
    answers = {}
    for resident in residents:
        response = await signed.post(
            f"/api/v1/rounds/{rounds['friday-20220624']}/claims",
            {"resident_id": resident, "batch_id": batch_id, "location": ZIYANG_CENTRE},
            **{"Idempotency-Key": f"flash-{resident}"},
        )
        answers[resident] = response.json().get("code") if response.status_code != 201 else "claimed"
    assert {r for r, answer in answers.items() if answer == "limit_reached"} == winners, answers
    assert sorted(answers.values()).count("claimed") == 1, answers
    await persisted(sessions, 6, within=PERSISTED_WITHIN)
    async with unit_of_work(sessions) as session:
        held = Counter((await session.scalars(select(VoucherRow.person_id))).all())
        report_checks = await run_checks(session, (await session.scalars(select(CampaignRow))).one())
    assert set(held.values()) == {1}
    assert report_checks.ok


async def test_an_entry_the_database_refuses_is_set_aside_and_the_stream_goes_on(
    express_app: FastAPI, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A record the database cannot take (here a resident that does not exist: a foreign key) must not
    hold up the vouchers behind it: they are persisted, it goes to the campaign's dead-letter stream."""
    city = await open_city(express_app, http, clock, residents=3, stock=5)
    express = express_app.state.express
    express.persister.stop()
    await express.consuming  # this test drains by hand
    assert (await city.claim(city.residents[0])).status_code == 201
    async with unit_of_work(express_app.state.sessions) as session:
        campaign_id = str(await session.scalar(select(CampaignRow.id)))
    names = campaign_keys(campaign_id)
    [(_, [(_, fields)])] = await express.gate.redis.xread({names.stream: "0"}, count=1)
    poison = json.loads(fields[b"v"])
    poison.update(id="vch_poison", code="POISONPOISONPOISN", resident_id="res_gone")
    await express.gate.redis.xadd(names.stream, {"v": json.dumps(poison)})
    assert (await city.claim(city.residents[1])).status_code == 201
    persister = ExpressPersister(express.gate.redis, express_app.state.sessions, consumer="by-hand")
    while (await persister.drain_once()).read:
        pass
    await persisted(express_app.state.sessions, 2, within=PERSISTED_WITHIN)
    dead = await express.gate.redis.xrange(names.stream.removesuffix(":claims") + ":dead")
    assert [json.loads(entry[b"v"])["id"] for _, entry in dead] == ["vch_poison"]
    assert b"IntegrityError" in dead[0][1][b"error"]
    assert await express.gate.redis.xlen(names.stream) == 0


async def test_a_worker_starts_while_redis_is_down_and_checks_its_durability_when_it_answers(
    database_url: str, tmp_path: Path
) -> None:
    """A worker restarted during a Redis outage must not crash-loop: it starts, and once Redis answers it
    checks Redis's durability; a Redis that may lose acknowledged claims then gets them refused."""
    later = RedisProcess(tmp_path / "later", free_port())  # no AOF: not durable
    application = create_app(express_settings(database_url, later.url))
    async with application.router.lifespan_context(application):
        gate = application.state.express.gate
        assert gate.refusing is None
        later.start()
        try:
            for _ in range(60):
                if gate.refusing is not None:
                    break
                await asyncio.sleep(0.1)
            assert gate.refusing is not None
            assert "appendfsync always" in gate.refusing
            with pytest.raises(HuiminError) as refused:
                await gate.decide("cmp_x", ["a", "s"], {"i": 0, "s": 1, "h": []})
            assert refused.value.code == "claims_paused"
        finally:
            later.kill()


async def test_express_claims_answer_503_while_the_database_is_out_of_reach(
    redis_server: RedisProcess,
) -> None:
    """Failures that are not refusals get the app's answers on the express route too, not a bare 500."""
    application = create_app(
        express_settings("postgresql+asyncpg://postgres@127.0.0.1:9/huimin", redis_server.url)
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as client:
            signed = SignedClient(client, key_id="pk_unknown", secret="s" * 32, clock=SystemClock())
            async with asyncio.timeout(30):  # an exception escaping the route leaves the answer unsent
                response = await signed.post(
                    "/api/v1/rounds/rnd_x/claims",
                    {"resident_id": "res_x", "batch_id": "bat_x", "location": ZIYANG_CENTRE},
                    **{"Idempotency-Key": "db-down-1"},
                )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "2"
