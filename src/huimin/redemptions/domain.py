"""Pure rules of redemption at the till (核销): the arithmetic of a purchase, refunds, the statuses and
the refusals with their codes.

The arithmetic of a purchase (SPEC §4.9, seed 六(十): 政府消费券可与商家其他优惠活动同时享受):

- `order` is the till's amount before anything is taken off; `merchant_discount` is the merchant's own
  promotion; `payable = order - merchant_discount` is what the purchase costs after it.
- The threshold (满T) is met on `payable` when the batch says `threshold_after_discount` (the default,
  the seed's reading), otherwise on `order`.
- The voucher's value is computed on `payable` (a percentage of what is actually bought, a car's price
  band by the price actually paid) and never exceeds it: `subsidy = min(value, payable)`.
- The resident pays `payable - subsidy`.

Refunds give back part or all of `payable`. A refund returns the subsidy in proportion, computed on the
running total so that rounding never drifts: after refunding R of P in total, the subsidy returned so
far is `floor(S * R / P)`, and all of S once R = P.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from huimin.campaigns.domain import Batch, BatchKind
from huimin.errors import ConflictError, HuiminError, NotFound
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass

__all__ = [
    "HOLDS_VOUCHER",
    "REFUNDABLE",
    "Purchase",
    "RedemptionRefused",
    "RedemptionStatus",
    "RefundShare",
    "admits",
    "price",
    "refund_share",
]


class RedemptionStatus(StrEnum):
    """`pending_verification` (big-ticket, until the county verifies the invoices) → `confirmed` →
    `settled`; `confirmed` → `refunded` (in full; partial refunds keep it confirmed); a rejected
    invoice → `rejected`; fraud → `clawed_back`."""

    PENDING_VERIFICATION = "pending_verification"
    CONFIRMED = "confirmed"
    SETTLED = "settled"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    CLAWED_BACK = "clawed_back"


# The statuses in which a redemption holds its voucher: at most one such redemption per voucher.
HOLDS_VOUCHER = frozenset(
    {
        RedemptionStatus.PENDING_VERIFICATION,
        RedemptionStatus.CONFIRMED,
        RedemptionStatus.SETTLED,
        RedemptionStatus.CLAWED_BACK,
    }
)
REFUNDABLE = frozenset({RedemptionStatus.CONFIRMED, RedemptionStatus.SETTLED})


class RedemptionRefused:
    """Every refusal at the till, each with its stable code."""

    @staticmethod
    def unknown_voucher() -> HuiminError:
        return NotFound("no voucher with this code", code="unknown_voucher")

    @staticmethod
    def voucher_used() -> HuiminError:
        return ConflictError("this voucher has already been used", code="voucher_used")

    @staticmethod
    def voucher_expired(valid_until: datetime) -> HuiminError:
        return ConflictError(f"this voucher expired at {valid_until.isoformat()}", code="voucher_expired")

    @staticmethod
    def voucher_revoked() -> HuiminError:
        return ConflictError("this voucher has been revoked", code="voucher_revoked")

    @staticmethod
    def unknown_merchant(merchant_id: str) -> HuiminError:
        return NotFound(f"no merchant {merchant_id!r} in this voucher's campaign", code="unknown_merchant")

    @staticmethod
    def unknown_terminal(terminal_id: str) -> HuiminError:
        return HuiminError(
            f"terminal {terminal_id!r} is not registered to this merchant",
            code="unknown_terminal",
            status=403,
        )

    @staticmethod
    def merchant_not_active(status: str) -> HuiminError:
        return HuiminError(
            f"the merchant is {status}, only active merchants redeem vouchers",
            code="merchant_not_active",
            status=403,
        )

    @staticmethod
    def out_of_scope(what: str) -> HuiminError:
        return HuiminError(f"this voucher cannot be spent here: {what}", code="out_of_scope", status=403)

    @staticmethod
    def below_threshold(what: str) -> HuiminError:
        return HuiminError(what, code="below_threshold", status=422)

    @staticmethod
    def invoice_required() -> HuiminError:
        return HuiminError(
            "a big-ticket voucher needs the sales invoice (number and amount) and the tax invoice number",
            code="invoice_required",
            status=422,
        )

    @staticmethod
    def invoice_mismatch(invoice: Fen, payable: Fen) -> HuiminError:
        return HuiminError(
            f"the sales invoice is for {invoice.format()}, the purchase after discounts is {payable.format()}",
            code="invoice_mismatch",
            status=422,
        )

    @staticmethod
    def invoice_reused(number: str) -> HuiminError:
        return ConflictError(f"invoice {number} was already used in this campaign", code="invoice_reused")

    @staticmethod
    def one_voucher_per_purchase(order_ref: str) -> HuiminError:
        return ConflictError(
            f"order {order_ref} already carries a voucher: one voucher per purchase",
            code="one_voucher_per_purchase",
        )

    @staticmethod
    def merchant_daily_cap(limit: int) -> HuiminError:
        return ConflictError(
            f"this merchant has reached today's limit of {limit} vouchers of this batch",
            code="merchant_daily_cap",
        )

    @staticmethod
    def unknown_redemption(redemption_id: str) -> HuiminError:
        return NotFound(f"no redemption {redemption_id!r}", code="unknown_redemption")

    @staticmethod
    def not_refundable(status: str) -> HuiminError:
        return ConflictError(f"a {status} redemption cannot be refunded", code="not_refundable")

    @staticmethod
    def refund_exceeds_paid(asked: Fen, left: Fen) -> HuiminError:
        return HuiminError(
            f"a refund of {asked.format()} exceeds the {left.format()} not yet refunded",
            code="refund_exceeds_paid",
            status=422,
        )

    @staticmethod
    def not_pending(status: str) -> HuiminError:
        return ConflictError(f"the redemption is {status}, not pending verification", code="not_pending")


@dataclass(frozen=True)
class Purchase:
    """A purchase as the till reports it, and what the voucher makes of it."""

    order: Fen
    merchant_discount: Fen
    subsidy: Fen

    @property
    def payable(self) -> Fen:
        return Fen(self.order - self.merchant_discount)

    @property
    def resident_pays(self) -> Fen:
        return Fen(self.payable - self.subsidy)


def price(batch: Batch, *, order: Fen, merchant_discount: Fen) -> Purchase:
    """The subsidy of a voucher of `batch` on this purchase, or `below_threshold`.

    The caller has checked that 0 <= merchant_discount <= order (request validation)."""
    payable = Fen(order - merchant_discount)
    counted = payable if batch.threshold_after_discount else order
    if counted < batch.threshold:
        basis = "after the merchant's own discount" if batch.threshold_after_discount else "before discounts"
        raise RedemptionRefused.below_threshold(
            f"the purchase is {counted.format()} {basis}, the voucher needs at least {batch.threshold.format()}"
        )
    if batch.kind is BatchKind.TIERED:
        value = batch.subsidy_for(payable)
        if value == 0:
            raise RedemptionRefused.below_threshold(
                f"a purchase of {payable.format()} is in none of this voucher's price bands"
            )
    else:
        # The threshold is settled above; the value is computed on what is bought.
        value = _value_ignoring_threshold(batch, payable)
    subsidy = Fen(min(value, payable))
    if subsidy <= 0:
        raise RedemptionRefused.below_threshold("the purchase leaves nothing for the voucher to pay")
    return Purchase(order=order, merchant_discount=merchant_discount, subsidy=subsidy)


def _value_ignoring_threshold(batch: Batch, payable: Fen) -> Fen:
    match batch.kind:
        case BatchKind.THRESHOLD | BatchKind.FIXED:
            return batch.face_value or Fen(0)
        case BatchKind.PERCENTAGE:
            return Fen(min(payable.mul_bp_floor(batch.percent_bp or 0), batch.cap or 0))
        case _:  # pragma: no cover - tiered is handled by the caller
            raise ValueError(batch.kind)


def admits(
    batch: Batch,
    *,
    category: Category,
    merchant_category: Category,
    jurisdiction: Jurisdiction,
    merchant_class: MerchantClass,
) -> None:
    """The purchase is inside the batch's scope, or `out_of_scope` naming the first reason."""
    if category is not merchant_category:
        raise RedemptionRefused.out_of_scope(
            f"the merchant is registered for {merchant_category.value}, not {category.value}"
        )
    scope = batch.scope
    if category not in scope.categories:
        raise RedemptionRefused.out_of_scope(f"category {category.value} is not in the voucher's scope")
    if scope.jurisdictions and jurisdiction not in scope.jurisdictions:
        raise RedemptionRefused.out_of_scope(
            f"merchants of {jurisdiction.value} are not in the voucher's scope"
        )
    if scope.merchant_classes and merchant_class not in scope.merchant_classes:
        raise RedemptionRefused.out_of_scope(
            f"merchant class {merchant_class.value} is not in the voucher's scope"
        )


@dataclass(frozen=True)
class RefundShare:
    """What one refund gives back: the subsidy returned to the pool, and what the resident gets."""

    subsidy_returned: Fen
    resident_refund: Fen
    completes: bool  # the whole purchase is now refunded


def refund_share(
    purchase: Purchase, *, refunded_before: Fen, subsidy_returned_before: Fen, amount: Fen
) -> RefundShare:
    """The share of one refund of `amount` after `refunded_before` was already refunded."""
    left = Fen(purchase.payable - refunded_before)
    if amount <= 0:
        raise HuiminError("a refund must be positive", code="invalid_request", status=422)
    if amount > left:
        raise RedemptionRefused.refund_exceeds_paid(amount, left)
    refunded_after = refunded_before + amount
    returned_after = purchase.subsidy * refunded_after // purchase.payable
    returned = Fen(returned_after - subsidy_returned_before)
    return RefundShare(
        subsidy_returned=returned,
        resident_refund=Fen(amount - returned),
        completes=refunded_after == purchase.payable,
    )
