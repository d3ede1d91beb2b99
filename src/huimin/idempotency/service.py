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

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.errors import ConflictError, HuiminError, InvalidInput, Problem
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.kit.clock import Clock

__all__ = ["LEASE", "Answer", "request_digest", "run_once"]

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
) -> Answer:
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
