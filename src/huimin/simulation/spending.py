"""How the demo's residents spend their vouchers: where, when, on what basket. Pure behaviour, no database.

A resident who claimed a voucher picks what to buy with it: for an everyday voucher one of the
categories in its scope, by their taste; for a car or appliance voucher the purchase they claimed it
for. Whether they go at all is the category's spending propensity (people nearly always use a car
voucher they raced for, a lodging voucher less often). They shop at an active merchant of that category
that the batch's scope admits, near home (a merchant of their home district, 高新区 and 临空经济区 counting as
雁江区), and only elsewhere in the city when their district has none; busier merchants get more customers.

The visit falls within the voucher's validity and within the merchant's business hours: everyday
vouchers mostly in the first days (a few days on average), big-ticket purchases any day of their
longer validity (a car takes time to choose). The basket is drawn around the threshold:

- 满减 vouchers: the till amount is lognormal with median 1.5 × threshold (most between 1.2 and 1.8 ×),
  so about one basket in twenty falls short (`below_threshold`): the resident adds something and the
  cashier scans again, once;
- appliances (a percentage with a minimum spend): median 2 × the minimum spend;
- cars: a price around 130,000 yuan, a few under the lowest band;
- merchants running a promotion of their own take it off a share of their purchases; the voucher
  stacks with it (seed 六(十)), and the threshold is met after it when the batch says so.

Fixed at planning too, from the same stream: whether a big-ticket invoice will fail the county's check
(`INVOICE_REJECTED_SHARE`) and whether an everyday purchase comes back for a refund (`REFUND_SHARE`,
some of them partial). Amounts are integer fen; the floats here are behaviour only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import accumulate

from huimin.campaigns.domain import Batch, BatchKind, Scope
from huimin.kit.clock import local_datetime, to_local
from huimin.kit.money import Fen
from huimin.kit.terms import Category, District
from huimin.simulation.city import Merchant, Resident

__all__ = [
    "EVERYDAY_MEAN_DAYS",
    "EXPIRED_TRY_SHARE",
    "INVOICE_REJECTED_SHARE",
    "LAST_ORDERS_MINUTES",
    "REFUND_SHARE",
    "SPEND_PROPENSITY",
    "Shop",
    "Shops",
    "Visit",
    "choose_category",
    "is_working_day",
    "next_working_day",
    "plan_visit",
    "top_up",
]

SPEND_PROPENSITY: dict[Category, float] = {
    Category.CATERING: 0.92,
    Category.RETAIL: 0.90,
    Category.SERVICES: 0.85,
    Category.LODGING: 0.70,
    Category.WHOLESALE: 0.75,
    Category.CARS: 0.95,
    Category.APPLIANCES: 0.95,
}
"""The chance that a voucher meant for a category is spent at all."""

EVERYDAY_MEAN_DAYS = 2.0  # everyday vouchers are spent soon after the claim
EXPIRED_TRY_SHARE = 0.1  # of the vouchers left unspent: the holder tries at the till after all, too late
INVOICE_REJECTED_SHARE = 0.03  # big-ticket invoices the county rejects
REFUND_SHARE = 0.025  # everyday purchases brought back
PARTIAL_REFUND_SHARE = 0.4  # ... of which only part of the purchase
PROMOTION_DISCOUNT = (0.05, 0.15)  # a merchant's own discount, as a share of the order
VISIT_TRIES = 8
LAST_ORDERS_MINUTES = 6  # visits start this long before closing at the latest (a second scan fits)

_THRESHOLD_BASKET = (math.log(1.5), 0.25)  # median 1.5 x the threshold
_PERCENTAGE_BASKET = (math.log(2.0), 0.4)
_CAR_PRICE_YUAN = (math.log(130_000), 0.45)
_CAR_DEALER_DISCOUNT_YUAN = (2_000, 8_000)

# 2022 public holidays in Mainland China on weekdays, and the weekend days worked in exchange (国务院办公厅).
_HOLIDAYS = frozenset(
    {date(2022, 6, 3), date(2022, 9, 12), *(date(2022, 10, day) for day in range(3, 8)), date(2023, 1, 2)}
)
_WORKED_WEEKENDS = frozenset({date(2022, 10, 8), date(2022, 10, 9)})


@dataclass(frozen=True)
class Shop:
    """An active merchant as the residents' map shows it."""

    merchant: Merchant
    merchant_id: str


