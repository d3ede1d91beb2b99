"""Tables of partner authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["PartnerNonceRow", "PartnerRow", "StaffSessionRow", "UserRow"]


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


class UserRow(Base):
    """A console account: an official of one of the government roles, the operator, or a merchant.
    Passwords are argon2 hashes; the TOTP secret is sealed with a key outside the database."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("failed_sign_ins >= 0", name="failures_not_negative"),
        CheckConstraint(
            "role <> 'county_reviewer' OR jurisdiction IS NOT NULL", name="reviewer_has_jurisdiction"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    merchant_id: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_totp_step: Mapped[int | None] = mapped_column(Integer)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StaffSessionRow(Base):
    """A signed-in console session. Only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "staff_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    client_ip: Mapped[str | None] = mapped_column(String(64))
