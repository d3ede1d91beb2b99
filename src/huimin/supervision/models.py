"""Tables of the supervision package: the market regulator's inspection findings against merchants,
with the city commerce bureau's reading and decision on each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime
from huimin.supervision.domain import FindingKind, FindingStatus, Severity

__all__ = ["InspectionFindingRow"]


def _one_of(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class InspectionFindingRow(Base):
    """巡查发现: what the market regulator found at a merchant, notified to the city commerce bureau."""

    __tablename__ = "inspection_findings"
    __table_args__ = (
        CheckConstraint(_one_of("kind", FindingKind), name="kind_known"),
        CheckConstraint(_one_of("severity", Severity), name="severity_known"),
        CheckConstraint(_one_of("status", FindingStatus), name="status_known"),
        CheckConstraint("(read_at IS NULL) = (read_by IS NULL)", name="reading_recorded"),
        CheckConstraint(
            "(status = 'open') = (decided_at IS NULL) AND (decided_at IS NULL) = (decided_by IS NULL)",
            name="decision_recorded",
        ),
        Index("ix_inspection_findings_unread", "read_at", "recorded_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(16))  # the merchant's, for county scope
    kind: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    inspected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    complaint_id: Mapped[str | None] = mapped_column(ForeignKey("complaints.id"))  # what prompted it
    status: Mapped[str] = mapped_column(String(24))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_by_name: Mapped[str] = mapped_column(String(100))
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    read_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_by_name: Mapped[str | None] = mapped_column(String(100))
    decision_reason: Mapped[str | None] = mapped_column(Text)
