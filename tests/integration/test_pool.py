"""The PostgreSQL connection pool without pre-ping: connections the server closed (a restart,
pg_terminate_backend) are replaced at checkout, at no round trip, instead of failing the next request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from huimin.db import create_engine
from tests.conftest import fresh_postgres


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_postgres(request)


async def terminate(url: str, pids: set[int]) -> None:
    """Kill the backends as a server restart does, and wait until they are gone."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        # with a timeout, pg_terminate_backend waits until each backend has exited (PostgreSQL 14+)
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM unnest($1::int[]) AS pid", list(pids)
        )
    finally:
        await admin.close()


async def test_connections_closed_by_the_server_are_replaced_at_checkout(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        held = [await engine.connect() for _ in range(5)]  # five pooled connections
        pids = {await connection.scalar(text("SELECT pg_backend_pid()")) for connection in held}
        for connection in held:
            await connection.close()
        await terminate(database_url, pids)

        async def one() -> int:
            async with engine.connect() as connection:
                return int(await connection.scalar(text("SELECT pg_backend_pid()")))

        fresh = await asyncio.gather(*(one() for _ in range(5)))
        assert not set(fresh) & pids
    finally:
        await engine.dispose()
