"""`huimin privacy purge`, on SQLite and PostgreSQL: refused before it is due; then residents' ID, phone
and device hashes, their identifier links, complainants' phone hashes and merchants' contact phones
and settled bank accounts are erased, masked forms and records kept; a person still in another
campaign is kept; the purge is audited and a second run erases nothing more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal
from huimin.claims.models import VoucherRow
from huimin.cli import app as cli
from huimin.complaints import service as complaints
from huimin.complaints.domain import Category
from huimin.complaints.models import ComplaintRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.eligibility.models import PersonIdentifierRow, ResidentRow
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from huimin.kit.terms import District
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.models import MerchantRow
from huimin.privacy import service
from huimin.privacy.models import PrivacyPurgeRow
from tests.console_helpers import seed_claims
from tests.integration.complaint_helpers import HOTLINE
from tests.integration.merchant_helpers import SEALER, merchant_in, new_campaign

ROUND_OPEN = datetime(2022, 6, 24, 3, 0, tzinfo=UTC)
# the small campaign ends 2022-12-31: with 180 days the purge is due from 2023-06-29 (local)
DUE = datetime(2023, 6, 28, 16, 0, tzinfo=UTC)
SYSTEM = Principal.system("test")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ROUND_OPEN)


async def purge(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, campaign_id: str, **options: object
) -> service.PurgeReport:
    async with unit_of_work(sessions) as session:
        return await service.purge(
            session,
            principal=SYSTEM,
            campaign_id=campaign_id,
            after_days=180,
            sealer=SEALER,
            clock=clock,
            **options,  # type: ignore[arg-type]
        )


async def test_the_purge_erases_what_is_no_longer_needed(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    other_campaign = await new_campaign(sessions, clock, code="other-2022")
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1)
    # persons 0 and 1 claim in this campaign; person 0 also in another campaign not purged
    await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 2})
    await seed_claims(sessions, settings, clock, other_campaign, {District.YANJIANG: 1}, first_serial=0)
    async with unit_of_work(sessions) as session:
        complaint = await complaints.register(
            session,
            principal=HOTLINE,
            category=Category.PRODUCT_QUALITY,
            text="买到过期食品",
            merchant_id=merchant_id,
            phone="13987654321",
            hasher=settings.hasher,
            policy=complaints.ComplaintPolicy(),
            clock=clock,
        )
        before = {
            row.id: (row.person_id, row.phone_masked, row.id_number_masked)
            for row in await session.scalars(select(ResidentRow))
        }

    with pytest.raises(HuiminError) as early:
        await purge(sessions, clock, campaign_id)
    assert (early.value.code, early.value.status) == ("purge_not_due", 409)
    clock.set(DUE - timedelta(seconds=1))
    with pytest.raises(HuiminError):
        await purge(sessions, clock, campaign_id)

    clock.set(DUE)
    dry = await purge(sessions, clock, campaign_id, dry_run=True)
    assert (dry.persons, dry.persons_kept, dry.residents, dry.bank_accounts_erased) == (1, 1, 1, 1)
    report = await purge(sessions, clock, campaign_id)
    assert (report.reference_kind, report.reference.isoformat(), report.due_on.isoformat()) == (
        "campaign_end",
        "2022-12-31",
        "2023-06-29",
    )
    assert report.counts() == {
        "persons": 1,
        "residents": 1,
        "identifiers": 2,
        "persons_kept": 1,
        "complaints": 1,
        "claim_places": 2,
        "merchant_phones": 1,
        "bank_accounts_erased": 1,
        "bank_accounts_kept": 0,
        "settlement_lines": 0,
    }

    async with unit_of_work(sessions) as session:
        residents = {row.id: row for row in await session.scalars(select(ResidentRow))}
        purged = [row for row in residents.values() if row.id_number_digest.startswith("purged:")]
        [gone] = purged
        assert gone.phone_digest == gone.device_digest == gone.id_number_digest == f"purged:{gone.id}"
        for row in residents.values():  # masked forms stay, for every account
            assert (row.person_id, row.phone_masked, row.id_number_masked) == before[row.id]
        kept = [row for row in residents.values() if row.person_id != gone.person_id]
        assert all(len(row.phone_digest) == 64 for row in kept)
        links = await session.scalar(
            select(func.count())
            .select_from(PersonIdentifierRow)
            .where(PersonIdentifierRow.person_id == gone.person_id)
        )
        assert links == 0
        row = await session.get(ComplaintRow, complaint.id)
        assert row is not None
        assert (row.complainant_phone_digest, row.complainant_phone_masked) == (None, "139****4321")
        merchant = await session.get(MerchantRow, merchant_id)
        assert merchant is not None
        assert merchant.contact_phone_sealed is None
        assert merchant.contact_phone_masked == "138****5678"
        assert merchant.bank_account_sealed is not None
        assert SEALER.bank_account.open(merchant.bank_account_sealed) == ""
        assert merchant.bank_account_masked == "622************0123"
        places = {
            row.campaign_id: (row.claim_lng, row.claim_lat)
            for row in await session.scalars(select(VoucherRow))
        }
        assert places[campaign_id] == (None, None)  # where the claims were made: gone with the campaign
        assert None not in places[other_campaign]  # the other campaign is not purged yet
        actions = list(
            await session.scalars(
                select(AuditRecordRow.action).where(AuditRecordRow.object_id == campaign_id)
            )
        )
        assert actions.count("privacy.purge") == 1
        assert actions.count("privacy.purge_dry_run") == 1
        assert await session.scalar(select(func.count()).select_from(PrivacyPurgeRow)) == 2

    again = await purge(sessions, clock, campaign_id)
    assert (again.residents, again.complaints, again.merchant_phones, again.bank_accounts_erased) == (
        0,
        0,
        0,
        0,
    )


def test_the_command(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the command is exercised once, on SQLite")
    monkeypatch.setenv("HUIMIN_DATABASE_URL", database_url)
    runner = CliRunner()
    missing = runner.invoke(cli, ["privacy", "purge", "--campaign", "nope"])
    assert missing.exit_code != 0

    async def load() -> None:
        engine = create_engine(database_url)
        await new_campaign(create_sessionmaker(engine), ManualClock(ROUND_OPEN))
        await engine.dispose()

    asyncio.run(load())
    result = runner.invoke(cli, ["privacy", "purge", "--campaign", "test-2022", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "purge due from 2023-06-29" in result.output
    assert "would erase" in result.output
