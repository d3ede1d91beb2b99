"""Use cases of the reports: the figures of a campaign (live or for a period, with a breakdown), the
ledger's money figures, merchant participation.

Permission `report.read`. A county reviewer sees only its own jurisdiction: the till side narrowed to
its merchants, the claims side to residents who claimed in its district (高新区 and 临空经济区 are zones
of 雁江区 without claims of their own: their claims figures are null); asking for another jurisdiction
answers 404, like any object outside the caller's scope.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow
from huimin.campaigns.service import get_campaign
from huimin.kit.clock import Clock
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.ledger import domain as ledger
from huimin.reports.domain import Dimension, Figures, Totals
from huimin.reports.repository import ALL, Clawbacks, Filter, MerchantLine, ReportRepository

__all__ = [
    "FunderMoney",
    "Line",
    "Money",
    "Query",
    "Report",
    "figures",
    "merchant_lines",
    "money",
    "scope_of",
]

_DISTRICTS = {district.value for district in District}


@dataclass(frozen=True)
class Query:
    """What a reader asks: a period (local dates, inclusive), narrowing filters, and a breakdown."""

    since: date | None = None
    until: date | None = None
    round_id: str | None = None
    batch_id: str | None = None
    jurisdiction: Jurisdiction | None = None
    category: Category | None = None
    merchant_class: MerchantClass | None = None
    by: Dimension | None = None


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class FunderMoney:
    code: str
    name: str
    deposited: int
    unclaimed: int  # budget:f, the pool the rounds release
    vouchers: int  # claimed vouchers not spent yet
    expired: int  # expired value not yet recycled or recovered
    recovered: int


@dataclass(frozen=True)
class Money:
    """The ledger's balances by kind of account (fen), from the rollup of its postings."""

    deposited: int
    unclaimed: int
    vouchers: int
    expired: int
    pending: int  # big-ticket subsidy awaiting the county's invoice check
    payable: int  # confirmed subsidy owed to merchants, not in a settlement run yet
    clearing: int  # sent to the bank, not confirmed
    settled: int  # paid to merchants
    receivable: int  # owed back by merchants
    recovered: int  # returned to the funders
    funders: list[FunderMoney] = field(default_factory=list)

    @property
    def subsidy(self) -> int:
        """What the vouchers paid, net of refunds: the till figures' subsidy, to the fen."""
        return self.pending + self.payable + self.clearing + self.settled


@dataclass(frozen=True)
class Report:
    campaign_id: str
    campaign_code: str
    campaign_name: str
    scope: Jurisdiction | None  # a county reviewer's jurisdiction
    query: Query
    figures: Figures
    lines: list[Line]
    money: Money | None  # the whole campaign's ledger; None for a county reviewer
    rolled_up_at: datetime | None
    events_behind: int  # logged events the rollup has not read yet


def scope_of(principal: Principal, asked: Jurisdiction | None) -> Jurisdiction | None:
    """The jurisdiction a reader's figures are narrowed to: a county reviewer's own, always."""
    principal.require(Permission.REPORT_READ)
    if principal.jurisdiction is None:
        return asked
    if asked is not None:
        principal.require_scope(asked, what="jurisdiction", object_id=asked.value)
    return principal.jurisdiction


