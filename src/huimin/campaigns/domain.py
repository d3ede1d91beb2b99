"""The campaign as pure data, and the rules that make a campaign well-formed.

Nothing here touches a database or a framework: a campaign file is parsed into these values
(`schemas.CampaignFile`), `validate` lists every problem with the field it concerns, and only a
campaign with no problem is stored.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from huimin.errors import Problem
from huimin.kit.clock import local_datetime, to_local
from huimin.kit.money import BASIS_POINTS_WHOLE, Fen, split_by_shares
from huimin.kit.terms import Category, Jurisdiction, MerchantClass

__all__ = [
    "Batch",
    "BatchKind",
    "Campaign",
    "CampaignLimits",
    "ClaimMode",
    "Funder",
    "FunderKind",
    "FundingShare",
    "Issuer",
    "PriceTier",
    "RefundPolicy",
    "Round",
    "Scope",
    "Validity",
    "ValidityKind",
    "validate",
]


class FunderKind(StrEnum):
    """资金来源: government fiscal funds, trade-union funds, social resources (platform/merchant co-funding)."""

    FISCAL = "fiscal"
    UNION = "union"
    SOCIAL = "social"


class Issuer(StrEnum):
    """Government 消费券 or trade-union 普惠券."""

    GOVERNMENT = "government"
    UNION = "union"


class BatchKind(StrEnum):
    THRESHOLD = "threshold"  # 满T减V
    FIXED = "fixed"  # V off, no minimum spend (capped at the amount)
    PERCENTAGE = "percentage"  # p % off, capped, optional minimum spend
    TIERED = "tiered"  # face value by price band (cars)


class RefundPolicy(StrEnum):
    """What a full refund within validity does to the voucher. Partial refunds always return the
    proportional subsidy to the pool (SPEC §4.10)."""

    RESTORE_ON_FULL_REFUND = "restore_on_full_refund"
    NO_RESTORE = "no_restore"


class ClaimMode(StrEnum):
    FIRST_COME = "first_come"  # 先到先得, a flash release
    LOTTERY = "lottery"  # 摇号: registration window, committed seed, verifiable draw


class ValidityKind(StrEnum):
    DAYS_AFTER_CLAIM = "days_after_claim"
    SAME_DAY = "same_day"
    UNTIL = "until"


@dataclass(frozen=True)
class Funder:
    code: str
    name: str
    kind: FunderKind
    budget: Fen


@dataclass(frozen=True)
class FundingShare:
    funder_code: str
    share_bp: int  # basis points of each voucher's value charged to this funder


@dataclass(frozen=True)
class PriceTier:
    """A price band [min_price, max_price) and the voucher's face value for a purchase in it."""

    min_price: Fen
    max_price: Fen | None
    face_value: Fen

    def contains(self, price: Fen) -> bool:
        return price >= self.min_price and (self.max_price is None or price < self.max_price)


@dataclass(frozen=True)
class Scope:
    """Where a voucher may be spent. Empty jurisdictions or merchant classes mean all of them."""

    categories: frozenset[Category]
    jurisdictions: frozenset[Jurisdiction] = frozenset()
    merchant_classes: frozenset[MerchantClass] = frozenset()

    def admits(self, category: Category, jurisdiction: Jurisdiction, merchant_class: MerchantClass) -> bool:
        return (
            category in self.categories
            and (not self.jurisdictions or jurisdiction in self.jurisdictions)
            and (not self.merchant_classes or merchant_class in self.merchant_classes)
        )


@dataclass(frozen=True)
class Validity:
    kind: ValidityKind
    days: int | None = None
    until: date | None = None


