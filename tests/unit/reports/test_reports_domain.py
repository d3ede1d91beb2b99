"""What each logged event adds to the figures, and the figures a sum of buckets gives: pure arithmetic."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from huimin.reports.domain import (
    RedemptionFact,
    RedemptionMeasures,
    Totals,
    VoucherFact,
    VoucherMeasures,
    ratio,
    redemption_delta,
    voucher_delta,
)


def test_a_vouchers_life_in_the_wallet() -> None:
    issued = voucher_delta(VoucherFact("claimed", 3_000, previous=None))
    assert (issued.issued, issued.issued_fen, issued.held, issued.held_fen) == (1, 3_000, 1, 3_000)
    spent = voucher_delta(VoucherFact("redeemed", 3_000, previous="claimed"))
    assert (spent.redeemed, spent.held, spent.held_fen) == (1, -1, -3_000)
    restored = voucher_delta(VoucherFact("claimed", 3_000, previous="redeemed"))  # a full refund
    assert (restored.issued, restored.restored, restored.held) == (0, 1, 1)
    expired = voucher_delta(VoucherFact("expired", 3_000, previous="claimed"))
    recycled = voucher_delta(VoucherFact("recycled", 3_000, previous="expired"))
    total = issued + spent + restored + expired + recycled
    assert (total.issued, total.held, total.held_fen, total.expired, total.recycled) == (1, 0, 0, 1, 1)
    assert voucher_delta(VoucherFact("settled", 3_000, previous="redeemed")).held == 0
    assert voucher_delta(VoucherFact("revoked", 3_000, previous="claimed")).held == -1
    assert voucher_delta(VoucherFact("revoked", 3_000, previous="redeemed")).held == 0


def _sale(**amounts: int) -> RedemptionMeasures:
    return redemption_delta(
        RedemptionFact(
            kind="redeemed",
            amount_fen=10_500,
            subsidy_fen=3_000,
            order_fen=12_000,
            discount_fen=1_500,
            big_ticket=False,
            **amounts,
        )
    )


def _refund(amount: int, returned: int, through: int) -> RedemptionMeasures:
    return redemption_delta(
        RedemptionFact(
            kind="refunded",
            amount_fen=amount,
            subsidy_fen=-returned,
            order_fen=12_000,
            discount_fen=1_500,
            big_ticket=False,
            refunded_through_fen=through,
        )
    )


def test_the_worked_refund_example_of_docs_redemptions() -> None:
    # ¥105 paid with a ¥30 voucher; ¥50 refunded returns ¥14.28, the remaining ¥55 returns ¥15.72
    partial = Totals(redemptions=_sale() + _refund(5_000, 1_428, 5_000)).figures()
    assert (partial.redeemed, partial.subsidy_fen, partial.consumption_fen) == (1, 1_572, 5_500)
    full = Totals(
        redemptions=_sale() + _refund(5_000, 1_428, 5_000) + _refund(5_500, 1_572, 10_500)
    ).figures()
    assert (full.redeemed, full.subsidy_fen, full.consumption_fen, full.refunds) == (0, 0, 0, 2)


def test_a_big_ticket_sale_pending_verified_and_rejected() -> None:
    car = RedemptionFact("redeemed", 8_000_000, 200_000, 8_000_000, 0, big_ticket=True)
    pending = Totals(redemptions=redemption_delta(car)).figures()
    assert (pending.subsidy_pending_fen, pending.subsidy_confirmed_fen) == (200_000, 0)
    verified = redemption_delta(RedemptionFact("verified", 200_000, 0, 8_000_000, 0, big_ticket=True))
    confirmed = Totals(redemptions=redemption_delta(car) + verified).figures()
    assert (confirmed.subsidy_pending_fen, confirmed.subsidy_confirmed_fen) == (0, 200_000)
    rejected = redemption_delta(RedemptionFact("rejected", 200_000, -200_000, 8_000_000, 0, big_ticket=True))
    gone = Totals(redemptions=redemption_delta(car) + rejected).figures()
    assert (gone.redeemed, gone.subsidy_fen, gone.consumption_fen, gone.subsidy_pending_fen) == (0, 0, 0, 0)


def test_ratios_are_decimals_rounded_half_even_and_none_without_a_denominator() -> None:
    assert ratio(1, 3, places=4) == Decimal("0.3333")
    assert ratio(5, 8, places=2) == Decimal("0.62")  # 0.625 to even
    assert ratio(1, 0, places=2) is None
    figures = Totals(vouchers=VoucherMeasures(issued=4)).figures(claims_known=False)
    assert (figures.claimed, figures.redemption_rate, figures.leverage) == (None, None, None)


@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(0, 9_999)), max_size=30))
def test_buckets_add_up_in_any_grouping(sales: list[tuple[int, int]]) -> None:
    deltas = [
        redemption_delta(
            RedemptionFact("redeemed", order, min(order, 100), order + discount, discount, False)
        )
        for order, discount in sales
    ]
    whole = sum(deltas, RedemptionMeasures())
    halves = sum(deltas[::2], RedemptionMeasures()) + sum(deltas[1::2], RedemptionMeasures())
    assert whole == halves
    assert Totals(redemptions=whole).figures().consumption_fen == sum(order for order, _ in sales)
