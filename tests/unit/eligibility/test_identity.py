from __future__ import annotations

import pytest

from huimin.eligibility.identity import id_number_problem, phone_problem
from tests.support import id_number


@pytest.mark.parametrize("serial", range(0, 200, 7))
def test_generated_id_numbers_are_valid(serial: int) -> None:
    assert id_number_problem(id_number(serial)) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("11010519491231002X", None),  # the standard's own example
        ("11010519491231002x", None),  # lower-case x is the same
        ("110105194912310021", "check digit does not match (GB 11643)"),
        ("1101051949123100", "must be 18 characters: 17 digits and a check digit or X"),
        ("110105194913310021", "birth date is not a date"),
    ],
)
def test_id_numbers(value: str, problem: str | None) -> None:
    assert id_number_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("13812345678", True),
        ("+8613812345678", True),
        ("138 1234 5678", True),
        ("12812345678", False),
        ("1381234567", False),
    ],
)
def test_phones(value: str, ok: bool) -> None:
    assert (phone_problem(value) is None) is ok
