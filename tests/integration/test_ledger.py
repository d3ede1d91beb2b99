"""The ledger on SQLite and PostgreSQL: posting, idempotency, the database's own refusals, deposits
with maker-checker, and the claim, expiry and recycling postings made by the claims services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Principal, Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import BatchRow, RoundRow
from huimin.claims import flows
from huimin.claims import service as claims
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import HuiminError
from huimin.kit.clock import LOCAL_TZ, ManualClock
from huimin.kit.money import Fen
from huimin.ledger import domain
from huimin.ledger import service as ledger
from huimin.ledger.domain import FundingSplit
from huimin.ledger.models import DepositRow, LedgerPostingRow, LedgerTransactionRow
from tests.support import resident_body

CAMPAIGN = """
[campaign]
code = "ledger-test"
name = "记账测试"
starts_on = 2022-06-01
ends_on = 2022-07-31
budget = "10000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "6667"

[[funders]]
code = "union"
name = "工会"
kind = "union"
budget = "3333"

[[batches]]
code = "general"
name = "通用券"
kind = "threshold"
face_value = "30.01"
threshold = "100"
validity = { days_after_claim = 3 }
funding = { fiscal = "66.67%", union = "33.33%" }
scope = { categories = ["零售"] }

[[schedules]]
code = "friday"
every = "week"
weekday = "friday"
at = 10:00:00
first = 2022-06-24
last = 2022-07-01
window_hours = 12
stock = { "general" = 3 }
"""

INSIDE = Location(104.6276, 30.1288, Crs.GCJ02)
SHARED = FundingSplit.of([("fiscal", 6_667), ("union", 3_333)])
OPERATOR = Principal(actor_id="usr_op", role=Role.OPERATOR, name="王芳")
FINANCE = Principal(actor_id="usr_fin", role=Role.FINANCE, name="李强")


def at(day: int, month: int = 6, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2022, month, day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


@pytest.fixture
async def world(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> dict[str, object]:
    async with unit_of_work(sessions) as session:
        loaded = await campaigns.load_campaign(session, text=CAMPAIGN, clock=clock)
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
            for serial in range(4)
        ]
        rounds = {row.code: row.id for row in (await session.scalars(select(RoundRow))).all()}
        batch = await session.scalar(select(BatchRow.id))
    return {
        "campaign": loaded.campaign_id,
        "partner": partner.partner.id,
        "residents": residents,
        "rounds": rounds,
        "batch": batch,
    }


async def claim(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], resident: str, clock: ManualClock
) -> str:
    async with unit_of_work(sessions) as session:
        claimed = await claims.claim_voucher(
            session,
            partner_id=str(world["partner"]),
            resident_id=resident,
            round_id=world["rounds"]["friday-20220624"],  # type: ignore[index]
            batch_id=str(world["batch"]),
            location=INSIDE,
            geofence=default_geofence(),
            clock=clock,
        )
    return claimed.voucher.id


async def balances(sessions: async_sessionmaker[AsyncSession], campaign_id: str) -> dict[str, int]:
    async with unit_of_work(sessions) as session:
        found = await ledger.balances(session, campaign_id=campaign_id)
    return {key: int(value) for key, value in found.items() if value}


async def fund(sessions: async_sessionmaker[AsyncSession], campaign_id: str, clock: ManualClock) -> None:
    for code, amount in (("fiscal", Fen.yuan(6_667)), ("union", Fen.yuan(3_333))):
        async with unit_of_work(sessions) as session:
            requested = await ledger.request_deposit(
                session,
                principal=OPERATOR,
                campaign_id=campaign_id,
                funder_code=code,
                amount=amount,
                clock=clock,
            )
        async with unit_of_work(sessions) as session:
            await ledger.approve_deposit(session, principal=FINANCE, deposit_id=requested.row.id, clock=clock)


async def test_posting_is_idempotent_and_balances_are_sums(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    campaign_id = str(world["campaign"])
    tx = domain.deposit("dep_x", funder_code="fiscal", amount=10_000)
    async with unit_of_work(sessions) as session:
        first = await ledger.post(session, campaign_id=campaign_id, transaction=tx, at=clock.now())
        again = await ledger.post(session, campaign_id=campaign_id, transaction=tx, at=clock.now())
    async with unit_of_work(sessions) as session:
        later = await ledger.post(session, campaign_id=campaign_id, transaction=tx, at=clock.now())
        many = await ledger.post_many(
            session,
            campaign_id=campaign_id,
            transactions=[
                domain.claim("vch_a", value=3_001, funding=SHARED),
                tx,
                domain.claim("vch_a", value=3_001, funding=SHARED),
                domain.claim("vch_b", value=3_001, funding=SHARED),
            ],
            at=clock.now(),
        )
        assert (
            await ledger.balance(session, campaign_id=campaign_id, account="budget:fiscal")
            == 10_000 - 2 * 2_001
        )
        assert await ledger.balance(session, campaign_id=campaign_id, account="recovery:fiscal") == 0
    assert first == again == later == many[1]
    assert many[0] == many[2] != many[3]
    assert await balances(sessions, campaign_id) == {
        "budget:fiscal": 10_000 - 4_002,
        "budget:union": -2_000,
        "funder:fiscal": 10_000,
        "vouchers:fiscal": 4_002,
        "vouchers:union": 2_000,
    }
    async with unit_of_work(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(LedgerTransactionRow)) == 3
        assert await session.scalar(select(func.count()).select_from(LedgerPostingRow)) == 2 + 4 + 4


async def _raw_unbalanced(session: AsyncSession, campaign_id: str) -> None:
    """A transaction of one posting, written with raw SQL in the order the backend's scheme expects."""
    posting = text(
        "INSERT INTO ledger_postings (transaction_id, campaign_id, account, amount_fen) "
        "VALUES ('ltx_raw', :campaign, 'budget:fiscal', 500)"
    )
    transaction = text(
        "INSERT INTO ledger_transactions (id, campaign_id, kind, reference, at) "
        "VALUES ('ltx_raw', :campaign, 'deposit', 'raw', :at)"
    )
    when = datetime(2022, 6, 1, tzinfo=UTC)
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(posting, {"campaign": campaign_id})
        await session.execute(transaction, {"campaign": campaign_id, "at": when.replace(tzinfo=None)})
    else:
        await session.execute(transaction, {"campaign": campaign_id, "at": when})
        await session.execute(posting, {"campaign": campaign_id})