async def figures(
    session: AsyncSession, *, principal: Principal, campaign_id: str, query: Query, clock: Clock
) -> Report:
    jurisdiction = scope_of(principal, query.jurisdiction)
    campaign = await get_campaign(session, campaign_id=campaign_id)
    repository = ReportRepository(session)
    claims_known = query.category is None and query.merchant_class is None
    districts: list[str] | None = None
    if jurisdiction is not None:
        if jurisdiction.value in _DISTRICTS:
            districts = [jurisdiction.value]
        else:
            claims_known = False
    where = Filter(
        since=query.since,
        until=query.until,
        round_id=query.round_id,
        batch_id=query.batch_id,
        districts=districts,
        jurisdictions=None if jurisdiction is None else [jurisdiction.value],
        category=None if query.category is None else query.category.value,
        merchant_class=None if query.merchant_class is None else query.merchant_class.value,
    )
    released_known = claims_known and jurisdiction is None
    totals = await _totals(repository, campaign.id, where, None, claims_known)
    released = await _released(repository, campaign.id, where, None, clock) if released_known else {}
    headline = totals.get(None, Totals()).figures(
        released=released.get(None, 0) if released_known else None, claims_known=claims_known
    )
    lines: list[Line] = []
    if query.by is not None:
        by = query.by
        line_claims = claims_known and by.on_claims
        grouped = await _totals(repository, campaign.id, where, by, line_claims)
        released_by = (
            await _released(repository, campaign.id, where, by, clock)
            if released_known and by in (Dimension.DAY, Dimension.WEEK, Dimension.ROUND, Dimension.BATCH)
            else None
        )
        order, label = await _keys(repository, campaign, by)
        for key in order(set(grouped) | set(released_by or {})):
            lines.append(
                Line(
                    key=str(key),
                    label=label(key),
                    figures=grouped.get(key, Totals()).figures(
                        released=None if released_by is None else released_by.get(key, 0),
                        claims_known=line_claims,
                    ),
                )
            )
    rolled_up_at, behind = await repository.lag()
    return Report(
        campaign_id=campaign.id,
        campaign_code=campaign.code,
        campaign_name=campaign.name,
        scope=principal.jurisdiction,
        query=query,
        figures=headline,
        lines=lines,
        money=await money(session, campaign=campaign) if principal.jurisdiction is None else None,
        rolled_up_at=rolled_up_at,
        events_behind=behind,
    )


async def _totals(
    repository: ReportRepository, campaign_id: str, where: Filter, by: Dimension | None, claims: bool
) -> dict[Any, Totals]:
    fold = _folder(by)
    found: dict[Any, Totals] = defaultdict(Totals)
    if claims:
        for key, vouchers in (await repository.voucher_measures(campaign_id, where, by)).items():
            found[fold(key, False)] += Totals(vouchers=vouchers)
    for key, redemptions in (await repository.redemption_measures(campaign_id, where, by)).items():
        found[fold(key, True)] += Totals(redemptions=redemptions)
    clawed: Clawbacks
    for key, clawed in (await repository.clawbacks(campaign_id, where, by)).items():
        found[fold(key, True)] += Totals(
            clawed_back=clawed.count,
            clawed_back_payable_fen=clawed.payable_fen,
            clawed_back_subsidy_fen=clawed.subsidy_fen,
        )
    return dict(found)


def _folder(by: Dimension | None) -> Callable[[Any, bool], Any]:
    """How a key read from the rows becomes the breakdown's key."""
    if by is Dimension.WEEK:
        return lambda key, _: _monday(key)
    if by is Dimension.DISTRICT:
        # till-side rows carry the merchant's jurisdiction: the zones count in 雁江区
        return lambda key, till: Jurisdiction(key).district.value if till else key
    return lambda key, _: key


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


async def _released(
    repository: ReportRepository, campaign_id: str, where: Filter, by: Dimension | None, clock: Clock
) -> dict[Any, int]:
    found: dict[Any, int] = defaultdict(int)
    for round_id, batch_id, day, count in await repository.released(campaign_id, clock.now()):
        if where.round_id is not None and round_id != where.round_id:
            continue
        if where.batch_id is not None and batch_id != where.batch_id:
            continue
        if (where.since is not None and day < where.since) or (where.until is not None and day > where.until):
            continue
        key: Any = {
            None: None,
            Dimension.DAY: day,
            Dimension.WEEK: _monday(day),
            Dimension.ROUND: round_id,
            Dimension.BATCH: batch_id,
        }[by]
        found[key] += count
    return dict(found)


