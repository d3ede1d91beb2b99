"""Use cases of risk monitoring: one batch of the intake (read events after the cursor, evaluate the rules,
store the alerts, advance the cursor, all in the caller's transaction), per-campaign settings, alerts and
the watch list, cases and their steps.

Who may do what is decided here. Reading needs `risk.read` (a county reviewer sees alerts and cases about
merchants of its jurisdiction only); the market regulator and the police see the cases referred to them
and their alerts (`risk.referral_read`); anything else outside the caller's scope answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal, Role, forbidden
from huimin.eligibility import blocks
from huimin.eligibility.identity import normalise_phone
from huimin.eligibility.models import ClaimBlockRow
from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock, local_datetime, to_local
from huimin.kit.hashing import KeyedHasher
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.merchants import service as merchants
from huimin.merchants.domain import Action, BusinessHours, parse_business_hours
from huimin.merchants.models import MerchantRow
from huimin.merchants.service import MerchantSealer
from huimin.redemptions.models import RedemptionEventRow
from huimin.risk import domain, sanctions
from huimin.risk.domain import (
    AlertStatus,
    CaseAction,
    CaseStatus,
    Department,
    Finding,
    Measure,
    RiskSettings,
    SubjectKind,
)
from huimin.risk.ip_regions import IpRegion, IpRegionTable
from huimin.risk.models import (
    RiskAlertRow,
    RiskCaseReferralRow,
    RiskCaseRow,
    RiskCaseTransitionRow,
    RiskSettingsRow,
)
from huimin.risk.repository import AlertFilter, RiskRepository, ScoreRow
from huimin.risk.rules import (
    RULES,
    ClaimFact,
    EventBatch,
    Identities,
    MerchantFact,
    RefundFact,
    RuleFn,
    evaluate,
)

__all__ = [
    "BATCH_SIZE",
    "MAX_PAGE_SIZE",
    "BatchOutcome",
    "CaseDetail",
    "MerchantLinks",
    "Page",
    "Source",
    "WatchEntry",
    "campaign_settings",
    "evaluate_events",
    "get_alert",
    "get_case",
    "lift_block",
    "list_alerts",
    "list_cases",
    "open_case",
    "put_settings",
    "scan_batch",
    "step_case",
    "watch_list",
]

log = logging.getLogger("huimin.risk")
T = TypeVar("T")
BATCH_SIZE = 500
MAX_PAGE_SIZE = 100


class Source(StrEnum):
    """The append-only logs the engine reads, each with its cursor."""

    CLAIMS = "voucher_events"  # kind = claimed
    REDEMPTIONS = "redemption_events"  # kinds redeemed and refunded


class MerchantLinks:
    """What ties a resident to a merchant: the merchant's contact phone, hashed with the key that hashes
    residents' phones (it is sealed in the merchants table, so it is opened here and never stored)."""

    def __init__(self, *, hasher: KeyedHasher, sealer: MerchantSealer) -> None:
        self._hasher = hasher
        self._sealer = sealer

    def contact_phone_digest(self, row: MerchantRow) -> str | None:
        if row.contact_phone_sealed is None:
            return None
        try:
            phone = self._sealer.contact_phone.open(row.contact_phone_sealed)
        except Exception:  # a value sealed under another key: this rule is blind for it, the others are not
            log.warning("cannot open the contact phone of merchant %s", row.id)
            return None
        return self._hasher.digest("phone", normalise_phone(phone))


@dataclass(frozen=True)
class BatchOutcome:
    source: Source
    events: int  # events read and evaluated (the cursor moved past them)
    raised: int  # new alerts
    updated: int  # alerts that grew
    last_id: int


def _hours(text: str) -> BusinessHours | None:
    try:
        return parse_business_hours(text) if text.strip() else None
    except ValueError:
        return None


async def _campaign_settings(
    repository: RiskRepository, campaign_ids: Collection[str]
) -> dict[str, RiskSettings]:
    stored = await repository.settings(campaign_ids)
    return {campaign: domain.settings_from(stored.get(campaign, {})) for campaign in campaign_ids}