async def test_the_database_refuses_an_unbalanced_transaction(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object]
) -> None:
    campaign_id = str(world["campaign"])
    with pytest.raises(IntegrityError, match="unbalanced"):
        async with unit_of_work(sessions) as session:
            await _raw_unbalanced(session, campaign_id)
    # ... and a transaction with no postings at all, and postings without their transaction
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_transactions (id, campaign_id, kind, reference, at) "
                    "VALUES ('ltx_empty', :campaign, 'deposit', 'empty', :at)"
                ),
                {"campaign": campaign_id, "at": datetime(2022, 6, 1)},  # noqa: DTZ001 (naive works on both)
            )
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, campaign_id, account, amount_fen) VALUES "
                    "('ltx_none', :campaign, 'budget:fiscal', 5), ('ltx_none', :campaign, 'funder:fiscal', -5)"
                ),
                {"campaign": campaign_id},
            )
    with pytest.raises(IntegrityError):  # CHECK amount <> 0
        async with unit_of_work(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, campaign_id, account, amount_fen) "
                    "VALUES ('ltx_zero', :campaign, 'budget:fiscal', 0)"
                ),
                {"campaign": campaign_id},
            )
    async with unit_of_work(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(LedgerPostingRow)) == 0


async def test_a_sealed_transaction_cannot_gain_postings_later(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    campaign_id = str(world["campaign"])
    async with unit_of_work(sessions) as session:
        tx_id = await ledger.post(
            session,
            campaign_id=campaign_id,
            transaction=domain.deposit("dep_1", funder_code="fiscal", amount=100),
            at=clock.now(),
        )
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_postings (transaction_id, campaign_id, account, amount_fen) "
                    "VALUES (:tx, :campaign, 'budget:fiscal', 100)"
                ),
                {"tx": tx_id, "campaign": campaign_id},
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_fen = amount_fen * 2",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_transactions SET reference = 'other'",
        "DELETE FROM ledger_transactions",
    ],
)
async def test_the_ledger_is_append_only(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock, statement: str
) -> None:
    async with unit_of_work(sessions) as session:
        await ledger.post(
            session,
            campaign_id=str(world["campaign"]),
            transaction=domain.deposit("dep_1", funder_code="fiscal", amount=100),
            at=clock.now(),
        )
    with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
        async with unit_of_work(sessions) as session:
            await session.execute(text(statement))
    assert await balances(sessions, str(world["campaign"])) == {"budget:fiscal": 100, "funder:fiscal": 100}


