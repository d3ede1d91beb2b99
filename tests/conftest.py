"""Shared fixtures: databases on both backends, the app, a controllable clock.

PostgreSQL and Redis come from HUIMIN_TEST_POSTGRES_URL and HUIMIN_TEST_REDIS_URL. On a laptop without
them the tests that need them skip with the reason; under CI (CI=true) a missing service fails them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth import accounts
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker
from huimin.kit.clock import ManualClock
from huimin.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
ZIYANG_FILE = ROOT / "campaigns" / "ziyang-2022.toml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(variable: str, what: str) -> str:
    """The URL of a service the test needs; skip without it on a laptop, fail without it in CI."""
    url = os.environ.get(variable)
    if not url:
        message = f"{what} not configured: set {variable} (see README, 'Running the tests')"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return url


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2id with its production cost takes about a quarter of a second per hash on this machine, and
    the console tests create and sign in hundreds of accounts. The tests keep the same algorithm and
    code path at the lowest cost argon2 allows; production keeps the library's defaults (accounts.py)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    saved = accounts._HASHER, accounts._DUMMY_HASH
    accounts._HASHER, accounts._DUMMY_HASH = cheap, cheap.hash("not-a-real-password-0000")
    yield
    accounts._HASHER, accounts._DUMMY_HASH = saved


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    """A database migrated once per test session; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    admin_url = require_service("HUIMIN_TEST_POSTGRES_URL", "PostgreSQL")
    name = f"huimin_tpl_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL at {admin_url} does not answer: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    upgrade(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    yield admin_url, name
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    admin_url, template = request.getfixturevalue("postgres_template")
    name = f"huimin_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each backend: the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'huimin.db'}"
        upgrade(url)
        yield url
    else:
        yield from fresh_postgres(request)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2022, 6, 1, 0, 0, tzinfo=UTC))


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
        yield http


@pytest.fixture
def redis_url() -> str:
    return require_service("HUIMIN_TEST_REDIS_URL", "Redis")
