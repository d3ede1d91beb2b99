"""Precision allocation (精准投放, 千人千面, seed 五(二)): the next-round planner and personalised offers,
as pure rules over figures the campaign's own data gives.

The planner redistributes the *planned* stock of the next round across its batches. It never adds
money: the proposal's total value stays within what the campaign file planned for that round, and each
funder's part within what was planned for it there plus what its budget has not promised to any round;
and it never removes a batch. Each batch's figures become one merit number, "what one yuan released in this batch did" (`BatchRecord.merit`); a batch above the campaign's average
gets more value and one below gets less, by the ratio, within the city admin's limits (`Limits`):
no batch changes by more than `max_change_bp` of its planned stock, and each category and jurisdiction
keeps its minimum share of the round's value. If the merit-led split breaks a limit, the planner moves
it back toward the planned split, only as far as needed (`plan`); the planned split is the fallback
and is always offered when it meets the limits itself.

Offers only reorder: a resident sees every batch they may claim, those they are likeliest to spend
first (`rank_offers`). The order uses only what the resident bought with earlier vouchers and what
their district bought, never a personal attribute (age, sex, ID number, income).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from huimin.errors import InvalidInput, Problem
from huimin.kit.money import BASIS_POINTS_WHOLE, Fen, parse_share, split_by_shares

__all__ = [
    "BatchRecord",
    "Limits",
    "Offer",
    "OfferBatch",
    "Plan",
    "PlanLine",
    "check",
    "explain",
    "parse_shares",
    "plan",
    "rank_offers",
]

# A batch that sold out at the very opening shows demand beyond its stock: up to this much more merit.
SELL_OUT_BONUS = 0.5
# Vouchers that wait a month before they are spent count half as timely as vouchers spent at once.
TIMELINESS_DAYS = 30.0
# Ten complaints per thousand redemptions halve a batch's merit.
COMPLAINTS_PER_THOUSAND_HALVING = 10.0
# How finely the fallback toward the planned split is searched (steps of 1/2**BLEND_STEPS).
BLEND_STEPS = 12


@dataclass(frozen=True)
class BatchRecord:
    """One batch of the round being planned, with what the campaign's earlier rounds showed for it."""

    code: str
    categories: frozenset[str]
    jurisdictions: frozenset[str]  # empty: every jurisdiction
    unit_value: Fen  # what one voucher reserves from the budget (the batch's most valuable voucher)
    funding: tuple[tuple[str, int], ...]  # (funder code, basis points of each voucher's value)
    planned: int  # the next round's stock for this batch, as the campaign file planned it
    released: int = 0  # vouchers released so far (planned stock plus recycled stock)
    claimed: int = 0
    redeemed: int = 0
    subsidy: Fen = Fen(0)  # noqa: RUF009 (Fen is an immutable int)
    consumption: Fen = Fen(0)  # noqa: RUF009 (order amounts of the redeemed purchases)
    sold_out_share: float | None = None  # median share of a round's window gone before it sold out
    days_to_redeem: float | None = None  # median days from claim to redemption
    complaints: int = 0

    @property
    def has_history(self) -> bool:
        return self.released > 0

    @property
    def claim_through(self) -> float:
        return self.claimed / self.released if self.released else 0.0

    @property
    def redemption_rate(self) -> float:
        return self.redeemed / self.claimed if self.claimed else 0.0

    @property
    def leverage(self) -> float:
        """拉动比: consumption driven per yuan of subsidy."""
        return int(self.consumption) / int(self.subsidy) if self.subsidy else 0.0  # a ratio, not money

    @property
    def demand(self) -> float:
        """Claims per voucher released, with a bonus for selling out early (demand beyond the stock)."""
        if self.sold_out_share is None:
            return self.claim_through
        return self.claim_through * (1 + SELL_OUT_BONUS * (1 - min(max(self.sold_out_share, 0.0), 1.0)))

    @property
    def timeliness(self) -> float:
        return 1 / (1 + (self.days_to_redeem or 0.0) / TIMELINESS_DAYS)

    @property
    def quality(self) -> float:
        per_thousand = 1000 * self.complaints / self.redeemed if self.redeemed else 0.0
        return 1 / (1 + per_thousand / COMPLAINTS_PER_THOUSAND_HALVING)

    @property
    def merit(self) -> float:
        """Consumption driven per yuan released, adjusted for demand beyond stock, how soon the
        vouchers are spent and complaints: demand × redemption rate × leverage × timeliness × quality."""
        return self.demand * self.redemption_rate * self.leverage * self.timeliness * self.quality

    def value_of(self, stock: int) -> Fen:
        return Fen(self.unit_value * stock)


