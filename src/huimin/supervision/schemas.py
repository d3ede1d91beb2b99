"""API shapes of market supervision. Bodies reject unknown fields; the status, the merchant's
jurisdiction and the actors are never taken from a client."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from huimin.supervision import domain
from huimin.supervision.domain import FindingKind, FindingStatus, Severity
from huimin.supervision.models import InspectionFindingRow
from huimin.supervision.service import Inbox, Page

__all__ = [
    "FindingIn",
    "FindingOut",
    "FindingPage",
    "InboxOut",
    "ReasonIn",
    "finding_out",
    "finding_page",
    "inbox_out",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingIn(_In):
    merchant_id: str = Field(min_length=1, max_length=32)
    kind: FindingKind
    severity: Severity
    description: str = Field(min_length=1, max_length=domain.DESCRIPTION_MAX_LENGTH)
    inspected_at: AwareDatetime | None = Field(
        default=None, description="when the inspection took place (default: now)"
    )
    complaint_id: str | None = Field(
        default=None, max_length=32, description="the complaint that prompted it"
    )


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=domain.REASON_MAX_LENGTH)


class FindingOut(BaseModel):
    id: str
    campaign_id: str
    merchant_id: str
    jurisdiction: str
    kind: FindingKind
    kind_label: str
    severity: Severity
    severity_label: str
    description: str
    inspected_at: datetime
    complaint_id: str | None
    status: FindingStatus
    recorded_at: datetime
    recorded_by: str
    read_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


class FindingPage(BaseModel):
    items: list[FindingOut]
    total: int
    page: int
    page_size: int


class InboxOut(BaseModel):
    unread: int
    items: list[FindingOut]


def finding_out(row: InspectionFindingRow) -> FindingOut:
    kind, severity = FindingKind(row.kind), Severity(row.severity)
    return FindingOut(
        id=row.id,
        campaign_id=row.campaign_id,
        merchant_id=row.merchant_id,
        jurisdiction=row.jurisdiction,
        kind=kind,
        kind_label=kind.label,
        severity=severity,
        severity_label=severity.label,
        description=row.description,
        inspected_at=row.inspected_at,
        complaint_id=row.complaint_id,
        status=FindingStatus(row.status),
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by_name,
        read_at=row.read_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by_name,
        decision_reason=row.decision_reason,
    )


def finding_page(page: Page[InspectionFindingRow]) -> FindingPage:
    return FindingPage(
        items=[finding_out(row) for row in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )


def inbox_out(found: Inbox) -> InboxOut:
    return InboxOut(unread=found.unread, items=[finding_out(row) for row in found.items])