async def _keys(
    repository: ReportRepository, campaign: CampaignRow, by: Dimension
) -> tuple[Callable[[Iterable[Any]], list[Any]], Callable[[Any], str]]:
    """How the lines of a breakdown are ordered and labelled."""
    if by is Dimension.DAY:
        return sorted, lambda key: key.isoformat()
    if by is Dimension.WEEK:
        return sorted, lambda key: f"{key.isoformat()} 起一周"
    if by is Dimension.ROUND:
        rounds = await repository.round_order(campaign.id)
        position = {round_id: index for index, (round_id, _, _) in enumerate(rounds)}
        codes = {round_id: code for round_id, code, _ in rounds}
        return (
            lambda keys: sorted(keys, key=lambda key: position.get(key, len(position))),
            lambda key: codes.get(key, key),
        )
    if by is Dimension.BATCH:
        _, names, _ = await repository.names(campaign.id)
        position = {batch_id: index for index, batch_id in enumerate(names)}
        return (
            lambda keys: sorted(keys, key=lambda key: position.get(key, len(position))),
            lambda key: names.get(key, key),
        )
    labels: dict[str, str] = {
        Dimension.DISTRICT: {member.value: member.label for member in District},
        Dimension.JURISDICTION: {member.value: member.label for member in Jurisdiction},
        Dimension.CATEGORY: {member.value: member.label for member in Category},
        Dimension.MERCHANT_CLASS: {member.value: member.label for member in MerchantClass},
    }[by]
    members = list(labels)

    def ordered(keys: Iterable[Any]) -> list[Any]:
        return sorted(keys, key=lambda key: members.index(key) if key in members else len(members))

    return ordered, lambda key: labels.get(key, str(key))


async def money(session: AsyncSession, *, campaign: CampaignRow) -> Money:
    """The campaign's ledger, by kind of account and per funder, from the rolled-up postings."""
    kinds = ledger.AccountKind
    owned = [kind for kind in kinds if kind is not kinds.CLEARING]
    funder_keys = [
        make(funder.code)
        for funder in campaign.funders
        for make in (ledger.funder, ledger.budget, ledger.vouchers, ledger.expired, ledger.recovery)
    ]
    balances = await ReportRepository(session).account_balances(
        campaign.id,
        [f"{kind.value}:{ALL}" for kind in owned] + [ledger.account(kinds.CLEARING), *funder_keys],
    )
    by_kind: dict[ledger.AccountKind, int] = defaultdict(int)
    for kind in owned:
        key = f"{kind.value}:{ALL}"
        by_kind[kind] = int(ledger.shown_balance(key, balances.get(key, 0)))
    by_kind[kinds.CLEARING] = balances.get(ledger.account(kinds.CLEARING), 0)
    funders = []
    for funder in sorted(campaign.funders, key=lambda row: row.position):

        def shown(make: Callable[[str], str], code: str = funder.code) -> int:
            key = make(code)
            return int(ledger.shown_balance(key, balances.get(key, 0)))

        funders.append(
            FunderMoney(
                code=funder.code,
                name=funder.name,
                deposited=shown(ledger.funder),
                unclaimed=shown(ledger.budget),
                vouchers=shown(ledger.vouchers),
                expired=shown(ledger.expired),
                recovered=shown(ledger.recovery),
            )
        )
    return Money(
        deposited=by_kind[kinds.FUNDER],
        unclaimed=by_kind[kinds.BUDGET],
        vouchers=by_kind[kinds.VOUCHERS],
        expired=by_kind[kinds.EXPIRED],
        pending=by_kind[kinds.PENDING],
        payable=by_kind[kinds.PAYABLE],
        clearing=by_kind[kinds.CLEARING],
        settled=by_kind[kinds.SETTLED],
        receivable=by_kind[kinds.RECEIVABLE],
        recovered=by_kind[kinds.RECOVERY],
        funders=funders,
    )


async def merchant_lines(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    jurisdiction: Jurisdiction | None = None,
    limit: int | None = None,
) -> list[MerchantLine]:
    """Merchants with a redemption, by the subsidy they earned, largest first, with their campaign totals
    (a county: its own merchants); the first `limit` of them, or all."""
    scope = scope_of(principal, jurisdiction)
    await get_campaign(session, campaign_id=campaign_id)
    return await ReportRepository(session).merchant_lines(
        campaign_id, None if scope is None else [scope.value], limit
    )