@dataclass(frozen=True)
class Limits:
    """What the city admin allows the planner to do (per round)."""

    max_change_bp: int = 2_000  # no batch moves by more than this share of its planned stock
    min_category_share_bp: Mapping[str, int] = field(default_factory=dict)  # of the round's value
    min_jurisdiction_share_bp: Mapping[str, int] = field(default_factory=dict)

    def problems(self) -> list[Problem]:
        problems = []
        if not 0 <= self.max_change_bp <= BASIS_POINTS_WHOLE:
            problems.append(Problem("max_change_bp", "must be between 0 and 10000 (0 % to 100 %)"))
        for name, shares in (
            ("min_category_share_bp", self.min_category_share_bp),
            ("min_jurisdiction_share_bp", self.min_jurisdiction_share_bp),
        ):
            for key, share in shares.items():
                if not 0 <= share <= BASIS_POINTS_WHOLE:
                    problems.append(Problem(f"{name}.{key}", "must be between 0 and 10000"))
        return problems


@dataclass(frozen=True)
class PlanLine:
    code: str
    planned: int
    proposed: int
    merit: float | None  # None: no history yet, the batch keeps the campaign's average
    ratio: float  # merit ÷ the campaign's average merit (1.0 without history)

    @property
    def change(self) -> int:
        return self.proposed - self.planned


@dataclass(frozen=True)
class Plan:
    lines: tuple[PlanLine, ...]
    average_merit: float
    # 0.0: the merit-led split as it is; 1.0: the planned split. Between: moved toward the planned
    # split that far, because the merit-led split broke a limit.
    fallback: float

    def stock(self) -> dict[str, int]:
        return {line.code: line.proposed for line in self.lines}


def parse_shares(field: str, pairs: Iterable[str]) -> dict[str, int]:
    """`NAME=SHARE` pairs (`retail=30%`, `anyue=12.5%`) as basis points by name, for the admin's limits.
    Raises InvalidInput naming `field` and the pair."""
    shares = {}
    problems = []
    for pair in pairs:
        key, _, share = pair.partition("=")
        try:
            if not key.strip():
                raise ValueError("expected NAME=SHARE, e.g. retail=30%")
            shares[key.strip()] = parse_share(share.strip())
        except ValueError as error:
            problems.append(Problem(field, f"{pair!r}: {error}"))
    if problems:
        raise InvalidInput(problems, code="invalid_limits", summary="the allocation limits are refused")
    return shares


def check(
    batches: Sequence[BatchRecord],
    stock: Mapping[str, int],
    limits: Limits,
    headroom: Mapping[str, int] | None = None,
) -> list[Problem]:
    """Every limit a proposed stock breaks, each naming its field: the admin's limits, never more value
    in total than the campaign planned for the round, and never more for a funder than planned for the
    round plus its `headroom` (its budget not yet promised to any round)."""
    headroom = headroom or {}
    problems = []
    by_code = {batch.code: batch for batch in batches}
    for code in sorted(set(stock) - set(by_code)):
        problems.append(Problem(f"stock.{code}", "is not a batch of this round"))
    for batch in batches:
        count = stock.get(batch.code, 0)
        if count < 0:
            problems.append(Problem(f"stock.{batch.code}", "must not be negative"))
        allowed = batch.planned * limits.max_change_bp // BASIS_POINTS_WHOLE
        if abs(count - batch.planned) > allowed:
            problems.append(
                Problem(
                    f"stock.{batch.code}",
                    f"changes by {count - batch.planned:+d} from the planned {batch.planned}, "
                    f"more than the {limits.max_change_bp / 100:g} % allowed ({allowed})",
                )
            )
    planned_total, planned_funders = _values(batches, {batch.code: batch.planned for batch in batches})
    total, funders = _values(batches, stock)
    if total > planned_total:
        problems.append(
            Problem("stock", f"is worth {total.format()}, more than planned {planned_total.format()}")
        )
    for funder, value in sorted(funders.items()):
        allowed = Fen(planned_funders.get(funder, Fen(0)) + headroom.get(funder, 0))
        if value > allowed:
            problems.append(
                Problem(
                    f"stock.funder.{funder}",
                    f"charges {value.format()} to {funder}, more than the {allowed.format()} its budget allows",
                )
            )
    for name, shares, in_group in (
        ("min_category_share_bp", limits.min_category_share_bp, _has_category),
        ("min_jurisdiction_share_bp", limits.min_jurisdiction_share_bp, _serves_jurisdiction),
    ):
        for key, share in sorted(shares.items()):
            covered = sum(
                int(batch.value_of(stock.get(batch.code, 0))) for batch in batches if in_group(batch, key)
            )
            # covered / total >= share / 10000, in integers
            if covered * BASIS_POINTS_WHOLE < share * total:
                problems.append(
                    Problem(
                        f"{name}.{key}",
                        f"{key} gets {_bp(covered, total)} of the round's value, less than the minimum "
                        f"{share / 100:g} %",
                    )
                )
    return problems


