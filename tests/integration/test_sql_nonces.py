"""Nonces burnt in the database (`huimin.auth.service.SqlNonces`, the embedded shape), on SQLite and
PostgreSQL: the nonces of one event-loop pass are one transaction; a nonce is fresh once per partner,
within a pass as across passes, and a database failure fails every burn of the pass instead of letting
a request through unchecked."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.models import PartnerNonceRow
from huimin.auth.service import NONCE_MEMORY, SqlNonces, create_partner, partner_sealer
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.http_errors import failure_answer
from huimin.kit.clock import ManualClock

NOW = datetime(2022, 6, 24, 2, 0, tzinfo=UTC)
# A port nothing listens on: every connection is refused, as while PostgreSQL restarts.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/huimin"


async def new_partners(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    sealer = partner_sealer("test-secret-key-for-nonce-tests-0123456789")
    clock = ManualClock(NOW)
    async with unit_of_work(sessions) as session:
        return [
            (
                await create_partner(
                    session, name=f"till {number}", kind=PartnerKind.TERMINAL, sealer=sealer, clock=clock
                )
            ).partner.id
            for number in range(count)
        ]


async def burn_all(nonces: SqlNonces, *burns: tuple[str, str], now: datetime = NOW) -> list[bool]:
    """Burn them all in one pass of the event loop."""
    return list(await asyncio.gather(*(nonces.burn(partner, value, now=now) for partner, value in burns)))


def nonce() -> str:
    return secrets.token_hex(16)


async def stored(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], datetime]:
    async with unit_of_work(sessions) as session:
        return {
            (row.partner_id, row.nonce): row.seen_at for row in await session.scalars(select(PartnerNonceRow))
        }


async def test_a_nonce_is_fresh_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    once = nonce()
    assert await nonces.burn(partner, once, now=NOW) is True
    assert await nonces.burn(partner, once, now=NOW) is False
    assert await nonces.burn(partner, once, now=NOW + timedelta(seconds=30)) is False
    # another store on the same database (another worker) refuses it too
    assert await SqlNonces(sessions).burn(partner, once, now=NOW) is False
    assert await stored(sessions) == {(partner, once): NOW}


async def test_the_same_nonce_twice_in_one_pass_is_fresh_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    twice, thrice, single = nonce(), nonce(), nonce()
    burnt = await asyncio.gather(
        *(nonces.burn(partner, value, now=NOW) for value in (twice, thrice, twice, single, thrice, thrice))
    )
    assert burnt == [True, True, False, True, False, False]  # the first of each in the pass is fresh
    assert set(await stored(sessions)) == {(partner, twice), (partner, thrice), (partner, single)}


async def test_partners_have_their_own_nonces(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, second = await new_partners(sessions, 2)
    nonces = SqlNonces(sessions)
    shared, later = nonce(), nonce()
    assert await burn_all(nonces, (first, shared), (second, shared)) == [True, True]
    assert await nonces.burn(first, later, now=NOW) is True
    assert await nonces.burn(second, later, now=NOW) is True  # in another pass too
    assert await burn_all(nonces, (first, shared), (second, later)) == [False, False]


async def test_many_nonces_of_one_pass_are_one_insert(sessions: async_sessionmaker[AsyncSession]) -> None:
    partners = await new_partners(sessions, 3)
    nonces = SqlNonces(sessions)
    burns = [(partners[index % 3], nonce()) for index in range(150)]
    assert await burn_all(nonces, *burns) == [True] * 150
    assert set(await stored(sessions)) == set(burns)
    # the same again, in one pass: every one a replay, nothing written
    assert await burn_all(nonces, *burns) == [False] * 150
    assert len(await stored(sessions)) == 150


async def test_overlapping_passes_burn_a_nonce_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A pass that starts while the previous one is still writing: the database, not the store's
    memory, decides which of the two is the replay."""
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    for _ in range(5):
        value = nonce()
        first = asyncio.ensure_future(nonces.burn(partner, value, now=NOW))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the first pass has taken its nonce and is writing: the next is another pass
        second = asyncio.ensure_future(nonces.burn(partner, value, now=NOW))
        assert sorted(await asyncio.gather(first, second)) == [False, True]


async def test_nonces_older_than_the_window_are_forgotten(sessions: async_sessionmaker[AsyncSession]) -> None:
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    old, recent = nonce(), nonce()
    assert await nonces.burn(partner, old, now=NOW) is True
    assert await nonces.burn(partner, recent, now=NOW + timedelta(seconds=120)) is True
    # a pass of 200 nonces always prunes (one pass in 200/len of the smaller ones does)
    later = NOW + NONCE_MEMORY + timedelta(seconds=1)
    fresh = [nonce() for _ in range(200)]
    assert await asyncio.gather(*(nonces.burn(partner, value, now=later) for value in fresh)) == [True] * 200
    left = await stored(sessions)
    assert (partner, old) not in left
    assert left[(partner, recent)] == NOW + timedelta(seconds=120)  # still inside the window: kept
    assert len(left) == 201
    assert await nonces.burn(partner, recent, now=later) is False


async def test_a_database_failure_fails_every_burn_of_the_pass(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    before = nonce()
    assert await nonces.burn(partner, before, now=NOW) is True
    async with unit_of_work(sessions) as session:  # the table is gone: every insert fails
        await session.execute(text("DROP TABLE partner_nonces"))
    results = await asyncio.gather(
        *(nonces.burn(partner, value, now=NOW) for value in (nonce(), nonce(), before, nonce())),
        return_exceptions=True,
    )
    assert all(isinstance(result, Exception) for result in results), results
    assert len({id(result) for result in results}) == 1  # the one failure of the pass, heard by each


async def test_an_unreachable_database_fails_every_burn_with_a_503() -> None:
    engine = create_engine(UNREACHABLE)
    try:
        nonces = SqlNonces(create_sessionmaker(engine))
        results = await asyncio.gather(
            *(nonces.burn("ptn_nobody", nonce(), now=NOW) for _ in range(3)), return_exceptions=True
        )
    finally:
        await engine.dispose()
    assert all(isinstance(result, Exception) for result in results), results
    for result in results:
        assert isinstance(result, Exception)
        status, body, headers = failure_answer({}, result)
        assert (status, body["code"], headers) == (503, "database_unavailable", {"Retry-After": "2"})


async def test_the_store_works_again_once_the_database_is_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [partner] = await new_partners(sessions, 1)
    nonces = SqlNonces(sessions)
    async with unit_of_work(sessions) as session:
        await session.execute(text("ALTER TABLE partner_nonces RENAME TO partner_nonces_away"))
    failed = await asyncio.gather(nonces.burn(partner, nonce(), now=NOW), return_exceptions=True)
    assert isinstance(failed[0], Exception)
    async with unit_of_work(sessions) as session:
        await session.execute(text("ALTER TABLE partner_nonces_away RENAME TO partner_nonces"))
    value = nonce()
    assert await burn_all(nonces, (partner, value), (partner, value)) == [True, False]
    async with unit_of_work(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(PartnerNonceRow)) == 1
