"""Migrations and the campaign round trip, on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.campaigns import service
from huimin.campaigns.models import BatchFundingRow, BatchRow, CampaignRow, FunderRow, RoundBatchRow, RoundRow
from huimin.db import Base, unit_of_work
from huimin.errors import ConflictError, InvalidInput
from huimin.kit.clock import ManualClock
from huimin.migrate import head_revision
from huimin.models import import_all_models
from tests.conftest import ZIYANG_FILE

TABLES = (CampaignRow, FunderRow, BatchRow, BatchFundingRow, RoundRow, RoundBatchRow)
ZIYANG_TEXT = ZIYANG_FILE.read_text(encoding="utf-8")


async def row_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with unit_of_work(sessions) as session:
        return {
            table.__tablename__: await session.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


async def test_migrations_reach_head_and_match_the_models(sessions: async_sessionmaker[AsyncSession]) -> None:
    import_all_models()

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with sessions() as session:
        connection = await session.connection()
        version = await session.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == head_revision()
        assert await connection.run_sync(differences) == []


async def test_the_ziyang_campaign_round_trips(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with unit_of_work(sessions) as session:
        outcome = await service.load_campaign(session, text=ZIYANG_TEXT, clock=clock)
    assert outcome.created
    async with unit_of_work(sessions) as session:
        row = await service.get_campaign(session, campaign_id=outcome.campaign_id)
        assert row.budget_fen == 8_000_000_000
        assert [(f.code, f.budget_fen) for f in row.funders] == [
            ("fiscal", 6_000_000_000),
            ("union", 500_000_000),
            ("social", 1_500_000_000),
        ]
        assert [batch.code for batch in row.batches] == [
            "general-100-30",
            "general-300-80",
            "dining-60-20",
            "car",
            "appliance",
            "union-50-20",
        ]
        car = row.batches[3]
        assert car.max_value_fen == 800_000
        assert car.tiers[0] == {
            "min_price_fen": 5_000_000,
            "max_price_fen": 10_000_000,
            "face_value_fen": 200_000,
        }
        assert {share.funder.code: share.share_bp for share in car.funding} == {
            "fiscal": 8000,
            "social": 2000,
        }
        assert len(row.rounds) == 56
        first = row.rounds[0]
        assert first.opens_at.tzinfo is not None
        assert first.code == "union-lottery-20220622"
        assert row.source_text == ZIYANG_TEXT


async def test_loading_the_same_file_twice_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with unit_of_work(sessions) as session:
        first = await service.load_campaign(session, text=ZIYANG_TEXT, clock=clock)
    before = await row_counts(sessions)
    async with unit_of_work(sessions) as session:
        again = await service.load_campaign(session, text=ZIYANG_TEXT, clock=clock)
    assert (again.campaign_id, again.created) == (first.campaign_id, False)
    assert await row_counts(sessions) == before


async def test_another_file_under_the_same_code_is_refused(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with unit_of_work(sessions) as session:
        await service.load_campaign(session, text=ZIYANG_TEXT, clock=clock)
    before = await row_counts(sessions)
    with pytest.raises(ConflictError) as caught:
        async with unit_of_work(sessions) as session:
            await service.load_campaign(
                session,
                text=ZIYANG_TEXT.replace('budget = "60000000"', 'budget = "60000000.00"'),
                clock=clock,
            )
    assert caught.value.code == "campaign_exists"
    assert await row_counts(sessions) == before


async def test_a_rejected_file_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    bad = ZIYANG_TEXT.replace('threshold = "100"', 'threshold = "10"')
    with pytest.raises(InvalidInput):
        async with unit_of_work(sessions) as session:
            await service.load_campaign(session, text=bad, clock=clock)
    assert set((await row_counts(sessions)).values()) == {0}


async def test_the_database_refuses_what_the_domain_refuses(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Constraints are the second line: a row written around the service still cannot break the rules."""
    async with unit_of_work(sessions) as session:
        outcome = await service.load_campaign(session, text=ZIYANG_TEXT, clock=clock)
    for statement in (
        "UPDATE batches SET threshold_fen = 100 WHERE code = 'general-100-30'",  # 满1减30
        "UPDATE funders SET budget_fen = -1 WHERE code = 'fiscal'",
        "UPDATE round_batches SET stock = -1",
        "UPDATE batch_funding SET share_bp = 10001",
        "UPDATE rounds SET closes_at = opens_at",
    ):
        with pytest.raises(IntegrityError):
            async with unit_of_work(sessions) as session:
                await session.execute(text(statement))
    async with unit_of_work(sessions) as session:
        row = await service.get_campaign(session, campaign_id=outcome.campaign_id)
        assert row.batches[0].threshold_fen == 10_000


def test_ziyang_text_is_valid_toml() -> None:
    # guards the replace() edits above: they must hit real lines of the shipped file
    assert 'budget = "60000000"' in ZIYANG_TEXT
    assert 'threshold = "100"' in ZIYANG_TEXT
    copy.deepcopy(tomllib.loads(ZIYANG_TEXT))
