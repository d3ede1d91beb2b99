"""`huimin backup` and `huimin restore` as an operator runs them, on SQLite and PostgreSQL: a backup taken
after real money movements (claims, redemptions, a refund through the signed API), more changes, a
restore that makes them disappear and passes the ledger check and the audit chain; a changed or damaged
backup and a non-empty target are refused, changing nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.audit import service as audit
from huimin.backup.service import libpq_target
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.kit.clock import ManualClock
from huimin.redemptions.models import RedemptionRow, RefundRow
from tests.integration.test_cli import huimin
from tests.integration.till import OPENS, Till, fund, open_till
from tests.support import SignedClient

Sessions = async_sessionmaker[AsyncSession]


@asynccontextmanager
async def serving(database_url: str, clock: ManualClock) -> AsyncIterator[tuple[httpx.AsyncClient, Sessions]]:
    """The app and a session factory on the database, both closed when the block ends (so that the
    database is not held open while the CLI restores it)."""
    app = create_app(Settings(database_url=database_url), clock=clock)
    engine = create_engine(database_url)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
                yield http, create_sessionmaker(engine)
    finally:
        await engine.dispose()


def _rebound(till: Till, http: httpx.AsyncClient) -> Till:
    """The same till (partners, merchants, round) on a new app."""

    def signed(client: SignedClient) -> SignedClient:
        return SignedClient(http, key_id=client.key_id, secret=client.secret, clock=till.clock)

    return dataclasses.replace(till, http=http, app=signed(till.app), terminal=signed(till.terminal))


async def _seal(sessions: Sessions, clock: ManualClock) -> None:
    # As the scheduled sealer does: a chain with an unsealed record older than an hour does not verify.
    async with unit_of_work(sessions) as session:
        await audit.seal(session, clock=clock)


async def first_movements(database_url: str, clock: ManualClock) -> tuple[Till, dict[str, str]]:
    """A funded campaign, a claimed voucher spent at the till; the ids."""
    async with serving(database_url, clock) as (http, sessions):
        till = await open_till(http, sessions, Settings(database_url=database_url), clock)
        await fund(sessions, till, clock)
        voucher = await till.voucher()
        redeemed = await till.redeem(till.body(voucher))
        assert redeemed.status_code == 201, redeemed.text
        await _seal(sessions, clock)
        return till, {"voucher": voucher["voucher_id"], "redemption": redeemed.json()["redemption_id"]}


async def later_movements(database_url: str, clock: ManualClock, till: Till) -> dict[str, str]:
    """After the backup: another voucher, spent and partly refunded."""
    clock.advance(timedelta(minutes=5))
    async with serving(database_url, clock) as (http, sessions):
        till = _rebound(till, http)
        voucher = await till.voucher()
        redeemed = await till.redeem(till.body(voucher))
        assert redeemed.status_code == 201, redeemed.text
        refunded = await till.refund(redeemed.json()["redemption_id"], 5_000)
        assert refunded.status_code == 201, refunded.text
        await _seal(sessions, clock)
        return {
            "voucher": voucher["voucher_id"],
            "redemption": redeemed.json()["redemption_id"],
            "refund": refunded.json()["refund_id"],
        }


async def present(database_url: str, ids: dict[str, str]) -> dict[str, bool]:
    """Which of the ids are in the database."""
    tables = {"voucher": VoucherRow, "redemption": RedemptionRow, "refund": RefundRow}
    engine = create_engine(database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return {
                name: bool(
                    await session.scalar(
                        select(func.count()).select_from(tables[name]).where(tables[name].id == value)
                    )
                )
                for name, value in ids.items()
            }
    finally:
        await engine.dispose()


def test_a_restored_backup_loses_the_later_changes_and_passes_the_checks(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock(OPENS - timedelta(minutes=1))
    till, before = asyncio.run(first_movements(database_url, clock))
    backup = tmp_path / "backups" / "huimin.backup"

    taken = huimin("backup", str(backup), database_url=database_url)
    assert taken.returncode == 0, taken.stderr
    assert backup.is_file()
    assert Path(f"{backup}.sha256").read_text().split() == [
        taken.stdout.split("sha256 ")[1].split(")")[0],
        backup.name,
    ]

    after = asyncio.run(later_movements(database_url, clock, till))
    assert asyncio.run(present(database_url, after)) == {"voucher": True, "redemption": True, "refund": True}

    refused = huimin("restore", str(backup), database_url=database_url)
    assert refused.returncode == 1
    assert "not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert asyncio.run(present(database_url, after))["refund"]  # the refusal changed nothing

    restored = huimin("restore", str(backup), "--force", database_url=database_url)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "ledger check ok for till-2022" in restored.stdout
    assert "audit chain intact" in restored.stdout
    assert asyncio.run(present(database_url, after)) == {
        "voucher": False,
        "redemption": False,
        "refund": False,
    }
    assert asyncio.run(present(database_url, before)) == {"voucher": True, "redemption": True}

    checked = huimin("ledger", "check", database_url=database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert huimin("audit", "verify", database_url=database_url).returncode == 0


def test_a_changed_or_damaged_backup_is_refused_and_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock(OPENS - timedelta(minutes=1))
    _, ids = asyncio.run(first_movements(database_url, clock))
    backup = tmp_path / "huimin.backup"
    assert huimin("backup", str(backup), database_url=database_url).returncode == 0
    original = backup.read_bytes()

    changed = bytearray(original)
    for offset in range(len(changed) // 2, len(changed) // 2 + 4_096):
        changed[offset] ^= 0x5A
    backup.write_bytes(bytes(changed))
    tampered = huimin("restore", str(backup), "--force", database_url=database_url)
    assert tampered.returncode == 1
    assert "backup_checksum_mismatch" in tampered.stderr
    assert "huimin.backup.sha256" in tampered.stderr

    # Without its checksum file the format checks still catch it: a damaged or cut-off file.
    Path(f"{backup}.sha256").unlink()
    damaged = huimin("restore", str(backup), "--force", database_url=database_url)
    assert damaged.returncode == 1
    assert "error (" in damaged.stderr
    assert "pg_restore_failed" in damaged.stderr or "bad_backup" in damaged.stderr
    backup.write_bytes(original[: len(original) // 3])
    cut = huimin("restore", str(backup), "--force", database_url=database_url)
    assert cut.returncode == 1
    assert "pg_restore_failed" in cut.stderr or "bad_backup" in cut.stderr

    backup.write_bytes(b"not a backup at all\n" * 10)
    foreign = huimin("restore", str(backup), "--force", database_url=database_url)
    assert foreign.returncode == 1
    assert "neither a pg_dump archive nor a SQLite database" in foreign.stderr

    assert asyncio.run(present(database_url, ids)) == {"voucher": True, "redemption": True}
    assert huimin("ledger", "check", database_url=database_url).returncode == 0


def test_sqlite_restore_refuses_a_database_in_use_and_fills_an_empty_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'huimin.db'}"
    assert huimin("db", "upgrade", database_url=url).returncode == 0
    clock = ManualClock(OPENS - timedelta(minutes=1))
    _, ids = asyncio.run(first_movements(url, clock))
    backup = tmp_path / "huimin.backup"
    assert huimin("backup", str(backup), database_url=url).returncode == 0

    live = sqlite3.connect(make_url(url).database or "")
    try:
        live.execute("PRAGMA journal_mode=WAL")  # as every Huimin process opens it
        live.execute("SELECT count(*) FROM vouchers").fetchall()
        busy = huimin("restore", str(backup), "--force", database_url=url)
    finally:
        live.close()
    assert busy.returncode == 1
    assert "database_in_use" in busy.stderr

    fresh = f"sqlite+aiosqlite:///{tmp_path / 'elsewhere' / 'huimin.db'}"
    restored = huimin("restore", str(backup), database_url=fresh)  # nothing there yet: no --force needed
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert asyncio.run(present(fresh, ids)) == {"voucher": True, "redemption": True}


def test_the_database_url_becomes_a_libpq_url_with_the_password_kept_off_the_command_line() -> None:
    target = libpq_target(
        "postgresql+asyncpg://huimin:s3cret@db.internal:5433/huimin?ssl=require&prepared_statement_cache_size=0"
    )
    assert target.url == "postgresql://huimin@db.internal:5433/huimin?sslmode=require"
    assert target.env == {"PGPASSWORD": "s3cret"}
    assert target.database == "huimin"
    assert libpq_target("postgresql+asyncpg://postgres@127.0.0.1/test").env == {}
