"""Run a request at most once per (partner, Idempotency-Key), Stripe-style:

- the first request reserves the key in its own committed transaction, then does its work and stores
  its answer in the same transaction as the work, so the answer and the effect commit together;
- a retry with the same key and the same request gets the stored answer, without a second effect;
- the same key with a different request is refused (422 `idempotency_mismatch`);
- a duplicate while the first is still running is refused (409 `idempotency_in_progress`);
- a refusal (4xx) is an answer too and is stored, except refusals that say "try again later";
- if the first request died without an answer (crash, 5xx) the reservation is released, or taken over
  once it is older than `LEASE`, so the client's retry can do the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.errors import ConflictError, HuiminError, InvalidInput, Problem
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.kit.clock import Clock

__all__ = ["LEASE", "Answer", "RedisAnswers", "request_digest", "run_once"]

LEASE = timedelta(seconds=60)
_KEY = re.compile(r"[A-Za-z0-9_\-:.]{8,128}")

Answer = tuple[int, dict[str, Any]]


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
    if store is not None:
        return await _run_with_redis(
            store, sessions, partner_id=partner_id, key=key, digest=digest, work=work
        )
    stored = await _reserve(sessions, partner_id=partner_id, key=key, digest=digest, clock=clock)
    if stored is not None:
        return stored
    try:
        async with unit_of_work(sessions) as session:
            status, body = await work(session)
            await _store(session, partner_id, key, status, body)
            return status, body
    except HuiminError as error:
        if error.status >= 500 or not error.final:
            await _release(sessions, partner_id, key)
            raise
        async with unit_of_work(sessions) as session:
            await _store(session, partner_id, key, error.status, error.body())
        raise
    except BaseException:
        await _release(sessions, partner_id, key)
        raise


async def _reserve(
    sessions: async_sessionmaker[AsyncSession], *, partner_id: str, key: str, digest: str, clock: Clock
) -> Answer | None:
    now = clock.now()
    try:
        async with unit_of_work(sessions) as session:
            session.add(
                IdempotencyKeyRow(
                    partner_id=partner_id,
                    key=key,
                    request_digest=digest,
                    state="in_progress",
                    created_at=now,
                    locked_at=now,
                )
            )
        return None
    except IntegrityError:
        pass
    async with unit_of_work(sessions) as session:
        row = await session.get(IdempotencyKeyRow, (partner_id, key))
        if row is None:  # released between our insert and this read: the caller may simply retry
            raise ConflictError(
                "the request with this Idempotency-Key is in progress", code="idempotency_in_progress"
            )
        if row.request_digest != digest:
            raise HuiminError(
                "this Idempotency-Key was used for a different request",
                code="idempotency_mismatch",
                status=422,
            )
        if row.state == "done":
            return row.status_code or 200, dict(row.response or {})
        if now - row.locked_at < LEASE:
            raise ConflictError(
                "the request with this Idempotency-Key is in progress", code="idempotency_in_progress"
            )
        taken = await session.execute(
            update(IdempotencyKeyRow)
            .where(
                IdempotencyKeyRow.partner_id == partner_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.locked_at == row.locked_at,
            )
            .values(locked_at=now)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(
                "the request with this Idempotency-Key is in progress", code="idempotency_in_progress"
            )
    return None


async def _store(session: AsyncSession, partner_id: str, key: str, status: int, body: dict[str, Any]) -> None:
    await session.execute(
        update(IdempotencyKeyRow)
        .where(IdempotencyKeyRow.partner_id == partner_id, IdempotencyKeyRow.key == key)
        .values(state="done", status_code=status, response=body)
    )


async def _release(sessions: async_sessionmaker[AsyncSession], partner_id: str, key: str) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.partner_id == partner_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.state == "in_progress",
            )
        )


def _mismatch() -> HuiminError:
    return HuiminError(
        "this Idempotency-Key was used for a different request", code="idempotency_mismatch", status=422
    )


def _in_progress() -> HuiminError:
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
            raise _in_progress()  # expired between the two calls: the client's retry will go through
        stored = json.loads(raw)
        if stored["digest"] != digest:
            raise _mismatch()
        if stored["state"] == "done":
            return int(stored["status"]), dict(stored["body"])
        raise _in_progress()

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
