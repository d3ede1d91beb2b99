"""2,000 concurrent claim attempts for 100 vouchers from 500 residents: exactly 100 vouchers, nobody
above their limit, and the counters agree with the rows. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, RoundRow, StockShardRow
from huimin.claims import service as claims
from huimin.claims.gate import ClaimGate, SqlGate
from huimin.claims.models import ClaimCounterRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from tests.support import resident_body, small_campaign

RESIDENTS = 500
ATTEMPTS = 2000
STOCK = 100
PER_ROUND = 2


async def test_flash_claims_never_over_issue(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    await flash(sessions, settings, clock, SqlGate())


async def flash(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    gate: ClaimGate,
    before: Callable[[], Awaitable[None]] | None = None,
) -> Counter[str]:
    async with unit_of_work(sessions) as session:
        loaded = await campaigns.load_campaign(
            session, text=small_campaign(stock=STOCK, per_round=PER_ROUND), clock=clock
        )
        partner = await create_partner(
            session, name="app", kind=PartnerKind.APP, sealer=partner_sealer("k" * 40), clock=clock
        )
        round_id = await session.scalar(
            select(RoundRow.id).where(
                RoundRow.campaign_id == loaded.campaign_id, RoundRow.code == "friday-20220624"
            )
        )
        batch_id = await session.scalar(
            select(BatchRow.id).where(BatchRow.campaign_id == loaded.campaign_id, BatchRow.code == "general")
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
            for serial in range(RESIDENTS)
        ]
    assert round_id
    assert batch_id
    if before is not None:
        await before()
    clock.set(datetime(2022, 6, 24, 2, 0, tzinfo=UTC) + timedelta(milliseconds=1))
    where = Location(104.6276, 30.1288, Crs.GCJ02)
    geofence = default_geofence()
    attempts = [residents[index % RESIDENTS] for index in range(ATTEMPTS)]
    random.Random(2022).shuffle(attempts)  # noqa: S311 (a reproducible order, not a secret)
    outcomes: Counter[str] = Counter()
    concurrency = asyncio.Semaphore(25)

    async def attempt(resident_id: str) -> None:
        async with concurrency:
            try:
                async with unit_of_work(sessions) as session:
                    await claims.claim_voucher(
                        session,
                        partner_id=partner.partner.id,
                        resident_id=resident_id,
                        round_id=round_id,
                        batch_id=batch_id,
                        location=where,
                        geofence=geofence,
                        clock=clock,
                        gate=gate,
                    )
                outcomes["claimed"] += 1
            except HuiminError as refusal:
                outcomes[refusal.code] += 1

    await asyncio.gather(*(attempt(resident_id) for resident_id in attempts))

    assert outcomes["claimed"] == STOCK
    assert set(outcomes) <= {"claimed", "sold_out", "limit_reached"}
    assert sum(outcomes.values()) == ATTEMPTS
    async with unit_of_work(sessions) as session:
        vouchers = (await session.execute(select(VoucherRow.person_id, VoucherRow.code))).all()
        assert len(vouchers) == STOCK
        assert len({code for _, code in vouchers}) == STOCK
        per_person = Counter(person for person, _ in vouchers)
        assert max(per_person.values()) <= PER_ROUND
        remaining = await session.scalar(
            select(func.sum(StockShardRow.remaining)).where(
                StockShardRow.round_id == round_id, StockShardRow.batch_id == batch_id
            )
        )
        assert remaining == 0
        counters = {
            person: claimed
            for person, claimed in await session.execute(
                select(ClaimCounterRow.person_id, ClaimCounterRow.claimed)
            )
        }
        assert counters == {person: count for person, count in per_person.items()}
    return outcomes
