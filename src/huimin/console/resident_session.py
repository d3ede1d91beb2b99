"""The resident page inside the payment app (云闪付 webview): how the app hands a resident over, and the
short session that follows.

The app already knows its user. To open the H5 page for them it signs a link exactly as it signs an
API request (docs/partner-api.md), with the signature in the query instead of headers:

    GET /h5/enter?resident_id=RES&key=KEY_ID&ts=UNIX&nonce=NONCE&sig=HEX

where the signed string is `GET`, the path with only `resident_id` in the query
(`/h5/enter?resident_id=RES`), the timestamp, the nonce and the SHA-256 of an empty body. The link is
good for ±300 s and once (its nonce is burned), like any signed request, so a copied link is useless.
The page then keeps a cookie of its own: the resident and the partner, sealed with an HMAC of the
platform's secret key, valid for 30 minutes, readable by no script and sent to no other site. Its
forms carry a token derived from the cookie (a CSRF check with no server-side state).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from huimin.auth.domain import PartnerKind, SignedRequest
from huimin.auth.service import NonceStore, PartnerKeys, authenticate
from huimin.errors import HuiminError
from huimin.kit.clock import Clock

__all__ = ["RESIDENT_COOKIE", "ResidentSession", "enter", "open_session", "seal"]

RESIDENT_COOKIE = "h5_resident"
LIFETIME = timedelta(minutes=30)


@dataclass(frozen=True)
class ResidentSession:
    partner_id: str
    resident_id: str
    expires_unix: int
    csrf_token: str


def _mac(secret: str, purpose: str, text: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}\n{text}".encode(), hashlib.sha256).hexdigest()


async def enter(
    *,
    keys: PartnerKeys,
    nonces: NonceStore,
    resident_id: str,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    clock: Clock,
) -> str:
    """Check the app's signed link; returns the partner id that vouches for the resident."""
    partner = await authenticate(
        keys=keys,
        nonces=nonces,
        key_id=key_id,
        timestamp=timestamp,
        nonce=nonce,
        signature=signature,
        request=SignedRequest(
            method="GET",
            path=f"/h5/enter?resident_id={resident_id}",
            timestamp=timestamp or "",
            nonce=nonce or "",
            body=b"",
        ),
        clock=clock,
    )
    if partner.kind is not PartnerKind.APP:
        raise HuiminError(
            "only the payment app may open the resident page", code="wrong_partner_kind", status=403
        )
    return partner.id


def seal(secret: str, *, partner_id: str, resident_id: str, now: datetime) -> str:
    """The cookie's value: who, until when, and the MAC over both."""
    expires = int((now + LIFETIME).timestamp())
    body = base64.urlsafe_b64encode(f"{partner_id}\n{resident_id}\n{expires}".encode()).decode().rstrip("=")
    return f"{body}.{_mac(secret, 'h5-session', body)}"


def open_session(secret: str, cookie: str | None, *, now: datetime) -> ResidentSession | None:
    """The session a cookie holds, or None when it is missing, forged or expired."""
    if not cookie or "." not in cookie:
        return None
    body, _, mac = cookie.rpartition(".")
    if not hmac.compare_digest(mac, _mac(secret, "h5-session", body)):
        return None
    try:
        partner_id, resident_id, expires = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        )
        expires_unix = int(expires)
    except ValueError:
        return None
    if expires_unix <= now.timestamp():
        return None
    return ResidentSession(
        partner_id=partner_id,
        resident_id=resident_id,
        expires_unix=expires_unix,
        csrf_token=_mac(secret, "h5-csrf", body)[:32],
    )