def _has_category(batch: BatchRecord, category: str) -> bool:
    return category in batch.categories


def _serves_jurisdiction(batch: BatchRecord, jurisdiction: str) -> bool:
    return not batch.jurisdictions or jurisdiction in batch.jurisdictions


def plan(batches: Sequence[BatchRecord], limits: Limits, headroom: Mapping[str, int] | None = None) -> Plan:
    """The proposal for one round. Raises InvalidInput when even the planned split breaks the admin's
    limits (the limits then cannot be met by moving stock within `max_change_bp`, or contradict each
    other), naming each."""
    if problems := limits.problems():
        raise InvalidInput(problems, code="invalid_limits", summary="the allocation limits are refused")
    planned = {batch.code: batch.planned for batch in batches}
    average = _average_merit(batches)
    ratios = {
        batch.code: (batch.merit / average if batch.has_history and average > 0 else 1.0) for batch in batches
    }
    led = _merit_led(batches, ratios, limits)
    fallback, stock = _closest_within_limits(batches, led, planned, limits, headroom or {})
    lines = tuple(
        PlanLine(
            code=batch.code,
            planned=batch.planned,
            proposed=stock[batch.code],
            merit=batch.merit if batch.has_history else None,
            ratio=ratios[batch.code],
        )
        for batch in batches
    )
    return Plan(lines=lines, average_merit=average, fallback=fallback)


def _average_merit(batches: Sequence[BatchRecord]) -> float:
    """The value-weighted average merit of the batches with history."""
    weighted = [(batch.merit, batch.value_of(batch.planned) or 1) for batch in batches if batch.has_history]
    weight = sum(w for _, w in weighted)
    return sum(merit * w for merit, w in weighted) / weight if weight else 0.0


def _merit_led(batches: Sequence[BatchRecord], ratios: Mapping[str, float], limits: Limits) -> dict[str, int]:
    """Each batch's planned value scaled by its merit ratio, clamped to the allowed change, and all
    scaled together (one factor, found by bisection) so the round's planned value is spent again."""
    change = limits.max_change_bp / BASIS_POINTS_WHOLE
    planned_total = sum(batch.value_of(batch.planned) for batch in batches)

    def stock_at(factor: float) -> dict[str, int]:
        stock = {}
        for batch in batches:
            low = batch.planned - batch.planned * limits.max_change_bp // BASIS_POINTS_WHOLE
            high = batch.planned + batch.planned * limits.max_change_bp // BASIS_POINTS_WHOLE
            wanted = batch.planned * ratios[batch.code] * factor
            wanted = min(max(wanted, batch.planned * (1 - change)), batch.planned * (1 + change))
            stock[batch.code] = min(max(math.floor(wanted), low), high)
        return stock

    def value(stock: Mapping[str, int]) -> int:
        return sum(batch.value_of(stock[batch.code]) for batch in batches)

    low_factor, high_factor = 0.0, 1.0
    while value(stock_at(high_factor)) <= planned_total and high_factor < 1e6:
        low_factor, high_factor = high_factor, high_factor * 2
    for _ in range(60):
        middle = (low_factor + high_factor) / 2
        if value(stock_at(middle)) <= planned_total:
            low_factor = middle
        else:
            high_factor = middle
    return stock_at(low_factor)


def _closest_within_limits(
    batches: Sequence[BatchRecord],
    led: Mapping[str, int],
    planned: Mapping[str, int],
    limits: Limits,
    headroom: Mapping[str, int],
) -> tuple[float, dict[str, int]]:
    """The merit-led split if it meets every limit, else the least blend toward the planned split that
    does (the limits are linear, so the planned split meeting them bounds the search)."""
    if not check(batches, led, limits, headroom):
        return 0.0, dict(led)
    if problems := check(batches, planned, limits, headroom):
        raise InvalidInput(
            problems,
            code="limits_unreachable",
            summary="even the planned split breaks the allocation limits; relax them or change the campaign file",
        )

    def blend(weight: float) -> dict[str, int]:
        # Round toward the planned count, so a blend never leaves the allowed change.
        return {
            code: planned[code] + math.trunc((led[code] - planned[code]) * (1 - weight)) for code in planned
        }

    best = 1.0
    low, high = 0.0, 1.0
    for _ in range(BLEND_STEPS):
        middle = (low + high) / 2
        if check(batches, blend(middle), limits, headroom):
            low = middle
        else:
            high = best = middle
    return best, (blend(best) if best < 1.0 else dict(planned))


