"""Tables of the audit trail. Both are append-only for the application: triggers refuse UPDATE and
DELETE on both databases, and on PostgreSQL the application role `huimin_app` holds only SELECT and
INSERT on them (migration 0010). The seals are kept apart from the records so that sealing never
updates a record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["AuditRecordRow", "AuditSealRow"]

_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class AuditRecordRow(Base):
    """One audited action, written in the same transaction as the action."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor_id: Mapped[str] = mapped_column(String(64), index=True)
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditSealRow(Base):
    """The chain: seal `seq` holds SHA-256(previous hash, the record's canonical form)."""

    __tablename__ = "audit_seals"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    record_id: Mapped[int] = mapped_column(_SERIAL, ForeignKey("audit_records.id"), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime)
