"""Tables of the merchants package: merchants of a campaign, their till terminals, the transition
history, the dishonest list (global, by credit code) and the outbox of events for the money side.

Bank accounts and contact phones are sealed (AES-GCM, key outside the database) with a masked form
beside them. Rules that can be constraints are: known states and terms, an application's essentials
once applied, a commitment before a merchant can be active, one open dishonest entry per code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from huimin.db import Base, UtcDateTime
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants.domain import Action, EventKind, MerchantStatus

__all__ = [
    "DishonestEntryRow",
    "MerchantEventRow",
    "MerchantRow",
    "MerchantTerminalRow",
    "MerchantTransitionRow",
]


def _one_of(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class MerchantRow(Base):
    """A merchant taking part in one campaign (参与活动商家). The same company re-applies in the next
    campaign as a new row; the credit code is the key within a campaign."""

    __tablename__ = "merchants"
    __table_args__ = (
        UniqueConstraint("campaign_id", "credit_code"),
        CheckConstraint(_one_of("status", MerchantStatus), name="status_known"),
        CheckConstraint(_one_of("jurisdiction", Jurisdiction), name="jurisdiction_known"),
        CheckConstraint(_one_of("category", Category), name="category_known"),
        CheckConstraint(_one_of("merchant_class", MerchantClass), name="class_known"),
        CheckConstraint("length(credit_code) = 18", name="credit_code_length"),
        # Once applied, the essentials of the application are there, whatever happens next.
        CheckConstraint(
            "status = 'invited' OR (bank_account_sealed IS NOT NULL AND registered_address <> '')",
            name="applied_is_complete",
        ),
        # SPEC §3: a signed integrity commitment (承诺书) is a precondition of active.
        CheckConstraint(
            "status NOT IN ('active', 'suspended', 'expelled') OR commitment_sha256 IS NOT NULL",
            name="active_has_commitment",
        ),
        Index("ix_merchants_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    credit_code: Mapped[str] = mapped_column(String(18), index=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    merchant_class: Mapped[str] = mapped_column(String(32))
    registered_address: Mapped[str] = mapped_column(String(300), default="")
    business_hours: Mapped[str] = mapped_column(String(100), default="")
    bank_name: Mapped[str] = mapped_column(String(100), default="")
    bank_account_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    bank_account_masked: Mapped[str] = mapped_column(String(40), default="")
    contact_name: Mapped[str] = mapped_column(String(50), default="")
    contact_phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    contact_phone_masked: Mapped[str] = mapped_column(String(24), default="")
    status: Mapped[str] = mapped_column(String(24))
    invited_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    listed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # put on the city's final list
    # The integrity commitment as accepted: which text (version and SHA-256), who signed for the
    # merchant, who recorded it, when.
    commitment_version: Mapped[str | None] = mapped_column(String(16))
    commitment_sha256: Mapped[str | None] = mapped_column(String(64))
    commitment_signatory: Mapped[str | None] = mapped_column(String(50))
    committed_by: Mapped[str | None] = mapped_column(String(64))
    committed_by_role: Mapped[str | None] = mapped_column(String(32))
    committed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    terminals: Mapped[list[MerchantTerminalRow]] = relationship(
        back_populates="merchant", lazy="raise", order_by="MerchantTerminalRow.position"
    )


class MerchantTerminalRow(Base):
    """A till terminal (收银终端) of a merchant: in a campaign a terminal belongs to one merchant, which
    is how a redemption at the till finds its merchant."""

    __tablename__ = "merchant_terminals"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)

    merchant: Mapped[MerchantRow] = relationship(back_populates="terminals", lazy="raise")


class MerchantTransitionRow(Base):
    """Every step of a merchant's lifecycle, append-only: who (actor, role, jurisdiction), when, why."""

    __tablename__ = "merchant_transitions"
    __table_args__ = (
        CheckConstraint(_one_of("action", Action), name="action_known"),
        CheckConstraint(_one_of("to_status", MerchantStatus), name="to_status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(24))  # None for the invitation
    to_status: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_jurisdiction: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DishonestEntryRow(Base):
    """失信名单: a credit code barred from every later campaign. Global, not per campaign. An entry is
    closed (delisted) rather than deleted, so listing and delisting both stay on record."""

    __tablename__ = "dishonest_entries"
    __table_args__ = (
        CheckConstraint("length(credit_code) = 18", name="credit_code_length"),
        CheckConstraint("(delisted_at IS NULL) = (delisted_by IS NULL)", name="delisting_recorded"),
        Index(
            "uq_dishonest_entries_open",
            "credit_code",
            unique=True,
            sqlite_where=text("delisted_at IS NULL"),
            postgresql_where=text("delisted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), index=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"))  # the expelled merchant
    listed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    listed_by: Mapped[str] = mapped_column(String(64))
    listed_by_name: Mapped[str] = mapped_column(String(100))
    listed_by_role: Mapped[str] = mapped_column(String(32))
    delisted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delisted_by: Mapped[str | None] = mapped_column(String(64))
    delisted_by_name: Mapped[str | None] = mapped_column(String(100))
    delisted_by_role: Mapped[str | None] = mapped_column(String(32))
    delist_reason: Mapped[str | None] = mapped_column(Text)


class MerchantEventRow(Base):
    """Outbox of merchant events the money side acts on (ledger, settlement, redemptions): read in `id`
    order, marked consumed by the reader. `merchant.expelled` asks for the merchant's unsettled
    subsidy to be frozen and its settled subsidy clawed back; this package never touches money."""

    __tablename__ = "merchant_events"
    __table_args__ = (CheckConstraint(_one_of("kind", EventKind), name="kind_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("merchant_transitions.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
