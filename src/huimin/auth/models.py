"""Tables of partner authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["PartnerNonceRow", "PartnerRow"]


class PartnerRow(Base):
    """A payment app or a till terminal allowed to call the partner API. Its HMAC secret is stored
    encrypted (AES-GCM under a key derived from HUIMIN_SECRET_KEY), never in clear."""

    __tablename__ = "partners"
    __table_args__ = (CheckConstraint("kind IN ('app', 'terminal')", name="kind_known"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PartnerNonceRow(Base):
    """Nonces seen within the signature window; the primary key refuses a replay."""

    __tablename__ = "partner_nonces"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
