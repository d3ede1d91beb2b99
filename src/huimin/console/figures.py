"""The overview's figures, one function each: `(repository, scope) -> Figure | Series`.

Money is integer fen, shown as yuan; the ratios (redemption rate, leverage) keep their numerator and
denominator and are written out as decimal strings in integer arithmetic, never through a float. The
subsidy settled to merchants waits for the settlement package: until it lands, the overview shows the
subsidy by redemption status (pending verification, confirmed, settled, …) instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from huimin.console.repository import COUNTED, OverviewRepository, StatusTotals
from huimin.kit.money import Fen
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants.domain import MerchantStatus
from huimin.redemptions.domain import RedemptionStatus

__all__ = [
    "CLAIM_FIGURES",
    "REDEMPTION_FIGURES",
    "Figure",
    "Scope",
    "Series",
    "claims_by_day",
    "claims_by_district",
    "figure_text",
    "leverage_text",
    "merchants_by_status",
    "redemptions_by_day",
    "redemptions_by_district",
    "subsidy_by_status",
]

# count and fen: `value` is the figure; percent and ratio: `value` ÷ `whole`, written out exactly.
Unit = Literal["count", "fen", "percent", "ratio"]


@dataclass(frozen=True)
class Scope:
    """What the figures are about: one campaign, at one instant, for the caller's jurisdictions."""

    campaign_id: str
    now: datetime
    jurisdictions: frozenset[Jurisdiction] = frozenset()  # empty: the whole city


@dataclass(frozen=True)
class Figure:
    key: str  # its label is the catalogue's `figure.<key>`
    value: int | None  # None: not available yet, shown as "—"
    unit: Unit = "count"
    whole: int = 0  # the denominator of a percent or a ratio
    note: str | None = None  # a catalogue key, filled with `note_values`
    note_values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    key: str
    points: list[tuple[str, int]]  # (label code or ISO date, value), in display order


FigureFunction = Callable[[OverviewRepository, Scope], Awaitable[Figure]]


def _share(part: int, whole: int) -> str:
    """A percentage with one decimal, computed in integers."""
    if whole <= 0:
        return "—"
    tenths = (part * 1000 + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}%"


def leverage_text(consumption: int, subsidy: int) -> str:
    """拉动比 as officials write it, "1 : 4.35": consumption driven per yuan of subsidy, rounded half
    up to two decimals in integers."""
    if subsidy <= 0:
        return "—"
    hundredths = (consumption * 100 * 2 + subsidy) // (subsidy * 2)
    return f"1 : {hundredths // 100}.{hundredths % 100:02d}"


def figure_text(figure: Figure) -> str:
    """A figure as the page writes it."""
    if figure.value is None:
        return "—"
    if figure.unit == "fen":
        return Fen(figure.value).format()
    if figure.unit == "percent":
        return _share(figure.value, figure.whole)
    if figure.unit == "ratio":
        return leverage_text(figure.value, figure.whole)
    return f"{figure.value:,}"


async def vouchers_released(repository: OverviewRepository, scope: Scope) -> Figure:
    released = await repository.released(scope.campaign_id, scope.now)
    return Figure("vouchers_released", released, note="figure.vouchers_released.note")


async def vouchers_claimed(repository: OverviewRepository, scope: Scope) -> Figure:
    claimed, _ = await repository.claimed(scope.campaign_id)
    released = await repository.released(scope.campaign_id, scope.now)
    return Figure(
        "vouchers_claimed",
        claimed,
        note="figure.vouchers_claimed.note",
        note_values={"rate": _share(claimed, released)},
    )


async def value_claimed(repository: OverviewRepository, scope: Scope) -> Figure:
    _, value = await repository.claimed(scope.campaign_id)
    return Figure("value_claimed", value, unit="fen", note="figure.value_claimed.note")


async def remaining_stock(repository: OverviewRepository, scope: Scope) -> Figure:
    left = await repository.stock_left(scope.campaign_id, scope.now, open_now=True)
    return Figure("remaining_stock", left, note="figure.remaining_stock.note")


async def upcoming_stock(repository: OverviewRepository, scope: Scope) -> Figure:
    left = await repository.stock_left(scope.campaign_id, scope.now, open_now=False)
    return Figure("upcoming_stock", left, note="figure.upcoming_stock.note")


async def _counted(repository: OverviewRepository, scope: Scope) -> list[StatusTotals]:
    totals = await repository.redemptions_by_status(scope.campaign_id)
    return [totals[status] for status in COUNTED if status in totals]


