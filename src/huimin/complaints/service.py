"""Use cases of the complaints package: register (staff, or a resident through the payment app),
assign, start, resolve, reopen, close, notes, the link to a risk case; lists, details and statistics.

Who may do what is decided here: first the role's permission (403 `forbidden`), then the scope (an
object outside it answers 404 `unknown_complaint`), then the state machine (409 `invalid_transition`).

- Reading: the city commerce bureau and the publicity department see every complaint; a county
  reviewer every complaint of its jurisdiction; the market regulator, the operator and the PBOC those
  routed to their department or registered through their channel; the hotline those it registered.
- Handling (assign, start, resolve, reopen, notes, risk link): the department the complaint is routed
  to (a county: only in its jurisdiction); the city commerce bureau supervises and may act on any.
- Closing (after the callback, 回访): the handling department, or whoever registered it (the hotline
  closes what it registered; the operator closes what residents sent through the app).

Every state change and note is written to the complaint's history and to the audit trail. The
complainant's phone is hashed (keyed) and masked; the clear number is never stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal, Role, forbidden
from huimin.campaigns.models import CampaignRow
from huimin.complaints import domain
from huimin.complaints.domain import (
    Action,
    Category,
    Channel,
    ComplaintRefused,
    ComplaintStatus,
    Department,
)
from huimin.complaints.models import ComplaintEventRow, ComplaintRow
from huimin.complaints.repository import ComplaintFilter, ComplaintRepository, Scope, StatsRow
from huimin.config import Settings
from huimin.eligibility import service as eligibility
from huimin.errors import HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.hashing import KeyedHasher, mask
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.risk import service as risk

__all__ = [
    "ComplaintDetail",
    "ComplaintPolicy",
    "Page",
    "Statistics",
    "add_note",
    "get_complaint",
    "link_risk_case",
    "list_complaints",
    "register",
    "register_for_resident",
    "resident_complaints",
    "statistics",
    "step",
]

MAX_PAGE_SIZE = 100
T = TypeVar("T")

_EVERY_DEPARTMENT = frozenset(Department)
# The departments a role answers for.
_HANDLES: Mapping[Role, frozenset[Department]] = {
    Role.CITY_ADMIN: _EVERY_DEPARTMENT,  # 市商务局 统筹: supervises every complaint
    Role.SYSTEM: _EVERY_DEPARTMENT,
    Role.COUNTY_REVIEWER: frozenset({Department.COUNTY_COMMERCE}),
    Role.MARKET_REGULATOR: frozenset({Department.MARKET_REGULATOR}),
    Role.OPERATOR: frozenset({Department.OPERATOR, Department.OPERATOR_RISK}),
    Role.PBOC: frozenset({Department.PBOC}),
}
# The channel a role registers through (and closes after its callback).
_CHANNELS: Mapping[Role, Channel] = {
    Role.HOTLINE: Channel.HOTLINE,
    Role.MARKET_REGULATOR: Channel.MARKET_REGULATOR,
    Role.PBOC: Channel.PBOC,
    Role.OPERATOR: Channel.RESIDENT_APP,
    Role.SYSTEM: Channel.HOTLINE,  # the operator's shell imports the hotline's records
}
_EVERYTHING = frozenset({Role.CITY_ADMIN, Role.PUBLICITY, Role.SYSTEM})


@dataclass(frozen=True)
class ComplaintPolicy:
    """Working days to answer per category (overrides of `domain.DEFAULT_SLA_DAYS`) and holidays."""

    sla_overrides: Mapping[str, int] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> ComplaintPolicy:
        return cls(
            sla_overrides=dict(settings.complaint_sla_days), holidays=frozenset(settings.complaint_holidays)
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class ComplaintDetail:
    complaint: ComplaintRow
    history: Sequence[ComplaintEventRow]
    overdue: bool
    actions: Sequence[Action]  # what the caller may do to it now


@dataclass(frozen=True)
class Statistics:
    by_category: Sequence[StatsRow]
    by_department: Sequence[StatsRow]
    by_jurisdiction: Sequence[StatsRow]


def _unknown(complaint_id: str) -> HuiminError:
    return NotFound(f"no complaint {complaint_id!r}", code="unknown_complaint")


def _scope(principal: Principal) -> Scope:
    principal.require(Permission.COMPLAINT_READ)
    if principal.role is Role.COUNTY_REVIEWER:
        return Scope(everything=True, jurisdiction=principal.jurisdiction)
    if principal.role in _EVERYTHING:
        return Scope(everything=True)
    channel = _CHANNELS.get(principal.role)
    return Scope(
        departments=_HANDLES.get(principal.role, frozenset()),
        channels=frozenset() if channel is None else frozenset({channel}),
    )


def _handles(principal: Principal, row: ComplaintRow) -> bool:
    if not principal.can(Permission.COMPLAINT_HANDLE):
        return False
    if principal.jurisdiction is not None and row.jurisdiction != principal.jurisdiction:
        return False
    return Department(row.department) in _HANDLES.get(principal.role, frozenset())


def _registered_by_caller(principal: Principal, row: ComplaintRow) -> bool:
    return principal.role is not Role.SYSTEM and _CHANNELS.get(principal.role) == Channel(row.channel)


def _may(principal: Principal, row: ComplaintRow, action: Action) -> bool:
    if action is Action.CLOSE:
        return _handles(principal, row) or _registered_by_caller(principal, row)
    return _handles(principal, row)


def _require(principal: Principal, row: ComplaintRow, action: Action) -> None:
    if not _may(principal, row, action):
        raise forbidden(f"the {principal.role} role does not handle complaints routed to {row.department}")


async def _load(
    repository: ComplaintRepository, principal: Principal, complaint_id: str, *, for_update: bool
) -> ComplaintRow:
    scope = _scope(principal)
    row = await repository.get(complaint_id, for_update=for_update)
    if row is None or not scope.sees(row):
        raise _unknown(complaint_id)  # another jurisdiction's or department's complaint does not exist
    return row


def _event(
    row: ComplaintRow,
    action: Action,
    *,
    before: ComplaintStatus | None,
    after: ComplaintStatus | None,
    actor_id: str,
    actor_name: str,
    actor_role: str,
    text: str = "",
    assignee_id: str | None = None,
) -> ComplaintEventRow:
    return ComplaintEventRow(
        complaint_id=row.id,
        action=action.value,
        from_status=None if before is None else before.value,
        to_status=None if after is None else after.value,
        actor_id=actor_id,
        actor_name=actor_name,
        actor_role=actor_role,
        text=text,
        assignee_id=assignee_id,
        at=row.updated_at,
    )


def _principal_event(
    row: ComplaintRow,
    action: Action,
    principal: Principal,
    *,
    before: ComplaintStatus | None,
    after: ComplaintStatus | None,
    text: str = "",
    assignee_id: str | None = None,
) -> ComplaintEventRow:
    return _event(
        row,
        action,
        before=before,
        after=after,
        actor_id=principal.actor_id,
        actor_name=principal.name or principal.actor_id,
        actor_role=principal.role.value,
        text=text,
        assignee_id=assignee_id,
    )


# Registration


@dataclass(frozen=True)
class _Subject:
    campaign_id: str
    merchant_id: str | None
    jurisdiction: Jurisdiction | None
    voucher_id: str | None


async def _subject(
    repository: ComplaintRepository,
    *,
    campaign_id: str | None,
    merchant_id: str | None,
    voucher_code: str | None,
    resident_id: str | None,
) -> _Subject:
    """The campaign, merchant and voucher a complaint is about, each checked to exist and to agree."""
    problems: list[Problem] = []
    campaigns = set() if campaign_id is None else {campaign_id}
    jurisdiction = None
    if merchant_id is not None:
        merchant = await repository.merchant(merchant_id)
        if merchant is None:
            raise NotFound(f"no merchant {merchant_id!r}", code="unknown_merchant")
        campaigns.add(merchant.campaign_id)
        jurisdiction = Jurisdiction(merchant.jurisdiction)
    voucher_id = None
    if voucher_code is not None:
        voucher = await repository.voucher_by_code(voucher_code.strip().upper())
        # a resident names only its own vouchers: another's is as unknown as a missing one
        if voucher is None or (resident_id is not None and voucher.resident_id != resident_id):
            raise NotFound(f"no voucher {voucher_code!r}", code="unknown_voucher")
        campaigns.add(voucher.campaign_id)
        voucher_id = voucher.id
    if len(campaigns) > 1:
        problems.append(Problem("campaign_id", "the merchant, the voucher and the campaign do not agree"))
    elif not campaigns:
        problems.append(Problem("campaign_id", "name the campaign (or a merchant or voucher of it)"))
    if problems:
        raise InvalidInput(problems, code="invalid_complaint")
    [campaign] = campaigns
    if await repository.session.get(CampaignRow, campaign) is None:
        raise NotFound(f"no campaign {campaign!r}", code="unknown_campaign")
    return _Subject(campaign, merchant_id, jurisdiction, voucher_id)


async def _create(
    repository: ComplaintRepository,
    *,
    subject: _Subject,
    category: Category,
    channel: Channel,
    text: str,
    phone_digest: str | None,
    phone_masked: str,
    resident_id: str | None,
    actor_id: str,
    actor_name: str,
    actor_role: str,
    principal: Principal | None,
    policy: ComplaintPolicy,
    clock: Clock,
) -> ComplaintRow:
    now = clock.now()
    routed = domain.route(category, subject.jurisdiction)
    days = domain.sla_days(category, policy.sla_overrides)
    risk_case_id = None
    if category is Category.SUSPECTED_CASH_OUT and subject.merchant_id is not None:
        risk_case_id = await repository.live_risk_case(subject.campaign_id, subject.merchant_id)
    row = ComplaintRow(
        id=new_id("cpl"),
        campaign_id=subject.campaign_id,
        category=category.value,
        channel=channel.value,
        department=routed.department.value,
        jurisdiction=None if routed.jurisdiction is None else routed.jurisdiction.value,
        status=ComplaintStatus.REGISTERED.value,
        text=text.strip(),
        merchant_id=subject.merchant_id,
        voucher_id=subject.voucher_id,
        resident_id=resident_id,
        complainant_phone_digest=phone_digest,
        complainant_phone_masked=phone_masked,
        risk_case_id=risk_case_id,
        registered_at=now,
        registered_by=actor_id,
        registered_by_role=actor_role,
        due_at=domain.due_at(now, days, policy.holidays),
        sla_days=days,
        updated_at=now,
    )
    repository.add(row)
    await repository.session.flush()
    repository.add(
        _event(
            row,
            Action.REGISTER,
            before=None,
            after=ComplaintStatus.REGISTERED,
            actor_id=actor_id,
            actor_name=actor_name,
            actor_role=actor_role,
        )
    )
    await audit.record(
        repository.session,
        principal=principal,
        action="complaint.register",
        object_type="complaint",
        object_id=row.id,
        at=now,
        detail={
            "category": row.category,
            "channel": row.channel,
            "department": row.department,
            "jurisdiction": row.jurisdiction,
            "merchant_id": row.merchant_id,
            "risk_case_id": row.risk_case_id,
            **({"registered_by": actor_id} if principal is None else {}),
        },
    )
    await repository.session.flush()
    return row


def _check_text(text: str) -> None:
    problem = domain.text_problem("text", text)
    if problem is not None:
        raise InvalidInput([problem], code="invalid_complaint")


async def register(
    session: AsyncSession,
    *,
    principal: Principal,
    category: Category,
    text: str,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    voucher_code: str | None = None,
    phone: str | None = None,
    hasher: KeyedHasher,
    policy: ComplaintPolicy,
    clock: Clock,
) -> ComplaintRow:
    """登记: the 12345 hotline, the market regulator or the PBOC registers a complaint; it is routed to
    its department and jurisdiction at once, with its due date."""
    principal.require(Permission.COMPLAINT_REGISTER)
    channel = _CHANNELS.get(principal.role)
    if channel is None:
        raise forbidden(f"the {principal.role} role does not register complaints")
    _check_text(text)
    digest, masked = None, ""
    if phone is not None and phone.strip():
        if problem := domain.phone_problem(phone):
            raise InvalidInput([Problem("phone", problem)], code="invalid_complaint")
        clean = domain.normalise_phone(phone)
        digest, masked = hasher.digest("phone", clean), mask(clean)
    repository = ComplaintRepository(session)
    subject = await _subject(
        repository,
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        voucher_code=voucher_code,
        resident_id=None,
    )
    return await _create(
        repository,
        subject=subject,
        category=category,
        channel=channel,
        text=text,
        phone_digest=digest,
        phone_masked=masked,
        resident_id=None,
        actor_id=principal.actor_id,
        actor_name=principal.name or principal.actor_id,
        actor_role=principal.role.value,
        principal=principal,
        policy=policy,
        clock=clock,
    )


async def register_for_resident(
    session: AsyncSession,
    *,
    partner_id: str,
    resident_id: str,
    category: Category,
    text: str,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    voucher_code: str | None = None,
    policy: ComplaintPolicy,
    clock: Clock,
) -> ComplaintRow:
    """A resident complains through the payment app (a signed partner request on its behalf). The
    complainant's phone is the resident's own (its hash and masked form are copied)."""
    _check_text(text)
    resident = await eligibility.get_resident(session, partner_id=partner_id, resident_id=resident_id)
    repository = ComplaintRepository(session)
    subject = await _subject(
        repository,
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        voucher_code=voucher_code,
        resident_id=resident.id,
    )
    return await _create(
        repository,
        subject=subject,
        category=category,
        channel=Channel.RESIDENT_APP,
        text=text,
        phone_digest=resident.phone_digest,
        phone_masked=resident.phone_masked,
        resident_id=resident.id,
        actor_id=f"partner:{partner_id}",
        actor_name=f"resident {resident.id}",
        actor_role="resident",
        principal=None,
        policy=policy,
        clock=clock,
    )


# Handling


# The role whose users answer for each department (the city commerce bureau's own staff for its own).
_STAFF_OF: Mapping[Department, Role] = {
    Department.CITY_COMMERCE: Role.CITY_ADMIN,
    Department.COUNTY_COMMERCE: Role.COUNTY_REVIEWER,
    Department.MARKET_REGULATOR: Role.MARKET_REGULATOR,
    Department.OPERATOR: Role.OPERATOR,
    Department.OPERATOR_RISK: Role.OPERATOR,
    Department.PBOC: Role.PBOC,
}


async def _assignee(repository: ComplaintRepository, row: ComplaintRow, user_id: str) -> tuple[str, str]:
    """A console user of the department the complaint is routed to (a county's: of its jurisdiction)."""
    user = await repository.user(user_id)
    department = Department(row.department)
    if (
        user is None
        or user.disabled_at is not None
        or user.role != _STAFF_OF[department].value
        or (department is Department.COUNTY_COMMERCE and user.jurisdiction != row.jurisdiction)
    ):
        raise InvalidInput(
            [Problem("assignee_id", f"not a user of the department it is routed to ({department.label})")],
            code="invalid_assignee",
        )
    return user.id, user.display_name or user.username


async def step(
    session: AsyncSession,
    *,
    principal: Principal,
    complaint_id: str,
    action: Action,
    text: str = "",
    assignee_id: str | None = None,
    clock: Clock,
) -> ComplaintRow:
    """One transition: assign (to a user), start, resolve (with the resolution), reopen (with why), close."""
    if action not in domain.TRANSITIONS:
        raise InvalidInput([Problem("action", f"{action.value} is not a transition")], code="invalid_step")
    repository = ComplaintRepository(session)
    row = await _load(repository, principal, complaint_id, for_update=True)
    _require(principal, row, action)
    before = ComplaintStatus(row.status)
    after = domain.next_status(before, action)
    problems = []
    if action in domain.TEXT_REQUIRED and (problem := domain.text_problem("text", text)):
        problems.append(problem)
    if action is Action.ASSIGN and not (assignee_id or "").strip():
        problems.append(Problem("assignee_id", "name the user who handles it"))
    if problems:
        raise InvalidInput(problems, code="invalid_step")
    now = clock.now()
    assigned: str | None = None
    if action is Action.ASSIGN and assignee_id is not None:
        assigned, row.assignee_name = await _assignee(repository, row, assignee_id.strip())
        row.assignee_id = assigned
    if action is Action.RESOLVE:
        row.resolution, row.resolved_at = text.strip(), now
    if action is Action.CLOSE:
        row.closed_at = now
    row.status = after.value
    row.updated_at = now
    repository.add(
        _principal_event(
            row, action, principal, before=before, after=after, text=text.strip(), assignee_id=assigned
        )
    )
    await audit.record(
        session,
        principal=principal,
        action=f"complaint.{action.value}",
        object_type="complaint",
        object_id=row.id,
        at=now,
        detail={"from": before.value, "to": after.value, **({"assignee_id": assigned} if assigned else {})},
    )
    await session.flush()
    return row


async def add_note(
    session: AsyncSession, *, principal: Principal, complaint_id: str, text: str, clock: Clock
) -> ComplaintRow:
    """办理记录: a note in the history (a call made, a visit, what the merchant said)."""
    repository = ComplaintRepository(session)
    row = await _load(repository, principal, complaint_id, for_update=True)
    _require(principal, row, Action.NOTE)
    if ComplaintStatus(row.status) is ComplaintStatus.CLOSED:
        raise ComplaintRefused.closed()
    if problem := domain.text_problem("text", text, max_length=domain.NOTE_MAX_LENGTH):
        raise InvalidInput([problem], code="invalid_note")
    row.updated_at = clock.now()
    status = ComplaintStatus(row.status)
    repository.add(
        _principal_event(row, Action.NOTE, principal, before=status, after=None, text=text.strip())
    )
    await audit.record(
        session,
        principal=principal,
        action="complaint.note",
        object_type="complaint",
        object_id=row.id,
        at=row.updated_at,
    )
    await session.flush()
    return row


async def link_risk_case(
    session: AsyncSession, *, principal: Principal, complaint_id: str, risk_case_id: str, clock: Clock
) -> ComplaintRow:
    """Link the complaint to the risk case it concerns (a case the caller may see, of the same campaign)."""
    repository = ComplaintRepository(session)
    row = await _load(repository, principal, complaint_id, for_update=True)
    _require(principal, row, Action.LINK_RISK_CASE)
    if ComplaintStatus(row.status) is ComplaintStatus.CLOSED:
        raise ComplaintRefused.closed()
    case = (await risk.get_case(session, principal=principal, case_id=risk_case_id)).case
    if case.campaign_id != row.campaign_id:
        raise InvalidInput(
            [Problem("risk_case_id", "the risk case is of another campaign")], code="invalid_risk_case"
        )
    row.risk_case_id = case.id
    row.updated_at = clock.now()
    status = ComplaintStatus(row.status)
    repository.add(
        _principal_event(row, Action.LINK_RISK_CASE, principal, before=status, after=None, text=case.id)
    )
    await audit.record(
        session,
        principal=principal,
        action="complaint.link_risk_case",
        object_type="complaint",
        object_id=row.id,
        at=row.updated_at,
        detail={"risk_case_id": case.id},
    )
    await session.flush()
    return row


# Reads


def _page_bounds(page: int, page_size: int) -> tuple[int, int]:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            [Problem("page", f"page from 1, page_size from 1 to {MAX_PAGE_SIZE}")], code="invalid_page"
        )
    return (page - 1) * page_size, page_size