@dataclass(frozen=True)
class Batch:
    """券批次: a voucher product."""

    code: str
    name: str
    issuer: Issuer
    kind: BatchKind
    scope: Scope
    validity: Validity
    funding: tuple[FundingShare, ...]
    face_value: Fen | None = None
    threshold: Fen = Fen(0)  # noqa: RUF009 (Fen is an immutable int)
    percent_bp: int | None = None
    cap: Fen | None = None
    tiers: tuple[PriceTier, ...] = ()
    per_person_per_round: int = 1
    per_person_total: int | None = None
    per_merchant_daily: int | None = None  # redemptions of this batch per merchant per day
    refund_policy: RefundPolicy = RefundPolicy.RESTORE_ON_FULL_REFUND
    members_only: bool = False  # union 普惠券: union members only
    big_ticket: bool = False  # cars and appliances: invoices recorded and verified by the county
    threshold_after_discount: bool = True  # seed 六(十): threshold applies after the merchant's own discount

    @property
    def max_value(self) -> Fen:
        """The most one voucher of this batch can be worth: what its stock reserves from the budget."""
        if self.kind is BatchKind.PERCENTAGE:
            return self.cap or Fen(0)
        if self.kind is BatchKind.TIERED:
            return max((tier.face_value for tier in self.tiers), default=Fen(0))
        return self.face_value or Fen(0)

    def subsidy_for(self, eligible_amount: Fen) -> Fen:
        """The voucher's value on a purchase whose amount counted against the threshold is given.

        Zero when the purchase does not qualify (below the threshold or outside every price band).
        """
        if eligible_amount <= 0 or eligible_amount < self.threshold:
            return Fen(0)
        match self.kind:
            case BatchKind.THRESHOLD:
                return self.face_value or Fen(0)
            case BatchKind.FIXED:
                return Fen(min(self.face_value or 0, eligible_amount))
            case BatchKind.PERCENTAGE:
                return Fen(min(eligible_amount.mul_bp_floor(self.percent_bp or 0), self.cap or 0))
            case BatchKind.TIERED:
                tier = next((tier for tier in self.tiers if tier.contains(eligible_amount)), None)
                return tier.face_value if tier else Fen(0)


@dataclass(frozen=True)
class Round:
    """场次: one release of stock at a time. For a lottery, [opens_at, closes_at) is the registration
    window and the draw follows at closes_at."""

    code: str
    mode: ClaimMode
    opens_at: datetime
    closes_at: datetime
    stock: dict[str, int]  # batch code -> vouchers released
    schedule_index: int = 0  # which schedule of the file produced it (for error messages)


