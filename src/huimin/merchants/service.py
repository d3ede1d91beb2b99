"""Use cases of the merchants package: invite, apply, submit, review, publish the final list, accept
the integrity commitment, suspend, reinstate, expel; the dishonest list; reads for staff and residents.

Every use case takes the acting `Principal` and checks it here, not in the endpoints: first the role's
permission (403 `forbidden`), then the scope (a county reviewer sees its own jurisdiction, a merchant
itself; anything else answers 404 `unknown_merchant`), then the state machine (409
`invalid_transition`). Services flush; the caller's unit of work commits, so a refusal changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal, Role
from huimin.campaigns.models import CampaignRow
from huimin.campaigns.repository import CampaignRepository
from huimin.config import Settings
from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.hashing import mask
from huimin.kit.ids import new_id
from huimin.kit.sealing import Sealer
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants import domain
from huimin.merchants.domain import EVENTS, Action, Application, Invitation, MerchantRefused, MerchantStatus
from huimin.merchants.models import DishonestEntryRow, MerchantEventRow, MerchantRow, MerchantTransitionRow
from huimin.merchants.repository import MerchantFilter, MerchantRepository

__all__ = [
    "COMMITMENT_VERSION",
    "CommitmentText",
    "Corrections",
    "FinalList",
    "MerchantDetail",
    "MerchantSealer",
    "Page",
    "accept_commitment",
    "apply",
    "campaign_by_code",
    "commitment_text",
    "delist",
    "events",
    "final_list",
    "get_merchant",
    "invite",
    "list_dishonest",
    "list_merchants",
    "merchant_id_by_credit_code",
    "public_merchants",
    "publish",
    "require_campaign",
    "review",
    "review_queue",
    "sanction",
    "submit",
]

COMMITMENT_VERSION = "v1"
MAX_PAGE_SIZE = 100
T = TypeVar("T")

_PERMISSIONS = {
    Action.INVITE: Permission.MERCHANT_INVITE,
    Action.APPLY: Permission.MERCHANT_APPLY,
    Action.SUBMIT: Permission.MERCHANT_APPLY,
    Action.APPROVE: Permission.MERCHANT_REVIEW,
    Action.REJECT: Permission.MERCHANT_REVIEW,
    Action.PUBLISH: Permission.MERCHANT_PUBLISH,
    Action.COMMIT: Permission.MERCHANT_COMMIT,
    Action.SUSPEND: Permission.MERCHANT_SANCTION,
    Action.REINSTATE: Permission.MERCHANT_SANCTION,
    Action.EXPEL: Permission.MERCHANT_SANCTION,
}


class MerchantSealer:
    """Seals a merchant's settlement account and contact phone (SPEC §11.6) under keys derived from
    HUIMIN_SECRET_KEY, one purpose each: the database alone reveals neither."""

    def __init__(self, secret_key: str) -> None:
        self.bank_account = Sealer(secret_key, "bank-account")
        self.contact_phone = Sealer(secret_key, "merchant-contact-phone")

    @classmethod
    def from_settings(cls, settings: Settings) -> MerchantSealer:
        return cls(settings.secret_key.get_secret_value())


@dataclass(frozen=True)
class CommitmentText:
    """诚信经营承诺书: the text a merchant accepts, identified by version and SHA-256."""

    version: str
    text: str
    sha256: str


@cache
def commitment_text(version: str = COMMITMENT_VERSION) -> CommitmentText:
    resource = resources.files("huimin.merchants") / f"commitment-{version}.zh.md"
    if not (version.isalnum() and resource.is_file()):  # a version is a name, never a path
        raise NotFound(f"no commitment text {version!r}", code="unknown_commitment")
    data = resource.read_bytes()
    return CommitmentText(version=version, text=data.decode("utf-8"), sha256=hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class MerchantDetail:
    merchant: MerchantRow  # with its terminals loaded
    history: Sequence[MerchantTransitionRow]
    dishonest: bool  # its credit code is on the dishonest list now
    actions: Sequence[Action]  # what the caller may do to it now (its role and the merchant's state)


@dataclass(frozen=True)
class Corrections:
    """What the operator may correct in the invitation while completing the application."""

    legal_name: str | None = None
    jurisdiction: Jurisdiction | None = None
    category: Category | None = None
    merchant_class: MerchantClass | None = None


def _unknown(merchant_id: str) -> HuiminError:
    return NotFound(f"no merchant {merchant_id!r}", code="unknown_merchant")


def _visible(principal: Principal, row: MerchantRow) -> bool:
    if principal.role is Role.MERCHANT and principal.merchant_id != row.id:
        return False
    return principal.sees_jurisdiction(Jurisdiction(row.jurisdiction))


async def _load(
    session: AsyncSession, principal: Principal, merchant_id: str, *, for_update: bool
) -> MerchantRow:
    row = await MerchantRepository(session).get(merchant_id, for_update=for_update)
    if row is None or not _visible(principal, row):
        raise _unknown(merchant_id)  # another jurisdiction's merchant does not exist for this caller
    return row


async def require_campaign(session: AsyncSession, campaign_id: str) -> CampaignRow:
    row = await session.get(CampaignRow, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return row


async def campaign_by_code(session: AsyncSession, code: str) -> CampaignRow:
    row = await CampaignRepository(session).by_code(code)
    if row is None:
        raise NotFound(f"no campaign with code {code!r}", code="unknown_campaign")
    return row


async def merchant_id_by_credit_code(session: AsyncSession, *, campaign_code: str, credit_code: str) -> str:
    """The operator's shell names merchants by credit code; the use cases take ids."""
    campaign = await campaign_by_code(session, campaign_code)
    code = domain.normalise_credit_code(credit_code)
    row = await MerchantRepository(session).by_credit_code(campaign.id, code)
    if row is None:
        raise _unknown(code)
    return row.id


