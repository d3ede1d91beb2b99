"""Reports (统计报表) as arithmetic: what one logged event adds to the figures, and the figures a set of
counts adds up to. Pure: standard library and `huimin.kit` only.

The rollup job reads the append-only event logs in order (`voucher_events`, `redemption_events`) and
turns each event into a delta of counts and sums (`VoucherMeasures`, `RedemptionMeasures`) added to
its bucket (campaign × local day × round × batch × …). A figure is a sum of buckets, never a scan of
the raw rows, so it costs the same with a hundred redemptions or ten million.

Definitions (SPEC §2, §7; the same as the console's overview and the demo's summary):

- claimed: vouchers issued (a voucher's first `claimed` event; a voucher restored by a refund or a
  rejected invoice is not issued again);
- redeemed: redemptions that stand: redeemed, less those whose invoice the county rejected and those
  refunded in full (a clawed-back redemption is taken out by the reader, see `Totals.less`);
- redemption rate 核销率 = redeemed ÷ claimed;
- subsidy: what the vouchers paid, net of the subsidy refunds returned; consumption driven: what the
  standing purchases cost after the merchant's own discount (voucher and resident together), net of
  refunds; leverage 拉动比 = consumption ÷ subsidy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Self

__all__ = [
    "Dimension",
    "Figures",
    "RedemptionFact",
    "RedemptionMeasures",
    "Totals",
    "VoucherFact",
    "VoucherMeasures",
    "ratio",
    "redemption_delta",
    "voucher_delta",
]


class _Measures:
    """Integer counts and fen sums that add up field by field."""

    def __add__(self, other: Self) -> Self:
        return type(self)(
            *(getattr(self, item.name) + getattr(other, item.name) for item in dataclasses.fields(self))  # type: ignore[arg-type]
        )

    def __sub__(self, other: Self) -> Self:
        return type(self)(
            *(getattr(self, item.name) - getattr(other, item.name) for item in dataclasses.fields(self))  # type: ignore[arg-type]
        )

    def values(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(item.name for item in dataclasses.fields(cls))  # type: ignore[arg-type]


@dataclass(frozen=True)
class VoucherMeasures(_Measures):
    """What happened to vouchers in one bucket (campaign, day, round, batch, claim district)."""

    issued: int = 0
    issued_fen: int = 0
    restored: int = 0  # back in the wallet after a full refund or a rejected invoice
    redeemed: int = 0  # gross: every `redeemed` event
    expired: int = 0
    expired_fen: int = 0
    recycled: int = 0  # expired value rolled into a later round
    recycled_fen: int = 0
    recovered: int = 0  # expired value returned to the funders at the campaign's end
    recovered_fen: int = 0
    reversed: int = 0
    revoked: int = 0
    settled: int = 0
    held: int = 0  # net flow into the wallet (state `claimed`): the sum over all days is what is held now
    held_fen: int = 0
    new_claimers: int = 0  # residents whose first claim of the campaign this was


@dataclass(frozen=True)
class RedemptionMeasures(_Measures):
    """What happened at the tills in one bucket (campaign, day, round, batch, jurisdiction, category,
    merchant class)."""

    redeemed: int = 0  # gross: every redemption
    order_fen: int = 0
    discount_fen: int = 0  # the merchants' own promotions the vouchers stacked with
    payable_fen: int = 0  # order − discount
    subsidy_fen: int = 0  # granted at the till
    big_ticket_subsidy_fen: int = 0  # granted pending the county's invoice check
    verified: int = 0
    verified_fen: int = 0
    rejected: int = 0
    rejected_payable_fen: int = 0
    rejected_discount_fen: int = 0
    rejected_subsidy_fen: int = 0
    refunds: int = 0
    refund_fen: int = 0
    refund_subsidy_fen: int = 0  # subsidy the refunds returned to the pool
    refunded_full: int = 0  # redemptions ended by a refund of the whole purchase
    new_spenders: int = 0  # residents whose first redemption of the campaign this was
    new_merchants: int = 0  # merchants whose first redemption of the campaign this was


@dataclass(frozen=True)
class VoucherFact:
    """A `voucher_events` row with its voucher's dimensions and the kind of the voucher's event before."""

    kind: str
    value_fen: int
    previous: str | None  # None: the voucher's first event (its issue)


def voucher_delta(fact: VoucherFact) -> VoucherMeasures:
    entering = fact.kind == "claimed"
    leaving = fact.previous == "claimed" and not entering
    held = int(entering) - int(leaving)
    value = fact.value_fen
    common = {"held": held, "held_fen": held * value}
    match fact.kind:
        case "claimed" if fact.previous is None:
            return VoucherMeasures(issued=1, issued_fen=value, **common)
        case "claimed":
            return VoucherMeasures(restored=1, **common)
        case "redeemed":
            return VoucherMeasures(redeemed=1, **common)
        case "expired":
            return VoucherMeasures(expired=1, expired_fen=value, **common)
        case "recycled":
            return VoucherMeasures(recycled=1, recycled_fen=value, **common)
        case "recovered":
            return VoucherMeasures(recovered=1, recovered_fen=value, **common)
        case "reversed":
            return VoucherMeasures(reversed=1, **common)
        case "revoked":
            return VoucherMeasures(revoked=1, **common)
        case "settled":
            return VoucherMeasures(settled=1, **common)
    return VoucherMeasures(**common)  # a kind added later: only its effect on the wallet counts


@dataclass(frozen=True)
class RedemptionFact:
    """A `redemption_events` row with its redemption's amounts.

    `amount_fen` and `subsidy_fen` are the event's: the payable amount and the subsidy for
    `redeemed`, the subsidy for `verified` and `rejected`, the refund and minus the returned subsidy
    for `refunded`. `refunded_through_fen` is the redemption's refunds up to and including this one."""

    kind: str
    amount_fen: int
    subsidy_fen: int
    order_fen: int
    discount_fen: int
    big_ticket: bool
    refunded_through_fen: int = 0

    @property
    def payable_fen(self) -> int:
        return self.order_fen - self.discount_fen


