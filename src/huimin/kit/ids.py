"""Identifiers: prefixed, time-ordered, unguessable.

`new_id("cmp")` -> "cmp_01J9ZQ4V8K3M2N7P5R6S8T0VWX": 48 bits of milliseconds then 80 random bits in
Crockford base32 (the ULID layout), so ids sort by creation time, index well as primary keys and
cannot be enumerated. The prefix says what the id names, which catches ids passed to the wrong place.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import UTC, datetime

__all__ = ["CROCKFORD", "is_id", "new_id"]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PREFIX = re.compile(r"[a-z]{2,5}")
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


def new_id(prefix: str, *, at: datetime | None = None) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix must be 2-5 lower-case letters, got {prefix!r}")
    # Ids order rows, they are not business time: the system clock is right here even under a
    # simulated campaign clock, because uniqueness only needs the random part.
    instant = at or datetime.now(UTC)
    millis = int(instant.timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_base32(value)}"


def is_id(value: str, prefix: str) -> bool:
    head, _, body = value.partition("_")
    return head == prefix and len(body) == 26 and all(char in CROCKFORD for char in body)


def _base32(value: int) -> str:
    """The 128-bit value as 26 Crockford base32 digits, most significant first: RFC 4648 base32 of the
    value shifted to the top of 17 bytes, its first 26 symbols (130 bits: two zero bits, the value)
    translated to Crockford's alphabet. One C call instead of a Python loop of 26 steps."""
    return base64.b32encode((value << 6).to_bytes(17, "big"))[:26].translate(_TO_CROCKFORD).decode("ascii")
