"""The overview's figures, one function each: `(repository, scope) -> Figure | Series`.

A figure that the platform cannot compute yet (redemptions, subsidy and leverage wait for the
redemptions and ledger packages) answers `value=None` with a note, and the page shows "—". When its
data exists, the figure's function is the one place to change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from huimin.console.repository import OverviewRepository
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants.domain import MerchantStatus

__all__ = [
    "CLAIM_FIGURES",
    "REDEMPTION_FIGURES",
    "Figure",
    "Scope",
    "Series",
    "claims_by_day",
    "claims_by_district",
    "merchants_by_status",
]

Unit = Literal["count", "fen", "basis_points"]


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
    note: str | None = None  # a catalogue key, filled with `note_values`
    note_values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    key: str
    points: list[tuple[str, int]]  # (label code or ISO date, value), in display order


FigureFunction = Callable[[OverviewRepository, Scope], Awaitable[Figure]]

_PENDING = "figure.pending_redemptions"


def _share(part: int, whole: int) -> str:
    """A percentage with one decimal, computed in integers."""
    if whole <= 0:
        return "—"
    tenths = (part * 1000 + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}%"


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


async def redemptions(repository: OverviewRepository, scope: Scope) -> Figure:
    return Figure("redemptions", None, note=_PENDING)


async def redemption_rate(repository: OverviewRepository, scope: Scope) -> Figure:
    return Figure("redemption_rate", None, unit="basis_points", note=_PENDING)


async def subsidy_paid(repository: OverviewRepository, scope: Scope) -> Figure:
    return Figure("subsidy_paid", None, unit="fen", note=_PENDING)


async def consumption_driven(repository: OverviewRepository, scope: Scope) -> Figure:
    return Figure("consumption_driven", None, unit="fen", note=_PENDING)


async def leverage(repository: OverviewRepository, scope: Scope) -> Figure:
    return Figure("leverage", None, unit="basis_points", note=_PENDING)


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
    subsidy_paid,
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