async def scan_batch(
    session: AsyncSession,
    *,
    source: Source,
    links: MerchantLinks,
    clock: Clock,
    settle: timedelta = timedelta(seconds=2),
    batch_size: int = BATCH_SIZE,
    rules: Sequence[RuleFn] = RULES,
) -> BatchOutcome:
    """Evaluate the next batch of one source and move its cursor past it, in the caller's transaction:
    the alerts and the cursor are committed together or not at all, so an event is evaluated once even
    when a worker dies mid-batch.

    Only events at least `settle` old are read, and reading stops at the first younger one: on
    PostgreSQL ids are taken before commit, so a slow transaction can commit a lower id after a higher
    one is visible; waiting lets it land before the cursor passes it (see docs/risk.md)."""
    repository = RiskRepository(session)
    cursor = await repository.cursor(source.value)
    now = clock.now()
    cutoff = now - settle
    if source is Source.CLAIMS:
        batch, read, last_id = await _claims_batch(repository, cursor.last_id, batch_size, cutoff)
    else:
        batch, read, last_id = await _redemptions_batch(repository, cursor.last_id, batch_size, cutoff, links)
    if read == 0:
        return BatchOutcome(source, 0, 0, 0, cursor.last_id)
    raised, updated = await _store(repository, evaluate(batch, rules), batch, now)
    cursor.last_id = last_id
    cursor.events += read
    cursor.updated_at = now
    await repository.forget_evaluated(source.value, up_to=last_id)  # the stream path's keys it passed
    await session.flush()
    return BatchOutcome(source, read, raised, updated, last_id)


async def _claims_batch(
    repository: RiskRepository, after: int, limit: int, cutoff: datetime
) -> tuple[EventBatch, int, int]:
    rows = await repository.claims_after(after, limit)
    settled = _settled(rows, cutoff)
    claims = [claim for _, _, claim in settled if claim is not None]
    if not settled:
        return EventBatch(), 0, after
    persons = {claim.person_id for claim in claims}
    devices = {claim.device for claim in claims}
    devices_of = await repository.devices_of(persons)
    persons_on = await repository.persons_on(devices)
    claim_history = await _claims_of_their_days(repository, claims)
    batch = EventBatch(
        claims=claims,
        identities=Identities(
            devices_of={person: frozenset(found) for person, found in devices_of.items()},
            persons_on_device={device: frozenset(found) for device, found in persons_on.items()},
        ),
        settings=await _campaign_settings(repository, {claim.campaign_id for claim in claims}),
        claim_history=claim_history,
        ip_regions=await _ip_regions(
            repository, [*claims, *(claim for found in claim_history.values() for claim in found)]
        ),
    )
    return batch, len(settled), settled[-1][0]


async def _claims_of_their_days(
    repository: RiskRepository, claims: Sequence[ClaimFact]
) -> dict[str, list[ClaimFact]]:
    """The claiming persons' claims on the local days of the new claims, from the database: a day's claims
    reach the rules in several batches (or stream deliveries), and travel is judged across all of them."""
    if not claims:
        return {}
    first = to_local(min(claim.at for claim in claims)).date()
    last = to_local(max(claim.at for claim in claims)).date()
    return await repository.claims_of_persons(
        {claim.person_id for claim in claims},
        local_datetime(first, datetime.min.time()),
        local_datetime(last + timedelta(days=1), datetime.min.time()),
    )


# The IP-region table as last read, per database: re-read only when an import has replaced it
_IP_TABLES: dict[str, tuple[tuple[int, datetime | None], IpRegionTable]] = {}


async def _ip_regions(repository: RiskRepository, claims: Sequence[ClaimFact]) -> dict[str, IpRegion]:
    """Each of the claims' networks that the IP-region table knows, by longest-prefix match in Python (the
    table is a few thousand rows: it is read again only when its version has changed)."""
    prefixes = {claim.ip_prefix for claim in claims if claim.ip_prefix}
    if not prefixes:
        return {}
    database = repository.session.get_bind().engine.url.render_as_string(hide_password=True)
    version = await repository.ip_regions_version()
    cached = _IP_TABLES.get(database)
    if cached is None or cached[0] != version:
        cached = (version, IpRegionTable(await repository.ip_regions()))
        _IP_TABLES[database] = cached
    table = cached[1]
    return {prefix: region for prefix in prefixes if (region := table.lookup(prefix)) is not None}


def _settled(rows: Sequence[tuple[int, datetime, Any]], cutoff: datetime) -> list[tuple[int, datetime, Any]]:
    settled = []
    for row in rows:
        if row[1] > cutoff:
            break  # everything after it waits too: the cursor never passes an unread id
        settled.append(row)
    return settled


