"""Tables of risk monitoring: the intake cursors, per-campaign settings, alerts, cases, their append-only
transitions and referrals.

An alert is unique per (campaign, rule, subject, window), which is how a pattern seen again updates its
alert instead of raising another one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, UtcDateTime
from huimin.risk.domain import AlertStatus, CaseAction, CaseStatus, Department, Rule, SubjectKind

__all__ = [
    "RiskAlertRow",
    "RiskCaseReferralRow",
    "RiskCaseRow",
    "RiskCaseTransitionRow",
    "RiskCursorRow",
    "RiskEvaluatedEventRow",
    "RiskIpRegionRow",
    "RiskSettingsRow",
]


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class RiskCursorRow(Base):
    """How far the rules engine has read an append-only event log (`voucher_events`,
    `redemption_events`): advanced in the transaction that stores the alerts of the events it passed."""

    __tablename__ = "risk_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)  # evaluated so far
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RiskEvaluatedEventRow(Base):
    """An event the stream path (Redis Streams, `huimin.risk.stream`) evaluated ahead of the cursor: its
    key, inserted in the transaction that stores the event's alerts, is what makes a redelivered event
    a no-op, and what the cursor scanner skips. The scanner deletes the rows its cursor passes, so the
    table holds only the events between the cursor and the stream's head."""

    __tablename__ = "risk_evaluated_events"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(String(16))  # who evaluated it: "stream"
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RiskSettingsRow(Base):
    """A campaign's overrides of the rules' thresholds and weights (the defaults live in code)."""

    __tablename__ = "risk_settings"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class RiskIpRegionRow(Base):
    """IP 归属地: a network (CIDR text, as `ipaddress` writes it) and the region it belongs to, imported
    whole from the operator's offline file (`huimin risk ip-regions import`); the location-spoofing rule
    matches a claim's network against it by longest prefix (`risk.ip_regions`)."""

    __tablename__ = "risk_ip_regions"

    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(64))  # "雁江区", "成都市", "outside"
    in_city: Mapped[bool] = mapped_column(Boolean)  # inside the campaign's city
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RiskAlertRow(Base):
    """预警: one rule's finding about one subject in one window, with its evidence and score."""

    __tablename__ = "risk_alerts"
    __table_args__ = (
        UniqueConstraint("campaign_id", "rule", "subject_kind", "subject_id", "period"),
        CheckConstraint(_one_of("rule", Rule), name="rule_known"),
        CheckConstraint(_one_of("subject_kind", SubjectKind), name="subject_kind_known"),
        CheckConstraint(_one_of("status", AlertStatus), name="status_known"),
        CheckConstraint("score >= 0", name="score_not_negative"),
        CheckConstraint("hits >= 1", name="hits_positive"),
        Index("ix_risk_alerts_subject", "campaign_id", "subject_kind", "subject_id"),
        Index("ix_risk_alerts_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    rule: Mapped[str] = mapped_column(String(32))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))  # a merchant subject's, for county scope
    period: Mapped[str] = mapped_column(String(64))  # the window of the finding: a day, an hour, to-date
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer)
    figure: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    hits: Mapped[int] = mapped_column(Integer)  # how many scans found it (it is updated, not repeated)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)
    case_id: Mapped[str | None] = mapped_column(ForeignKey("risk_cases.id"), index=True)


class RiskCaseRow(Base):
    """案件: alerts about one subject taken up for investigation, decided, referred, sanctioned."""

    __tablename__ = "risk_cases"
    __table_args__ = (
        CheckConstraint(_one_of("status", CaseStatus), name="status_known"),
        CheckConstraint(_one_of("subject_kind", SubjectKind), name="subject_kind_known"),
        Index("ix_risk_cases_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(100))
    measure: Mapped[str | None] = mapped_column(String(16))  # the sanction applied, if any
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RiskCaseTransitionRow(Base):
    """Every step of a case, append-only: who (actor, role), when, why, and what it decided."""

    __tablename__ = "risk_case_transitions"
    __table_args__ = (
        CheckConstraint(_one_of("action", CaseAction), name="action_known"),
        CheckConstraint(_one_of("to_status", CaseStatus), name="to_status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("risk_cases.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))  # None for the opening
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(String(32))
    measure: Mapped[str | None] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class RiskCaseReferralRow(Base):
    """移交: a case handed to a department, which from then on sees it (read only)."""

    __tablename__ = "risk_case_referrals"
    __table_args__ = (CheckConstraint(_one_of("department", Department), name="department_known"),)

    case_id: Mapped[str] = mapped_column(ForeignKey("risk_cases.id"), primary_key=True)
    department: Mapped[str] = mapped_column(String(32), primary_key=True)
    referred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    referred_by: Mapped[str] = mapped_column(String(64))
