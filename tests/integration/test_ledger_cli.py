"""`huimin ledger ...` as an operator runs it: deposits with maker-checker, balances, and the
invariant check's exit code (0 when I1–I3 hold, 1 when any fails)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns.models import BatchRow, RoundRow
from huimin.claims import service as claims
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.kit.clock import ManualClock
from tests.integration.test_cli import huimin
from tests.support import resident_body, small_campaign


async def _claim_one(database_url: str) -> None:
    """One claim of the general batch (100 % fiscal, ¥30) in the Friday round."""
    clock = ManualClock(datetime(2022, 6, 24, 2, 5, tzinfo=UTC))
    engine = create_engine(database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            partner = await create_partner(
                session, name="app", kind=PartnerKind.APP, sealer=partner_sealer("k" * 40), clock=clock
            )
            resident = await eligibility.register_resident(
                session,
                partner_id=partner.partner.id,
                data=ResidentIn(**resident_body(1)),
                hasher=Settings(database_url=database_url).hasher,
                clock=clock,
            )
            round_id = await session.scalar(select(RoundRow.id).where(RoundRow.code == "friday-20220624"))
            batch_id = await session.scalar(select(BatchRow.id).where(BatchRow.code == "general"))
            await claims.claim_voucher(
                session,
                partner_id=partner.partner.id,
                resident_id=resident.resident.id,
                round_id=str(round_id),
                batch_id=str(batch_id),
                location=Location(104.6276, 30.1288, Crs.GCJ02),
                geofence=default_geofence(),
                clock=clock,
            )
    finally:
        await engine.dispose()


def test_deposits_and_the_invariant_check(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'huimin.db'}"
    campaign_file = tmp_path / "campaign.toml"
    campaign_file.write_text(small_campaign(), encoding="utf-8")
    assert huimin("db", "upgrade", database_url=url).returncode == 0
    assert huimin("campaign", "load", str(campaign_file), database_url=url).returncode == 0

    clean = huimin("ledger", "check", database_url=url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "conservation" in clean.stdout

    asyncio.run(_claim_one(url))
    unfunded = huimin("ledger", "check", "--campaign", "test-2022", database_url=url)
    assert unfunded.returncode == 1
    assert "invariants FAILED for test-2022" in unfunded.stderr
    assert "budget:fiscal -¥30.00 (deposits missing?)" in unfunded.stdout

    recorded = huimin(
        "ledger", "deposit", "--campaign", "test-2022", "--funder", "fiscal", "--amount", "900000",
        "--actor", "王芳", "--role", "operator", database_url=url,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    [deposit_id] = re.findall(r"dep_\w+", recorded.stdout)
    assert "¥900,000.00 requested" in recorded.stdout
    same_person = huimin(
        "ledger", "approve-deposit", deposit_id, "--actor", "王芳", "--role", "finance", database_url=url
    )
    assert same_person.returncode == 1
    assert "maker_checker" in same_person.stderr
    approved = huimin(
        "ledger", "approve-deposit", deposit_id, "--actor", "李强", "--role", "finance", database_url=url
    )
    assert approved.returncode == 0, approved.stderr
    assert "approved by 李强" in approved.stdout

    funded = huimin("ledger", "check", "--campaign", "test-2022", database_url=url)
    assert funded.returncode == 0, funded.stdout + funded.stderr
    shown = huimin("ledger", "balances", "--campaign", "test-2022", database_url=url)
    assert "¥899,970.00" in shown.stdout  # budget:fiscal after one ¥30 voucher
    assert huimin("ledger", "check", "--campaign", "nope", database_url=url).returncode == 1