async def _redemptions_batch(
    repository: RiskRepository, after: int, limit: int, cutoff: datetime, links: MerchantLinks
) -> tuple[EventBatch, int, int]:
    events = _settled(
        [(event.id, event.at, event) for event in await repository.redemption_events_after(after, limit)],
        cutoff,
    )
    if not events:
        return EventBatch(), 0, after
    # events the stream path evaluated already move the cursor only (claims: `claims_after` says so)
    done = await repository.evaluated(Source.REDEMPTIONS.value, [event_id for event_id, _, _ in events])
    relevant = [
        event for _, _, event in events if event.kind in ("redeemed", "refunded") and event.id not in done
    ]
    campaigns = {event.campaign_id for event in relevant}
    settings = await _campaign_settings(repository, campaigns)
    merchant_ids = {event.merchant_id for event in relevant}
    look_back = max(
        [max(item.velocity_baseline_days, item.ring_window_days) for item in settings.values()] or [0]
    )
    earliest = min((event.at for event in relevant), default=cutoff)
    # from local midnight, so that a local day's window is whole
    since = local_datetime(to_local(earliest).date() - timedelta(days=look_back), datetime.min.time())
    history = await repository.redemption_history(merchant_ids, since)
    by_id = {item.redemption_id: item for items in history.values() for item in items}
    redemptions = [
        by_id[event.redemption_id]
        for event in relevant
        if event.kind == "redeemed" and event.redemption_id in by_id
    ]
    refunded = [event for event in relevant if event.kind == "refunded"]
    redeemed_at = await repository.redeemed_at({event.redemption_id for event in refunded})
    refunds = [
        RefundFact(
            redemption_id=event.redemption_id,
            campaign_id=event.campaign_id,
            merchant_id=event.merchant_id,
            person_id=event.person_id,
            amount_fen=event.amount_fen,
            at=event.at,
            redeemed_at=redeemed_at[event.redemption_id],
        )
        for event in refunded
    ]
    merchants: dict[str, MerchantFact] = {}
    for row in await repository.merchants(merchant_ids):
        merchants[row.id] = MerchantFact(
            merchant_id=row.id,
            campaign_id=row.campaign_id,
            name=row.legal_name,
            jurisdiction=row.jurisdiction,
            district=Jurisdiction(row.jurisdiction).district.value,
            hours=_hours(row.business_hours),
            contact_phone_digest=links.contact_phone_digest(row),
            contact_phone_masked=row.contact_phone_masked,
        )
    persons = {item.person_id for items in history.values() for item in items}
    contact = {fact.contact_phone_digest for fact in merchants.values() if fact.contact_phone_digest}
    phones_of: dict[str, set[str]] = {}
    with_phone: dict[str, set[str]] = {}
    for person, digest in await repository.phones(persons=persons, digests=contact):
        phones_of.setdefault(person, set()).add(digest)
        with_phone.setdefault(digest, set()).add(person)
    owners = {person for digest in contact for person in with_phone.get(digest, set())}
    devices_of = await repository.devices_of(persons | owners)
    batch = EventBatch(
        redemptions=redemptions,
        refunds=refunds,
        history=history,
        refund_history=await repository.refund_history({refund.merchant_id for refund in refunds}, since),
        merchants=merchants,
        totals=await repository.totals({refund.merchant_id for refund in refunds}),
        identities=Identities(
            devices_of={person: frozenset(found) for person, found in devices_of.items()},
            phones_of={person: frozenset(found) for person, found in phones_of.items()},
            persons_with_phone={digest: frozenset(found) for digest, found in with_phone.items()},
        ),
        settings=settings,
    )
    return batch, len(events), events[-1][0]


# The stream path (huimin.risk.stream): events delivered by id instead of read after the cursor

_NO_SETTLE_LINE = datetime(9000, 1, 1, tzinfo=UTC)  # delivered after their commit: nothing to wait for


class _Delivered(RiskRepository):
    """The repository with the intake's reads narrowed to the delivered events, so that the stream path
    builds its batch with the very loaders the scanner uses (`_claims_batch`, `_redemptions_batch`)."""

    def __init__(self, session: AsyncSession, event_ids: Collection[int]) -> None:
        super().__init__(session)
        self.event_ids = event_ids
        self.loaded: list[int] = []

    async def claims_after(self, last_id: int, limit: int) -> list[tuple[int, datetime, ClaimFact | None]]:
        rows = await self.claims_by_ids(self.event_ids)
        self.loaded = [event_id for event_id, _, _ in rows]
        return rows

    async def redemption_events_after(self, last_id: int, limit: int) -> Sequence[RedemptionEventRow]:
        rows = await self.redemption_events_by_ids(self.event_ids)
        self.loaded = [row.id for row in rows]
        return rows


