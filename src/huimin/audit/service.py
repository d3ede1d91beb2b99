"""Use cases of the audit trail: record an action in its own transaction, seal the chain, verify it.

`record` is called by the services that act (sign-in, account changes, merchant transitions, deposits,
verifications, exports of personal data…) inside their unit of work, so an action and its record
commit together or not at all. Who asked from where (client IP, request id) comes from the request
context the app's middleware sets; a command-line job has none.

Sealing is a separate job (`huimin audit seal`, the worker, the demo): it appends a seal per committed
record not yet sealed, under a lock so there is one chain. Writers therefore never serialise on the
chain. The chain's order is the order of sealing: a record whose transaction commits late (a smaller id
after larger ones) is simply sealed by the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit.domain import GENESIS, Entry, Link, Verdict, chain_hash, verify
from huimin.audit.models import AuditRecordRow, AuditSealRow
from huimin.auth.principals import Principal
from huimin.kit.clock import Clock

__all__ = ["RequestContext", "entry_of", "record", "request_context", "seal", "verify_chain"]

_SEAL_LOCK = 0x4855_494D_4155_4454  # "HUIMAUDT": the advisory lock of the one sealer


@dataclass(frozen=True)
class RequestContext:
    client_ip: str | None = None
    request_id: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("huimin_request_context", default=None)


async def record(
    session: AsyncSession,
    *,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    at: datetime,
    result: str = "ok",
    detail: Mapping[str, Any] | None = None,
) -> AuditRecordRow:
    """Write one audit record in the caller's transaction (added to the session: the caller's next flush
    or its commit writes it). `principal` is None for an actor not known yet (a failed sign-in)."""
    context = request_context.get() or RequestContext()
    details = dict(detail or {})
    if context.request_id:
        details.setdefault("request_id", context.request_id)
    row = AuditRecordRow(
        at=at,
        actor_id=principal.actor_id if principal else "anonymous",
        actor_name=(principal.name or principal.actor_id) if principal else "",
        actor_role=principal.role.value if principal else "anonymous",
        action=action,
        object_type=object_type,
        object_id=object_id,
        result=result,
        client_ip=context.client_ip,
        detail=details,
    )
    session.add(row)
    return row


def entry_of(row: AuditRecordRow) -> Entry:
    return Entry(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        result=row.result,
        client_ip=row.client_ip,
        detail=row.detail,
    )


async def seal(session: AsyncSession, *, clock: Clock, limit: int = 10_000) -> int:
    """Append a seal for each committed record not yet sealed, in record order; returns how many."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEAL_LOCK})
    # SQLite: writers are serialised (BEGIN IMMEDIATE): this transaction is the only sealer.
    unsealed = (
        select(AuditRecordRow)
        .outerjoin(AuditSealRow, AuditSealRow.record_id == AuditRecordRow.id)
        .where(AuditSealRow.seq.is_(None))
        .order_by(AuditRecordRow.id)
        .limit(limit)
    )
    rows = (await session.scalars(unsealed)).all()
    if not rows:
        return 0
    last = (
        await session.execute(
            select(AuditSealRow.seq, AuditSealRow.hash).order_by(AuditSealRow.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    now = clock.now()
    for row in rows:
        seq += 1
        digest = chain_hash(prev, entry_of(row))
        session.add(AuditSealRow(seq=seq, record_id=row.id, prev_hash=prev, hash=digest, sealed_at=now))
        prev = digest
    await session.flush()
    return len(rows)


async def verify_chain(session: AsyncSession, *, clock: Clock) -> Verdict:
    """Walk the whole chain: the first edited, deleted or inserted record, or all is well."""
    records = {row.id: entry_of(row) for row in await session.scalars(select(AuditRecordRow))}
    links = [
        Link(seal.seq, seal.record_id, seal.prev_hash, seal.hash, seal.sealed_at)
        for seal in await session.scalars(select(AuditSealRow).order_by(AuditSealRow.seq))
    ]
    return verify(links, records, now=clock.now())
