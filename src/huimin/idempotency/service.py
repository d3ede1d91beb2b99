"""Run a request at most once per (partner, Idempotency-Key), Stripe-style:

- the key is reserved by inserting its row at the start of the request's own transaction; the work, and
  the answer stored on that row, commit with it or not at all. One transaction, no separate reservation:
  a request that fails or dies (crash, lost connection, 5xx) rolls back and leaves no reservation behind,
  so the client's retry can do the work at once;
- a retry with the same key and the same request gets the stored answer, without a second effect;
- the same key with a different request is refused (422 `idempotency_mismatch`);
- a duplicate while the first is still running is refused (409 `idempotency_in_progress`): on
  PostgreSQL the reservation also takes a transaction-scoped advisory lock on the key, without waiting,
  so the duplicate is told at once instead of queueing behind the first transaction on the key's row;
  SQLite runs one writer at a time, so there the duplicate waits and then gets the stored answer;
- a refusal (4xx) is an answer too and is stored, in a second transaction after the work rolled back,
  except refusals that say "try again later".

Reservations committed by an earlier version (state `in_progress`, one transaction per step) are taken
over once older than `LEASE`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import Table, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.errors import ConflictError, HuiminError, InvalidInput, Problem
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.kit.clock import Clock

__all__ = [
    "LEASE",
    "Answer",
    "RedisAnswers",
    "check_key",
    "in_progress",
    "mismatch",
    "request_digest",
    "run_once",
]

LEASE = timedelta(seconds=60)
_KEY = re.compile(r"[A-Za-z0-9_\-:.]{8,128}")

Answer = tuple[int, dict[str, Any]]

# The hot path writes with Core statements on the table, not ORM-enabled ones: an ORM UPDATE would
# first match its WHERE against every object the request's work loaded into the session.
_KEYS = cast(Table, IdempotencyKeyRow.__table__)


def request_digest(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    *,
    partner_id: str,
    key: str | None,
    digest: str,
    clock: Clock,
    work: Callable[[AsyncSession], Awaitable[Answer]],
    store: RedisAnswers | None = None,
) -> Answer:
    """Run `work` once per (partner, key). With `store`, reservations and answers live in Redis instead
    of the database, so that a refused claim at a flash release costs no database write."""
    key = check_key(key)
    if store is not None:
        return await _run_with_redis(
            store, sessions, partner_id=partner_id, key=key, digest=digest, work=work
        )
    for _ in range(2):  # a second pass only after taking over a stale reservation
        now = clock.now()
        try:
            async with unit_of_work(sessions) as session:
                if not await _reserve(session, partner_id=partner_id, key=key, digest=digest, now=now):
                    raise in_progress()
                status, body = await work(session)
                await _store(session, partner_id, key, status, body)
                return status, body
        except _KeyTaken:
            stored = await _stored_answer(sessions, partner_id=partner_id, key=key, digest=digest, now=now)
            if stored is not None:
                return stored
        except HuiminError as error:
            if error.status >= 500 or not error.final or error.code == "idempotency_in_progress":
                raise  # rolled back: the key is free for the retry
            stored = await _keep_refusal(
                sessions, partner_id=partner_id, key=key, digest=digest, now=now, error=error
            )
            if stored is not None:  # a duplicate answered first: everyone gets its answer
                return stored
            raise
    raise in_progress()  # taken over twice in a row: somebody else is at it


def check_key(key: str | None) -> str:
    """The request's Idempotency-Key, or the refusal of a missing or malformed one."""
    if not key:
        raise HuiminError(
            "this request moves stock or money: send an Idempotency-Key header",
            code="idempotency_key_required",
        )
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            [Problem("Idempotency-Key", "must be 8-128 characters of [A-Za-z0-9_-:.]")],
            code="invalid_idempotency_key",
        )
    return key


class _KeyTaken(Exception):
    """The key's row exists already (the insert hit the primary key)."""


async def _reserve(session: AsyncSession, *, partner_id: str, key: str, digest: str, now: datetime) -> bool:
    """Insert the key's row in the caller's transaction; False when a transaction holding the key is
    still running (PostgreSQL), `_KeyTaken` when the key's row is committed already."""
    values = {
        "partner_id": partner_id,
        "key": key,
        "request_digest": digest,
        "state": "in_progress",
        "created_at": now,
        "locked_at": now,
    }
    table = _KEYS
    statement = insert(table)
    if session.get_bind().dialect.name == "postgresql":
        # One round trip: the advisory lock refuses a duplicate whose transaction is still running, at
        # once. Once that one has committed (releasing the lock), its row is visible and the insert
        # fails on the primary key instead.
        lock = func.pg_try_advisory_xact_lock(func.hashtextextended(f"idempotency:{partner_id}:{key}", 0))
        statement = statement.from_select(
            list(values),
            select(*(literal(value, table.c[name].type) for name, value in values.items())).where(lock),
        )
    else:
        statement = statement.values(values)
    try:
        inserted = await session.execute(statement)
    except IntegrityError:
        raise _KeyTaken from None
    return bool(inserted.rowcount)  # type: ignore[attr-defined]