async def evaluate_events(
    session: AsyncSession,
    *,
    source: Source,
    event_ids: Collection[int],
    links: MerchantLinks,
    clock: Clock,
    rules: Sequence[RuleFn] = RULES,
) -> BatchOutcome:
    """Evaluate these events of one source, delivered by the stream path, and record each as evaluated
    (`risk_evaluated_events`), in the caller's transaction with their alerts.

    An event evaluated before is skipped, so a redelivery is a no-op: one recorded by an earlier delivery,
    or one at or below the scanner's cursor (the scanner has passed it). The source's cursor row is
    locked first, so the stream path and the scanner take turns and never evaluate one event twice."""
    repository = RiskRepository(session)
    cursor = await repository.cursor(source.value)
    ahead = {event_id for event_id in event_ids if event_id > cursor.last_id}
    fresh = sorted(ahead - await repository.evaluated(source.value, ahead))
    if not fresh:
        return BatchOutcome(source, 0, 0, 0, cursor.last_id)
    delivered = _Delivered(session, fresh)
    if source is Source.CLAIMS:
        batch, _, _ = await _claims_batch(delivered, 0, len(fresh), _NO_SETTLE_LINE)
    else:
        batch, _, _ = await _redemptions_batch(delivered, 0, len(fresh), _NO_SETTLE_LINE, links)
    now = clock.now()
    raised, updated = await _store(repository, evaluate(batch, rules), batch, now)
    repository.mark_evaluated(source.value, delivered.loaded, path="stream", at=now)  # unknown ids: none
    await session.flush()
    return BatchOutcome(source, len(delivered.loaded), raised, updated, max(fresh))


def _key(finding: Finding) -> tuple[str, str, str, str, str]:
    return (
        finding.campaign_id,
        finding.rule.value,
        finding.subject_kind.value,
        finding.subject_id,
        finding.window,
    )


async def _store(
    repository: RiskRepository, findings: list[Finding], batch: EventBatch, now: datetime
) -> tuple[int, int]:
    """One alert per (campaign, rule, subject, window): a finding seen again updates its alert (its figure,
    score and evidence when the figure did not shrink), it never raises a second one."""
    latest: dict[tuple[str, ...], Finding] = {}
    for finding in findings:
        latest[_key(finding)] = finding
    existing = await repository.alerts_by_key(list(latest))
    raised = updated = 0
    for key, finding in latest.items():
        settings = batch.settings_for(finding.campaign_id)
        score = domain.alert_score(
            settings.weight(finding.rule), figure=finding.figure, threshold=finding.threshold
        )
        row = existing.get(key)
        if row is None:
            repository.add(
                RiskAlertRow(
                    id=new_id("alr"),
                    campaign_id=finding.campaign_id,
                    rule=finding.rule.value,
                    subject_kind=finding.subject_kind.value,
                    subject_id=finding.subject_id,
                    jurisdiction=finding.jurisdiction,
                    period=finding.window,
                    status=AlertStatus.OPEN.value,
                    score=score,
                    figure=finding.figure,
                    threshold=finding.threshold,
                    unit=finding.unit,
                    summary=finding.summary,
                    evidence=dict(finding.evidence),
                    hits=1,
                    raised_at=now,
                    updated_at=now,
                    last_event_at=finding.at,
                    case_id=None,
                )
            )
            raised += 1
            continue
        row.hits += 1
        row.updated_at = now
        row.last_event_at = max(row.last_event_at, finding.at)
        if finding.figure >= row.figure:
            row.figure, row.threshold, row.score = finding.figure, finding.threshold, score
            row.summary, row.evidence = finding.summary, dict(finding.evidence)
            updated += 1
    return raised, updated


# Settings


async def campaign_settings(session: AsyncSession, *, principal: Principal, campaign_id: str) -> RiskSettings:
    principal.require(Permission.RISK_READ)
    await merchants.require_campaign(session, campaign_id)
    stored = await RiskRepository(session).settings_row(campaign_id)
    return domain.settings_from(stored.settings if stored else {})


