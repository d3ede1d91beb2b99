"""API shapes of risk monitoring. Bodies reject unknown fields; statuses, scores, actors and roles are never
taken from a client. Evidence carries ids, keyed-hash prefixes of devices and masked phones only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from huimin.eligibility.models import ClaimBlockRow
from huimin.risk import domain
from huimin.risk.domain import CaseAction, Department, Measure, Rule
from huimin.risk.models import RiskAlertRow, RiskCaseReferralRow, RiskCaseRow, RiskCaseTransitionRow
from huimin.risk.service import CaseDetail, Page, WatchEntry

__all__ = [
    "AlertOut",
    "AlertPage",
    "BlockOut",
    "CaseDetailOut",
    "CaseIn",
    "CaseOut",
    "CasePage",
    "LiftIn",
    "StepIn",
    "WatchEntryOut",
    "alert_out",
    "alert_page",
    "case_detail_out",
    "case_page",
    "watch_entry_out",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseIn(_In):
    """立案: open alerts about one subject taken into a case."""

    alert_ids: list[str] = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=domain.REASON_MAX_LENGTH)


class StepIn(_In):
    action: CaseAction = Field(description="investigate, dismiss, confirm, refer, sanction, assign, note")
    reason: str = Field(default="", max_length=domain.REASON_MAX_LENGTH)
    department: Department | None = Field(default=None, description="refer: market_regulator or police")
    measure: Measure | None = Field(
        default=None,
        description="sanction: suspend or expel a merchant; block or block_and_revoke a person or a device",
    )
    assignee: str | None = Field(default=None, max_length=100, description="assign: who investigates")


class LiftIn(_In):
    """解除禁止领取: why a block is lifted (a sanction in error, an appeal upheld)."""

    reason: str = Field(max_length=domain.REASON_MAX_LENGTH)


class AlertOut(BaseModel):
    alert_id: str
    campaign_id: str
    rule: Rule
    rule_label: str
    subject_kind: str
    subject_id: str
    jurisdiction: str | None
    window: str
    status: str
    score: int
    figure: int
    threshold: int
    unit: str
    summary: str
    evidence: dict[str, Any]
    hits: int
    raised_at: datetime
    updated_at: datetime
    last_event_at: datetime
    case_id: str | None


def alert_out(row: RiskAlertRow) -> AlertOut:
    rule = Rule(row.rule)
    return AlertOut(
        alert_id=row.id,
        campaign_id=row.campaign_id,
        rule=rule,
        rule_label=rule.label,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        jurisdiction=row.jurisdiction,
        window=row.period,
        status=row.status,
        score=row.score,
        figure=row.figure,
        threshold=row.threshold,
        unit=row.unit,
        summary=row.summary,
        evidence=dict(row.evidence),
        hits=row.hits,
        raised_at=row.raised_at,
        updated_at=row.updated_at,
        last_event_at=row.last_event_at,
        case_id=row.case_id,
    )


class AlertPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[AlertOut]


def alert_page(page: Page[RiskAlertRow]) -> AlertPage:
    return AlertPage(
        total=page.total,
        page=page.page,
        page_size=page.page_size,
        items=[alert_out(row) for row in page.items],
    )


class WatchEntryOut(BaseModel):
    campaign_id: str
    subject_kind: str
    subject_id: str
    label: str
    score: int
    alerts: int
    rules: list[str]


def watch_entry_out(entry: WatchEntry) -> WatchEntryOut:
    return WatchEntryOut(**entry.__dict__)


class CaseOut(BaseModel):
    case_id: str
    campaign_id: str
    subject_kind: str
    subject_id: str
    jurisdiction: str | None
    title: str
    status: str
    assignee: str | None
    measure: str | None
    opened_at: datetime
    opened_by: str
    updated_at: datetime


def case_out(row: RiskCaseRow) -> CaseOut:
    return CaseOut(
        case_id=row.id,
        campaign_id=row.campaign_id,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        jurisdiction=row.jurisdiction,
        title=row.title,
        status=row.status,
        assignee=row.assignee,
        measure=row.measure,
        opened_at=row.opened_at,
        opened_by=row.opened_by,
        updated_at=row.updated_at,
    )


class CasePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[CaseOut]


def case_page(page: Page[RiskCaseRow]) -> CasePage:
    return CasePage(
        total=page.total,
        page=page.page,
        page_size=page.page_size,
        items=[case_out(row) for row in page.items],
    )


class TransitionOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    actor_id: str
    actor_name: str
    actor_role: str
    reason: str
    department: str | None
    measure: str | None
    assignee: str | None
    at: datetime


def _transition_out(row: RiskCaseTransitionRow) -> TransitionOut:
    return TransitionOut(
        action=row.action,
        from_status=row.from_status,
        to_status=row.to_status,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        reason=row.reason,
        department=row.department,
        measure=row.measure,
        assignee=row.assignee,
        at=row.at,
    )


class ReferralOut(BaseModel):
    department: str
    referred_at: datetime
    referred_by: str


def _referral_out(row: RiskCaseReferralRow) -> ReferralOut:
    return ReferralOut(department=row.department, referred_at=row.referred_at, referred_by=row.referred_by)


class BlockOut(BaseModel):
    """A person's or device's sanction: blocked from claiming in the campaign, vouchers revoked."""

    block_id: str
    subject_kind: str
    subject_id: str
    measure: str
    vouchers_revoked: int
    value_revoked_fen: int
    blocked_at: datetime
    blocked_by: str
    lifted_at: datetime | None


def _block_out(row: ClaimBlockRow) -> BlockOut:
    return BlockOut(
        block_id=row.id,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        measure=row.measure,
        vouchers_revoked=row.vouchers_revoked,
        value_revoked_fen=row.value_revoked_fen,
        blocked_at=row.blocked_at,
        blocked_by=row.blocked_by,
        lifted_at=row.lifted_at,
    )


class CaseDetailOut(CaseOut):
    alerts: list[AlertOut]
    transitions: list[TransitionOut]
    referrals: list[ReferralOut]
    blocks: list[BlockOut]
    allowed_actions: list[str]


def case_detail_out(detail: CaseDetail) -> CaseDetailOut:
    return CaseDetailOut(
        **case_out(detail.case).model_dump(),
        alerts=[alert_out(row) for row in detail.alerts],
        transitions=[_transition_out(row) for row in detail.transitions],
        referrals=[_referral_out(row) for row in detail.referrals],
        blocks=[_block_out(row) for row in detail.blocks],
        allowed_actions=[action.value for action in detail.allowed],
    )