class Shops:
    """The active merchants by category and district, with the scope filtering the batches ask for."""

    def __init__(self, shops: Iterable[Shop]) -> None:
        self.by_category: dict[Category, list[Shop]] = {}
        for shop in sorted(shops, key=lambda shop: shop.merchant.serial):
            self.by_category.setdefault(shop.merchant.category, []).append(shop)
        self._cache: dict[tuple[Scope, Category, District | None], tuple[list[Shop], list[float]]] = {}

    def categories(self, scope: Scope) -> list[Category]:
        """The scope's categories that have an admitted merchant somewhere, in a fixed order."""
        return [
            category
            for category in Category
            if category in scope.categories and self._admitted(scope, category, None)[0]
        ]

    def pick(
        self, rng: random.Random, scope: Scope, category: Category, home: District | None
    ) -> Shop | None:
        shops, weights = self._admitted(scope, category, home)
        if not shops:
            shops, weights = self._admitted(scope, category, None)
        if not shops:
            return None
        return rng.choices(shops, cum_weights=weights)[0]

    def _admitted(
        self, scope: Scope, category: Category, district: District | None
    ) -> tuple[list[Shop], list[float]]:
        key = (scope, category, district)
        if key not in self._cache:
            shops = [
                shop
                for shop in self.by_category.get(category, [])
                if scope.admits(category, shop.merchant.jurisdiction, shop.merchant.merchant_class)
                and (district is None or shop.merchant.district is district)
            ]
            self._cache[key] = shops, list(accumulate(shop.merchant.popularity for shop in shops))
        return self._cache[key]


@dataclass(frozen=True)
class Visit:
    """A purchase a resident will make with a voucher: where, when, what the till will say."""

    at: datetime
    shop: Shop
    terminal: str
    category: Category
    order: Fen
    discount: Fen
    verify_at: datetime | None = None  # big-ticket: when the county checks the invoices
    invoice_rejected: bool = False
    refund_at: datetime | None = None  # everyday: when the purchase comes back
    refund_share: float | None = None  # part of the purchase refunded; None: all of it


def choose_category(rng: random.Random, resident: Resident, scope: Scope, shops: Shops) -> Category | None:
    """What the voucher will be spent on: an everyday category by the resident's taste, or the one
    category of a big-ticket scope; None when no merchant anywhere takes it."""
    available = shops.categories(scope)
    if not available:
        return None
    weights = [resident.taste.get(category, 1.0) for category in available]
    return rng.choices(available, weights)[0]


def plan_visit(
    rng: random.Random,
    *,
    resident: Resident,
    batch: Batch,
    category: Category,
    shops: Shops,
    after: datetime,
    before: datetime,
    mean_days: float | None,
) -> Visit | None:
    """A visit between `after` and `before` (exclusive) during the merchant's hours, or None when the
    resident finds no time for it (a window shorter than the shop's hours)."""
    shop = shops.pick(rng, batch.scope, category, resident.home)
    if shop is None:
        return None
    at = _visit_time(rng, shop.merchant, after=after, before=before, mean_days=mean_days)
    if at is None:
        return None
    order, discount = _basket(rng, batch, shop.merchant)
    terminal = rng.choice(shop.merchant.terminals)
    if batch.big_ticket:
        return Visit(
            at=at,
            shop=shop,
            terminal=terminal,
            category=category,
            order=order,
            discount=discount,
            verify_at=local_datetime(next_working_day(to_local(at).date()), time(9))
            + timedelta(minutes=rng.randrange(8 * 60)),
            invoice_rejected=rng.random() < INVOICE_REJECTED_SHARE,
        )
    refund_at = None
    refund_share = None
    if rng.random() < REFUND_SHARE:
        refund_at = _visit_time(
            rng, shop.merchant, after=at + timedelta(hours=1), before=at + timedelta(days=6), mean_days=None
        )
        refund_share = rng.uniform(0.2, 0.7) if rng.random() < PARTIAL_REFUND_SHARE else None
    return Visit(
        at=at,
        shop=shop,
        terminal=terminal,
        category=category,
        order=order,
        discount=discount,
        refund_at=refund_at,
        refund_share=refund_share,
    )


