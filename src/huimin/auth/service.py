"""Partner keys: creation, and the check of a signed request."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
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
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.sealing import Sealer

__all__ = ["NewPartner", "Partner", "authenticate", "create_partner", "partner_sealer"]


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


async def authenticate(
    sessions: async_sessionmaker[AsyncSession],
    *,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    request: SignedRequest,
    sealer: Sealer,
    clock: Clock,
) -> Partner:
    """Check a signed request and burn its nonce.

    The nonce is recorded in its own committed transaction before the request's work starts, so a
    request that fails afterwards still cannot be replayed.
    """
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
    async with unit_of_work(sessions) as session:
        row = await session.scalar(select(PartnerRow).where(PartnerRow.key_id == key_id))
        if row is None or row.revoked_at is not None:
            raise SignatureRejected("unknown or revoked X-Huimin-Key", code="unknown_key")
        verify_signature(sealer.open(row.secret_sealed), request, signature)
        if secrets.randbelow(200) == 0:  # keep the nonce table to about one window of traffic
            horizon = now - timedelta(seconds=3 * CLOCK_SKEW_SECONDS)
            await session.execute(delete(PartnerNonceRow).where(PartnerNonceRow.seen_at < horizon))
        partner = Partner(row.id, row.key_id, row.name, PartnerKind(row.kind))
    try:
        async with unit_of_work(sessions) as session:
            session.add(PartnerNonceRow(partner_id=partner.id, nonce=nonce, seen_at=now))
    except IntegrityError:
        raise SignatureRejected("X-Huimin-Nonce was already used", code="replayed_nonce") from None
    return partner