def _check_reason(action: Action, reason: str) -> None:
    problem = domain.reason_problem(action, reason)
    if problem is not None:
        raise InvalidInput([problem], code="reason_required" if not reason.strip() else "invalid_reason")


def _transition_values(
    *,
    merchant_id: str,
    action: Action,
    before: MerchantStatus | None,
    after: MerchantStatus,
    principal: Principal,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "action": action.value,
        "from_status": None if before is None else before.value,
        "to_status": after.value,
        "actor_id": principal.actor_id,
        "actor_name": principal.name or principal.actor_id,
        "actor_role": principal.role.value,
        "actor_jurisdiction": principal.jurisdiction,
        "reason": reason.strip(),
        "at": now,
    }


async def _step(
    session: AsyncSession,
    row: MerchantRow,
    action: Action,
    *,
    principal: Principal,
    reason: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    flush: bool = True,
) -> MerchantTransitionRow:
    """Move a loaded (locked) merchant along `action`, record who did it, emit its event if any.
    `flush=False` lets a bulk step (the final list) flush once for thousands of merchants."""
    before = MerchantStatus(row.status)
    after = domain.next_status(before, action)
    row.status = after.value
    row.status_changed_at = now
    transition = MerchantTransitionRow(
        **_transition_values(
            merchant_id=row.id,
            action=action,
            before=before,
            after=after,
            principal=principal,
            reason=reason,
            now=now,
        )
    )
    session.add(transition)
    await audit.record(
        session,
        principal=principal,
        action=f"merchant.{action.value}",
        object_type="merchant",
        object_id=row.id,
        at=now,
        detail={"from": before.value, "to": after.value, "reason": reason.strip()},
    )
    kind = EVENTS.get(action)
    if kind is not None:
        await session.flush()  # the event names its transition
        session.add(
            MerchantEventRow(
                kind=kind.value,
                campaign_id=row.campaign_id,
                merchant_id=row.id,
                transition_id=transition.id,
                payload={
                    "credit_code": row.credit_code,
                    "legal_name": row.legal_name,
                    "jurisdiction": row.jurisdiction,
                    "reason": reason.strip(),
                    "actor_id": principal.actor_id,
                    "actor_role": principal.role.value,
                    **(payload or {}),
                },
                occurred_at=now,
            )
        )
    if flush:
        await session.flush()
    return transition


