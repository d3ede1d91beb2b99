"""Test helpers: a small campaign file, residents, and an HTTP client that signs like a partner."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from huimin.auth.domain import SignedRequest, sign
from huimin.eligibility.identity import id_check_digit
from huimin.kit.clock import Clock

# Inside 雁江区 (Ziyang's city centre), GCJ-02; Chengdu's Tianfu Square is outside the city.
ZIYANG_CENTRE = {"lng": 104.6276, "lat": 30.1288, "crs": "gcj02"}
CHENGDU = {"lng": 104.0657, "lat": 30.6595, "crs": "gcj02"}


def small_campaign(
    *, stock: int = 100, per_round: int = 1, per_batch: int | None = None, code: str = "test-2022"
) -> str:
    """A campaign with one first-come round on Friday 2022-06-24 10:00-22:00 local (02:00-14:00 UTC),
    a general batch, a union batch and a lottery round for the union batch."""
    batch_total = f", per_person_total = {per_batch}" if per_batch else ""
    return f"""
[campaign]
code = "{code}"
name = "测试活动"
starts_on = 2022-06-01
ends_on = 2022-12-31
budget = "1000000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "900000"

[[funders]]
code = "union"
name = "工会"
kind = "union"
budget = "100000"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "30"
threshold = "100"
validity = {{ days_after_claim = 7 }}
funding = {{ fiscal = "100%" }}
scope = {{ categories = ["餐饮", "零售"] }}
limits = {{ per_person_per_round = {per_round}{batch_total} }}

[[batches]]
code = "union"
name = "工会普惠券"
issuer = "union"
kind = "threshold"
face_value = "20"
threshold = "50"
validity = {{ days_after_claim = 14 }}
funding = {{ union = "100%" }}
scope = {{ categories = ["餐饮"] }}

[[schedules]]
code = "friday"
every = "once"
at = 10:00:00
first = 2022-06-24
window_hours = 12
stock = {{ "general" = {stock}, "union" = {stock} }}

[[schedules]]
code = "later"
every = "once"
at = 10:00:00
first = 2022-07-01
window_hours = 12
stock = {{ "general" = {stock} }}
"""


def id_number(serial: int) -> str:
    """A well-formed resident ID number (GB 11643 check digit) for test person `serial`."""
    body = f"512002199001{serial % 28 + 1:02d}{serial % 1000:03d}"
    return body + id_check_digit(body)


def phone(serial: int) -> str:
    return f"138{serial:08d}"


def resident_body(serial: int, **overrides: Any) -> dict[str, Any]:
    return {
        "app_user_id": f"user-{serial}",
        "real_name_verified": True,
        "id_number": id_number(serial),
        "phone": phone(serial),
        "device_id": f"device-{serial}",
        **overrides,
    }


class SignedClient:
    """Signs each request as a partner would (docs/partner-api.md), with the app's clock."""

    def __init__(self, http: httpx.AsyncClient, *, key_id: str, secret: str, clock: Clock) -> None:
        self.http = http
        self.key_id = key_id
        self.secret = secret
        self.clock = clock

    def headers(self, method: str, path: str, body: bytes, **extra: str) -> dict[str, str]:
        timestamp = str(int(self.clock.now().timestamp()))
        nonce = secrets.token_hex(16)
        signature = sign(self.secret, SignedRequest(method, path, timestamp, nonce, body))
        return {
            "X-Huimin-Key": self.key_id,
            "X-Huimin-Timestamp": timestamp,
            "X-Huimin-Nonce": nonce,
            "X-Huimin-Signature": signature,
            "Content-Type": "application/json",
            **extra,
        }

    def h5_link(self, resident_id: str) -> str:
        """The signed link by which the app opens the resident's own page (console.resident_session)."""
        path = f"/h5/enter?resident_id={resident_id}"
        headers = self.headers("GET", path, b"")
        return (
            f"{path}&key={headers['X-Huimin-Key']}&ts={headers['X-Huimin-Timestamp']}"
            f"&nonce={headers['X-Huimin-Nonce']}&sig={headers['X-Huimin-Signature']}"
        )

    async def request(self, method: str, path: str, body: Any = None, **extra: str) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        return await self.http.request(
            method, path, content=content, headers=self.headers(method, path, content, **extra)
        )

    async def post(self, path: str, body: Any, **extra: str) -> httpx.Response:
        return await self.request("POST", path, body, **extra)

    async def get(self, path: str, **extra: str) -> httpx.Response:
        return await self.request("GET", path, None, **extra)