async def put_settings(
    session: AsyncSession, *, principal: Principal, campaign_id: str, overrides: dict[str, Any], clock: Clock
) -> RiskSettings:
    """Replace a campaign's overrides (validated: an unknown or impossible value changes nothing)."""
    principal.require(Permission.RISK_INVESTIGATE)
    await merchants.require_campaign(session, campaign_id)
    settings = domain.settings_from(overrides)
    repository = RiskRepository(session)
    row = await repository.settings_row(campaign_id)
    if row is None:
        repository.add(
            RiskSettingsRow(
                campaign_id=campaign_id,
                settings=overrides,
                updated_at=clock.now(),
                updated_by=principal.actor_id,
            )
        )
    else:
        row.settings, row.updated_at, row.updated_by = overrides, clock.now(), principal.actor_id
    await session.flush()
    return settings


# Reads: who sees what

_DEPARTMENTS = {Role.MARKET_REGULATOR: Department.MARKET_REGULATOR, Role.POLICE: Department.POLICE}


@dataclass(frozen=True)
class _Scope:
    jurisdiction: str | None = None  # a county reviewer: merchant subjects of its jurisdiction
    department: Department | None = None  # a receiving department: cases referred to it


def _scope(principal: Principal) -> _Scope:
    if principal.can(Permission.RISK_READ):
        return _Scope(jurisdiction=principal.jurisdiction)
    department = _DEPARTMENTS.get(principal.role)
    if principal.can(Permission.RISK_REFERRAL_READ) and department is not None:
        return _Scope(department=department)
    raise forbidden(f"the {principal.role} role may not read risk alerts")


def _page_bounds(page: int, page_size: int) -> tuple[int, int]:
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(
            [Problem("page", f"page from 1, page_size from 1 to {MAX_PAGE_SIZE}")], code="invalid_page"
        )
    return (page - 1) * page_size, page_size


@dataclass(frozen=True)
class Page(Generic[T]):
    total: int
    page: int
    page_size: int
    items: Sequence[T]


async def list_alerts(
    session: AsyncSession, *, principal: Principal, where: AlertFilter, page: int = 1, page_size: int = 50
) -> Page[RiskAlertRow]:
    """预警列表: the alerts the principal may see that match `where`, highest score first. The caller's
    scope (a county's jurisdiction, a department's referred cases) is added here, whatever `where` says.
    A day range that ends before it starts is refused (422 `invalid_request`), not answered empty."""
    scope = _scope(principal)
    offset, limit = _page_bounds(page, page_size)
    if where.min_score is not None and where.min_score < 0:
        raise InvalidInput([Problem("min_score", "a score from 0")], code="invalid_request")
    if where.raised_from is not None and where.raised_to is not None and where.raised_from > where.raised_to:
        raise InvalidInput(
            [Problem("raised_from", f"{where.raised_from} is after raised_to {where.raised_to}")],
            code="invalid_request",
        )
    repository = RiskRepository(session)
    if scope.jurisdiction is not None:
        where = AlertFilter(**{**where.__dict__, "jurisdiction": scope.jurisdiction})
    if scope.department is not None:
        where = AlertFilter(
            **{**where.__dict__, "case_ids": await repository.referred_cases(scope.department)}
        )
    total, rows = await repository.alerts(where, offset=offset, limit=limit)
    return Page(total, page, page_size, rows)


async def _visible_case_ids(repository: RiskRepository, scope: _Scope) -> set[str] | None:
    return None if scope.department is None else set(await repository.referred_cases(scope.department))


def _unknown_alert(alert_id: str) -> HuiminError:
    return NotFound(f"no alert {alert_id!r}", code="unknown_alert")


async def get_alert(session: AsyncSession, *, principal: Principal, alert_id: str) -> RiskAlertRow:
    scope = _scope(principal)
    repository = RiskRepository(session)
    row = await repository.alert(alert_id)
    if row is None or (scope.jurisdiction is not None and row.jurisdiction != scope.jurisdiction):
        raise _unknown_alert(alert_id)
    visible = await _visible_case_ids(repository, scope)
    if visible is not None and row.case_id not in visible:
        raise _unknown_alert(alert_id)
    return row


@dataclass(frozen=True)
class WatchEntry:
    """名单: a subject whose live alerts add up to at least the watch score."""

    campaign_id: str
    subject_kind: str
    subject_id: str
    label: str
    score: int
    alerts: int
    rules: list[str]