@dataclass(frozen=True)
class CampaignLimits:
    """Per-person limits across the whole campaign (SPEC §4.4)."""

    per_person_total: int | None = None
    per_person_per_category: dict[Category, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Campaign:
    code: str
    name: str
    starts_on: date
    ends_on: date
    budget: Fen
    funders: tuple[Funder, ...]
    batches: tuple[Batch, ...]
    rounds: tuple[Round, ...]
    limits: CampaignLimits = CampaignLimits()
    description: str = ""

    @property
    def opens_at(self) -> datetime:
        return local_datetime(self.starts_on, time(0))

    @property
    def closes_at(self) -> datetime:
        return local_datetime(self.ends_on + timedelta(days=1), time(0))

    def batch(self, code: str) -> Batch:
        return next(batch for batch in self.batches if batch.code == code)


def validate(campaign: Campaign) -> list[Problem]:
    """Every problem that makes the campaign unusable, each naming its field. Empty when it is sound."""
    problems: list[Problem] = []
    problems += _check_campaign(campaign)
    problems += _check_funders(campaign)
    for index, batch in enumerate(campaign.batches):
        problems += _check_batch(campaign, index, batch)
    problems += _check_rounds(campaign)
    if not problems:  # budget sums are meaningless while amounts or shares are wrong
        problems += _check_budget(campaign)
    # a schedule repeats one mistake in each of its rounds: report it once
    unique = {(problem.field, problem.message): problem for problem in problems}
    return list(unique.values())


def _duplicates(codes: list[str]) -> set[str]:
    seen: set[str] = set()
    return {code for code in codes if code in seen or seen.add(code)}  # type: ignore[func-returns-value]


def _check_campaign(campaign: Campaign) -> list[Problem]:
    problems = []
    if campaign.budget <= 0:
        problems.append(Problem("campaign.budget", f"must be positive, got {campaign.budget.format()}"))
    if campaign.ends_on < campaign.starts_on:
        problems.append(
            Problem("campaign.ends_on", f"{campaign.ends_on} is before starts_on {campaign.starts_on}")
        )
    if not campaign.batches:
        problems.append(Problem("batches", "a campaign needs at least one batch"))
    if campaign.limits.per_person_total is not None and campaign.limits.per_person_total < 1:
        problems.append(Problem("campaign.limits.per_person_total", "must be at least 1"))
    for category, limit in campaign.limits.per_person_per_category.items():
        if limit < 1:
            problems.append(
                Problem(f"campaign.limits.per_person_per_category.{category}", "must be at least 1")
            )
    return problems


def _check_funders(campaign: Campaign) -> list[Problem]:
    problems = []
    if not campaign.funders:
        problems.append(Problem("funders", "a campaign needs at least one funder"))
    for code in sorted(_duplicates([funder.code for funder in campaign.funders])):
        problems.append(Problem("funders", f"funder code {code!r} is used twice"))
    for index, funder in enumerate(campaign.funders):
        if funder.budget <= 0:
            problems.append(
                Problem(f"funders[{index}].budget", f"must be positive, got {funder.budget.format()}")
            )
    total = Fen(sum(funder.budget for funder in campaign.funders))
    if campaign.funders and total != campaign.budget:
        problems.append(
            Problem(
                "funders",
                f"funder budgets add up to {total.format()}, but the campaign budget is {campaign.budget.format()}",
            )
        )
    return problems


def _check_batch(campaign: Campaign, index: int, batch: Batch) -> list[Problem]:
    at = f"batches[{index}]"
    problems: list[Problem] = []
    if batch.code in _duplicates([other.code for other in campaign.batches]):
        problems.append(Problem(f"{at}.code", f"batch code {batch.code!r} is used twice"))
    if not batch.scope.categories:
        problems.append(Problem(f"{at}.scope.categories", "name at least one category"))

    face = batch.face_value
    if batch.kind in (BatchKind.THRESHOLD, BatchKind.FIXED):
        if face is None:
            problems.append(Problem(f"{at}.face_value", f"a {batch.kind} batch needs a face value"))
        elif face <= 0:
            problems.append(Problem(f"{at}.face_value", f"must be positive, got {face.format()}"))
    if batch.threshold < 0:
        problems.append(Problem(f"{at}.threshold", f"must not be negative, got {batch.threshold.format()}"))
    if batch.kind is BatchKind.THRESHOLD and face is not None and face > 0 and batch.threshold < face:
        problems.append(
            Problem(
                f"{at}.threshold",
                f"threshold {batch.threshold.format()} is below the face value {face.format()}: "
                "a 满减 voucher must require spending at least its value",
            )
        )
    if batch.kind is BatchKind.FIXED and batch.threshold != 0:
        problems.append(
            Problem(f"{at}.threshold", 'a fixed voucher has no threshold: use kind = "threshold"')
        )
    if batch.kind in (BatchKind.PERCENTAGE, BatchKind.TIERED) and face is not None:
        problems.append(Problem(f"{at}.face_value", f"a {batch.kind} batch has no face value: remove it"))
    if batch.kind is not BatchKind.PERCENTAGE:
        if batch.percent_bp is not None:
            problems.append(
                Problem(f"{at}.percent", f"only a percentage batch has a percent, this one is {batch.kind}")
            )
        if batch.cap is not None:
            problems.append(
                Problem(f"{at}.cap", f"only a percentage batch has a cap, this one is {batch.kind}")
            )
    if batch.kind is BatchKind.TIERED and batch.threshold != 0:
        problems.append(Problem(f"{at}.threshold", "a tiered batch has no threshold: its price bands decide"))
    if batch.kind is BatchKind.PERCENTAGE:
        if batch.percent_bp is None or not 0 < batch.percent_bp < BASIS_POINTS_WHOLE:
            problems.append(Problem(f"{at}.percent", "a percentage batch needs a percent between 0 and 100"))
        if batch.cap is None or batch.cap <= 0:
            problems.append(Problem(f"{at}.cap", "a percentage batch needs a positive cap"))
    if batch.kind is BatchKind.TIERED:
        problems += _check_tiers(at, batch.tiers)
    elif batch.tiers:
        problems.append(
            Problem(f"{at}.tiers", f"only a tiered batch has price tiers, this one is {batch.kind}")
        )

    for name, limit in (
        ("per_person_per_round", batch.per_person_per_round),
        ("per_person_total", batch.per_person_total),
        ("per_merchant_daily", batch.per_merchant_daily),
    ):
        if limit is not None and limit < 1:
            problems.append(Problem(f"{at}.limits.{name}", f"must be at least 1, got {limit}"))
    if batch.per_person_total is not None and batch.per_person_total < batch.per_person_per_round:
        problems.append(Problem(f"{at}.limits.per_person_total", "is smaller than per_person_per_round"))

    validity = batch.validity
    if validity.kind is ValidityKind.DAYS_AFTER_CLAIM and (validity.days is None or validity.days < 1):
        problems.append(Problem(f"{at}.validity.days_after_claim", "must be at least 1"))
    if (
        validity.kind is ValidityKind.UNTIL
        and validity.until is not None
        and not (campaign.starts_on <= validity.until <= campaign.ends_on)
    ):
        problems.append(
            Problem(
                f"{at}.validity.until",
                f"{validity.until} is outside the campaign period {campaign.starts_on} to {campaign.ends_on}",
            )
        )

    funders = {funder.code for funder in campaign.funders}
    if not batch.funding:
        problems.append(Problem(f"{at}.funding", "name the funders that pay for this batch"))
    for share in batch.funding:
        if share.funder_code not in funders:
            problems.append(
                Problem(f"{at}.funding.{share.funder_code}", f"unknown funder {share.funder_code!r}")
            )
        if share.share_bp <= 0:
            problems.append(Problem(f"{at}.funding.{share.funder_code}", "must be more than 0 %"))
    total_bp = sum(share.share_bp for share in batch.funding)
    if batch.funding and total_bp != BASIS_POINTS_WHOLE:
        problems.append(
            Problem(f"{at}.funding", f"shares add up to {_percent(total_bp)}, they must add up to 100%")
        )
    return problems


def _check_tiers(at: str, tiers: tuple[PriceTier, ...]) -> list[Problem]:
    problems = []
    if not tiers:
        problems.append(Problem(f"{at}.tiers", "a tiered batch needs at least one price tier"))
    for index, tier in enumerate(tiers):
        where = f"{at}.tiers[{index}]"
        if tier.face_value <= 0:
            problems.append(
                Problem(f"{where}.face_value", f"must be positive, got {tier.face_value.format()}")
            )
        if tier.min_price < 0:
            problems.append(Problem(f"{where}.min_price", "must not be negative"))
        if tier.max_price is not None and tier.max_price <= tier.min_price:
            problems.append(Problem(f"{where}.max_price", "must be above min_price"))
        if tier.face_value > tier.min_price:
            problems.append(
                Problem(
                    f"{where}.face_value",
                    f"face value {tier.face_value.format()} exceeds the band's lowest price "
                    f"{tier.min_price.format()}",
                )
            )
        if index and (tiers[index - 1].max_price is None or tiers[index - 1].max_price > tier.min_price):  # type: ignore[operator]
            problems.append(
                Problem(f"{where}.min_price", "overlaps the previous tier: list tiers in rising order")
            )
    return problems


def _check_rounds(campaign: Campaign) -> list[Problem]:
    problems = []
    batches = {batch.code for batch in campaign.batches}
    for code in sorted(_duplicates([round_.code for round_ in campaign.rounds])):
        problems.append(Problem("schedules", f"two rounds are both called {code!r}"))
    by_batch: dict[str, list[Round]] = defaultdict(list)
    for round_ in campaign.rounds:
        at = f"schedules[{round_.schedule_index}]"
        if round_.opens_at < campaign.opens_at or round_.closes_at > campaign.closes_at:
            problems.append(
                Problem(
                    at,
                    f"round {round_.code} ({_local(round_.opens_at)} to {_local(round_.closes_at)}) is outside "
                    f"the campaign period {campaign.starts_on} to {campaign.ends_on}",
                )
            )
        if not any(count > 0 for count in round_.stock.values()):
            problems.append(Problem(f"{at}.stock", f"round {round_.code} releases no vouchers"))
        for batch_code, count in round_.stock.items():
            if batch_code not in batches:
                problems.append(Problem(f"{at}.stock.{batch_code}", f"unknown batch {batch_code!r}"))
            if count < 0:
                problems.append(Problem(f"{at}.stock.{batch_code}", f"must not be negative, got {count}"))
            if count > 0:
                by_batch[batch_code].append(round_)
    for batch_code, rounds in sorted(by_batch.items()):
        ordered = sorted(rounds, key=lambda round_: round_.opens_at)
        for earlier, later in itertools.pairwise(ordered):
            if later.opens_at < earlier.closes_at:
                problems.append(
                    Problem(
                        f"schedules[{later.schedule_index}]",
                        f"rounds {earlier.code} and {later.code} overlap for batch {batch_code!r}",
                    )
                )
    return problems


def planned_by_funder(campaign: Campaign) -> tuple[Fen, dict[str, Fen]]:
    """What the whole schedule's stock reserves at most, in total and from each funder (by the
    batches' funding splits)."""
    planned_by_funder: dict[str, Fen] = defaultdict(Fen)
    planned = Fen(0)
    batches = {batch.code: batch for batch in campaign.batches}
    for round_ in campaign.rounds:
        for batch_code, count in round_.stock.items():
            batch = batches[batch_code]
            value = batch.max_value * count
            planned += value
            parts = split_by_shares(value, [share.share_bp for share in batch.funding])
            for share, part in zip(batch.funding, parts, strict=True):
                planned_by_funder[share.funder_code] += part
    return planned, dict(planned_by_funder)


def _check_budget(campaign: Campaign) -> list[Problem]:
    """Planned stock must be payable: in total and for each funder by the batches' funding splits."""
    problems = []
    planned, by_funder = planned_by_funder(campaign)
    if planned > campaign.budget:
        problems.append(
            Problem(
                "schedules",
                f"the planned stock is worth up to {planned.format()}, more than the budget "
                f"{campaign.budget.format()}",
            )
        )
    for index, funder in enumerate(campaign.funders):
        needed = by_funder.get(funder.code, Fen(0))
        if needed > funder.budget:
            problems.append(
                Problem(
                    f"funders[{index}].budget",
                    f"the planned stock charges {needed.format()} to {funder.code!r}, more than its budget "
                    f"{funder.budget.format()}",
                )
            )
    return problems


def _percent(basis_points: int) -> str:
    whole, fraction = divmod(basis_points, 100)
    return f"{whole}.{fraction:02d}%" if fraction else f"{whole}%"


def _local(instant: datetime) -> str:
    return to_local(instant).strftime("%Y-%m-%d %H:%M")


def planned_value(campaign: Campaign) -> Fen:
    """What the whole schedule's stock reserves at most."""
    return planned_by_funder(campaign)[0]