def top_up(rng: random.Random, batch: Batch, *, order: Fen, discount: Fen) -> Fen:
    """The order after the resident adds enough to reach the threshold (or a car in the lowest band)."""
    minimum = _minimum(batch)
    counted = order - discount if batch.threshold_after_discount else order
    if batch.kind is BatchKind.TIERED:
        extra = rng.randrange(1_000, 20_000) * 100
    elif batch.kind is BatchKind.PERCENTAGE:
        extra = rng.randrange(50, 500) * 100
    else:
        extra = rng.randrange(1, 30) * 100
    return Fen(order + max(minimum - counted, 0) + extra)


def next_working_day(day: date) -> date:
    """The first working day after `day` (weekends and the 2022 public holidays are not)."""
    while True:
        day += timedelta(days=1)
        if is_working_day(day):
            return day


def is_working_day(day: date) -> bool:
    return day in _WORKED_WEEKENDS or (day.weekday() < 5 and day not in _HOLIDAYS)


def _minimum(batch: Batch) -> int:
    if batch.kind is BatchKind.TIERED:
        return min((tier.min_price for tier in batch.tiers), default=Fen(0))
    return int(batch.threshold)


def _basket(rng: random.Random, batch: Batch, merchant: Merchant) -> tuple[Fen, Fen]:
    """The till's amount before discounts and the merchant's own discount, in fen."""
    promoted = rng.random() < merchant.promotion
    if batch.kind is BatchKind.TIERED:
        order = _rounded(rng.lognormvariate(*_CAR_PRICE_YUAN) * 100, 10_000)
        discount = rng.randrange(*_CAR_DEALER_DISCOUNT_YUAN) // 100 * 10_000 if promoted else 0
        return Fen(order), Fen(discount)
    base = _minimum(batch) or 3 * int(batch.max_value)
    if batch.kind is BatchKind.PERCENTAGE:
        order = _rounded(base * rng.lognormvariate(*_PERCENTAGE_BASKET), 100)
    else:
        order = _rounded(base * rng.lognormvariate(*_THRESHOLD_BASKET), 10)
    discount = _rounded(order * rng.uniform(*PROMOTION_DISCOUNT), 100) if promoted else 0
    return Fen(order), Fen(min(discount, order - 100))


def _rounded(fen: float, step: int) -> int:
    return max(step, round(fen / step) * step)


def _visit_time(
    rng: random.Random, merchant: Merchant, *, after: datetime, before: datetime, mean_days: float | None
) -> datetime | None:
    first = to_local(after).date()
    days = (to_local(before).date() - first).days + 1
    pieces = _open_pieces(merchant.open_spans)
    for _ in range(VISIT_TRIES):
        if mean_days is None:
            offset = rng.randrange(days)
        else:
            offset = min(int(rng.expovariate(1.0 / mean_days)), days - 1)
        opens, closes = rng.choices(pieces, [closes - opens for opens, closes in pieces])[0]
        # not in the last minutes: a basket found short is scanned again a few minutes later, still open
        minute = rng.randrange(opens, closes - LAST_ORDERS_MINUTES)
        at = local_datetime(
            first + timedelta(days=offset), time(minute // 60, minute % 60, rng.randrange(60))
        )
        if after < at < before:
            return at
    return None


def _open_pieces(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Opening hours as pieces within one day: a span past midnight is its evening and its small hours."""
    pieces = []
    for opens, closes in spans:
        if opens < closes:
            pieces.append((opens, closes))
        else:
            pieces += [(opens, 24 * 60), (0, closes)]
    return [(opens, closes) for opens, closes in pieces if closes > opens]