async def _refuse_if_dishonest(repository: MerchantRepository, credit_code: str) -> None:
    if await repository.open_dishonest_entry(credit_code) is not None:
        raise MerchantRefused.dishonest(credit_code)


def _seal(sealer: Sealer, value: str) -> tuple[bytes | None, str]:
    return (sealer.seal(value), mask(value)) if value else (None, "")


# The onboarding steps


async def invite(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    invitation: Invitation,
    sealer: MerchantSealer,
    clock: Clock,
) -> MerchantRow:
    """定向邀约: the city commerce bureau invites one merchant into a campaign."""
    principal.require(Permission.MERCHANT_INVITE)
    await require_campaign(session, campaign_id)
    repository = MerchantRepository(session)
    await _refuse_if_dishonest(repository, invitation.credit_code)
    existing = await repository.by_credit_code(campaign_id, invitation.credit_code)
    if existing is not None:
        raise ConflictError(
            f"credit code {invitation.credit_code} is already invited to this campaign (merchant {existing.id})",
            code="merchant_exists",
        )
    now = clock.now()
    phone_sealed, phone_masked = _seal(sealer.contact_phone, invitation.contact_phone)
    row = MerchantRow(
        id=new_id("mch"),
        campaign_id=campaign_id,
        credit_code=invitation.credit_code,
        legal_name=invitation.legal_name,
        jurisdiction=invitation.jurisdiction.value,
        category=invitation.category.value,
        merchant_class=invitation.merchant_class.value,
        registered_address=invitation.registered_address,
        business_hours="",
        bank_name="",
        bank_account_masked="",
        contact_name=invitation.contact_name,
        contact_phone_sealed=phone_sealed,
        contact_phone_masked=phone_masked,
        status=MerchantStatus.INVITED.value,
        invited_at=now,
        status_changed_at=now,
    )
    repository.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise ConflictError(
            f"credit code {invitation.credit_code} was invited to this campaign at the same moment",
            code="merchant_exists",
        ) from None
    repository.add(
        MerchantTransitionRow(
            **_transition_values(
                merchant_id=row.id,
                action=Action.INVITE,
                before=None,
                after=MerchantStatus.INVITED,
                principal=principal,
                reason="",
                now=now,
            )
        )
    )
    await session.flush()
    return row


async def apply(
    session: AsyncSession,
    *,
    principal: Principal,
    merchant_id: str,
    application: Application,
    corrections: Corrections = Corrections(),
    sealer: MerchantSealer,
    clock: Clock,
) -> MerchantRow:
    """The operator completes the application with the merchant (or amends it before submission, or
    corrects it after a county rejection)."""
    principal.require(Permission.MERCHANT_APPLY)
    terminals = tuple(terminal.strip().upper() for terminal in application.terminals)
    application = Application(
        registered_address=application.registered_address.strip(),
        business_hours=application.business_hours,
        terminals=terminals,
        bank_name=application.bank_name.strip(),
        bank_account=domain.normalise_account(application.bank_account),
        contact_name=application.contact_name.strip(),
        contact_phone=domain.normalise_phone(application.contact_phone),
    )
    problems = domain.application_problems(application)
    if (
        corrections.legal_name is not None
        and not 0 < len(corrections.legal_name.strip()) <= domain.NAME_MAX_LENGTH
    ):
        problems.append(Problem("legal_name", f"a name of 1 to {domain.NAME_MAX_LENGTH} characters"))
    if problems:
        raise InvalidInput(problems, code="invalid_application", summary="the application is incomplete")
    repository = MerchantRepository(session)
    row = await _load(session, principal, merchant_id, for_update=True)
    domain.next_status(MerchantStatus(row.status), Action.APPLY)  # refuse early, before any change
    await _refuse_if_dishonest(repository, row.credit_code)
    taken = await repository.terminals_of_others(row.campaign_id, row.id, terminals)
    if taken:
        raise ConflictError(
            f"terminal {', '.join(sorted(taken))} already belongs to another merchant of this campaign",
            code="terminal_taken",
        )
    now = clock.now()
    row.registered_address = application.registered_address
    row.business_hours = str(domain.parse_business_hours(application.business_hours))
    row.bank_name = application.bank_name
    row.bank_account_sealed, row.bank_account_masked = _seal(sealer.bank_account, application.bank_account)
    row.contact_name = application.contact_name
    row.contact_phone_sealed, row.contact_phone_masked = _seal(
        sealer.contact_phone, application.contact_phone
    )
    if corrections.legal_name is not None:
        row.legal_name = corrections.legal_name.strip()
    if corrections.jurisdiction is not None:
        row.jurisdiction = corrections.jurisdiction.value
    if corrections.category is not None:
        row.category = corrections.category.value
    if corrections.merchant_class is not None:
        row.merchant_class = corrections.merchant_class.value
    await repository.replace_terminals(row, terminals)
    await _step(session, row, Action.APPLY, principal=principal, reason="", now=now)
    return row


