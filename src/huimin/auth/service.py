"""Partner keys: creation, and the check of a signed request.

Checking a signature is on the path of every claim and redemption, so it avoids the database where it
can: the keys are kept in process for a few seconds (`PartnerKeys`), and with Redis configured the
one-time nonces are burnt there (`RedisNonces`); the embedded shape burns them in its database
(`SqlNonces`). Both stores are shared by every worker, so a nonce is spent once across all of them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import (
    CLOCK_SKEW_SECONDS,
    PartnerKind,
    SignatureRejected,
    SignedRequest,
    check_freshness,
    verify_signature,
)
from huimin.auth.models import PartnerNonceRow, PartnerRow
from huimin.bulk import BulkInsert
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.sealing import Sealer

__all__ = [
    "NONCE_MEMORY",
    "NewPartner",
    "NonceStore",
    "Partner",
    "PartnerKeys",
    "RedisNonces",
    "SqlNonces",
    "authenticate",
    "create_partner",
    "partner_sealer",
]

# How long a nonce must be remembered: a request stamped T is accepted from T - 300 s to T + 300 s, so
# a nonce first seen at any instant of that window must be refused until the window closes, at most
# 600 s later. A minute more covers clocks of different workers that disagree a little.
NONCE_MEMORY = timedelta(seconds=2 * CLOCK_SKEW_SECONDS + 60)
log = logging.getLogger("huimin.auth")
_NONCES = cast(Table, PartnerNonceRow.__table__)
# the nonces that are new, inserted; those already there skipped
_BURN = BulkInsert(
    _NONCES,
    ("partner_id", "nonce", "seen_at"),
    conflict=("partner_id", "nonce"),
    returning=("partner_id", "nonce"),
)  # written with Core: nothing for a session to track


@dataclass(frozen=True)
class Partner:
    """The authenticated caller of a partner API request."""

    id: str
    key_id: str
    name: str
    kind: PartnerKind


@dataclass(frozen=True)
class NewPartner:
    partner: Partner
    secret: str  # shown once, never stored in clear


def partner_sealer(secret_key: str) -> Sealer:
    return Sealer(secret_key, "partner-secret")


async def create_partner(
    session: AsyncSession, *, name: str, kind: PartnerKind, sealer: Sealer, clock: Clock
) -> NewPartner:
    if not name.strip():
        raise HuiminError("a partner needs a name", code="invalid_name")
    key_id = f"pk_{secrets.token_hex(12)}"
    secret = secrets.token_urlsafe(32)
    row = PartnerRow(
        id=new_id("ptn"),
        key_id=key_id,
        name=name.strip(),
        kind=kind.value,
        secret_sealed=sealer.seal(secret),
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return NewPartner(Partner(row.id, key_id, row.name, kind), secret)


@dataclass(frozen=True)
class _Key:
    partner: Partner
    secret: str  # unsealed
    revoked: bool
    expires: float  # monotonic seconds


class PartnerKeys:
    """Partner keys by key id, with their unsealed secrets, kept in this process for `ttl`.

    A signed request then costs no database read and no AES-GCM opening for its key. A key revoked in
    the database (`partners.revoked_at`) stops working in every worker within `ttl`; there is no revoke
    command yet, and the one that comes should say so (or clear the workers' caches through Redis).
    Unknown key ids are not remembered, so a key created a moment ago works at once. Concurrent misses
    for one key share one database read.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sealer: Sealer,
        *,
        ttl: timedelta = timedelta(seconds=10),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._ttl = ttl.total_seconds()
        self._monotonic = monotonic
        self._keys: dict[str, _Key] = {}
        self._loading: dict[str, asyncio.Future[_Key | None]] = {}

    async def get(self, key_id: str) -> tuple[Partner, str] | None:
        """The partner and its secret, or None for an unknown or revoked key id."""
        key = self._keys.get(key_id)
        if key is None or key.expires <= self._monotonic():
            loading = self._loading.get(key_id)
            if loading is None:
                loading = asyncio.ensure_future(self._load(key_id))
                self._loading[key_id] = loading
                loading.add_done_callback(lambda _: self._loading.pop(key_id, None))
            key = await asyncio.shield(loading)
        if key is None or key.revoked:
            return None
        return key.partner, key.secret

    async def _load(self, key_id: str) -> _Key | None:
        async with unit_of_work(self._sessions) as session:
            row = await session.scalar(select(PartnerRow).where(PartnerRow.key_id == key_id))
        if row is None:
            self._keys.pop(key_id, None)
            return None
        key = _Key(
            partner=Partner(row.id, row.key_id, row.name, PartnerKind(row.kind)),
            secret=self._sealer.open(row.secret_sealed),
            revoked=row.revoked_at is not None,
            expires=self._monotonic() + self._ttl,
        )
        if self._ttl > 0:
            self._keys[key_id] = key
        return key


def _keep(tasks: set[asyncio.Future[None]], task: asyncio.Future[None]) -> None:
    """Hold a running flush until it ends (the event loop keeps only weak references to tasks)."""
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class NonceStore(Protocol):
    async def burn(self, partner_id: str, nonce: str, *, now: datetime) -> bool:
        """Record the nonce; False when it was recorded before (a replay)."""
        ...


class SqlNonces:
    """Nonces in the database (`partner_nonces`), for the embedded shape: the primary key refuses a
    replay. The nonces of one event-loop pass are one committed transaction (one multi-row insert that
    skips the nonces already there) before their requests' work starts, so a request that fails
    afterwards still cannot be replayed; the same nonce twice in one pass is a replay the second time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._pending: list[tuple[dict[str, object], asyncio.Future[bool]]] = []
        self._flushes: set[asyncio.Future[None]] = set()

    async def burn(self, partner_id: str, nonce: str, *, now: datetime) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            loop.call_soon(lambda: _keep(self._flushes, asyncio.ensure_future(self._flush())))
        self._pending.append(({"partner_id": partner_id, "nonce": nonce, "seen_at": now}, future))
        return await future

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        rows = [row for row, _ in pending]
        try:
            async with unit_of_work(self._sessions) as session:
                if secrets.randbelow(200) < len(rows):  # keep the table to about one window of traffic
                    oldest = min(cast(datetime, row["seen_at"]) for row in rows) - NONCE_MEMORY
                    await session.execute(delete(PartnerNonceRow).where(PartnerNonceRow.seen_at < oldest))
                written = set(await _BURN.run(await session.connection(), rows))
        except Exception as error:  # every request of the pass hears it (503 for a database failure)
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        for row, future in pending:
            fresh = (row["partner_id"], row["nonce"]) in written
            written.discard((row["partner_id"], row["nonce"]))  # a second time in the pass: a replay
            if not future.done():
                future.set_result(fresh)


class RedisNonces:
    """Nonces in Redis, for the production shape: one `SET NX EX` per request, shared by all workers;
    the requests of one event-loop pass send theirs in one pipeline (one round trip, in order, so the
    same nonce twice in one pass is still a replay the second time).

    Redis keeps them only as long as it keeps its memory. After a restart without persistence (or a
    failover to a replica that missed the last writes) a request captured in the previous ten minutes
    could be replayed once more; every partner call that changes anything is idempotent by key
    (claims, redemptions, refunds) or by app user (registration), so such a replay gets the first
    answer again, not a second effect. Redis unreachable: the request is refused (503), never let
    through unchecked."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self._redis = redis
        self._seconds = int(NONCE_MEMORY.total_seconds())
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._flushes: set[asyncio.Future[None]] = set()

    async def burn(self, partner_id: str, nonce: str, *, now: datetime) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            loop.call_soon(lambda: _keep(self._flushes, asyncio.ensure_future(self._flush())))
        self._pending.append((f"huimin:nonce:{{{partner_id}}}:{nonce}", future))
        try:
            return await future
        except RedisError as error:
            log.warning("nonce check failed: %r", error)
            raise HuiminError(
                "the request's nonce cannot be checked right now: retry shortly",
                code="nonce_check_unavailable",
                status=503,
                final=False,
            ) from None

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        pipeline = self._redis.pipeline(transaction=False)
        for name, _ in pending:
            pipeline.set(name, b"1", nx=True, ex=self._seconds)
        try:
            results = await pipeline.execute()
        except Exception as error:  # every request of the pass hears it (503 for a Redis failure)
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(bool(result))


def require_kind(partner: Partner, kind: PartnerKind) -> Partner:
    """The partner, if its key is of the kind the call is for (an app's or a terminal's)."""
    if partner.kind is not kind:
        raise HuiminError(
            f"this call is for {kind} partners, the key is a {partner.kind} key",
            code="wrong_partner_kind",
            status=403,
        )
    return partner


async def authenticate(
    *,
    keys: PartnerKeys,
    nonces: NonceStore,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    request: SignedRequest,
    clock: Clock,
) -> Partner:
    """Check a signed request and burn its nonce (only once the signature is right, so nobody can
    spend another partner's nonces)."""
    if not (key_id and timestamp and nonce and signature):
        given = {
            "X-Huimin-Key": key_id,
            "X-Huimin-Timestamp": timestamp,
            "X-Huimin-Nonce": nonce,
            "X-Huimin-Signature": signature,
        }
        missing = ", ".join(header for header, value in given.items() if not value)
        raise SignatureRejected(f"signed request required: missing {missing}", code="missing_signature")
    now = clock.now()
    check_freshness(timestamp, nonce, now_unix=int(now.timestamp()))
    found = await keys.get(key_id)
    if found is None:
        raise SignatureRejected("unknown or revoked X-Huimin-Key", code="unknown_key")
    partner, secret = found
    verify_signature(secret, request, signature)
    if not await nonces.burn(partner.id, nonce, now=now):
        raise SignatureRejected("X-Huimin-Nonce was already used", code="replayed_nonce")
    return partner