def redemption_delta(fact: RedemptionFact) -> RedemptionMeasures:
    match fact.kind:
        case "redeemed":
            return RedemptionMeasures(
                redeemed=1,
                order_fen=fact.order_fen,
                discount_fen=fact.discount_fen,
                payable_fen=fact.payable_fen,
                subsidy_fen=fact.subsidy_fen,
                big_ticket_subsidy_fen=fact.subsidy_fen if fact.big_ticket else 0,
            )
        case "verified":
            return RedemptionMeasures(verified=1, verified_fen=fact.amount_fen)
        case "rejected":
            return RedemptionMeasures(
                rejected=1,
                rejected_payable_fen=fact.payable_fen,
                rejected_discount_fen=fact.discount_fen,
                rejected_subsidy_fen=fact.amount_fen,
            )
        case "refunded":
            return RedemptionMeasures(
                refunds=1,
                refund_fen=fact.amount_fen,
                refund_subsidy_fen=-fact.subsidy_fen,
                refunded_full=int(fact.refunded_through_fen >= fact.payable_fen),
            )
    return RedemptionMeasures()


class Dimension(StrEnum):
    """What a breakdown groups by. Claims know day, round, batch and the district where the resident
    was; redemptions know day, round, batch, and the merchant's jurisdiction, category and class."""

    DAY = "day"
    WEEK = "week"
    ROUND = "round"
    BATCH = "batch"
    DISTRICT = "district"
    JURISDICTION = "jurisdiction"
    CATEGORY = "category"
    MERCHANT_CLASS = "merchant_class"

    @property
    def on_claims(self) -> bool:
        return self not in (Dimension.JURISDICTION, Dimension.CATEGORY, Dimension.MERCHANT_CLASS)