async def redemptions(repository: OverviewRepository, scope: Scope) -> Figure:
    counted = await _counted(repository, scope)
    pending = sum(row.count for row in counted if row.status == RedemptionStatus.PENDING_VERIFICATION)
    return Figure(
        "redemptions",
        sum(row.count for row in counted),
        note="figure.redemptions.note",
        note_values={"pending": f"{pending:,}"},
    )


async def redemption_rate(repository: OverviewRepository, scope: Scope) -> Figure:
    """核销率 = vouchers redeemed ÷ vouchers claimed (each counted redemption holds one voucher)."""
    counted = await _counted(repository, scope)
    claimed, _ = await repository.claimed(scope.campaign_id)
    return Figure(
        "redemption_rate",
        sum(row.count for row in counted),
        unit="percent",
        whole=claimed,
        note="figure.redemption_rate.note",
    )


async def subsidy(repository: OverviewRepository, scope: Scope) -> Figure:
    """补贴: the subsidy the vouchers pay on the purchases that stand, confirmed or awaiting the
    county's invoice check, net of what refunds returned."""
    counted = await _counted(repository, scope)
    pending = sum(row.subsidy for row in counted if row.status == RedemptionStatus.PENDING_VERIFICATION)
    return Figure(
        "subsidy",
        sum(row.subsidy for row in counted),
        unit="fen",
        note="figure.subsidy.note",
        note_values={"pending": Fen(pending).format()},
    )


async def consumption_driven(repository: OverviewRepository, scope: Scope) -> Figure:
    """拉动消费: what the purchases that used a voucher cost after the merchant's own discount (the
    payable amount), net of refunds."""
    counted = await _counted(repository, scope)
    return Figure(
        "consumption_driven",
        sum(row.consumption for row in counted),
        unit="fen",
        note="figure.consumption_driven.note",
    )


async def leverage(repository: OverviewRepository, scope: Scope) -> Figure:
    """拉动比 = consumption driven ÷ subsidy."""
    counted = await _counted(repository, scope)
    return Figure(
        "leverage",
        sum(row.consumption for row in counted),
        unit="ratio",
        whole=sum(row.subsidy for row in counted),
        note="figure.leverage.note",
    )


CLAIM_FIGURES: tuple[FigureFunction, ...] = (
    vouchers_released,
    vouchers_claimed,
    value_claimed,
    remaining_stock,
    upcoming_stock,
)
REDEMPTION_FIGURES: tuple[FigureFunction, ...] = (
    redemptions,
    redemption_rate,
    subsidy,
    consumption_driven,
    leverage,
)


async def claims_by_day(repository: OverviewRepository, scope: Scope) -> Series:
    """Vouchers claimed per Asia/Shanghai calendar day."""
    days = await repository.claims_by_day(scope.campaign_id)
    return Series("claims_by_day", [(day.isoformat(), count) for day, count in days])


async def claims_by_district(repository: OverviewRepository, scope: Scope) -> Series:
    """Vouchers claimed per district of the boundary file (where the resident was), all three shown."""
    counts = await repository.claims_by_district(scope.campaign_id)
    return Series(
        "claims_by_district", [(district.value, counts.get(district.value, 0)) for district in District]
    )


async def merchants_by_status(repository: OverviewRepository, scope: Scope) -> Series:
    """Merchants per lifecycle state, in lifecycle order, within the caller's jurisdictions."""
    counts = await repository.merchants_by_status(scope.campaign_id, scope.jurisdictions)
    return Series(
        "merchants_by_status", [(status.value, counts.get(status.value, 0)) for status in MerchantStatus]
    )


async def redemptions_by_day(repository: OverviewRepository, scope: Scope) -> Series:
    """Redemptions that stand, per local business day."""
    days = await repository.redemptions_by_day(scope.campaign_id)
    return Series("redemptions_by_day", [(day.isoformat(), count) for day, count in days])


async def redemptions_by_district(repository: OverviewRepository, scope: Scope) -> Series:
    """Redemptions that stand, per district of the merchant (高新区 and 临空经济区 count in 雁江区)."""
    by_jurisdiction = await repository.redemptions_by_jurisdiction(scope.campaign_id)
    counts = dict.fromkeys(District, 0)
    for code, count in by_jurisdiction.items():
        counts[Jurisdiction(code).district] += count
    return Series("redemptions_by_district", [(district.value, counts[district]) for district in District])


async def subsidy_by_status(repository: OverviewRepository, scope: Scope) -> list[StatusTotals]:
    """Every redemption status, in lifecycle order, with its count, subsidy and consumption."""
    totals = await repository.redemptions_by_status(scope.campaign_id)
    return [totals.get(status.value, StatusTotals(status.value, 0, 0, 0)) for status in RedemptionStatus]
