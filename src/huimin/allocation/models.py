"""Tables of the allocation package: the planner's proposals and the city admin's decisions on them.

A proposal keeps everything it was made from (the limits, each batch's figures, the planned and the
proposed stock), so the decision can be explained and audited later from the row alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime

__all__ = ["AllocationPlanRow"]


class AllocationPlanRow(Base):
    """投放方案: the planner's proposal for one round, and what the city admin decided."""

    __tablename__ = "allocation_plans"
    __table_args__ = (
        CheckConstraint("status IN ('proposed', 'accepted', 'rejected', 'superseded')", name="status_known"),
        CheckConstraint("status = 'proposed' OR decided_at IS NOT NULL", name="decided_when_closed"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [{batch, planned, proposed, merit, ratio, figures: {...}}] in the campaign file's batch order
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    average_merit: Mapped[float] = mapped_column(Float)
    fallback: Mapped[float] = mapped_column(Float)
    proposed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    proposed_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_note: Mapped[str | None] = mapped_column(Text)
    applied_stock: Mapped[dict[str, int] | None] = mapped_column(JSON)  # batch code -> stock, when accepted