async def test_a_deposit_is_recorded_by_one_person_and_approved_by_another(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    campaign_id = str(world["campaign"])
    async with unit_of_work(sessions) as session:
        requested = await ledger.request_deposit(
            session,
            principal=OPERATOR,
            campaign_id=campaign_id,
            funder_code="fiscal",
            amount=Fen(123_456),
            clock=clock,
        )
    assert await balances(sessions, campaign_id) == {}  # recorded, not yet money

    async def record(principal: Principal, funder_code: str) -> None:
        async with unit_of_work(sessions) as session:
            await ledger.request_deposit(
                session,
                principal=principal,
                campaign_id=campaign_id,
                funder_code=funder_code,
                amount=Fen(1),
                clock=clock,
            )

    async def approve(principal: Principal) -> None:
        async with unit_of_work(sessions) as session:
            await ledger.approve_deposit(
                session, principal=principal, deposit_id=requested.row.id, clock=clock
            )

    same_person_as_finance = Principal(actor_id="usr_op", role=Role.FINANCE, name="王芳")
    for attempt, code in (
        (record(OPERATOR, "nobody"), "unknown_funder"),
        (record(FINANCE, "fiscal"), "forbidden"),  # finance approves, it does not record
        (approve(OPERATOR), "forbidden"),
        (approve(same_person_as_finance), "maker_checker"),
    ):
        with pytest.raises(HuiminError) as refused:
            await attempt
        assert refused.value.code == code
    async with unit_of_work(sessions) as session:
        approved = await ledger.approve_deposit(
            session, principal=FINANCE, deposit_id=requested.row.id, clock=clock
        )
    assert approved.row.status == "approved"
    assert approved.row.transaction_id is not None
    with pytest.raises(HuiminError) as twice:
        async with unit_of_work(sessions) as session:
            await ledger.approve_deposit(session, principal=FINANCE, deposit_id=requested.row.id, clock=clock)
    assert twice.value.code == "deposit_not_requested"
    assert await balances(sessions, campaign_id) == {"budget:fiscal": 123_456, "funder:fiscal": 123_456}
    # the database refuses self-approval too
    await record(OPERATOR, "union")

    async def self_approve() -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(DepositRow)
                .where(DepositRow.status == "requested")
                .values(status="approved", approved_by="usr_op", approved_at=clock.now())
            )

    with pytest.raises(IntegrityError, match="maker_checker"):
        await self_approve()