async def watch_list(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None,
    min_score: int | None,
    limit: int = 200,
) -> list[WatchEntry]:
    """Subjects by combined score (the sum of their live alerts' scores, capped); from the campaign's
    watch score unless another minimum is asked."""
    scope = _scope(principal)
    if scope.department is not None:
        raise forbidden("the watch list is for monitoring staff")
    repository = RiskRepository(session)
    if min_score is None:
        settings = (await _campaign_settings(repository, [campaign_id]) if campaign_id else {}).get(
            campaign_id or "", domain.DEFAULT_SETTINGS
        )
        min_score = settings.watch_score
    rows: list[ScoreRow] = await repository.scores(
        campaign_id=campaign_id, jurisdiction=scope.jurisdiction, min_score=min_score, limit=limit
    )
    names = await repository.merchant_names(
        {row.subject_id for row in rows if row.subject_kind == SubjectKind.MERCHANT.value}
    )
    return [
        WatchEntry(
            campaign_id=row.campaign_id,
            subject_kind=row.subject_kind,
            subject_id=row.subject_id,
            label=names.get(
                row.subject_id, row.subject_id[:12] if row.subject_kind == "device" else row.subject_id
            ),
            score=domain.combined_score([row.score]),
            alerts=row.alerts,
            rules=row.rules,
        )
        for row in rows
    ]


# Cases


@dataclass(frozen=True)
class CaseDetail:
    case: RiskCaseRow
    alerts: Sequence[RiskAlertRow]
    transitions: Sequence[RiskCaseTransitionRow]
    referrals: Sequence[RiskCaseReferralRow] = field(default_factory=list)
    blocks: Sequence[ClaimBlockRow] = field(default_factory=list)  # a person's or device's sanction

    @property
    def allowed(self) -> list[CaseAction]:
        return domain.allowed_actions(CaseStatus(self.case.status))


def _unknown_case(case_id: str) -> HuiminError:
    return NotFound(f"no case {case_id!r}", code="unknown_case")


def _transition(
    case: RiskCaseRow,
    action: CaseAction,
    *,
    before: CaseStatus | None,
    principal: Principal,
    reason: str,
    now: datetime,
    department: Department | None = None,
    measure: Measure | None = None,
    assignee: str | None = None,
) -> RiskCaseTransitionRow:
    return RiskCaseTransitionRow(
        case_id=case.id,
        action=action.value,
        from_status=None if before is None else before.value,
        to_status=case.status,
        actor_id=principal.actor_id,
        actor_name=principal.name or principal.actor_id,
        actor_role=principal.role.value,
        reason=reason.strip(),
        department=None if department is None else department.value,
        measure=None if measure is None else measure.value,
        assignee=assignee,
        at=now,
    )


async def open_case(
    session: AsyncSession,
    *,
    principal: Principal,
    alert_ids: list[str],
    title: str,
    reason: str,
    clock: Clock,
) -> CaseDetail:
    """立案: take open alerts about one subject into a new case."""
    principal.require(Permission.RISK_INVESTIGATE)
    if not alert_ids:
        raise InvalidInput([Problem("alert_ids", "name at least one alert")], code="invalid_case")
    repository = RiskRepository(session)
    alerts = []
    for alert_id in dict.fromkeys(alert_ids):
        row = await repository.alert(alert_id, for_update=True)
        if row is None or (principal.jurisdiction is not None and row.jurisdiction != principal.jurisdiction):
            raise _unknown_alert(alert_id)
        alerts.append(row)
    problems = []
    subjects = {(row.campaign_id, row.subject_kind, row.subject_id) for row in alerts}
    if len(subjects) > 1:
        problems.append(Problem("alert_ids", "a case is about one subject: these alerts name several"))
    taken = [row.id for row in alerts if row.status != AlertStatus.OPEN.value]
    if taken:
        problems.append(Problem("alert_ids", f"already in a case or decided: {', '.join(taken)}"))
    if not title.strip() or len(title) > 200:
        problems.append(Problem("title", "a title of 1 to 200 characters"))
    if problems:
        raise InvalidInput(problems, code="invalid_case")
    now = clock.now()
    first = alerts[0]
    case = RiskCaseRow(
        id=new_id("rcs"),
        campaign_id=first.campaign_id,
        subject_kind=first.subject_kind,
        subject_id=first.subject_id,
        jurisdiction=first.jurisdiction,
        title=title.strip(),
        status=CaseStatus.OPEN.value,
        assignee=None,
        measure=None,
        opened_at=now,
        opened_by=principal.actor_id,
        updated_at=now,
    )
    repository.add(case)
    await session.flush()
    for row in alerts:
        row.status, row.case_id, row.updated_at = AlertStatus.IN_CASE.value, case.id, now
    transition = _transition(case, CaseAction.OPEN, before=None, principal=principal, reason=reason, now=now)
    repository.add(transition)
    await audit.record(
        session,
        principal=principal,
        action="risk.case_open",
        object_type="risk_case",
        object_id=case.id,
        at=now,
        detail={"alerts": [row.id for row in alerts], "subject": f"{case.subject_kind}:{case.subject_id}"},
    )
    await session.flush()
    return CaseDetail(case, alerts, [transition], [])


