"""API shapes of the complaints package. Bodies reject unknown fields; the status, the routing, the due
date and the actors are computed by the server, never taken from a client. The complainant's phone
only ever leaves masked (first 3 + last 4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from huimin.complaints import domain
from huimin.complaints.domain import Action, Category, Channel, ComplaintStatus, Department
from huimin.complaints.models import ComplaintEventRow, ComplaintRow
from huimin.complaints.repository import StatsRow
from huimin.complaints.service import ComplaintDetail, Page, Statistics
from huimin.kit.terms import Jurisdiction

__all__ = [
    "AssignIn",
    "ComplaintDetailOut",
    "ComplaintIn",
    "ComplaintOut",
    "ComplaintPage",
    "ResidentComplaintIn",
    "ResidentComplaintOut",
    "RiskCaseLinkIn",
    "StatisticsOut",
    "TextIn",
    "complaint_detail_out",
    "complaint_page",
    "resident_complaint_out",
    "statistics_out",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResidentComplaintIn(_In):
    """A resident's complaint, sent by the payment app on its behalf."""

    category: Category
    text: str = Field(min_length=1, max_length=domain.TEXT_MAX_LENGTH)
    campaign_id: str | None = Field(
        default=None, max_length=32, description="needed without merchant or voucher"
    )
    merchant_id: str | None = Field(default=None, max_length=32)
    voucher_code: str | None = Field(
        default=None, max_length=20, description="one of the resident's own vouchers"
    )


class ComplaintIn(ResidentComplaintIn):
    """A complaint registered by the 12345 hotline, the market regulator or the PBOC branch."""

    phone: str | None = Field(
        default=None, max_length=24, description="the caller's number: stored as a keyed hash, shown masked"
    )


class AssignIn(_In):
    assignee_id: str = Field(min_length=1, max_length=32, description="a console user of the department")
    text: str = Field(default="", max_length=domain.NOTE_MAX_LENGTH)


class TextIn(_In):
    text: str = Field(default="", max_length=domain.TEXT_MAX_LENGTH)


class RiskCaseLinkIn(_In):
    risk_case_id: str = Field(min_length=1, max_length=32)


class TermOut(BaseModel):
    code: str
    label: str


class ComplaintOut(BaseModel):
    id: str
    campaign_id: str
    category: TermOut
    channel: Channel
    department: TermOut
    jurisdiction: TermOut | None
    status: ComplaintStatus
    status_label: str
    text: str
    merchant_id: str | None
    voucher_id: str | None
    complainant_phone_masked: str
    risk_case_id: str | None
    registered_at: datetime
    due_at: datetime
    sla_days: int = Field(description="working days to answer")
    overdue: bool = Field(description="past its due date and still unanswered (computed now)")
    assignee_id: str | None
    assignee_name: str | None
    resolution: str | None
    resolved_at: datetime | None
    resolved_late: bool
    closed_at: datetime | None


class EventOut(BaseModel):
    action: Action
    from_status: ComplaintStatus | None
    to_status: ComplaintStatus | None
    actor_id: str
    actor_name: str
    actor_role: str
    text: str
    assignee_id: str | None
    at: datetime


class ComplaintDetailOut(ComplaintOut):
    actions: list[Action] = Field(description="what the caller may do to it now")
    history: list[EventOut]


class ComplaintPage(BaseModel):
    items: list[ComplaintOut]
    total: int
    page: int
    page_size: int


class StatsRowOut(BaseModel):
    code: str | None
    label: str
    total: int
    open: int
    overdue: int
    resolved: int
    resolved_late: int


class StatisticsOut(BaseModel):
    by_category: list[StatsRowOut]
    by_department: list[StatsRowOut]
    by_jurisdiction: list[StatsRowOut]


class ResidentComplaintOut(BaseModel):
    """What the resident's app shows: where it went, when it is due, how it was answered."""

    id: str
    category: TermOut
    department: TermOut
    status: ComplaintStatus
    status_label: str
    registered_at: datetime
    due_at: datetime
    resolution: str | None
    resolved_at: datetime | None


def _category(value: str) -> TermOut:
    category = Category(value)
    return TermOut(code=category.value, label=category.label)


def _department(value: str) -> TermOut:
    department = Department(value)
    return TermOut(code=department.value, label=department.label)


def complaint_out(row: ComplaintRow, now: datetime) -> ComplaintOut:
    status = ComplaintStatus(row.status)
    jurisdiction = None if row.jurisdiction is None else Jurisdiction(row.jurisdiction)
    return ComplaintOut(
        id=row.id,
        campaign_id=row.campaign_id,
        category=_category(row.category),
        channel=Channel(row.channel),
        department=_department(row.department),
        jurisdiction=None
        if jurisdiction is None
        else TermOut(code=jurisdiction.value, label=jurisdiction.label),
        status=status,
        status_label=status.label,
        text=row.text,
        merchant_id=row.merchant_id,
        voucher_id=row.voucher_id,
        complainant_phone_masked=row.complainant_phone_masked,
        risk_case_id=row.risk_case_id,
        registered_at=row.registered_at,
        due_at=row.due_at,
        sla_days=row.sla_days,
        overdue=domain.is_overdue(status, row.due_at, now),
        assignee_id=row.assignee_id,
        assignee_name=row.assignee_name,
        resolution=row.resolution,
        resolved_at=row.resolved_at,
        resolved_late=row.resolved_at is not None and row.resolved_at >= row.due_at,
        closed_at=row.closed_at,
    )


def _event_out(row: ComplaintEventRow) -> EventOut:
    return EventOut(
        action=Action(row.action),
        from_status=None if row.from_status is None else ComplaintStatus(row.from_status),
        to_status=None if row.to_status is None else ComplaintStatus(row.to_status),
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        text=row.text,
        assignee_id=row.assignee_id,
        at=row.at,
    )


def complaint_detail_out(detail: ComplaintDetail, now: datetime) -> ComplaintDetailOut:
    return ComplaintDetailOut(
        **complaint_out(detail.complaint, now).model_dump(),
        actions=list(detail.actions),
        history=[_event_out(item) for item in detail.history],
    )


def complaint_page(page: Page[ComplaintRow], now: datetime) -> ComplaintPage:
    return ComplaintPage(
        items=[complaint_out(row, now) for row in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
    )


def _label(by: str, code: str | None) -> str:
    if code is None:
        return "全市" if by == "jurisdiction" else "—"
    if by == "category":
        return Category(code).label
    if by == "department":
        return Department(code).label
    return Jurisdiction(code).label


def _rows(by: str, rows: Sequence[StatsRow]) -> list[StatsRowOut]:
    return [
        StatsRowOut(
            code=row.key,
            label=_label(by, row.key),
            total=row.total,
            open=row.open,
            overdue=row.overdue,
            resolved=row.resolved,
            resolved_late=row.resolved_late,
        )
        for row in rows
    ]


def statistics_out(stats: Statistics) -> StatisticsOut:
    return StatisticsOut(
        by_category=_rows("category", stats.by_category),
        by_department=_rows("department", stats.by_department),
        by_jurisdiction=_rows("jurisdiction", stats.by_jurisdiction),
    )


def resident_complaint_out(row: ComplaintRow) -> ResidentComplaintOut:
    status = ComplaintStatus(row.status)
    return ResidentComplaintOut(
        id=row.id,
        category=_category(row.category),
        department=_department(row.department),
        status=status,
        status_label=status.label,
        registered_at=row.registered_at,
        due_at=row.due_at,
        resolution=row.resolution,
        resolved_at=row.resolved_at,
    )
