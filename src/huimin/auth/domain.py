"""Partner request signing (SPEC §11.5): pure functions, no framework.

A partner (the payment app, or a merchant's till terminal) signs every request that acts for a
resident or a terminal:

    X-Huimin-Signature = hex HMAC-SHA256(secret, METHOD + "\\n" + PATH + "\\n" + TIMESTAMP + "\\n"
                                                 + NONCE + "\\n" + hex SHA-256(body))

The timestamp (unix seconds) must be within ±300 s of the server's clock and a nonce may be used
once within that window, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from huimin.errors import HuiminError

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "PartnerKind",
    "SignatureRejected",
    "SignedRequest",
    "canonical_string",
    "check_freshness",
    "sign",
    "verify_signature",
]

CLOCK_SKEW_SECONDS = 300
_NONCE = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class PartnerKind(StrEnum):
    APP = "app"  # the payment app, acting for residents
    TERMINAL = "terminal"  # a merchant's till


class SignatureRejected(HuiminError):
    status = 401
    code = "bad_signature"


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    timestamp: str
    nonce: str
    body: bytes


def canonical_string(request: SignedRequest) -> str:
    body_hash = hashlib.sha256(request.body).hexdigest()
    return "\n".join((request.method.upper(), request.path, request.timestamp, request.nonce, body_hash))


def sign(secret: str, request: SignedRequest) -> str:
    return hmac.new(secret.encode(), canonical_string(request).encode(), hashlib.sha256).hexdigest()


def verify_signature(secret: str, request: SignedRequest, signature: str) -> None:
    if not _HEX64.fullmatch(signature):
        raise SignatureRejected(
            "X-Huimin-Signature must be 64 lower-case hex characters", code="bad_signature"
        )
    if not hmac.compare_digest(sign(secret, request), signature):
        raise SignatureRejected(
            "signature does not match: sign METHOD, PATH, TIMESTAMP, NONCE and the body's SHA-256 "
            "joined by newlines (see docs/partner-api.md)",
            code="bad_signature",
        )


def check_freshness(timestamp: str, nonce: str, *, now_unix: int) -> int:
    """Validate the timestamp and nonce shapes and the time window; return the timestamp."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected("X-Huimin-Timestamp must be unix seconds", code="bad_timestamp")
    if not _NONCE.fullmatch(nonce):
        raise SignatureRejected("X-Huimin-Nonce must be 16-64 characters of [A-Za-z0-9_-]", code="bad_nonce")
    value = int(timestamp)
    if abs(now_unix - value) > CLOCK_SKEW_SECONDS:
        raise SignatureRejected(
            f"X-Huimin-Timestamp is {value - now_unix:+d} s from the server's clock (allowed ±{CLOCK_SKEW_SECONDS} s)",
            code="stale_timestamp",
        )
    return value
