from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huimin.kit.money import BASIS_POINTS_WHOLE, Fen, MoneyFormatError, parse_share, split_by_shares


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.34", 1234),
        ("80000000", 8_000_000_000),
        ("0.5", 50),
        ("0.05", 5),
        ("0", 0),
        ("-3", -300),
        (" 7.10 ", 710),
        ("007", 700),
    ],
)
def test_parse_yuan_is_exact(text: str, fen: int) -> None:
    assert Fen.parse_yuan(text) == fen
    assert isinstance(Fen.parse_yuan(text), Fen)


@pytest.mark.parametrize("text", ["12.345", "1,000", "¥5", "1e3", "", ".5", "5.", "abc", "--1", "0.1.2"])
def test_parse_yuan_refuses_inexact_or_decorated_text(text: str) -> None:
    with pytest.raises(MoneyFormatError):
        Fen.parse_yuan(text)


def test_parsing_0_1_plus_0_2_yuan_is_exactly_0_3() -> None:
    assert Fen.parse_yuan("0.1") + Fen.parse_yuan("0.2") == Fen.parse_yuan("0.3")


@pytest.mark.parametrize(
    ("fen", "text"),
    [(1234, "¥12.34"), (5, "¥0.05"), (-5, "-¥0.05"), (8_000_000_000, "¥80,000,000.00"), (0, "¥0.00")],
)
def test_format(fen: int, text: str) -> None:
    assert Fen(fen).format() == text
    assert str(Fen(fen)) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_text_round_trips(fen: int) -> None:
    assert Fen.parse_yuan(Fen(fen).to_yuan_text()) == fen


def test_floats_are_refused_everywhere() -> None:
    with pytest.raises(TypeError):
        Fen(12.34)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Fen(100) + 0.5
    with pytest.raises(TypeError):
        Fen(100) * 1.5
    with pytest.raises(TypeError):
        Fen(100) / 3
    with pytest.raises(TypeError):
        Fen("12.34")  # type: ignore[arg-type]


def test_arithmetic_keeps_the_type() -> None:
    total = Fen(100) + Fen(250) - 50
    assert total == 300
    assert isinstance(total, Fen)
    assert isinstance(Fen(30) * 4, Fen)
    assert isinstance(-Fen(30), Fen)
    assert sum([Fen(1), Fen(2)], Fen(0)) == 3


def test_percentage_of_an_amount_rounds_down_to_the_fen() -> None:
    assert Fen(999).mul_bp_floor(1000) == 99  # 10 % of ¥9.99 is ¥0.99, not ¥1.00
    assert Fen(600_000).mul_bp_floor(1000) == 60_000


@pytest.mark.parametrize(
    ("text", "basis_points"), [("60", 6000), ("60%", 6000), ("33.33%", 3333), ("0.5%", 50), (100, 10000)]
)
def test_parse_share(text: str | int, basis_points: int) -> None:
    assert parse_share(text) == basis_points


@pytest.mark.parametrize("text", ["101%", "33.333%", "-5%", "half", 0.5])
def test_parse_share_refuses(text: str | float) -> None:
    with pytest.raises(MoneyFormatError):
        parse_share(text)  # type: ignore[arg-type]


def test_split_by_shares_gives_the_leftover_fen_to_the_largest_remainders() -> None:
    assert split_by_shares(Fen(100), [3333, 3333, 3334]) == [33, 33, 34]
    assert split_by_shares(Fen(1), [5000, 5000]) == [1, 0]  # ties go to the earlier share
    assert split_by_shares(Fen(-101), [5000, 5000]) == [-51, -50]


def test_split_by_shares_refuses_shares_not_summing_to_100_percent() -> None:
    with pytest.raises(ValueError, match="sum to 10000"):
        split_by_shares(Fen(100), [5000, 4000])


@st.composite
def _shares(draw: st.DrawFn) -> list[int]:
    cuts = sorted(draw(st.lists(st.integers(0, BASIS_POINTS_WHOLE), max_size=5)))
    bounds = [0, *cuts, BASIS_POINTS_WHOLE]
    return [high - low for low, high in itertools.pairwise(bounds)]


@given(st.integers(min_value=-(10**12), max_value=10**12), _shares())
def test_split_by_shares_is_exact_and_fair(amount: int, shares: list[int]) -> None:
    parts = split_by_shares(Fen(amount), shares)
    assert sum(parts) == amount
    for part, share in zip(parts, shares, strict=True):
        exact_times_whole = abs(amount) * share
        assert abs(abs(part) * BASIS_POINTS_WHOLE - exact_times_whole) < BASIS_POINTS_WHOLE
