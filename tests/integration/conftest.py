"""Fixtures shared by the integration tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.config import Settings
from huimin.kit.clock import ManualClock
from huimin.simulation.run import run_demo
from tests.integration.till import Till, open_till

# The small demo: enough for every kind of record (refusals, lottery wins, big-ticket invoices, refunds,
# late tries, every planted fraud pattern once, settlement, the close). The walk costs about one claim and
# one redemption per voucher; it runs once per test session for the tests that read it.
DEMO_RESIDENTS = 70
DEMO_MERCHANTS = 30  # every category, a few rejected; merchants cost only their onboarding
DEMO_SEED = 7
DEMO_FRAUD_SETS = 1


@dataclass(frozen=True)
class SmallDemo:
    out: Path
    summary: dict[str, Any]


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> SmallDemo:
    """`huimin demo` on a small city, run once (a synchronous fixture: its own event loop)."""
    out = tmp_path_factory.mktemp("demo") / "first"
    summary = asyncio.run(
        run_demo(
            residents=DEMO_RESIDENTS,
            merchants=DEMO_MERCHANTS,
            seed=DEMO_SEED,
            out=out,
            progress=False,
            fraud_sets=DEMO_FRAUD_SETS,
        )
    )
    return SmallDemo(out, summary)


@pytest.fixture
async def till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    """The till's campaign, merchants and signed clients (`tests.integration.till`); modules that need
    it funded or with more rounds define their own."""
    return await open_till(client, sessions, settings, clock)
