from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huimin.campaigns.domain import ValidityKind
from huimin.claims.domain import (
    RoundStatus,
    code_is_well_formed,
    format_code,
    new_voucher_code,
    normalise_code,
    round_status,
    valid_until,
)
from huimin.kit.ids import CROCKFORD

CLAIMED = datetime(2022, 6, 24, 2, 0, 5, tzinfo=UTC)  # Friday 10:00:05 in Ziyang
CAMPAIGN_CLOSE = datetime(2022, 12, 31, 16, 0, tzinfo=UTC)


def test_voucher_codes_are_long_random_and_checked() -> None:
    codes = {new_voucher_code() for _ in range(5000)}
    assert len(codes) == 5000
    for code in list(codes)[:100]:
        assert len(code) == 17
        assert code_is_well_formed(code)
    assert format_code("ABCDEFGHJKMNPQRS*") == "ABCD-EFGH-JKMN-PQRS-*"


@given(st.integers(min_value=0, max_value=15), st.sampled_from(CROCKFORD))
def test_a_single_mistyped_character_is_caught(position: int, replacement: str) -> None:
    code = new_voucher_code()
    typo = code[:position] + replacement + code[position + 1 :]
    if typo != code:
        assert not code_is_well_formed(typo)


def test_a_cashier_may_type_dashes_lower_case_and_confusable_letters() -> None:
    code = new_voucher_code()
    typed = format_code(code).lower().replace("1", "l").replace("0", "o")
    assert normalise_code(typed) == code


@pytest.mark.parametrize(
    ("kind", "days", "until", "expected"),
    [
        (
            ValidityKind.DAYS_AFTER_CLAIM,
            7,
            None,
            datetime(2022, 6, 30, 16, 0, tzinfo=UTC),
        ),  # end of Thursday 30 June
        (ValidityKind.DAYS_AFTER_CLAIM, 1, None, datetime(2022, 6, 24, 16, 0, tzinfo=UTC)),
        (ValidityKind.SAME_DAY, None, None, datetime(2022, 6, 24, 16, 0, tzinfo=UTC)),
        (ValidityKind.UNTIL, None, date(2022, 7, 31), datetime(2022, 7, 31, 16, 0, tzinfo=UTC)),
        (ValidityKind.DAYS_AFTER_CLAIM, 365, None, CAMPAIGN_CLOSE),  # never beyond the campaign
    ],
)
def test_valid_until(kind: ValidityKind, days: int | None, until: date | None, expected: datetime) -> None:
    assert (
        valid_until(CLAIMED, kind=kind, days=days, until=until, campaign_closes_at=CAMPAIGN_CLOSE) == expected
    )


def test_a_claim_late_at_night_utc_counts_the_local_day() -> None:
    late = datetime(2022, 6, 24, 17, 0, tzinfo=UTC)  # already Saturday 01:00 in Ziyang
    assert valid_until(
        late, kind=ValidityKind.SAME_DAY, days=None, until=None, campaign_closes_at=CAMPAIGN_CLOSE
    ) == datetime(2022, 6, 25, 16, 0, tzinfo=UTC)


def test_round_status() -> None:
    opens, closes = datetime(2022, 6, 24, 2, tzinfo=UTC), datetime(2022, 6, 24, 14, tzinfo=UTC)
    assert (
        round_status(opens, closes, 5, datetime(2022, 6, 24, 1, 59, 59, tzinfo=UTC)) is RoundStatus.SCHEDULED
    )
    assert round_status(opens, closes, 5, opens) is RoundStatus.OPEN
    assert round_status(opens, closes, 0, opens) is RoundStatus.SOLD_OUT
    assert round_status(opens, closes, 5, closes) is RoundStatus.CLOSED
