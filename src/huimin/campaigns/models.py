"""Tables of the campaigns package. Amounts are integer fen; rules that can be constraints are."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from huimin.campaigns import domain
from huimin.db import Base, FenColumn, UtcDateTime
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass

__all__ = [
    "BatchFundingRow",
    "BatchRow",
    "CampaignRow",
    "FunderRow",
    "RoundBatchRow",
    "RoundRow",
    "StockShardRow",
]


class CampaignRow(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("budget_fen > 0", name="budget_positive"),
        CheckConstraint("ends_on >= starts_on", name="period_ordered"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    budget_fen: Mapped[int] = mapped_column(FenColumn)
    per_person_total: Mapped[int | None] = mapped_column(Integer)
    per_person_per_category: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    source_sha256: Mapped[str] = mapped_column(String(64))
    source_text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    funders: Mapped[list[FunderRow]] = relationship(
        back_populates="campaign", lazy="raise", order_by="FunderRow.position"
    )
    batches: Mapped[list[BatchRow]] = relationship(
        back_populates="campaign", lazy="raise", order_by="BatchRow.position"
    )
    rounds: Mapped[list[RoundRow]] = relationship(
        back_populates="campaign", lazy="raise", order_by="RoundRow.opens_at"
    )


class FunderRow(Base):
    """资金来源."""

    __tablename__ = "funders"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code"),
        CheckConstraint("budget_fen > 0", name="budget_positive"),
        CheckConstraint("kind IN ('fiscal', 'union', 'social')", name="kind_known"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    budget_fen: Mapped[int] = mapped_column(FenColumn)

    campaign: Mapped[CampaignRow] = relationship(back_populates="funders", lazy="raise")


class BatchRow(Base):
    """券批次."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code"),
        CheckConstraint("face_value_fen IS NULL OR face_value_fen > 0", name="face_value_positive"),
        CheckConstraint("threshold_fen >= 0", name="threshold_not_negative"),
        CheckConstraint(
            "kind <> 'threshold' OR threshold_fen >= face_value_fen", name="threshold_covers_face_value"
        ),
        CheckConstraint("cap_fen IS NULL OR cap_fen > 0", name="cap_positive"),
        CheckConstraint(
            "percent_bp IS NULL OR (percent_bp > 0 AND percent_bp < 10000)", name="percent_range"
        ),
        CheckConstraint("max_value_fen > 0", name="max_value_positive"),
        CheckConstraint("per_person_per_round >= 1", name="per_round_limit_positive"),
        CheckConstraint("kind IN ('threshold', 'fixed', 'percentage', 'tiered')", name="kind_known"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    face_value_fen: Mapped[int | None] = mapped_column(FenColumn)
    threshold_fen: Mapped[int] = mapped_column(FenColumn, default=0)
    percent_bp: Mapped[int | None] = mapped_column(Integer)
    cap_fen: Mapped[int | None] = mapped_column(FenColumn)
    max_value_fen: Mapped[int] = mapped_column(FenColumn)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON)
    jurisdictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    merchant_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    per_person_per_round: Mapped[int] = mapped_column(Integer, default=1)
    per_person_total: Mapped[int | None] = mapped_column(Integer)
    per_merchant_daily: Mapped[int | None] = mapped_column(Integer)
    validity_kind: Mapped[str] = mapped_column(String(24))
    validity_days: Mapped[int | None] = mapped_column(Integer)
    validity_until: Mapped[date | None] = mapped_column(Date)
    refund_policy: Mapped[str] = mapped_column(String(32))
    members_only: Mapped[bool]
    big_ticket: Mapped[bool]
    threshold_after_discount: Mapped[bool]

    campaign: Mapped[CampaignRow] = relationship(back_populates="batches", lazy="raise")
    funding: Mapped[list[BatchFundingRow]] = relationship(
        back_populates="batch", lazy="raise", order_by="BatchFundingRow.position"
    )

    def terms(self) -> domain.Batch:
        """The batch as the domain sees it, for the rules of spending it (its funding is not loaded)."""
        return domain.Batch(
            code=self.code,
            name=self.name,
            issuer=domain.Issuer(self.issuer),
            kind=domain.BatchKind(self.kind),
            scope=domain.Scope(
                categories=frozenset(Category(value) for value in self.categories),
                jurisdictions=frozenset(Jurisdiction(value) for value in self.jurisdictions),
                merchant_classes=frozenset(MerchantClass(value) for value in self.merchant_classes),
            ),
            validity=domain.Validity(
                domain.ValidityKind(self.validity_kind), self.validity_days, self.validity_until
            ),
            funding=(),
            face_value=None if self.face_value_fen is None else Fen(self.face_value_fen),
            threshold=Fen(self.threshold_fen),
            percent_bp=self.percent_bp,
            cap=None if self.cap_fen is None else Fen(self.cap_fen),
            tiers=tuple(
                domain.PriceTier(
                    min_price=Fen(tier["min_price_fen"]),
                    max_price=None if tier["max_price_fen"] is None else Fen(tier["max_price_fen"]),
                    face_value=Fen(tier["face_value_fen"]),
                )
                for tier in self.tiers
            ),
            per_person_per_round=self.per_person_per_round,
            per_person_total=self.per_person_total,
            per_merchant_daily=self.per_merchant_daily,
            refund_policy=domain.RefundPolicy(self.refund_policy),
            members_only=self.members_only,
            big_ticket=self.big_ticket,
            threshold_after_discount=self.threshold_after_discount,
        )


