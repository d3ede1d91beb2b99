"""What one voucher is worth on a purchase, per kind (the amount counted against the threshold)."""

from __future__ import annotations

import pytest

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
from huimin.kit.money import Fen
from huimin.kit.terms import Category


def make(kind: BatchKind, **values: object) -> Batch:
    return Batch(
        code="b",
        name="b",
        issuer=Issuer.GOVERNMENT,
        kind=kind,
        scope=Scope(categories=frozenset({Category.RETAIL})),
        validity=Validity(ValidityKind.DAYS_AFTER_CLAIM, days=7),
        funding=(FundingShare("fiscal", 10_000),),
        **values,  # type: ignore[arg-type]
    )


THRESHOLD = make(BatchKind.THRESHOLD, face_value=Fen.yuan(30), threshold=Fen.yuan(100))
FIXED = make(BatchKind.FIXED, face_value=Fen.yuan(10))
PERCENTAGE = make(BatchKind.PERCENTAGE, percent_bp=1000, cap=Fen.yuan(500), threshold=Fen.yuan(1000))
TIERED = make(
    BatchKind.TIERED,
    tiers=(
        PriceTier(Fen.yuan(50_000), Fen.yuan(100_000), Fen.yuan(2000)),
        PriceTier(Fen.yuan(100_000), None, Fen.yuan(3000)),
    ),
)


@pytest.mark.parametrize(
    ("batch", "amount_yuan", "subsidy_yuan"),
    [
        (THRESHOLD, "120", "30"),  # 满100减30 on ¥120
        (THRESHOLD, "100", "30"),  # exactly at the threshold
        (THRESHOLD, "99.99", "0"),  # one fen short
        (FIXED, "25", "10"),
        (FIXED, "6.50", "6.50"),  # never more than the purchase
        (PERCENTAGE, "1000", "100"),
        (PERCENTAGE, "6000", "500"),  # capped
        (PERCENTAGE, "999.99", "0"),  # below its minimum spend
        (PERCENTAGE, "1234.56", "123.45"),  # rounded down to the fen
        (TIERED, "49999.99", "0"),
        (TIERED, "50000", "2000"),
        (TIERED, "99999.99", "2000"),
        (TIERED, "100000", "3000"),
        (TIERED, "450000", "3000"),
    ],
)
def test_subsidy_for(batch: Batch, amount_yuan: str, subsidy_yuan: str) -> None:
    assert batch.subsidy_for(Fen.parse_yuan(amount_yuan)) == Fen.parse_yuan(subsidy_yuan)


def test_max_value_is_what_stock_reserves() -> None:
    assert THRESHOLD.max_value == Fen.yuan(30)
    assert PERCENTAGE.max_value == Fen.yuan(500)
    assert TIERED.max_value == Fen.yuan(3000)