async def test_claims_expiry_and_recycling_post_as_they_happen(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    campaign_id = str(world["campaign"])
    residents: list[str] = world["residents"]  # type: ignore[assignment]
    await fund(sessions, campaign_id, clock)
    funded = {
        "budget:fiscal": 666_700,
        "budget:union": 333_300,
        "funder:fiscal": 666_700,
        "funder:union": 333_300,
    }
    assert await balances(sessions, campaign_id) == funded

    clock.set(at(24, minute=1))
    vouchers = [await claim(sessions, world, resident, clock) for resident in residents[:2]]
    # ¥30.01 split 66.67 % / 33.33 %: ¥20.01 fiscal, ¥10.00 union, the same for every step of a voucher
    assert await balances(sessions, campaign_id) == {
        **funded,
        "budget:fiscal": 666_700 - 2 * 2_001,
        "budget:union": 333_300 - 2 * 1_000,
        "vouchers:fiscal": 2 * 2_001,
        "vouchers:union": 2 * 1_000,
    }
    # a refused claim (the same person again, over the per-round limit) posts nothing
    with pytest.raises(HuiminError, match="limit reached"):
        await claim(sessions, world, residents[0], clock)
    async with unit_of_work(sessions) as session:
        claimed_tx = await session.scalar(
            select(func.count()).select_from(LedgerTransactionRow).where(LedgerTransactionRow.kind == "claim")
        )
    assert claimed_tx == 2

    clock.set(at(27, hour=0))  # valid 3 days counting the claim day: expired; the next Friday is ahead
    async with unit_of_work(sessions) as session:
        report = await flows.expire_and_recycle(session, clock=clock)
    assert (report.expired, report.expired_recycled) == (2, 2)
    assert await balances(sessions, campaign_id) == funded  # expired, then recycled into the budget
    async with unit_of_work(sessions) as session:
        kinds = dict(
            (
                await session.execute(
                    select(LedgerTransactionRow.kind, func.count()).group_by(LedgerTransactionRow.kind)
                )
            ).all()
        )
        assert kinds == {"deposit": 2, "claim": 2, "expire": 2, "recycle": 2}
        assert {row.status for row in (await session.scalars(select(VoucherRow))).all()} == {"recycled"}
        report_again = await flows.expire_and_recycle(session, clock=clock)
    assert (report_again.expired, report_again.expired_recycled) == (0, 0)
    async with unit_of_work(sessions) as session:
        [result] = await ledger.check(session, principal=Principal.system(), campaign_id=campaign_id)
    assert result.ok, [r for r in result.results if not r.ok]
    assert vouchers


async def test_expired_vouchers_without_a_later_round_wait_in_expired(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, object], clock: ManualClock
) -> None:
    campaign_id = str(world["campaign"])
    await fund(sessions, campaign_id, clock)
    clock.set(at(1, month=7, minute=1))
    async with unit_of_work(sessions) as session:
        await claims.claim_voucher(
            session,
            partner_id=str(world["partner"]),
            resident_id=world["residents"][0],  # type: ignore[index]
            round_id=world["rounds"]["friday-20220701"],  # type: ignore[index]
            batch_id=str(world["batch"]),
            location=INSIDE,
            geofence=default_geofence(),
            clock=clock,
        )
    clock.set(at(5, month=7, hour=0))
    async with unit_of_work(sessions) as session:
        report = await flows.expire_and_recycle(session, clock=clock)
    assert (report.expired, report.left_for_recovery) == (1, 1)
    found = await balances(sessions, campaign_id)
    assert (found["expired:fiscal"], found["expired:union"]) == (2_001, 1_000)
    assert "vouchers:fiscal" not in found
    async with unit_of_work(sessions) as session:
        [result] = await ledger.check(session, principal=Principal.system(), campaign_id=campaign_id)
        assert result.ok, [r for r in result.results if not r.ok]
        # the state and the ledger disagree once a voucher changes without its posting
        await session.execute(update(VoucherRow).values(status="claimed"))
        [tampered] = await ledger.check(session, principal=Principal.system(), campaign_id=campaign_id)
    failed = {r.name for r in tampered.results if not r.ok}
    assert failed == {
        "vouchers:* = value of claimed vouchers",
        "expired:* = value of expired vouchers not recycled",
    }