async def _act(
    session: AsyncSession,
    *,
    principal: Principal,
    merchant_id: str,
    action: Action,
    reason: str,
    clock: Clock,
    **payload: Any,
) -> MerchantRow:
    principal.require(_PERMISSIONS[action])
    _check_reason(action, reason)
    row = await _load(session, principal, merchant_id, for_update=True)
    await _step(session, row, action, principal=principal, reason=reason, now=clock.now(), payload=payload)
    return row


async def submit(
    session: AsyncSession, *, principal: Principal, merchant_id: str, clock: Clock
) -> MerchantRow:
    """提交县（区）商务主管部门审核."""
    return await _act(
        session, principal=principal, merchant_id=merchant_id, action=Action.SUBMIT, reason="", clock=clock
    )


async def review(
    session: AsyncSession, *, principal: Principal, merchant_id: str, approve: bool, reason: str, clock: Clock
) -> MerchantRow:
    """The county commerce department of the merchant's own jurisdiction approves or rejects."""
    action = Action.APPROVE if approve else Action.REJECT
    return await _act(
        session, principal=principal, merchant_id=merchant_id, action=action, reason=reason, clock=clock
    )


async def publish(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    merchant_ids: Sequence[str] | None = None,
    jurisdiction: Jurisdiction | None = None,
    clock: Clock,
) -> Sequence[MerchantRow]:
    """市商务局汇总: put county-approved merchants on the city's final list. Without `merchant_ids`,
    every county-approved merchant of the campaign (or of one jurisdiction); with them, exactly those,
    all or none: one that cannot be published refuses the whole request."""
    principal.require(Permission.MERCHANT_PUBLISH)
    await require_campaign(session, campaign_id)
    repository = MerchantRepository(session)
    wanted = None if merchant_ids is None else list(dict.fromkeys(merchant_ids))
    rows = [
        row
        for row in await repository.for_publication(
            campaign_id, merchant_ids=wanted, jurisdiction=jurisdiction
        )
        if _visible(principal, row)
    ]
    if wanted is not None:
        found = {row.id for row in rows}
        missing = [merchant_id for merchant_id in wanted if merchant_id not in found]
        if missing:
            raise _unknown(missing[0])
        for row in rows:
            domain.next_status(MerchantStatus(row.status), Action.PUBLISH)
    now = clock.now()
    for row in rows:
        row.listed_at = now
        await _step(session, row, Action.PUBLISH, principal=principal, reason="", now=now, flush=False)
    await session.flush()
    return rows


