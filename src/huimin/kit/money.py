"""Money as integer fen (分), and shares as integer basis points.

Public money is counted exactly: a `Fen` is an `int` and arithmetic between `Fen`
values stays an exact `Fen`. Floats are refused at every door (parsing, construction,
multiplication), because 0.1 + 0.2 yuan must never become 0.30000000000000004.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, SupportsIndex

__all__ = ["BASIS_POINTS_WHOLE", "Fen", "MoneyFormatError", "parse_share", "split_by_shares"]

BASIS_POINTS_WHOLE = 10_000  # 100 % in basis points (万分之一)

_YUAN = re.compile(r"(?P<sign>-?)(?P<yuan>\d+)(?:\.(?P<fen>\d{1,2}))?")
_SHARE = re.compile(r"(?P<whole>\d{1,3})(?:\.(?P<frac>\d{1,2}))?%?")


class MoneyFormatError(ValueError):
    """A text that is not an exact amount of yuan (or an exact percentage)."""


class Fen(int):
    """An amount of money in fen (1 yuan = 100 fen). Exact, may be negative (a posting's debit side)."""

    __slots__ = ()

    def __new__(cls, value: SupportsIndex | str = 0) -> Fen:
        if isinstance(value, float):
            raise TypeError("Fen refuses floats: pass an int of fen or use Fen.parse_yuan('12.34')")
        if isinstance(value, str):
            # int('12.34') would fail obscurely; make the caller say which unit it means.
            raise TypeError("Fen(str) is ambiguous: use Fen.parse_yuan(text) for yuan")
        return super().__new__(cls, value.__index__())

    @classmethod
    def parse_yuan(cls, text: str) -> Fen:
        """Parse a yuan amount written exactly: "12.34", "80000000", "0.5", "-3".

        At most two decimals (fen are the smallest unit); no separators, no exponent, no currency sign.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected a string of yuan, got {type(text).__name__}")
        match = _YUAN.fullmatch(text.strip())
        if match is None:
            raise MoneyFormatError(
                f'{text!r} is not an amount of yuan: write digits with at most two decimals, e.g. "12.34"'
            )
        fen = int(match["yuan"]) * 100 + int((match["fen"] or "0").ljust(2, "0"))
        return cls(-fen if match["sign"] else fen)

    @classmethod
    def yuan(cls, whole_yuan: int) -> Fen:
        """A whole number of yuan."""
        return cls(whole_yuan * 100)

    def format(self) -> str:
        """ "¥12.34", "-¥0.05", "¥80,000,000.00"."""
        sign = "-" if self < 0 else ""
        yuan, fen = divmod(abs(int(self)), 100)
        return f"{sign}¥{yuan:,}.{fen:02d}"

    def to_yuan_text(self) -> str:
        """The exact yuan text that `parse_yuan` reads back: "12.34", "-0.05"."""
        sign = "-" if self < 0 else ""
        yuan, fen = divmod(abs(int(self)), 100)
        return f"{sign}{yuan}.{fen:02d}"

    def __repr__(self) -> str:
        return f"Fen({int(self)})"

    def __str__(self) -> str:
        return self.format()

    # Arithmetic that keeps the type. Mixing with plain ints is allowed (counts, fen literals);
    # mixing with floats is not.
    def __add__(self, other: Any) -> Fen:
        return Fen(int(self) + _as_int(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Fen:
        return Fen(int(self) - _as_int(other))

    def __rsub__(self, other: Any) -> Fen:
        return Fen(_as_int(other) - int(self))

    def __mul__(self, other: Any) -> Fen:
        return Fen(int(self) * _as_int(other))

    __rmul__ = __mul__

    def __neg__(self) -> Fen:
        return Fen(-int(self))

    def __abs__(self) -> Fen:
        return Fen(abs(int(self)))

    def __truediv__(self, other: Any) -> Any:
        raise TypeError(
            "Fen / x would produce a float: use split_by_shares or integer // with a rounding rule"
        )

    def mul_bp_floor(self, basis_points: int) -> Fen:
        """This amount times a share in basis points, rounded down to the fen (e.g. 10 % of ¥9.99 = ¥0.99)."""
        return Fen(int(self) * _as_int(basis_points) // BASIS_POINTS_WHOLE)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"money arithmetic takes ints or Fen only, not {type(value).__name__}")
    return int(value)


def parse_share(text: str | int) -> int:
    """Parse a percentage into basis points: "60" / "60%" -> 6000, "33.33%" -> 3333, 100 -> 10000."""
    if isinstance(text, bool | float):
        raise MoneyFormatError('write a share as a string such as "33.33%" or a whole number, not a float')
    if isinstance(text, int):
        text = str(text)
    match = _SHARE.fullmatch(text.strip())
    if match is None:
        raise MoneyFormatError(f'{text!r} is not a percentage: write e.g. "60%" or "33.33%"')
    basis_points = int(match["whole"]) * 100 + int((match["frac"] or "0").ljust(2, "0"))
    if basis_points > BASIS_POINTS_WHOLE:
        raise MoneyFormatError(f"{text!r} is more than 100 %")
    return basis_points


def split_by_shares(amount: Fen, shares_bp: Sequence[int]) -> list[Fen]:
    """Split an amount by shares (basis points summing to 100 %) so that the parts add up exactly.

    Largest remainder method: every part gets its floor, then the fen left over go one each to the
    parts with the largest remainders (earlier parts win ties), so the split is deterministic.
    """
    if sum(shares_bp) != BASIS_POINTS_WHOLE:
        raise ValueError(f"shares must sum to {BASIS_POINTS_WHOLE} basis points, got {sum(shares_bp)}")
    if any(share < 0 for share in shares_bp):
        raise ValueError("shares must not be negative")
    sign = -1 if amount < 0 else 1
    magnitude = abs(int(amount))
    floors = [magnitude * share // BASIS_POINTS_WHOLE for share in shares_bp]
    remainders = [magnitude * share % BASIS_POINTS_WHOLE for share in shares_bp]
    left = magnitude - sum(floors)
    for index in sorted(range(len(shares_bp)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return [Fen(sign * part) for part in floors]
