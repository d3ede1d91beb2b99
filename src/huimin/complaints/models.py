"""Tables of the complaints package: complaints and their append-only history (transitions and notes).

The complainant's phone is kept only as a keyed hash (to find the same caller's other complaints)
and a masked form (to show); the purge erases the hash. Rules that can be constraints are: known
terms, a resolution once resolved, a jurisdiction for the county commerce office.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.complaints.domain import Action, Category, Channel, ComplaintStatus, Department
from huimin.db import Base, UtcDateTime
from huimin.kit.terms import Jurisdiction

__all__ = ["ComplaintEventRow", "ComplaintRow"]


def _one_of(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class ComplaintRow(Base):
    """投诉: one complaint about a campaign, routed to the department (and jurisdiction) that answers it."""

    __tablename__ = "complaints"
    __table_args__ = (
        CheckConstraint(_one_of("status", ComplaintStatus), name="status_known"),
        CheckConstraint(_one_of("category", Category), name="category_known"),
        CheckConstraint(_one_of("channel", Channel), name="channel_known"),
        CheckConstraint(_one_of("department", Department), name="department_known"),
        CheckConstraint(
            f"jurisdiction IS NULL OR {_one_of('jurisdiction', Jurisdiction)}", name="jurisdiction_known"
        ),
        CheckConstraint(
            "department <> 'county_commerce' OR jurisdiction IS NOT NULL", name="county_has_jurisdiction"
        ),
        CheckConstraint(
            "status NOT IN ('resolved', 'closed') OR (resolution IS NOT NULL AND resolved_at IS NOT NULL)",
            name="resolved_has_resolution",
        ),
        CheckConstraint("due_at > registered_at", name="due_after_registration"),
        Index("ix_complaints_status_due", "status", "due_at"),
        Index("ix_complaints_department", "department", "jurisdiction"),
        Index("ix_complaints_campaign", "campaign_id", "registered_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    category: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(24))
    department: Mapped[str] = mapped_column(String(24))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    voucher_id: Mapped[str | None] = mapped_column(ForeignKey("vouchers.id"))
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.id"), index=True)
    complainant_phone_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    complainant_phone_masked: Mapped[str] = mapped_column(String(24), default="")
    risk_case_id: Mapped[str | None] = mapped_column(ForeignKey("risk_cases.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_by_role: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sla_days: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[str | None] = mapped_column(String(32))
    assignee_name: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ComplaintEventRow(Base):
    """Every step and note of a complaint, append-only: who (actor, role), when, what was said."""

    __tablename__ = "complaint_events"
    __table_args__ = (
        CheckConstraint(_one_of("action", Action), name="action_known"),
        CheckConstraint(
            f"to_status IS NULL OR {_one_of('to_status', ComplaintStatus)}", name="to_status_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    complaint_id: Mapped[str] = mapped_column(ForeignKey("complaints.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))  # None for a note
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    assignee_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