async def _stored_answer(
    sessions: async_sessionmaker[AsyncSession], *, partner_id: str, key: str, digest: str, now: datetime
) -> Answer | None:
    """The answer stored for the key, or refusal; None when a stale reservation was taken away (the
    caller tries again)."""
    async with unit_of_work(sessions) as session:
        row = await session.get(IdempotencyKeyRow, (partner_id, key))
        if row is None:  # gone between the insert and this read: the client may simply retry
            raise in_progress()
        if row.request_digest != digest:
            raise mismatch()
        if row.state == "done":
            return row.status_code or 200, dict(row.response or {})
        if now - row.locked_at < LEASE:
            raise in_progress()
        # a reservation committed by an earlier version and abandoned: remove it, then try again
        await session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.partner_id == partner_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.locked_at == row.locked_at,
            )
        )
    return None


async def _keep_refusal(
    sessions: async_sessionmaker[AsyncSession],
    *,
    partner_id: str,
    key: str,
    digest: str,
    now: datetime,
    error: HuiminError,
) -> Answer | None:
    """Store a refusal as the key's answer; if a duplicate stored its answer meanwhile, that answer.

    The insert waits for a duplicate still running rather than refusing it, so both requests end with
    the one stored answer."""
    try:
        async with unit_of_work(sessions) as session:
            await session.execute(
                insert(IdempotencyKeyRow).values(
                    partner_id=partner_id,
                    key=key,
                    request_digest=digest,
                    state="done",
                    status_code=error.status,
                    response=error.body(),
                    created_at=now,
                    locked_at=now,
                )
            )
        return None
    except IntegrityError:
        return await _stored_answer(sessions, partner_id=partner_id, key=key, digest=digest, now=now)


async def _store(session: AsyncSession, partner_id: str, key: str, status: int, body: dict[str, Any]) -> None:
    table = _KEYS
    await session.execute(
        update(table)
        .where(table.c.partner_id == partner_id, table.c.key == key)
        .values(state="done", status_code=status, response=body)
    )


def mismatch() -> HuiminError:
    return HuiminError(
        "this Idempotency-Key was used for a different request", code="idempotency_mismatch", status=422
    )


def in_progress() -> HuiminError:
    return ConflictError(
        "the request with this Idempotency-Key is in progress", code="idempotency_in_progress"
    )


class RedisAnswers:
    """Idempotency reservations and answers in Redis (the claim path of the production shape).

    Redis may lose them (no persistence, failover). That costs no double effect: a claim's voucher
    records its key, and a retry that finds no answer here finds the voucher (see
    `claims.service.claim_voucher`); the per-person limits in the database bound the rest.
    """

    def __init__(self, redis: Redis | RedisCluster, ttl: timedelta = timedelta(days=7)) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def _key(partner_id: str, key: str) -> str:
        return f"huimin:idem:{{{partner_id}}}:{key}"

    async def reserve(self, partner_id: str, key: str, digest: str) -> Answer | None:
        name = self._key(partner_id, key)
        record = json.dumps({"digest": digest, "state": "in_progress"})
        if await self.redis.set(name, record, nx=True, ex=int(LEASE.total_seconds())):
            return None
        raw = await self.redis.get(name)
        if raw is None:
            raise in_progress()  # expired between the two calls: the client's retry will go through
        stored = json.loads(raw)
        if stored["digest"] != digest:
            raise mismatch()
        if stored["state"] == "done":
            return int(stored["status"]), dict(stored["body"])
        raise in_progress()

    async def store(self, partner_id: str, key: str, digest: str, status: int, body: dict[str, Any]) -> None:
        record = json.dumps(
            {"digest": digest, "state": "done", "status": status, "body": body}, ensure_ascii=False
        )
        await self.redis.set(self._key(partner_id, key), record, ex=int(self.ttl.total_seconds()))

    async def release(self, partner_id: str, key: str) -> None:
        await self.redis.delete(self._key(partner_id, key))


async def _run_with_redis(
    store: RedisAnswers,
    sessions: async_sessionmaker[AsyncSession],
    *,
    partner_id: str,
    key: str,
    digest: str,
    work: Callable[[AsyncSession], Awaitable[Answer]],
) -> Answer:
    try:
        stored = await store.reserve(partner_id, key, digest)
    except RedisError:
        raise HuiminError(
            "claims are paused: retry shortly", code="claims_paused", status=503, final=False
        ) from None
    if stored is not None:
        return stored
    try:
        async with unit_of_work(sessions) as session:
            status, body = await work(session)
    except HuiminError as error:
        if error.status >= 500 or not error.final:
            await _forget(store, partner_id, key)
        else:
            await _remember(store, partner_id, key, digest, error.status, error.body())
        raise
    except BaseException:
        await _forget(store, partner_id, key)
        raise
    # Committed: the effect exists. If Redis fails to keep the answer now, the reservation lapses after
    # LEASE and a retry finds the voucher in the database instead.
    await _remember(store, partner_id, key, digest, status, body)
    return status, body


async def _remember(
    store: RedisAnswers, partner_id: str, key: str, digest: str, status: int, body: dict[str, Any]
) -> None:
    with contextlib.suppress(RedisError):
        await store.store(partner_id, key, digest, status, body)


async def _forget(store: RedisAnswers, partner_id: str, key: str) -> None:
    with contextlib.suppress(RedisError):
        await store.release(partner_id, key)
