"""API shapes of precision allocation: limits in, proposals and decisions out, offers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from huimin.allocation import domain
from huimin.allocation.models import AllocationPlanRow
from huimin.allocation.service import OfferLine

__all__ = ["DecisionIn", "LimitsIn", "OfferOut", "PlanLineOut", "PlanOut", "plan_out"]

_SHARE = Field(ge=0, le=10_000)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_In):
    """What the planner may do for the next round; shares in basis points of the round's value."""

    round_id: str | None = Field(default=None, max_length=32, description="default: the next round to open")
    max_change_bp: int = Field(default=2_000, ge=0, le=10_000, description="per batch, of its planned stock")
    min_category_share_bp: dict[str, int] = Field(default_factory=dict)
    min_jurisdiction_share_bp: dict[str, int] = Field(default_factory=dict)

    def limits(self) -> domain.Limits:
        return domain.Limits(
            max_change_bp=self.max_change_bp,
            min_category_share_bp=self.min_category_share_bp,
            min_jurisdiction_share_bp=self.min_jurisdiction_share_bp,
        )


class DecisionIn(_In):
    accept: bool
    stock: dict[str, int] | None = Field(
        default=None, description="the admin's own split (batch code -> stock)"
    )
    note: str = Field(default="", max_length=2_000)


class PlanLineOut(BaseModel):
    batch: str
    planned: int
    proposed: int
    change: int
    ratio: float
    figures: dict[str, Any]
    explanation: str


class PlanOut(BaseModel):
    id: str
    campaign_id: str
    round_id: str
    status: str
    limits: dict[str, Any]
    average_merit: float
    fallback: float
    lines: list[PlanLineOut]
    proposed_at: datetime
    proposed_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str | None
    applied_stock: dict[str, int] | None


class OfferOut(BaseModel):
    round_id: str
    round_code: str
    batch_id: str
    batch_code: str
    batch_name: str
    rank: int
    affinity: float
    own_purchases: int
    district_share: float
    reason: str


def plan_out(row: AllocationPlanRow) -> PlanOut:
    return PlanOut(
        id=row.id,
        campaign_id=row.campaign_id,
        round_id=row.round_id,
        status=row.status,
        limits=row.limits,
        average_merit=row.average_merit,
        fallback=row.fallback,
        lines=[
            PlanLineOut(
                batch=line["batch"],
                planned=line["planned"],
                proposed=line["proposed"],
                change=line["proposed"] - line["planned"],
                ratio=line["ratio"],
                figures=line["figures"],
                explanation=domain.explain(line, row.average_merit),
            )
            for line in row.lines
        ],
        proposed_at=row.proposed_at,
        proposed_by=row.proposed_by,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        applied_stock=row.applied_stock,
    )


def offer_out(line: OfferLine) -> OfferOut:
    return OfferOut(**line.as_dict())
