"""Identity rules (pure): resident ID numbers (GB 11643) and mainland mobile numbers.

One natural person = one identity (SPEC §4.8): the same ID number or the same phone number under
another app account is the same person for every limit. Device ids are not identity: families share
phones, so a shared device is evidence for the device-farm risk rule, not a reason to merge people.
"""

from __future__ import annotations

import re

from huimin.kit.hashing import normalise_identifier

__all__ = ["id_check_digit", "id_number_problem", "normalise_phone", "phone_problem"]

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"\d{17}[\dX]")
_PHONE = re.compile(r"1[3-9]\d{9}")


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits of a resident ID number."""
    return _ID_CHECK[
        sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True)) % 11
    ]


def id_number_problem(value: str) -> str | None:
    """Why a resident ID number (居民身份证号码) is invalid, or None when it is valid."""
    clean = normalise_identifier(value)
    if not _ID_SHAPE.fullmatch(clean):
        return "must be 18 characters: 17 digits and a check digit or X"
    if clean[-1] != id_check_digit(clean[:17]):
        return "check digit does not match (GB 11643)"
    month, day = int(clean[10:12]), int(clean[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return "birth date is not a date"
    return None


def normalise_phone(value: str) -> str:
    return normalise_identifier(value).removeprefix("+86")


def phone_problem(value: str) -> str | None:
    """Why a mainland mobile number is invalid, or None when it is valid."""
    return None if _PHONE.fullmatch(normalise_phone(value)) else "must be an 11-digit mainland mobile number"