async def accept_commitment(
    session: AsyncSession,
    *,
    principal: Principal,
    merchant_id: str,
    version: str,
    sha256: str,
    signatory: str,
    clock: Clock,
) -> MerchantRow:
    """签订诚信经营承诺书: the merchant (or the operator recording the signed paper for it) accepts the
    current commitment text, identified by its version and SHA-256; the merchant becomes active."""
    principal.require(Permission.MERCHANT_COMMIT)
    signatory = signatory.strip()
    if not signatory or len(signatory) > 50:
        raise InvalidInput(
            [
                Problem(
                    "signatory",
                    "name who signs for the merchant (法定代表人或授权代表), at most 50 characters",
                )
            ],
            code="invalid_commitment",
        )
    current = commitment_text()
    row = await _load(session, principal, merchant_id, for_update=True)
    domain.next_status(MerchantStatus(row.status), Action.COMMIT)
    if (version, sha256.lower()) != (current.version, current.sha256):
        raise ConflictError(
            f"the accepted text is not the current commitment {current.version} (sha256 {current.sha256}): "
            "show the merchant the current text and accept that",
            code="commitment_mismatch",
        )
    repository = MerchantRepository(session)
    await _refuse_if_dishonest(repository, row.credit_code)
    now = clock.now()
    row.commitment_version = current.version
    row.commitment_sha256 = current.sha256
    row.commitment_signatory = signatory
    row.committed_by = principal.actor_id
    row.committed_by_role = principal.role.value
    row.committed_at = now
    await _step(
        session,
        row,
        Action.COMMIT,
        principal=principal,
        reason="",
        now=now,
        payload={"commitment_version": current.version, "commitment_sha256": current.sha256},
    )
    return row


