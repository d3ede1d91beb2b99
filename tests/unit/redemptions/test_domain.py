"""The arithmetic of a purchase with a voucher and the merchant's own discount, and of refunds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huimin.campaigns.domain import (
    Batch,
    BatchKind,
    FundingShare,
    Issuer,
    PriceTier,
    Scope,
    Validity,
    ValidityKind,
)
from huimin.errors import HuiminError
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.redemptions.domain import Purchase, admits, price, refund_share


def batch(kind: BatchKind = BatchKind.THRESHOLD, **changes: object) -> Batch:
    fields: dict[str, object] = {
        "code": "b",
        "name": "b",
        "issuer": Issuer.GOVERNMENT,
        "kind": kind,
        "scope": Scope(categories=frozenset({Category.CATERING})),
        "validity": Validity(ValidityKind.DAYS_AFTER_CLAIM, days=7),
        "funding": (FundingShare("fiscal", 10_000),),
        "face_value": Fen.yuan(30),
        "threshold": Fen.yuan(100),
        **changes,
    }
    return Batch(**fields)  # type: ignore[arg-type]


def test_100_minus_30_on_120_with_15_off_leaves_75_to_pay() -> None:
    purchase = price(batch(), order=Fen.yuan(120), merchant_discount=Fen.yuan(15))
    assert (purchase.payable, purchase.subsidy, purchase.resident_pays) == (
        Fen.yuan(105),
        Fen.yuan(30),
        Fen.yuan(75),
    )


def test_100_minus_30_on_120_with_25_off_misses_the_threshold() -> None:
    with pytest.raises(HuiminError) as refused:
        price(batch(), order=Fen.yuan(120), merchant_discount=Fen.yuan(25))
    assert refused.value.code == "below_threshold"


def test_a_batch_may_count_its_threshold_before_the_discount() -> None:
    purchase = price(
        batch(threshold_after_discount=False), order=Fen.yuan(120), merchant_discount=Fen.yuan(25)
    )
    assert (purchase.subsidy, purchase.resident_pays) == (Fen.yuan(30), Fen.yuan(65))


def test_a_fixed_voucher_never_pays_more_than_the_bill() -> None:
    fixed = batch(BatchKind.FIXED, threshold=Fen(0), face_value=Fen.yuan(20))
    purchase = price(fixed, order=Fen.yuan(12), merchant_discount=Fen.yuan(2))
    assert (purchase.subsidy, purchase.resident_pays) == (Fen.yuan(10), Fen(0))


def test_a_percentage_voucher_takes_its_share_of_what_is_bought_up_to_its_cap() -> None:
    percentage = batch(
        BatchKind.PERCENTAGE, face_value=None, threshold=Fen(0), percent_bp=1_000, cap=Fen.yuan(50)
    )
    assert price(percentage, order=Fen(29_999), merchant_discount=Fen(0)).subsidy == Fen(2_999)  # floor
    assert price(percentage, order=Fen.yuan(800), merchant_discount=Fen(0)).subsidy == Fen.yuan(50)


def test_a_car_voucher_is_worth_its_price_band_after_discount() -> None:
    tiers = (
        PriceTier(Fen.yuan(50_000), Fen.yuan(100_000), Fen.yuan(2_000)),
        PriceTier(Fen.yuan(100_000), None, Fen.yuan(5_000)),
    )
    cars = batch(BatchKind.TIERED, face_value=None, threshold=Fen(0), tiers=tiers)
    # 102,000 list price with 3,000 off is 99,000: the lower band
    assert price(cars, order=Fen.yuan(102_000), merchant_discount=Fen.yuan(3_000)).subsidy == Fen.yuan(2_000)
    with pytest.raises(HuiminError) as refused:
        price(cars, order=Fen.yuan(40_000), merchant_discount=Fen(0))
    assert refused.value.code == "below_threshold"


@pytest.mark.parametrize(
    ("scope", "category", "merchant_category", "jurisdiction", "merchant_class"),
    [
        (
            Scope(frozenset({Category.CATERING})),
            Category.RETAIL,
            Category.CATERING,
            Jurisdiction.YANJIANG,
            MerchantClass.ABOVE_QUOTA,
        ),
        (
            Scope(frozenset({Category.CATERING})),
            Category.RETAIL,
            Category.RETAIL,
            Jurisdiction.YANJIANG,
            MerchantClass.ABOVE_QUOTA,
        ),
        (
            Scope(frozenset({Category.CATERING}), jurisdictions=frozenset({Jurisdiction.ANYUE})),
            Category.CATERING,
            Category.CATERING,
            Jurisdiction.LEZHI,
            MerchantClass.ABOVE_QUOTA,
        ),
        (
            Scope(frozenset({Category.CATERING}), merchant_classes=frozenset({MerchantClass.ABOVE_QUOTA})),
            Category.CATERING,
            Category.CATERING,
            Jurisdiction.LEZHI,
            MerchantClass.BELOW_QUOTA_SAMPLED,
        ),
    ],
)
def test_out_of_scope(
    scope: Scope,
    category: Category,
    merchant_category: Category,
    jurisdiction: Jurisdiction,
    merchant_class: MerchantClass,
) -> None:
    with pytest.raises(HuiminError) as refused:
        admits(
            batch(scope=scope),
            category=category,
            merchant_category=merchant_category,
            jurisdiction=jurisdiction,
            merchant_class=merchant_class,
        )
    assert refused.value.code == "out_of_scope"


def test_refunding_50_of_105_returns_14_28_of_a_30_subsidy() -> None:
    purchase = Purchase(order=Fen.yuan(120), merchant_discount=Fen.yuan(15), subsidy=Fen.yuan(30))
    share = refund_share(
        purchase, refunded_before=Fen(0), subsidy_returned_before=Fen(0), amount=Fen.yuan(50)
    )
    assert (share.subsidy_returned, share.resident_refund, share.completes) == (Fen(1_428), Fen(3_572), False)


@given(
    payable=st.integers(min_value=1, max_value=10_000_000),
    subsidy_permille=st.integers(min_value=1, max_value=1000),
    cuts=st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=8),
)
def test_refunds_in_any_pieces_return_exactly_the_subsidy_and_never_more_than_paid(
    payable: int, subsidy_permille: int, cuts: list[int]
) -> None:
    subsidy = max(1, payable * subsidy_permille // 1000)
    purchase = Purchase(order=Fen(payable), merchant_discount=Fen(0), subsidy=Fen(subsidy))
    refunded, returned, given_back = Fen(0), Fen(0), Fen(0)
    for cut in cuts:
        amount = Fen(min(cut, payable - refunded))
        if amount == 0:
            break
        share = refund_share(
            purchase, refunded_before=refunded, subsidy_returned_before=returned, amount=amount
        )
        assert 0 <= share.subsidy_returned <= amount
        refunded, returned, given_back = (
            refunded + amount,
            returned + share.subsidy_returned,
            given_back + share.resident_refund,
        )
    last = Fen(payable - refunded)
    if last:
        share = refund_share(
            purchase, refunded_before=refunded, subsidy_returned_before=returned, amount=last
        )
        returned, given_back = returned + share.subsidy_returned, given_back + share.resident_refund
        assert share.completes
    assert returned == subsidy
    assert given_back == purchase.resident_pays
    with pytest.raises(HuiminError) as refused:
        refund_share(
            purchase, refunded_before=Fen(payable), subsidy_returned_before=Fen(subsidy), amount=Fen(1)
        )
    assert refused.value.code == "refund_exceeds_paid"