async def _visible_case(
    repository: RiskRepository, principal: Principal, case_id: str, *, for_update: bool
) -> RiskCaseRow:
    scope = _scope(principal)
    row = await repository.case(case_id, for_update=for_update)
    if row is None or (scope.jurisdiction is not None and row.jurisdiction != scope.jurisdiction):
        raise _unknown_case(case_id)
    visible = await _visible_case_ids(repository, scope)
    if visible is not None and row.id not in visible:
        raise _unknown_case(case_id)
    return row


async def get_case(session: AsyncSession, *, principal: Principal, case_id: str) -> CaseDetail:
    repository = RiskRepository(session)
    case = await _visible_case(repository, principal, case_id, for_update=False)
    return CaseDetail(
        case,
        await repository.alerts_of_case(case.id),
        await repository.transitions(case.id),
        await repository.referrals(case.id),
        await blocks.blocks_of_case(session, case.id),
    )


async def list_cases(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str | None,
    status: CaseStatus | None,
    page: int = 1,
    page_size: int = 50,
) -> Page[RiskCaseRow]:
    scope = _scope(principal)
    offset, limit = _page_bounds(page, page_size)
    total, rows = await RiskRepository(session).cases(
        campaign_id=campaign_id,
        status=None if status is None else status.value,
        jurisdiction=scope.jurisdiction,
        department=None if scope.department is None else scope.department.value,
        offset=offset,
        limit=limit,
    )
    return Page(total, page, page_size, rows)


_STEP_PERMISSIONS = {
    CaseAction.INVESTIGATE: Permission.RISK_INVESTIGATE,
    CaseAction.DISMISS: Permission.RISK_INVESTIGATE,
    CaseAction.CONFIRM: Permission.RISK_INVESTIGATE,
    CaseAction.ASSIGN: Permission.RISK_INVESTIGATE,
    CaseAction.NOTE: Permission.RISK_INVESTIGATE,
    CaseAction.REFER: Permission.RISK_REFER,
    CaseAction.SANCTION: Permission.MERCHANT_SANCTION,  # the city decides sanctions (seed 五(一))
}
_ALERT_AFTER = {
    CaseStatus.DISMISSED: AlertStatus.DISMISSED,
    CaseStatus.CONFIRMED: AlertStatus.CONFIRMED,
}


