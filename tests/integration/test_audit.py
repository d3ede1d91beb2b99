"""The audit trail on both databases: recorded with the action, sealed in order, append-only for the
application (triggers; on PostgreSQL also the grants of `huimin_app`), and tampering named by verify."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit import service as audit
from huimin.audit.models import AuditRecordRow, AuditSealRow
from huimin.audit.service import RequestContext, request_context
from huimin.auth.principals import Principal, Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from tests.integration.test_staff_sign_in import code, make_user, sign_in

CITY = Principal(actor_id="usr_city", role=Role.CITY_ADMIN, name="市商务局 王芳")


async def write(sessions: async_sessionmaker[AsyncSession], clock: ManualClock, count: int) -> None:
    for number in range(count):
        async with unit_of_work(sessions) as session:
            await audit.record(
                session,
                principal=CITY,
                action="merchant.publish",
                object_type="merchant",
                object_id=f"mch_{number}",
                at=clock.now(),
                detail={"reason": "材料齐全"},
            )


async def seal_and_verify(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> tuple[int, audit.Verdict]:
    async with unit_of_work(sessions) as session:
        sealed = await audit.seal(session, clock=clock)
    async with unit_of_work(sessions) as session:
        return sealed, await audit.verify_chain(session, clock=clock)


async def test_records_are_sealed_in_order_and_verify(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = request_context.set(RequestContext(client_ip="10.1.2.3", request_id="req-0001-abcd"))
    try:
        await write(sessions, clock, 5)
    finally:
        request_context.reset(token)
    sealed, verdict = await seal_and_verify(sessions, clock)
    assert (sealed, verdict.ok, verdict.sealed) == (5, True, 5)
    async with unit_of_work(sessions) as session:
        first = await session.scalar(select(AuditRecordRow).order_by(AuditRecordRow.id).limit(1))
    assert first is not None
    assert (first.client_ip, first.detail["request_id"], first.actor_role) == (
        "10.1.2.3",
        "req-0001-abcd",
        "city_admin",
    )
    await write(sessions, clock, 2)
    sealed, verdict = await seal_and_verify(sessions, clock)
    assert (sealed, verdict.ok, verdict.sealed) == (2, True, 7)


async def test_the_application_cannot_edit_or_delete_a_record(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await write(sessions, clock, 2)
    await seal_and_verify(sessions, clock)

    async def run(statement: str) -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(text(statement))

    for statement in (
        "UPDATE audit_records SET result = 'refused'",
        "DELETE FROM audit_records",
        "UPDATE audit_seals SET hash = 'x'",
        "DELETE FROM audit_seals",
    ):
        with pytest.raises(DBAPIError):
            await run(statement)


async def test_the_application_role_has_no_update_or_delete_grant(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("grants are a PostgreSQL matter")
    await write(sessions, clock, 1)

    async def as_application(statement: str) -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(text("SET LOCAL ROLE huimin_app"))
            await session.execute(text(statement))

    for statement in (
        "UPDATE audit_records SET result = 'refused'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_seals",
        "UPDATE ledger_postings SET amount_fen = 1",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            await as_application(statement)
    async with unit_of_work(sessions) as session:  # but it records, like the application does
        await session.execute(text("SET LOCAL ROLE huimin_app"))
        await audit.record(
            session,
            principal=CITY,
            action="user.create",
            object_type="user",
            object_id="usr_x",
            at=clock.now(),
        )


async def tamper(sessions: async_sessionmaker[AsyncSession], database_url: str, statement: str) -> None:
    """What someone with the database owner's rights could do behind the application: switch the
    triggers and foreign keys off and change a row."""
    if database_url.startswith("postgresql"):
        async with unit_of_work(sessions) as session:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            await session.execute(text(statement))
        return
    path = make_url(database_url).database
    assert path is not None
    with sqlite3.connect(path) as connection:  # a raw connection: foreign keys are off by default
        connection.execute("DROP TRIGGER audit_records_no_update")
        connection.execute("DROP TRIGGER audit_records_no_delete")
        connection.execute(statement)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("UPDATE audit_records SET result = 'refused' WHERE id = 3", "record 3 was edited"),
        ("UPDATE audit_records SET client_ip = '8.8.8.8' WHERE id = 2", "record 2 was edited"),
    ],
)
async def test_an_edit_behind_the_applications_back_is_named(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    database_url: str,
    statement: str,
    reason: str,
) -> None:
    await write(sessions, clock, 5)
    await seal_and_verify(sessions, clock)
    await tamper(sessions, database_url, statement)
    async with unit_of_work(sessions) as session:
        verdict = await audit.verify_chain(session, clock=clock)
    assert (verdict.ok, verdict.reason) == (False, reason)


async def test_an_inserted_record_is_named(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, database_url: str
) -> None:
    await write(sessions, clock, 3)
    await seal_and_verify(sessions, clock)
    async with unit_of_work(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO audit_records (id, at, actor_id, actor_name, actor_role, action, object_type, "
                "object_id, result, detail) VALUES (100, :at, 'usr_x', 'x', 'city_admin', 'ledger.approve', "
                "'deposit', 'dep_1', 'ok', '{}')"
            ),
            {"at": (clock.now() - timedelta(days=2)).replace(tzinfo=None)},
        )
    async with unit_of_work(sessions) as session:
        verdict = await audit.verify_chain(session, clock=clock)
    assert (verdict.ok, verdict.first_bad_record) == (False, 100)


async def test_a_deleted_record_is_named(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, database_url: str
) -> None:
    await write(sessions, clock, 4)
    await seal_and_verify(sessions, clock)
    await tamper(sessions, database_url, "DELETE FROM audit_records WHERE id = 2")
    async with unit_of_work(sessions) as session:
        verdict = await audit.verify_chain(session, clock=clock)
    assert (verdict.ok, verdict.reason) == (False, "record 2 was deleted")


async def test_a_record_of_a_slow_transaction_is_sealed_once_it_commits(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, database_url: str
) -> None:
    """Ids are taken at insert and committed in another order: the late one joins the chain later."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers")
    inserted, release = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        async with unit_of_work(sessions) as session:
            await audit.record(
                session, principal=CITY, action="slow", object_type="x", object_id="1", at=clock.now()
            )
            await session.flush()
            inserted.set()
            await release.wait()

    task = asyncio.create_task(slow())
    await inserted.wait()
    await write(sessions, clock, 2)  # later ids, committed first
    sealed, verdict = await seal_and_verify(sessions, clock)
    assert (sealed, verdict.ok) == (2, True)
    release.set()
    await task
    sealed, verdict = await seal_and_verify(sessions, clock)
    assert (sealed, verdict.ok, verdict.sealed) == (1, True, 3)
    async with unit_of_work(sessions) as session:
        order = (await session.scalars(select(AuditSealRow.record_id).order_by(AuditSealRow.seq))).all()
    assert order == [2, 3, 1]


async def test_sign_ins_and_account_changes_are_recorded_with_the_client(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(sessions, settings, clock, "wang.fang", Role.CITY_ADMIN)
    await sign_in(client, "wang.fang", "wrong password here", code(user, clock))
    await sign_in(client, "nobody", "whatever it is")
    assert (await sign_in(client, "wang.fang", totp=code(user, clock))).status_code == 200
    async with unit_of_work(sessions) as session:
        rows = (await session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.id))).all()
    assert [(row.action, row.actor_id, row.result) for row in rows] == [
        ("user.create", "system:cli", "ok"),
        ("staff.sign_in", user.user.id, "sign_in_failed"),
        ("staff.sign_in", "anonymous", "sign_in_failed"),
        ("staff.sign_in", user.user.id, "ok"),
    ]
    assert {row.client_ip for row in rows[1:]} == {"127.0.0.1"}
    assert rows[2].object_id == "nobody"
    sealed, verdict = await seal_and_verify(sessions, clock)
    assert (sealed, verdict.ok) == (4, True)