def ratio(numerator: int, denominator: int, *, places: int) -> Decimal | None:
    """numerator ÷ denominator, half-even to `places` decimals; None with nothing to divide by."""
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Totals:
    """The measures of a set of buckets, claims side and till side, and the clawed-back redemptions
    to take out (they held a voucher, but a cash-out is no consumption)."""

    vouchers: VoucherMeasures = VoucherMeasures()
    redemptions: RedemptionMeasures = RedemptionMeasures()
    clawed_back: int = 0
    clawed_back_payable_fen: int = 0
    clawed_back_subsidy_fen: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.vouchers + other.vouchers,
            self.redemptions + other.redemptions,
            self.clawed_back + other.clawed_back,
            self.clawed_back_payable_fen + other.clawed_back_payable_fen,
            self.clawed_back_subsidy_fen + other.clawed_back_subsidy_fen,
        )

    def figures(self, *, released: int | None = None, claims_known: bool = True) -> Figures:
        v, r = self.vouchers, self.redemptions
        redeemed = r.redeemed - r.rejected - r.refunded_full - self.clawed_back
        subsidy = r.subsidy_fen - r.rejected_subsidy_fen - r.refund_subsidy_fen - self.clawed_back_subsidy_fen
        pending = r.big_ticket_subsidy_fen - r.verified_fen - r.rejected_subsidy_fen
        consumption = r.payable_fen - r.rejected_payable_fen - r.refund_fen - self.clawed_back_payable_fen
        claimed = v.issued if claims_known else None
        return Figures(
            released=released,
            claimed=claimed,
            claimed_value_fen=v.issued_fen if claims_known else None,
            held=v.held if claims_known else None,
            held_fen=v.held_fen if claims_known else None,
            expired=v.expired if claims_known else None,
            recycled=v.recycled if claims_known else None,
            recovered_vouchers=v.recovered if claims_known else None,
            redeemed=redeemed,
            redemption_rate=None if claimed is None else ratio(redeemed, claimed, places=4),
            subsidy_fen=subsidy,
            subsidy_confirmed_fen=subsidy - pending,
            subsidy_pending_fen=pending,
            consumption_fen=consumption,
            leverage=ratio(consumption, subsidy, places=2),
            merchant_discounts_fen=r.discount_fen - r.rejected_discount_fen,
            refunds=r.refunds,
            refund_fen=r.refund_fen,
            refund_subsidy_fen=r.refund_subsidy_fen,
            invoices_verified=r.verified,
            invoices_rejected=r.rejected,
            clawed_back=self.clawed_back,
            clawed_back_subsidy_fen=self.clawed_back_subsidy_fen,
            residents_claiming=v.new_claimers if claims_known else None,
            residents_redeeming=r.new_spenders,
            merchants_redeeming=r.new_merchants,
        )


@dataclass(frozen=True)
class Figures:
    """The figures of SPEC §7 for one campaign, period or breakdown row. Money in fen; ratios Decimal.
    A claims-side figure is None where claims cannot be told apart (by the merchant's jurisdiction,
    category or class: a claim has no merchant yet)."""

    released: int | None
    claimed: int | None
    claimed_value_fen: int | None
    held: int | None  # claimed, not spent, not expired: in wallets now
    held_fen: int | None
    expired: int | None
    recycled: int | None
    recovered_vouchers: int | None
    redeemed: int
    redemption_rate: Decimal | None
    subsidy_fen: int
    subsidy_confirmed_fen: int
    subsidy_pending_fen: int
    consumption_fen: int
    leverage: Decimal | None
    merchant_discounts_fen: int
    refunds: int
    refund_fen: int
    refund_subsidy_fen: int
    invoices_verified: int
    invoices_rejected: int
    clawed_back: int
    clawed_back_subsidy_fen: int
    # Distinct participants, counted where each was first seen: exact for the whole campaign and for a
    # merchant's own jurisdiction, category or class; by day, the participants new that day.
    residents_claiming: int | None
    residents_redeeming: int
    merchants_redeeming: int
