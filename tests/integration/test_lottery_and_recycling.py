"""Lottery rounds, expiry and recycling, extra rounds: through the services on the campaign's clock,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.domain import ClaimMode
from huimin.campaigns.models import BatchRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.claims import flows, service
from huimin.claims.lottery import lottery_sealer, rank_entries
from huimin.claims.models import LotteryEntryRow, StockMovementRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import HuiminError, InvalidInput
from huimin.kit.clock import LOCAL_TZ, ManualClock
from tests.support import resident_body

CAMPAIGN = """
[campaign]
code = "lottery-test"
name = "摇号测试"
starts_on = 2022-06-01
ends_on = 2022-07-31
budget = "100000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "100000"

[[batches]]
code = "general"
name = "通用券"
kind = "threshold"
face_value = "30"
threshold = "100"
validity = { days_after_claim = 3 }
funding = { fiscal = "100%" }
scope = { categories = ["零售"] }

[[schedules]]
code = "draw"
mode = "lottery"
every = "once"
at = 10:00:00
first = 2022-06-22
window_hours = 48
stock = { "general" = 5 }

[[schedules]]
code = "friday"
every = "week"
weekday = "friday"
at = 10:00:00
first = 2022-06-24
last = 2022-07-08
window_hours = 12
stock = { "general" = 3 }
"""

INSIDE = Location(104.6276, 30.1288, Crs.GCJ02)
SEALER = lottery_sealer("k" * 40)


def at(day: int, month: int = 6, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2022, month, day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


@pytest.fixture
async def world(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> dict[str, object]:
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=CAMPAIGN, clock=clock)
        partner = await create_partner(
            session, name="app", kind=PartnerKind.APP, sealer=partner_sealer("k" * 40), clock=clock
        )
        residents = [
            (
                await eligibility.register_resident(
                    session,
                    partner_id=partner.partner.id,
                    data=ResidentIn(**resident_body(serial)),
                    hasher=settings.hasher,
                    clock=clock,
                )
            ).resident.id
            for serial in range(12)
        ]
        rounds = {row.code: row.id for row in (await session.scalars(select(RoundRow))).all()}
        batch = await session.scalar(select(BatchRow.id))
    return {"partner": partner.partner.id, "residents": residents, "rounds": rounds, "batch": batch}


async def enter(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], resident: str, clock: ManualClock
) -> service.Entered:
    async with unit_of_work(sessions) as session:
        return await service.enter_lottery(
            session,
            partner_id=str(world["partner"]),
            resident_id=resident,
            round_id=world["rounds"]["draw-20220622"],  # type: ignore[index]
            batch_id=str(world["batch"]),
            location=INSIDE,
            geofence=default_geofence(),
            sealer=SEALER,
            clock=clock,
        )


async def test_a_lottery_from_registration_to_a_verified_draw(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    round_id = world["rounds"]["draw-20220622"]  # type: ignore[index]
    clock.set(at(22, hour=10, minute=1))
    first = await enter(sessions, world, world["residents"][0], clock)  # type: ignore[index]
    again = await enter(sessions, world, world["residents"][0], clock)  # type: ignore[index]
    assert first.created
    assert not again.created
    assert again.entry.id == first.entry.id
    for resident in world["residents"][1:]:  # type: ignore[index]
        entered = await enter(sessions, world, resident, clock)
        assert entered.seed_sha256 == first.seed_sha256  # committed once, before registration closed

    with pytest.raises(HuiminError) as early:
        async with unit_of_work(sessions) as session:
            await flows.draw_lottery(session, round_id=round_id, sealer=SEALER, clock=clock)
    assert early.value.code == "lottery_not_closed"

    clock.set(at(24))  # registration closed Friday 10:00
    async with unit_of_work(sessions) as session:
        report = await flows.draw_lottery(session, round_id=round_id, sealer=SEALER, clock=clock)
    assert (report.entries, report.winners, report.vouchers) == (12, 5, 5)
    async with unit_of_work(sessions) as session:
        again_report = await flows.draw_lottery(session, round_id=round_id, sealer=SEALER, clock=clock)
        assert again_report == report  # drawing twice changes nothing
        entries = (await session.scalars(select(LotteryEntryRow))).all()
        expected = rank_entries(report.seed, round_id, str(world["batch"]), [entry.id for entry in entries])
        assert {entry.id for entry in entries if entry.won} == set(expected[:5])
        assert await session.scalar(select(func.count()).select_from(VoucherRow)) == 5
        assert (await flows.verify_lottery(session, round_id=round_id)).matches
        record = await service.lottery_record(session, round_id=round_id)
        assert [rank for _, rank, _ in record.winners] == [1, 2, 3, 4, 5]
        assert all("****" in phone for _, _, phone in record.winners)

    # a changed entry list is caught by verify
    async with unit_of_work(sessions) as session:
        loser = next(entry for entry in entries if not entry.won)
        await session.execute(
            update(LotteryEntryRow).where(LotteryEntryRow.id == loser.id).values(won=True, rank=1)
        )
    async with unit_of_work(sessions) as session:
        tampered = await flows.verify_lottery(session, round_id=round_id)
    assert not tampered.matches
    assert any(loser.id in problem for problem in tampered.problems)


async def test_a_lottery_entry_needs_an_open_registration(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    clock.set(at(22, hour=9, minute=59))
    with pytest.raises(HuiminError) as caught:
        await enter(sessions, world, world["residents"][0], clock)  # type: ignore[index]
    assert caught.value.code == "round_not_open"


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    world: dict[str, object],
    resident: str,
    round_code: str,
    clock: ManualClock,
) -> str:
    async with unit_of_work(sessions) as session:
        claimed = await service.claim_voucher(
            session,
            partner_id=str(world["partner"]),
            resident_id=resident,
            round_id=world["rounds"][round_code],  # type: ignore[index]
            batch_id=str(world["batch"]),
            location=INSIDE,
            geofence=default_geofence(),
            clock=clock,
        )
    return claimed.voucher.id


async def stock_of(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], round_code: str
) -> tuple[int, int]:
    async with unit_of_work(sessions) as session:
        round_id = world["rounds"][round_code]  # type: ignore[index]
        released = await session.scalar(
            select(RoundBatchRow.stock + RoundBatchRow.recycled_in).where(RoundBatchRow.round_id == round_id)
        )
        remaining = await session.scalar(
            select(func.sum(StockShardRow.remaining)).where(StockShardRow.round_id == round_id)
        )
    return int(released or 0), int(remaining or 0)


async def test_expired_and_unclaimed_stock_rolls_into_the_next_round(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    residents: list[str] = world["residents"]  # type: ignore[assignment]
    clock.set(at(24, minute=1))
    claimed = [await claim(sessions, world, resident, "friday-20220624", clock) for resident in residents[:2]]
    assert await stock_of(sessions, world, "friday-20220624") == (3, 1)

    clock.set(at(25, hour=0, minute=1))  # the round closed at 22:00 with one voucher unclaimed
    async with unit_of_work(sessions) as session:
        report = await flows.expire_and_recycle(session, clock=clock)
    assert (report.expired, report.unclaimed_recycled) == (0, 1)
    assert await stock_of(sessions, world, "friday-20220701") == (4, 4)
    assert await stock_of(sessions, world, "friday-20220624") == (3, 0)

    clock.set(at(27, hour=0, minute=0))  # 3 days counting the claim day: valid until the end of Sunday 26th
    async with unit_of_work(sessions) as session:
        report = await flows.expire_and_recycle(session, clock=clock)
    assert (report.expired, report.expired_recycled, report.unclaimed_recycled) == (2, 2, 0)
    assert await stock_of(sessions, world, "friday-20220701") == (6, 6)
    async with unit_of_work(sessions) as session:
        statuses = {
            row.status
            for row in (await session.scalars(select(VoucherRow).where(VoucherRow.id.in_(claimed)))).all()
        }
        assert statuses == {"recycled"}
        moved = (await session.scalars(select(StockMovementRow).order_by(StockMovementRow.id))).all()
        assert [(row.kind, row.quantity, row.value_fen) for row in moved] == [
            ("unclaimed", 1, 3000),
            ("expired", 2, 6000),
        ]

    async with unit_of_work(sessions) as session:
        nothing = await flows.expire_and_recycle(session, clock=clock)
    assert (nothing.expired, nothing.expired_recycled, nothing.unclaimed_recycled) == (0, 0, 0)


async def test_an_extra_round_is_checked_like_the_file(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    clock.set(at(24))
    async with unit_of_work(sessions) as session:
        row = await campaigns.add_round(
            session,
            campaign_code="lottery-test",
            opens_at=at(2, month=7, hour=10),
            hours=6,
            stock={"general": 10},
            mode=ClaimMode.FIRST_COME,
            clock=clock,
        )
    assert row.code == "extra-20220702-1000"
    assert await stock_of(sessions, {**world, "rounds": {"x": row.id}}, "x") == (10, 10)
    cases = [
        ({"opens_at": at(8, month=7, hour=12), "stock": {"general": 1}}, "overlap for batch 'general'"),
        ({"opens_at": at(3, month=8), "stock": {"general": 1}}, "outside the campaign period"),
        ({"opens_at": at(5, month=7), "stock": {"general": 5000}}, "more than the budget"),
        ({"opens_at": at(5, month=7), "stock": {"nope": 1}}, "unknown batch 'nope'"),
        ({"opens_at": at(20), "stock": {"general": 1}}, "must open in the future"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidInput) as caught:
            async with unit_of_work(sessions) as session:
                await campaigns.add_round(
                    session,
                    campaign_code="lottery-test",
                    hours=6,
                    mode=ClaimMode.FIRST_COME,
                    clock=clock,
                    **options,  # type: ignore[arg-type]
                )
        assert message in caught.value.message, caught.value.message


def test_dates_helper_is_local_time() -> None:
    assert at(24) == datetime(2022, 6, 24, 2, 0, tzinfo=UTC)
    assert at(24) + timedelta(hours=12) == at(24, hour=22)


async def test_lottery_over_http(
    client: object, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    import httpx

    from tests.integration.test_claims_api import new_partner
    from tests.support import ZIYANG_CENTRE, SignedClient

    assert isinstance(client, httpx.AsyncClient)
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=CAMPAIGN, clock=clock)
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    app = SignedClient(client, key_id=key_id, secret=secret, clock=clock)
    resident = (await app.post("/api/v1/residents", resident_body(1))).json()["resident_id"]
    board = {item["code"]: item for item in (await client.get("/api/v1/rounds")).json()}
    draw = board["draw-20220622"]
    assert draw["mode"] == "lottery"
    clock.set(at(22, minute=5))
    body = {"resident_id": resident, "batch_id": draw["batches"][0]["batch_id"], "location": ZIYANG_CENTRE}
    entered = await app.post(f"/api/v1/rounds/{draw['round_id']}/entries", body)
    assert entered.status_code == 201, entered.text
    assert (await app.post(f"/api/v1/rounds/{draw['round_id']}/entries", body)).status_code == 200
    claim = await app.post(
        f"/api/v1/rounds/{draw['round_id']}/claims", body, **{"Idempotency-Key": "lottery-claim-1"}
    )
    assert claim.json()["code"] == "lottery_round"
    record = (await client.get(f"/api/v1/rounds/{draw['round_id']}/lottery")).json()
    assert record["status"] == "registering"
    assert record["seed_sha256"] == entered.json()["seed_sha256"]
    assert record["seed"] is None
    assert record["entries"] == 1


async def test_simultaneous_first_entries_share_one_commitment(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    import asyncio

    clock.set(at(22, minute=2))
    residents: list[str] = world["residents"]  # type: ignore[assignment]
    entered = await asyncio.gather(*(enter(sessions, world, resident, clock) for resident in residents[:8]))
    assert all(item.created for item in entered)
    assert len({item.seed_sha256 for item in entered}) == 1
