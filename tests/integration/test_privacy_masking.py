"""No clear personal data leaves the platform (SPEC §11.6, issue 9): with test data seeded from known
clear phone numbers, ID numbers and a bank account, the main API answers, console pages and XLSX
exports are searched for those values and for any 11-digit mobile number or 18-character ID number."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.complaints import service as complaints
from huimin.complaints.domain import Category
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import District
from huimin.merchants.domain import MerchantStatus
from huimin.supervision import service as supervision
from huimin.supervision.domain import FindingKind, Severity
from tests.console_helpers import PASSWORD, make_user, seed_claims
from tests.integration.complaint_helpers import CITY, HOTLINE, OPERATOR, REGULATOR, staff_app
from tests.integration.merchant_helpers import BANK_ACCOUNT, PHONE, merchant_in, new_campaign
from tests.integration.staff import as_
from tests.support import SignedClient, id_number, phone, resident_body

__all__ = ["staff_app"]

ROUND_OPEN = datetime(2022, 6, 24, 3, 0, tzinfo=UTC)
CALLER = "13987654321"
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ROUND_OPEN)


@pytest.fixture
def app(staff_app: FastAPI) -> FastAPI:
    return staff_app


def clear_values() -> list[str]:
    values = [PHONE, BANK_ACCOUNT, CALLER]
    for serial in (0, 1, 2, 10):
        values += [phone(serial), id_number(serial)]
    return values


def assert_masked(where: str, text: str) -> None:
    for value in clear_values():
        assert value not in text, f"{where} shows the clear value {value}"
    assert not MOBILE.search(text), f"{where} shows a mobile number: {MOBILE.search(text)}"
    assert not ID_NUMBER.search(text), f"{where} shows an ID number: {ID_NUMBER.search(text)}"


def xlsx_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return "\n".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())


async def test_no_clear_phone_or_id_number_in_answers_pages_and_exports(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: ManualClock,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 1)
    await seed_claims(sessions, settings, clock, campaign_id, {District.YANJIANG: 2, District.ANYUE: 1})
    city_user = await make_user(sessions, settings, clock, "city.wang", Role.CITY_ADMIN)
    sealer = partner_sealer(settings.secret_key.get_secret_value())
    async with unit_of_work(sessions) as session:
        partner = await create_partner(
            session, name="云闪付", kind=PartnerKind.APP, sealer=sealer, clock=clock
        )
        complaint = await complaints.register(
            session,
            principal=HOTLINE,
            category=Category.DISGUISED_PRICE_INCREASE,
            text="用券前先提价",
            merchant_id=merchant_id,
            phone=CALLER,
            hasher=settings.hasher,
            policy=complaints.ComplaintPolicy(),
            clock=clock,
        )
        finding = await supervision.record_finding(
            session,
            principal=REGULATOR,
            merchant_id=merchant_id,
            kind=FindingKind.PRICES,
            severity=Severity.MAJOR,
            description="明码标价不规范",
            complaint_id=complaint.id,
            clock=clock,
        )
    app_client = SignedClient(client, key_id=partner.partner.key_id, secret=partner.secret, clock=clock)
    registered = await app_client.post("/api/v1/residents", resident_body(10))
    assert registered.status_code in (200, 201), registered.text
    resident_id = registered.json()["resident_id"]
    answers: dict[str, httpx.Response] = {"POST /api/v1/residents": registered}
    mine = await app_client.post(
        f"/api/v1/residents/{resident_id}/complaints",
        {"category": "cannot_claim", "text": "领不到", "campaign_id": campaign_id},
    )
    answers["POST resident complaint"] = mine
    answers["GET wallet"] = await app_client.get(f"/api/v1/residents/{resident_id}/vouchers")
    answers["GET resident complaints"] = await app_client.get(f"/api/v1/residents/{resident_id}/complaints")

    staff_reads = {
        "/api/v1/rounds": CITY,
        "/api/v1/merchants": CITY,
        "/api/v1/announcements": CITY,
        "/api/v1/staff/merchants": CITY,
        f"/api/v1/staff/merchants/{merchant_id}": CITY,
        "/api/v1/staff/complaints": CITY,
        f"/api/v1/staff/complaints/{complaint.id}": CITY,
        f"/api/v1/staff/complaints/{mine.json()['id']}": OPERATOR,
        "/api/v1/staff/complaints/stats": CITY,
        f"/api/v1/staff/complaints?phone={CALLER}": CITY,
        "/api/v1/staff/inspections": CITY,
        f"/api/v1/staff/inspections/{finding.id}": CITY,
        "/api/v1/staff/inspections/inbox": CITY,
        "/api/v1/staff/dishonest-list": CITY,
    }
    for path, principal in staff_reads.items():
        answers[f"GET {path}"] = await client.get(path, headers=as_(principal))
    for where, answer in answers.items():
        assert answer.status_code in (200, 201), f"{where}: {answer.status_code} {answer.text}"
        assert_masked(where, answer.text)
    assert (
        answers[f"GET /api/v1/staff/complaints/{complaint.id}"].json()["complainant_phone_masked"]
        == "139****4321"
    )
    assert answers["GET /api/v1/staff/complaints?phone=" + CALLER].json()["total"] == 1
    # the scan reads surfaces that do show the data, masked
    assert "138****5678" in answers[f"GET /api/v1/staff/merchants/{merchant_id}"].text
    assert "138****0010" in answers["POST /api/v1/residents"].text

    exports = {
        "final list": f"/api/v1/staff/merchants/final-list.xlsx?campaign_id={campaign_id}",
        "sales ledger": f"/api/v1/staff/redemptions/sales-ledger.xlsx?campaign_id={campaign_id}",
    }
    for where, path in exports.items():
        export = await client.get(path, headers=as_(CITY))
        assert export.status_code == 200, f"{where}: {export.text}"
        text = xlsx_text(export.content)
        assert "<sheetData" in text
        assert_masked(f"the {where} export", text)

    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://huimin.test")
    async with browser:
        assert city_user.totp_secret is not None
        signed = await browser.post(
            "/api/v1/staff/sign-in",
            json={
                "username": "city.wang",
                "password": PASSWORD,
                "totp": pyotp.TOTP(city_user.totp_secret).at(clock.now()),
            },
        )
        assert signed.status_code == 200, signed.text
        for path in (
            "/console/overview",
            "/console/merchants",
            f"/console/merchants/{merchant_id}",
            "/console/merchants/final-list",
            "/console/users",
        ):
            page = await browser.get(path)
            assert page.status_code == 200, f"{path}: {page.status_code}"
            assert_masked(path, page.text)
            if path == f"/console/merchants/{merchant_id}":
                assert "138****5678" in page.text