def explain(line: Mapping[str, Any], average_merit: float) -> str:
    """One stored plan line (`service` keeps the figures with it) in plain figures, for the admin."""
    figures = line["figures"]
    planned, proposed = int(line["planned"]), int(line["proposed"])
    change = f"{proposed - planned:+,d}" + (f" ({(proposed - planned) / planned:+.0%})" if planned else "")
    outcome = f"planned {planned:,} → proposed {proposed:,} ({change})"
    if figures.get("merit") is None:
        return f"No history yet, so it counts as average. {outcome}."
    parts = [
        f"Claimed {figures['claimed']:,} of {figures['released']:,} released ({figures['claim_through']:.0%})",
    ]
    if figures.get("sold_out_share") is not None:
        parts[-1] += f", sold out {figures['sold_out_share']:.0%} into the window"
    spent = f"{figures['redemption_rate']:.0%} of them spent"
    if figures.get("days_to_redeem") is not None:
        spent += f", a median {figures['days_to_redeem']:.1f} days after the claim"
    parts.append(spent)
    parts.append(f"each yuan of subsidy drove {figures['leverage']:.2f} yuan of consumption")
    if figures.get("complaints"):
        parts.append(f"{figures['complaints']} complaint(s) about its merchants")
    merit = f"merit {figures['merit']:.2f} against the campaign's {average_merit:.2f} (×{line['ratio']:.2f})"
    return f"{'; '.join(parts)}. {merit.capitalize()}: {outcome}."


def _values(batches: Sequence[BatchRecord], stock: Mapping[str, int]) -> tuple[Fen, dict[str, Fen]]:
    total = Fen(0)
    funders: dict[str, Fen] = defaultdict(Fen)
    for batch in batches:
        value = batch.value_of(stock.get(batch.code, 0))
        total += value
        if value > 0 and batch.funding:
            parts = split_by_shares(value, [share for _, share in batch.funding])
            for (funder, _), part in zip(batch.funding, parts, strict=True):
                funders[funder] += part
    return total, dict(funders)


def _bp(part: int, whole: int) -> str:
    return f"{100 * int(part) / int(whole):.2f} %" if whole else "0 %"


# -- personalised offers (千人千面) -----------------------------------------------------------------


@dataclass(frozen=True)
class OfferBatch:
    """A batch the resident may claim now."""

    code: str
    categories: frozenset[str]
    position: int  # the batch's order in the campaign file: the tie-break, and the order without history


@dataclass(frozen=True)
class Offer:
    code: str
    affinity: float  # the expected share of this resident's voucher spending the batch's categories hold
    own_purchases: int  # the resident's redeemed vouchers in the batch's categories
    district_share: float  # the district's share of redemptions in the batch's categories


# How much a resident's own history counts against their district's, per earlier purchase: one purchase
# is weighted like OWN_WEIGHT_HALF district-wide observations... the blend is n / (n + OWN_WEIGHT_HALF).
OWN_WEIGHT_HALF = 3.0


def rank_offers(
    batches: Iterable[OfferBatch], own: Mapping[str, int], district: Mapping[str, int]
) -> list[Offer]:
    """Every batch, likeliest to be spent first. `own` and `district` count redeemed vouchers by
    category (the resident's and their district's). The resident's own history weighs more as it
    grows: after n purchases it counts n / (n + 3), the district's the rest; with no data at all the
    campaign file's order stands. Nothing is left out."""
    own_total = sum(own.values())
    district_total = sum(district.values())
    own_weight = own_total / (own_total + OWN_WEIGHT_HALF)

    def share(counts: Mapping[str, int], total: int, categories: frozenset[str]) -> float:
        return sum(counts.get(category, 0) for category in categories) / total if total else 0.0

    offers = []
    for batch in batches:
        own_share = share(own, own_total, batch.categories)
        district_share = share(district, district_total, batch.categories)
        affinity = own_weight * own_share + (1 - own_weight) * district_share
        offers.append(
            (
                batch.position,
                Offer(
                    code=batch.code,
                    affinity=affinity,
                    own_purchases=sum(own.get(category, 0) for category in batch.categories),
                    district_share=district_share,
                ),
            )
        )
    offers.sort(key=lambda item: (-item[1].affinity, item[0]))
    return [offer for _, offer in offers]
