"""Storage: the declarative base, engines for SQLite and PostgreSQL, and the unit of work.

One transaction per request or job: services only add and flush; `unit_of_work` (or the request
dependency built on it) commits on success and rolls back on any error, so a use case never
half-succeeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "FenColumn",
    "UtcDateTime",
    "create_engine",
    "create_sessionmaker",
    "database_unreachable",
    "unit_of_work",
]

# Stable constraint names, so that migrations can name what they alter on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Money columns are 64-bit integers of fen (SQLite's INTEGER is 64-bit too).
FenColumn = BigInteger()


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC instants on both databases (SQLite has no time zones: store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing naive datetime {value.isoformat()}: instants are stored in UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    # No pool_pre_ping: on asyncpg it costs three round trips per checkout (BEGIN, a ping, ROLLBACK).
    # A connection the server closed (a restart, pg_terminate_backend) is known to be closed locally as
    # soon as the event loop has read the EOF, so the checkout check below catches it for free, and the
    # pool replaces it. What it cannot catch, a connection dying under a request, fails that request
    # only: SQLAlchemy then invalidates every connection checked out before the failure. `pool_recycle`
    # retires connections before any idle timeout of a proxy or firewall in between can cut them.
    # At most 30 connections per process, 20 of them kept: connections beyond `pool_size` are closed
    # when returned, and under a release's load (tens of claims in flight per worker) a pool of 10 kept
    # opening and closing connections, each costing both sides an authentication and a backend start.
    engine = create_async_engine(url, echo=echo, pool_size=20, max_overflow=10, pool_recycle=1800)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if record.driver_connection.is_closed():  # asyncpg: no round trip, the socket's state
        raise DisconnectionError("connection closed by the server")  # the pool connects a fresh one


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions, so that BEGIN IMMEDIATE below is ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # Take the write lock at the start of every transaction: SQLite then serialises writers instead of
    # failing a read-then-write transaction with "database is locked" when another writer got in first.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit if the block finishes, roll back if it raises."""
    async with sessions() as session, session.begin():
        yield session


def database_unreachable(error: BaseException) -> bool:
    """The database refused or dropped the connection (restarting, out of reach): the transaction never
    committed, so a retry may succeed."""
    return isinstance(error, ConnectionError) or (
        isinstance(error, DBAPIError)
        and (error.connection_invalidated or isinstance(error.orig, ConnectionError))
    )