def _with_phone(where: ComplaintFilter, phone: str | None, hasher: KeyedHasher | None) -> ComplaintFilter:
    if not phone or hasher is None:
        return where
    digest = hasher.digest("phone", domain.normalise_phone(phone))
    return ComplaintFilter(**{**where.__dict__, "phone_digest": digest})


async def list_complaints(
    session: AsyncSession,
    *,
    principal: Principal,
    where: ComplaintFilter | None = None,
    phone: str | None = None,
    hasher: KeyedHasher | None = None,
    clock: Clock,
    page: int = 1,
    page_size: int = 50,
) -> Page[ComplaintRow]:
    """Complaints the caller may see, most urgent first; `phone` finds one caller's complaints by its hash."""
    scope = _scope(principal)
    offset, limit = _page_bounds(page, page_size)
    items, total = await ComplaintRepository(session).page(
        _with_phone(where or ComplaintFilter(), phone, hasher),
        scope,
        now=clock.now(),
        offset=offset,
        limit=limit,
    )
    return Page(items=items, total=total, page=page, page_size=page_size)


async def get_complaint(
    session: AsyncSession, *, principal: Principal, complaint_id: str, clock: Clock
) -> ComplaintDetail:
    repository = ComplaintRepository(session)
    row = await _load(repository, principal, complaint_id, for_update=False)
    status = ComplaintStatus(row.status)
    return ComplaintDetail(
        complaint=row,
        history=await repository.events(row.id),
        overdue=domain.is_overdue(status, row.due_at, clock.now()),
        actions=[action for action in domain.allowed_actions(status) if _may(principal, row, action)],
    )


async def statistics(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None = None,
    categories: Collection[Category] = (),
    clock: Clock,
) -> Statistics:
    """Counts by category, department and jurisdiction (total, open, overdue, resolved, resolved late),
    over the complaints the caller may see."""
    scope = _scope(principal)
    where = ComplaintFilter(campaign_id=campaign_id, categories=categories)
    repository = ComplaintRepository(session)
    now = clock.now()
    return Statistics(
        by_category=await repository.stats(where, scope, now=now, by="category"),
        by_department=await repository.stats(where, scope, now=now, by="department"),
        by_jurisdiction=await repository.stats(where, scope, now=now, by="jurisdiction"),
    )


async def resident_complaints(
    session: AsyncSession, *, partner_id: str, resident_id: str, clock: Clock
) -> Sequence[ComplaintRow]:
    """A resident's own complaints, as its payment app shows them (latest 100)."""
    resident = await eligibility.get_resident(session, partner_id=partner_id, resident_id=resident_id)
    items, _ = await ComplaintRepository(session).page(
        ComplaintFilter(resident_id=resident.id), Scope(everything=True), now=clock.now(), offset=0, limit=100
    )
    return items