class BatchFundingRow(Base):
    """A batch's funding split: the share of every voucher's value charged to one funder."""

    __tablename__ = "batch_funding"
    __table_args__ = (CheckConstraint("share_bp > 0 AND share_bp <= 10000", name="share_range"),)

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    funder_id: Mapped[str] = mapped_column(ForeignKey("funders.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    share_bp: Mapped[int] = mapped_column(Integer)

    batch: Mapped[BatchRow] = relationship(back_populates="funding", lazy="raise")
    funder: Mapped[FunderRow] = relationship(lazy="raise")


class RoundRow(Base):
    """场次."""

    __tablename__ = "rounds"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code"),
        CheckConstraint("closes_at > opens_at", name="window_ordered"),
        CheckConstraint("mode IN ('first_come', 'lottery')", name="mode_known"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    opens_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime)

    campaign: Mapped[CampaignRow] = relationship(back_populates="rounds", lazy="raise")
    stock: Mapped[list[RoundBatchRow]] = relationship(back_populates="round", lazy="raise")


class RoundBatchRow(Base):
    """The stock a round releases for one batch."""

    __tablename__ = "round_batches"
    __table_args__ = (CheckConstraint("stock >= 0", name="stock_not_negative"),)

    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    stock: Mapped[int] = mapped_column(Integer)  # as planned in the campaign file
    recycled_in: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # rolled over from before

    round: Mapped[RoundRow] = relationship(back_populates="stock", lazy="raise")
    batch: Mapped[BatchRow] = relationship(lazy="raise")


class StockShardRow(Base):
    """The unclaimed stock of a round's batch, split into shards so that concurrent claims on
    PostgreSQL do not queue on one hot row. A claim takes one voucher from one shard with a
    conditional UPDATE (`remaining > 0`); the CHECK makes over-issue impossible even for a bug."""

    __tablename__ = "stock_shards"
    __table_args__ = (CheckConstraint("remaining >= 0", name="remaining_not_negative"),)

    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    remaining: Mapped[int] = mapped_column(Integer)

    # Declared so the unit of work inserts rounds and batches before their shards.
    round: Mapped[RoundRow] = relationship(lazy="raise")
    batch: Mapped[BatchRow] = relationship(lazy="raise")