async def sanction(
    session: AsyncSession,
    *,
    principal: Principal,
    merchant_id: str,
    action: Action,
    reason: str,
    clock: Clock,
) -> MerchantRow:
    """Suspend, reinstate or expel. Expulsion (取消参与资格, seed 五(一), 六(十)) puts the credit code
    on the dishonest list and asks the money side, through the outbox, to freeze the unsettled subsidy
    and claw back the settled subsidy."""
    if action not in (Action.SUSPEND, Action.REINSTATE, Action.EXPEL):
        raise ValueError(f"{action} is not a sanction")
    payload: dict[str, Any] = {}
    if action is Action.EXPEL:
        payload = {"freeze_unsettled_subsidy": True, "claw_back_settled_subsidy": True}
    row = await _act(
        session,
        principal=principal,
        merchant_id=merchant_id,
        action=action,
        reason=reason,
        clock=clock,
        **payload,
    )
    if action is Action.EXPEL:
        repository = MerchantRepository(session)
        if await repository.open_dishonest_entry(row.credit_code) is None:
            repository.add(
                DishonestEntryRow(
                    id=new_id("dis"),
                    credit_code=row.credit_code,
                    legal_name=row.legal_name,
                    reason=reason.strip(),
                    campaign_id=row.campaign_id,
                    merchant_id=row.id,
                    listed_at=row.status_changed_at,
                    listed_by=principal.actor_id,
                    listed_by_name=principal.name or principal.actor_id,
                    listed_by_role=principal.role.value,
                )
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


async def list_merchants(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None = None,
    statuses: Collection[MerchantStatus] = (),
    jurisdiction: Jurisdiction | None = None,
    category: Category | None = None,
    text: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page[MerchantRow]:
    """Merchants the caller may see: a county reviewer only its jurisdiction's, a merchant only itself."""
    principal.require(Permission.MERCHANT_READ)
    offset, limit = _page_bounds(page, page_size)
    scope = set(Jurisdiction) if principal.jurisdiction is None else {principal.jurisdiction}
    if jurisdiction is not None:
        scope &= {jurisdiction}
    if not scope:
        return Page(items=[], total=0, page=page, page_size=page_size)
    where = MerchantFilter(
        campaign_id=campaign_id,
        statuses=statuses,
        jurisdictions=scope if len(scope) < len(Jurisdiction) else (),
        category=category,
        merchant_id=principal.merchant_id if principal.role is Role.MERCHANT else None,
        text=text.strip() if text and text.strip() else None,
    )
    items, total = await MerchantRepository(session).page(where, offset=offset, limit=limit)
    return Page(items=items, total=total, page=page, page_size=page_size)


async def review_queue(
    session: AsyncSession, *, principal: Principal, page: int = 1, page_size: int = 50
) -> Page[MerchantRow]:
    """待审核: the submitted merchants a county reviewer decides on, its own jurisdiction's only."""
    principal.require(Permission.MERCHANT_REVIEW)
    return await list_merchants(
        session,
        principal=principal,
        statuses=(MerchantStatus.SUBMITTED,),
        page=page,
        page_size=page_size,
    )


@dataclass(frozen=True)
class FinalList:
    awaiting: Page[MerchantRow]  # county-approved: the city may put them on the list
    listed: Page[MerchantRow]  # on the list: listed, active, suspended


async def final_list(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    page: int = 1,
    listed_page: int = 1,
    page_size: int = 50,
) -> FinalList:
    """市商务局汇总: the city's view of its final list and of what waits to join it."""
    principal.require(Permission.MERCHANT_PUBLISH)
    await require_campaign(session, campaign_id)
    return FinalList(
        awaiting=await list_merchants(
            session,
            principal=principal,
            campaign_id=campaign_id,
            statuses=(MerchantStatus.COUNTY_APPROVED,),
            page=page,
            page_size=page_size,
        ),
        listed=await list_merchants(
            session,
            principal=principal,
            campaign_id=campaign_id,
            statuses=(MerchantStatus.LISTED, MerchantStatus.ACTIVE, MerchantStatus.SUSPENDED),
            page=listed_page,
            page_size=page_size,
        ),
    )


async def get_merchant(session: AsyncSession, *, principal: Principal, merchant_id: str) -> MerchantDetail:
    principal.require(Permission.MERCHANT_READ)
    repository = MerchantRepository(session)
    row = await repository.with_terminals(merchant_id)
    if row is None or not _visible(principal, row):
        raise _unknown(merchant_id)
    return MerchantDetail(
        merchant=row,
        history=await repository.transitions(row.id),
        dishonest=await repository.open_dishonest_entry(row.credit_code) is not None,
        actions=[
            action
            for action in domain.allowed_actions(MerchantStatus(row.status))
            if principal.can(_PERMISSIONS[action])
        ],
    )


async def public_merchants(
    session: AsyncSession,
    *,
    campaign_id: str | None = None,
    category: Category | None = None,
    jurisdictions: Collection[Jurisdiction] = (),
    page: int = 1,
    page_size: int = 20,
) -> Page[MerchantRow]:
    """Where residents can spend: active merchants only (public, no sign-in)."""
    offset, limit = _page_bounds(page, page_size)
    where = MerchantFilter(
        campaign_id=campaign_id,
        statuses=(MerchantStatus.ACTIVE,),
        jurisdictions=jurisdictions,
        category=category,
    )
    items, total = await MerchantRepository(session).page(where, offset=offset, limit=limit)
    return Page(items=items, total=total, page=page, page_size=page_size)


# The dishonest list (失信名单)


async def list_dishonest(
    session: AsyncSession,
    *,
    principal: Principal,
    include_delisted: bool = False,
    credit_code: str | None = None,
) -> Sequence[DishonestEntryRow]:
    principal.require(Permission.MERCHANT_READ)
    code = None if credit_code is None else domain.normalise_credit_code(credit_code)
    return await MerchantRepository(session).dishonest_entries(
        include_delisted=include_delisted, credit_code=code
    )


async def delist(
    session: AsyncSession, *, principal: Principal, credit_code: str, reason: str, clock: Clock
) -> DishonestEntryRow:
    """Take a credit code off the dishonest list (e.g. after an appeal); the entry stays, closed."""
    principal.require(Permission.MERCHANT_SANCTION)
    if not reason.strip() or len(reason) > domain.REASON_MAX_LENGTH:
        raise InvalidInput(
            [Problem("reason", f"give a reason to delist, at most {domain.REASON_MAX_LENGTH} characters")],
            code="reason_required",
        )
    code = domain.normalise_credit_code(credit_code)
    entry = await MerchantRepository(session).open_dishonest_entry(code)
    if entry is None:
        raise NotFound(f"credit code {code} is not on the dishonest list", code="not_dishonest")
    entry.delisted_at = clock.now()
    entry.delisted_by = principal.actor_id
    entry.delisted_by_name = principal.name or principal.actor_id
    entry.delisted_by_role = principal.role.value
    entry.delist_reason = reason.strip()
    await session.flush()
    return entry


async def events(session: AsyncSession, *, merchant_id: str | None = None) -> Sequence[MerchantEventRow]:
    """The outbox as the money side reads it (for operators and tests)."""
    return await MerchantRepository(session).events(merchant_id)
