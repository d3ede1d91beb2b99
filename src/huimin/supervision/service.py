"""Use cases of market supervision: the market regulator records a finding against a merchant; the
city commerce bureau reads its inbox of findings and decides: suspend the merchant from the finding,
or no action.

Who may: recording needs `inspection.record` (the market regulator); reading `inspection.read` (the
city, the regulator, a county reviewer for its own jurisdiction's merchants: another's finding answers
404); reading a finding off the inbox and deciding need `merchant.sanction` (the city commerce bureau,
which decides sanctions, seed 五(一)). Suspension goes through `merchants.service.sanction` as the
deciding principal, in the same transaction, with the finding named in the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.complaints.models import ComplaintRow
from huimin.errors import HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.merchants import service as merchants
from huimin.merchants.domain import Action as MerchantAction
from huimin.merchants.models import MerchantRow
from huimin.supervision import domain
from huimin.supervision.domain import Decision, FindingKind, FindingStatus, Severity
from huimin.supervision.models import InspectionFindingRow
from huimin.supervision.repository import FindingFilter, FindingRepository

__all__ = ["Inbox", "Page", "decide", "get_finding", "inbox", "list_findings", "mark_read", "record_finding"]

MAX_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int


def _unknown(finding_id: str) -> HuiminError:
    return NotFound(f"no inspection finding {finding_id!r}", code="unknown_finding")


async def _load(
    repository: FindingRepository, principal: Principal, finding_id: str, *, for_update: bool
) -> InspectionFindingRow:
    principal.require(Permission.INSPECTION_READ)
    row = await repository.get(finding_id, for_update=for_update)
    if row is None or not principal.sees_jurisdiction(Jurisdiction(row.jurisdiction)):
        raise _unknown(finding_id)
    return row


async def record_finding(
    session: AsyncSession,
    *,
    principal: Principal,
    merchant_id: str,
    kind: FindingKind,
    severity: Severity,
    description: str,
    inspected_at: datetime | None = None,
    complaint_id: str | None = None,
    clock: Clock,
) -> InspectionFindingRow:
    """巡查: record what was found at a merchant; it lands unread in the commerce bureau's inbox."""
    principal.require(Permission.INSPECTION_RECORD)
    problems = []
    clean = description.strip()
    if not clean or len(clean) > domain.DESCRIPTION_MAX_LENGTH:
        problems.append(Problem("description", f"1 to {domain.DESCRIPTION_MAX_LENGTH} characters"))
    now = clock.now()
    if inspected_at is not None and (inspected_at.tzinfo is None or inspected_at > now):
        problems.append(Problem("inspected_at", "a past instant with its time zone"))
    if problems:
        raise InvalidInput(problems, code="invalid_finding")
    merchant = await session.get(MerchantRow, merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id!r}", code="unknown_merchant")
    if complaint_id is not None:
        complaint = await session.get(ComplaintRow, complaint_id)
        if complaint is None or complaint.merchant_id != merchant.id:
            raise NotFound(f"no complaint {complaint_id!r} about this merchant", code="unknown_complaint")
    row = InspectionFindingRow(
        id=new_id("fnd"),
        campaign_id=merchant.campaign_id,
        merchant_id=merchant.id,
        jurisdiction=merchant.jurisdiction,
        kind=kind.value,
        severity=severity.value,
        description=clean,
        inspected_at=inspected_at or now,
        complaint_id=complaint_id,
        status=FindingStatus.OPEN.value,
        recorded_at=now,
        recorded_by=principal.actor_id,
        recorded_by_name=principal.name or principal.actor_id,
    )
    FindingRepository(session).add(row)
    await audit.record(
        session,
        principal=principal,
        action="inspection.record",
        object_type="inspection_finding",
        object_id=row.id,
        at=now,
        detail={"merchant_id": merchant.id, "kind": kind.value, "severity": severity.value},
    )
    await session.flush()
    return row


def _page_bounds(page: int, page_size: int) -> tuple[int, int]:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            [Problem("page", f"page from 1, page_size from 1 to {MAX_PAGE_SIZE}")], code="invalid_page"
        )
    return (page - 1) * page_size, page_size


async def list_findings(
    session: AsyncSession,
    *,
    principal: Principal,
    where: FindingFilter | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page[InspectionFindingRow]:
    """Findings the caller may see, newest first (a county reviewer: its jurisdiction's merchants)."""
    principal.require(Permission.INSPECTION_READ)
    offset, limit = _page_bounds(page, page_size)
    where = where or FindingFilter()
    if principal.jurisdiction is not None:
        where = FindingFilter(**{**where.__dict__, "jurisdiction": principal.jurisdiction})
    items, total = await FindingRepository(session).page(where, offset=offset, limit=limit)
    return Page(items=items, total=total, page=page, page_size=page_size)


@dataclass(frozen=True)
class Inbox:
    unread: int
    items: Sequence[InspectionFindingRow]


async def inbox(session: AsyncSession, *, principal: Principal, limit: int = 50) -> Inbox:
    """The city commerce bureau's notifications: findings not read yet, newest first."""
    principal.require(Permission.MERCHANT_SANCTION)
    found = await list_findings(
        session, principal=principal, where=FindingFilter(unread=True), page_size=limit
    )
    return Inbox(unread=found.total, items=found.items)


async def get_finding(
    session: AsyncSession, *, principal: Principal, finding_id: str
) -> InspectionFindingRow:
    return await _load(FindingRepository(session), principal, finding_id, for_update=False)


def _read(row: InspectionFindingRow, principal: Principal, now: datetime) -> None:
    if row.read_at is None:
        row.read_at, row.read_by = now, principal.actor_id


async def mark_read(
    session: AsyncSession, *, principal: Principal, finding_id: str, clock: Clock
) -> InspectionFindingRow:
    principal.require(Permission.MERCHANT_SANCTION)
    row = await _load(FindingRepository(session), principal, finding_id, for_update=True)
    _read(row, principal, clock.now())
    await session.flush()
    return row


async def decide(
    session: AsyncSession,
    *,
    principal: Principal,
    finding_id: str,
    decision: Decision,
    reason: str,
    clock: Clock,
) -> InspectionFindingRow:
    """The city commerce bureau decides on a finding: suspend the merchant from it, or no action."""
    principal.require(Permission.MERCHANT_SANCTION)
    clean = reason.strip()
    if not clean or len(clean) > domain.REASON_MAX_LENGTH:
        raise InvalidInput(
            [Problem("reason", f"give a reason, at most {domain.REASON_MAX_LENGTH} characters")],
            code="reason_required",
        )
    row = await _load(FindingRepository(session), principal, finding_id, for_update=True)
    after = domain.next_status(FindingStatus(row.status), decision)
    if decision is Decision.SUSPEND:
        # refused (409 invalid_transition) when the merchant is not active: nothing here changes then
        await merchants.sanction(
            session,
            principal=principal,
            merchant_id=row.merchant_id,
            action=MerchantAction.SUSPEND,
            reason=f"市场监管巡查发现 {row.id}（{FindingKind(row.kind).label}，{Severity(row.severity).label}）：{clean}",
            clock=clock,
        )
    now = clock.now()
    _read(row, principal, now)
    row.status = after.value
    row.decided_at, row.decided_by = now, principal.actor_id
    row.decided_by_name, row.decision_reason = principal.name or principal.actor_id, clean
    await audit.record(
        session,
        principal=principal,
        action=f"inspection.{decision.value}",
        object_type="inspection_finding",
        object_id=row.id,
        at=now,
        detail={"merchant_id": row.merchant_id, "reason": clean},
    )
    await session.flush()
    return row