async def step_case(
    session: AsyncSession,
    *,
    principal: Principal,
    case_id: str,
    action: CaseAction,
    reason: str,
    clock: Clock,
    department: Department | None = None,
    measure: Measure | None = None,
    assignee: str | None = None,
) -> CaseDetail:
    """One step of a case, recorded with who, when and why. Sanctioning a merchant's case suspends or
    expels the merchant through the merchants service, as the acting principal, in this transaction
    (expulsion puts it on the dishonest list and asks the money side to freeze and claw back).
    Sanctioning a person's or a device's case blocks it from claiming in the campaign and, with
    `block_and_revoke`, revokes the unused vouchers (`huimin.risk.sanctions`), in this transaction too."""
    if action is CaseAction.OPEN:
        raise InvalidInput([Problem("action", "a case is opened from alerts")], code="invalid_step")
    principal.require(_STEP_PERMISSIONS[action])
    repository = RiskRepository(session)
    case = await _visible_case(repository, principal, case_id, for_update=True)
    before = CaseStatus(case.status)
    after = domain.next_status(before, action)
    problems = domain.step_problems(
        action,
        subject=SubjectKind(case.subject_kind),
        reason=reason,
        department=department,
        measure=measure,
        assignee=assignee,
    )
    if problems:
        raise InvalidInput(problems, code="invalid_step")
    now = clock.now()
    block: ClaimBlockRow | None = None
    if action is CaseAction.SANCTION and measure is not None:
        if SubjectKind(case.subject_kind) is SubjectKind.MERCHANT:
            await merchants.sanction(
                session,
                principal=principal,
                merchant_id=case.subject_id,
                action=Action.EXPEL if measure is Measure.EXPEL else Action.SUSPEND,
                reason=f"风险案件 {case.id}: {reason.strip()}",
                clock=clock,
            )
        else:
            block = await sanctions.block_subject(
                session, case=case, measure=measure, principal=principal, reason=reason.strip(), clock=clock
            )
        case.measure = measure.value
    if action is CaseAction.REFER and department is not None:
        known = {row.department for row in await repository.referrals(case.id)}
        if department.value in known:
            raise InvalidInput(
                [Problem("department", f"already referred to {department.value}")], code="invalid_step"
            )
        repository.add(
            RiskCaseReferralRow(
                case_id=case.id, department=department.value, referred_at=now, referred_by=principal.actor_id
            )
        )
    if action is CaseAction.ASSIGN:
        case.assignee = (assignee or "").strip()
    case.status = after.value
    case.updated_at = now
    if after in _ALERT_AFTER and after is not before:
        for alert in await repository.alerts_of_case(case.id):
            alert.status, alert.updated_at = _ALERT_AFTER[after].value, now
    repository.add(
        _transition(
            case,
            action,
            before=before,
            principal=principal,
            reason=reason,
            now=now,
            department=department,
            measure=measure,
            assignee=None if assignee is None else assignee.strip(),
        )
    )
    await audit.record(
        session,
        principal=principal,
        action=f"risk.case_{action.value}",
        object_type="risk_case",
        object_id=case.id,
        at=now,
        detail={
            "from": before.value,
            "to": after.value,
            "department": None if department is None else department.value,
            "measure": None if measure is None else measure.value,
            **(
                {}
                if block is None
                else {
                    "block_id": block.id,
                    "vouchers_revoked": block.vouchers_revoked,
                    "value_revoked_fen": block.value_revoked_fen,
                }
            ),
        },
    )
    await session.flush()
    return await get_case(session, principal=principal, case_id=case.id)


async def lift_block(
    session: AsyncSession, *, principal: Principal, block_id: str, reason: str, clock: Clock
) -> CaseDetail:
    """解除禁止领取: lift a person's or a device's block (a sanction in error, an appeal upheld), so that
    it may claim and enter lotteries again; the city decides, as for the sanction. The block row stays
    with `lifted_at` set; who and why are in the `risk.block_lifted` audit record and in a `note` step
    of the block's case. Vouchers the sanction revoked stay revoked."""
    principal.require(_STEP_PERMISSIONS[CaseAction.SANCTION])
    block = await session.get(ClaimBlockRow, block_id)
    if block is None:
        raise NotFound(f"no block {block_id!r}", code="unknown_block")
    repository = RiskRepository(session)
    try:  # the case's lock serialises the lifts of its blocks
        case = await _visible_case(repository, principal, block.case_id, for_update=True)
    except NotFound:
        raise NotFound(f"no block {block_id!r}", code="unknown_block") from None
    await session.refresh(block, with_for_update=True)
    if block.lifted_at is not None:
        raise ConflictError(f"block {block_id!r} was lifted already", code="block_already_lifted")
    reason = reason.strip()
    if not reason or len(reason) > domain.REASON_MAX_LENGTH:
        raise InvalidInput(
            [Problem("reason", f"give a reason of 1 to {domain.REASON_MAX_LENGTH} characters")],
            code="invalid_lift",
        )
    now = clock.now()
    block.lifted_at = now
    before = CaseStatus(case.status)
    case.updated_at = now
    repository.add(
        _transition(
            case,
            CaseAction.NOTE,
            before=before,
            principal=principal,
            reason=f"解除禁止领取 {block.id}: {reason}",
            now=now,
        )
    )
    await audit.record(
        session,
        principal=principal,
        action="risk.block_lifted",
        object_type="claim_block",
        object_id=block.id,
        at=now,
        detail={"case_id": case.id, "subject_kind": block.subject_kind, "reason": reason},
    )
    await session.flush()
    return await get_case(session, principal=principal, case_id=case.id)
