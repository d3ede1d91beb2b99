"""Tables of residents, natural persons and union members. No ID or phone number is stored in
clear: only keyed hashes (HMAC-SHA256, key outside the database) and masked display forms."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from huimin.db import Base, FenColumn, UtcDateTime

__all__ = ["ClaimBlockRow", "PersonIdentifierRow", "PersonRow", "ResidentRow", "UnionMemberRow"]


class PersonRow(Base):
    """A natural person: what limits count against, whatever app account they come through."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PersonIdentifierRow(Base):
    """An identifier that names one person. The primary key makes one ID number or one phone belong to
    exactly one person."""

    __tablename__ = "person_identifiers"
    __table_args__ = (CheckConstraint("kind IN ('id_number', 'phone')", name="kind_known"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    masked: Mapped[str] = mapped_column(String(32))

    person: Mapped[PersonRow] = relationship(lazy="raise")  # orders inserts: the person first


class ResidentRow(Base):
    """市民: an account of the payment app, registered through the partner API."""

    __tablename__ = "residents"
    __table_args__ = (UniqueConstraint("partner_id", "app_user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    app_user_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    real_name_verified: Mapped[bool]
    id_number_digest: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(32))
    phone_digest: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(32))
    device_digest: Mapped[str] = mapped_column(String(64), index=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    person: Mapped[PersonRow] = relationship(lazy="raise")  # orders inserts: the person first


class UnionMemberRow(Base):
    """工会会员: imported from the trade union's list, keyed by the hashed ID number."""

    __tablename__ = "union_members"

    id_number_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClaimBlockRow(Base):
    """禁止领取: a person (`persons.id`) or a device (the keyed hash residents' devices are stored under)
    that may not claim nor enter a lottery in a campaign, by the sanction of a risk case. Risk alerts
    name persons and devices by the same ids, so a case's subject is the block's subject as it is.
    Lifting a block sets `lifted_at`; the row stays as the record."""

    __tablename__ = "claim_blocks"
    __table_args__ = (
        CheckConstraint("subject_kind IN ('person', 'device')", name="subject_kind_known"),
        CheckConstraint("vouchers_revoked >= 0 AND value_revoked_fen >= 0", name="revoked_not_negative"),
        Index("ix_claim_blocks_subject", "campaign_id", "subject_kind", "subject_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("risk_cases.id"), index=True)
    measure: Mapped[str] = mapped_column(String(16))  # block, block_and_revoke
    reason: Mapped[str] = mapped_column(Text)
    vouchers_revoked: Mapped[int] = mapped_column(Integer)  # unused vouchers revoked with the block
    value_revoked_fen: Mapped[int] = mapped_column(FenColumn)  # their value, back in the budget
    blocked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    blocked_by: Mapped[str] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
