"""The console's settlement (结算), reports (报表) and audit log (审计日志) pages through HTTP, on SQLite and
PostgreSQL: a day's run prepared by the operator, approved by finance (never by its preparer), its
clearing file, the bank's answer uploaded, the reconciliation, the recovery requested and approved;
the reports with every export and the summary; the audit trail searched and its chain verified. Each
page in Chinese and English for the roles that may open it, refused for the others; every page and
export free of a clear phone or ID number. (The authorization matrix of test_console_pages.py walks
these pages with every role too.)"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit import service as audit
from huimin.audit.models import AuditRecordRow
from huimin.auth.accounts import NewUser
from huimin.auth.principals import Role
from huimin.claims.flows import expire_and_recycle
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.reports import rollup
from huimin.settlement.models import RecoveryRow, SettlementRunRow
from tests.console_helpers import make_user
from tests.integration.merchant_helpers import BANK_ACCOUNT, PHONE
from tests.integration.test_console_pages import Browser, assert_page_is_clean, signed_in
from tests.integration.till import Till, fund, open_till

SECRET = "test-secret-key-for-merchant-tests-0123456789"  # merchant_helpers seals bank accounts with it
SATURDAY = datetime(2022, 6, 25, 1, 0, tzinfo=UTC)  # 09:00 Beijing time: Friday 2022-06-24 is due (T+1)
AFTER_THE_END = datetime(2023, 1, 2, 1, 0, tzinfo=UTC)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A clear mainland phone number, or an 18-character ID number (region, date of birth, serial, check
# character: a merchant's 18-character credit code, public business data, is not one), not inside a
# longer run of digits.
CLEAR_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
CLEAR_ID = re.compile(
    r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=SecretStr(SECRET))


@dataclass
class Desk:
    """A funded campaign with a day of redemptions at three counties' shops, and signed-in officials."""

    app: FastAPI
    till: Till
    users: dict[str, NewUser]
    browsers: dict[str, Browser] = field(default_factory=dict)

    @property
    def user_ids(self) -> dict[str, str]:
        return {name: user.user.id for name, user in self.users.items()}

    async def sign_in(self) -> dict[str, Browser]:
        """Everyone signs in (again after the clock moved on by days: that ends the sessions)."""
        self.browsers = {
            name: await signed_in(self.app, user, self.till.clock) for name, user in self.users.items()
        }
        return self.browsers


@pytest.fixture
async def desk(
    app: FastAPI,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Desk:
    till = await open_till(client, sessions, settings, clock)
    await fund(sessions, till, clock)
    for merchant, category, order in (
        ("catering", "catering", 12_000),
        ("catering", "catering", 20_000),
        ("retail", "retail", 15_000),
        ("catering_2", "catering", 18_000),  # 乐至县
        ("anyue_above", "catering", 16_000),  # 安岳县
    ):
        voucher = await till.voucher()
        body = till.body(voucher, merchant, category=category, order_amount_fen=order)
        response = await till.redeem(body)
        assert response.status_code == 201, response.text
    await till.voucher()  # claimed, never spent: it expires and is recovered
    people = {
        "operator": (Role.OPERATOR, None),
        "finance": (Role.FINANCE, None),
        "finance_2": (Role.FINANCE, None),
        "city": (Role.CITY_ADMIN, None),
        "county": (Role.COUNTY_REVIEWER, Jurisdiction.YANJIANG),
        "police": (Role.POLICE, None),
    }
    users = {}
    for name, (role, jurisdiction) in people.items():
        users[name] = await make_user(
            sessions,
            settings,
            clock,
            f"desk.{name}",
            role,
            display_name=f"用户{name}",
            jurisdiction=jurisdiction,
        )
    clock.set(SATURDAY)  # Friday 2022-06-24 is due for settlement (T+1)
    desk = Desk(app, till, users)
    await desk.sign_in()
    return desk


def assert_no_clear_personal_data(text: str, where: str) -> None:
    assert not CLEAR_PHONE.search(text), (where, CLEAR_PHONE.search(text))
    assert not CLEAR_ID.search(text), (where, CLEAR_ID.search(text))


def xlsx_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return "\n".join(archive.read(name).decode() for name in archive.namelist() if name.endswith(".xml"))


async def page(browser: Browser, path: str, *, languages: Iterable[str] = ("en", "zh")) -> str:
    """A page in each language (Chinese last: the cookie keeps it): 200, clean under the CSP, no clear
    personal data; its Chinese text."""
    texts = {}
    for lang in languages:
        response = await browser.http.get(f"{path}{'&' if '?' in path else '?'}lang={lang}")
        assert response.status_code == 200, (path, lang, response.text[:500])
        assert_page_is_clean(response)
        assert_no_clear_personal_data(response.text, path)
        texts[lang] = response.text
    return texts.get("zh") or texts["en"]


async def audited(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditRecordRow]:
    async with unit_of_work(sessions) as session:
        rows = await session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == action))
        return list(rows)


def answer(rows: list[tuple[str, int]]) -> bytes:
    lines = ["payout_reference,amount_fen,status,bank_transaction_id,reason"]
    lines += [f"{reference},{amount},paid,BK{number:04d}," for number, (reference, amount) in enumerate(rows)]
    return ("\n".join(lines) + "\n").encode()


async def test_a_run_from_preparation_to_the_bank_and_the_recovery(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    till, b = desk.till, desk.browsers
    campaign = till.campaign_id
    for who in ("operator", "finance", "city"):
        text = await page(b[who], f"/console/settlement?campaign_id={campaign}")
        assert "尚无结算批次" in text
        assert ('action="/console/settlement/runs"' in text) is (who == "operator")
    for who in ("county", "police"):
        assert (await b[who].http.get("/console/settlement")).status_code == 403
    assert (await b["operator"].http.get("/console/settlement/runs/stl_nope")).status_code == 404

    early = await b["operator"].http.post(
        "/console/settlement/runs",
        data={"campaign_id": campaign, "business_day": "2022-06-25", "csrf_token": b["operator"].csrf},
    )
    assert early.status_code == 409  # Saturday itself is not due yet (T+1)
    assert "尚未到结算日" in early.text
    prepared = await b["operator"].http.post(
        "/console/settlement/runs",
        data={"campaign_id": campaign, "business_day": "2022-06-24", "csrf_token": b["operator"].csrf},
    )
    assert prepared.status_code == 303, prepared.text[:500]
    run_path = prepared.headers["location"].split("?")[0]
    run_id = run_path.rsplit("/", 1)[1]
    text = await page(b["operator"], prepared.headers["location"])
    assert "结算批次已生成" in text
    assert re.search(r'data-total="run">¥150.00<', text)  # five ¥30 vouchers
    assert len(re.findall(r"data-line=", text)) == 4  # four merchants
    assert BANK_ACCOUNT not in text  # accounts masked on the page
    assert "/approval" not in text  # the preparer is not offered the approval

    refused = await b["operator"].http.post(f"{run_path}/approval", data={"csrf_token": b["operator"].csrf})
    assert refused.status_code == 403  # the operator may not approve (and prepared it)
    assert (
        await b["city"].http.post(f"{run_path}/approval", data={"csrf_token": b["city"].csrf})
    ).status_code == 403
    assert (await b["city"].http.get(f"{run_path}/clearing-file.csv")).status_code == 403
    assert "审批通过" in await page(b["finance"], run_path)
    not_yet = await b["finance"].http.get(f"{run_path}/clearing-file.csv")
    assert not_yet.status_code == 409  # the file exists once the run is approved

    approved = await b["finance"].http.post(f"{run_path}/approval", data={"csrf_token": b["finance"].csrf})
    assert approved.status_code == 303
    assert approved.headers["location"] == f"{run_path}?done=approved"
    text = await page(b["finance"], approved.headers["location"])
    assert "批次已审批" in text
    again = await b["finance_2"].http.post(f"{run_path}/approval", data={"csrf_token": b["finance_2"].csrf})
    assert again.status_code == 409
    assert "不在待审批状态" in again.text
    async with unit_of_work(sessions) as session:
        run = await session.get(SettlementRunRow, run_id)
        assert run is not None
        assert run.status == "approved"
    [prepared_record] = await audited(sessions, "settlement.run_prepared")
    [approved_record] = await audited(sessions, "settlement.run_approved")
    assert (prepared_record.actor_id, approved_record.actor_id) == (
        desk.user_ids["operator"],
        desk.user_ids["finance"],
    )

    clearing = await b["operator"].http.get(f"{run_path}/clearing-file.csv")
    assert clearing.status_code == 200
    assert clearing.headers["content-type"] == "text/csv; charset=utf-8"
    assert clearing.headers["cache-control"] == "no-store"
    assert BANK_ACCOUNT in clearing.text  # for the bank only, and audited:
    assert [row.actor_id for row in await audited(sessions, "settlement.clearing_file_exported")] == [
        desk.user_ids["operator"]
    ]
    payouts = [
        (line.split(",")[0], int(line.split(",")[5]))
        for line in clearing.text.splitlines()[1:]
        if not line.startswith("TRAILER")
    ]
    assert len(payouts) == 4

    malformed = await b["operator"].http.post(
        "/console/settlement/bank-confirmations",
        data={"campaign_id": campaign, "csrf_token": b["operator"].csrf},
        files={"bank_file": ("bank.csv", b"not,a,bank,file\n", "text/csv")},
    )
    assert malformed.status_code == 422
    assert "回盘文件格式有误" in malformed.text
    uploaded = await b["operator"].http.post(
        "/console/settlement/bank-confirmations",
        data={"campaign_id": campaign, "csrf_token": b["operator"].csrf},
        files={"bank_file": ("bank.csv", answer(payouts), "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text[:500]
    text = await page(b["operator"], uploaded.headers["location"])
    assert "银行回盘已导入" in text
    assert len(re.findall(r'data-outcome="applied"', text)) == 4
    text = await page(b["finance"], run_path)
    assert 'data-run-status="closed"' in text
    assert len(re.findall(r'data-line-status="paid"', text)) == 4

    text = await page(b["city"], f"/console/settlement/reconciliation?campaign_id={campaign}&day=2022-06-24")
    assert 'data-verdict="ok"' in text
    assert (await b["county"].http.get("/console/settlement/reconciliation")).status_code == 403

    # The campaign is over and its last voucher expired: the operator requests, finance approves.
    text = await page(b["finance"], f"/console/settlement/recovery?campaign_id={campaign}")
    assert 'data-recovery="none"' in text
    early_recovery = await b["operator"].http.post(
        "/console/settlement/recovery", data={"campaign_id": campaign, "csrf_token": b["operator"].csrf}
    )
    assert early_recovery.status_code == 409
    assert "暂不能申请资金清退" in early_recovery.text
    till.clock.set(AFTER_THE_END)
    async with unit_of_work(sessions) as session:
        await expire_and_recycle(session, clock=till.clock)
    b = await desk.sign_in()
    requested = await b["operator"].http.post(
        "/console/settlement/recovery", data={"campaign_id": campaign, "csrf_token": b["operator"].csrf}
    )
    assert requested.status_code == 303, requested.text[:800]
    async with unit_of_work(sessions) as session:
        recovery = await session.scalar(select(RecoveryRow).where(RecoveryRow.campaign_id == campaign))
        assert recovery is not None
    assert (
        await b["operator"].http.post(
            f"/console/settlement/recovery/{recovery.id}/approval", data={"csrf_token": b["operator"].csrf}
        )
    ).status_code == 403
    approved = await b["finance"].http.post(
        f"/console/settlement/recovery/{recovery.id}/approval",
        data={"campaign_id": campaign, "csrf_token": b["finance"].csrf},
    )
    assert approved.status_code == 303
    text = await page(b["city"], approved.headers["location"])
    assert 'data-recovery="approved"' in text
    async with unit_of_work(sessions) as session:
        done = await session.get(RecoveryRow, recovery.id)
        assert done is not None
        assert (done.status, done.approved_by) == ("approved", desk.user_ids["finance"])
    assert len(await audited(sessions, "settlement.recovery_requested")) == 1
    assert len(await audited(sessions, "settlement.recovery_approved")) == 1


async def test_the_reports_page_and_every_export(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    till, b = desk.till, desk.browsers
    async with unit_of_work(sessions) as session:
        await rollup.rollup(session, clock=till.clock)
    campaign = till.campaign_id

    text = await page(b["city"], f"/console/reports?campaign_id={campaign}")
    assert re.search(
        r'data-report-figure="redeemed">\s*<div class="figure-label">[^<]*</div>\s*'
        r'<div class="figure-value">5<',
        text,
    )
    assert re.search(
        r'data-report-figure="subsidy_fen">\s*<div class="figure-label">[^<]*</div>\s*'
        r'<div class="figure-value">¥150.00<',
        text,
    )
    assert 'data-chart="days"' in text
    assert "/console/static/vendor/echarts.min.js" in text
    for kind in ("claims", "redemptions", "merchants", "statement"):
        assert f"/console/reports/{kind}.xlsx?campaign_id={campaign}" in text
    assert "/console/reports/summary.pdf" in text
    assert "/console/invoices/sales-ledger.xlsx" in text
    by_county = await page(b["city"], f"/console/reports?campaign_id={campaign}&by=jurisdiction")
    assert 'data-line="anyue"' in by_county
    assert 'data-chart="bar"' in by_county
    for dimension in ("week", "round", "batch", "district", "category", "merchant_class"):
        await page(b["city"], f"/console/reports?campaign_id={campaign}&by={dimension}", languages=("en",))

    # A county sees its own jurisdiction: two redemptions at 雁江区's shops; another county is 404.
    text = await page(b["county"], f"/console/reports?campaign_id={campaign}&by=jurisdiction")
    assert re.search(
        r'data-report-figure="redeemed">\s*<div class="figure-label">[^<]*</div>\s*'
        r'<div class="figure-value">3<',
        text,
    )
    assert 'data-line="anyue"' not in text
    assert "/console/reports/statement.xlsx" not in text
    assert "/console/reports/summary.pdf" not in text
    other = await b["county"].http.get(f"/console/reports?campaign_id={campaign}&jurisdiction=anyue")
    assert other.status_code == 404
    assert "错误代码" in other.text

    downloads = {
        (who, kind): await b[who].http.get(f"/console/reports/{kind}.xlsx", params={"campaign_id": campaign})
        for who in ("city", "county")
        for kind in ("claims", "redemptions", "merchants", "statement")
    }
    for (who, kind), response in downloads.items():
        if who == "county" and kind == "statement":
            assert response.status_code == 403  # the funders' statement needs settlement.read
            continue
        assert response.status_code == 200, (who, kind, response.text[:300])
        assert response.headers["content-type"] == XLSX
        assert response.headers["cache-control"] == "no-store"
        assert_no_clear_personal_data(xlsx_text(response.content), f"{who} {kind}")
    assert PHONE not in xlsx_text(downloads[("city", "claims")].content)
    assert "138****" in xlsx_text(downloads[("city", "redemptions")].content)  # masked: first 3 + last 4
    assert "安岳" not in xlsx_text(downloads[("county", "redemptions")].content)  # 雁江区's only
    other_ledger = await b["county"].http.get(
        "/console/invoices/sales-ledger.xlsx", params={"campaign_id": campaign, "jurisdiction": "anyue"}
    )
    assert other_ledger.status_code == 404
    own_ledger = await b["county"].http.get(
        "/console/invoices/sales-ledger.xlsx", params={"campaign_id": campaign}
    )
    assert own_ledger.status_code == 200
    assert own_ledger.headers["content-type"] == XLSX

    html = await b["city"].http.get("/console/reports/summary.html", params={"campaign_id": campaign})
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "活动总结" in html.text
    assert_no_clear_personal_data(html.text, "summary.html")
    pdf = await b["finance"].http.get("/console/reports/summary.pdf", params={"campaign_id": campaign})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    for who in ("county", "police"):
        assert (
            await b[who].http.get("/console/reports/summary.pdf", params={"campaign_id": campaign})
        ).status_code == 403

    exported = {
        (row.action, row.actor_id)
        for action in ("export.report_claims", "export.report_redemptions", "export.report_summary")
        for row in await audited(sessions, action)
    }
    assert ("export.report_claims", desk.user_ids["county"]) in exported
    assert ("export.report_redemptions", desk.user_ids["city"]) in exported
    assert ("export.report_summary", desk.user_ids["city"]) in exported
    assert ("export.report_summary", desk.user_ids["finance"]) in exported
    assert not [
        row
        for row in await audited(sessions, "export.report_statement")
        if row.actor_id == desk.user_ids["county"]
    ]


async def test_the_audit_log_viewer(desk: Desk, sessions: async_sessionmaker[AsyncSession]) -> None:
    b = desk.browsers
    async with unit_of_work(sessions) as session:
        await audit.seal(session, clock=desk.till.clock)
    await b["city"].http.get(f"/console/reports/claims.xlsx?campaign_id={desk.till.campaign_id}")  # unsealed

    text = await page(b["city"], "/console/audit")
    assert 'data-chain="unchecked"' in text
    assert 'data-unsealed="1"' in text
    assert "staff.sign_in" in text
    assert "export.report_claims" in text

    signed = await page(b["city"], "/console/audit?action=staff.sign_in")
    actions = set(re.findall(r'data-record="\d+" data-audit-action="([^"]+)"', signed))
    assert actions == {"staff.sign_in"}
    assert len(re.findall(r"data-record=", signed)) == 6  # the six officials of the desk
    exports = await page(b["city"], "/console/audit?action=export.&actor=用户city")
    assert set(re.findall(r'data-audit-action="([^"]+)"', exports)) == {"export.report_claims"}
    by_object = await page(b["city"], f"/console/audit?object_type=user&object_id={desk.user_ids['county']}")
    assert "user.create" in by_object
    nothing = await page(b["city"], "/console/audit?since=2030-01-01", languages=("zh",))
    assert "没有符合条件的记录" in nothing
    failed = await b["city"].http.get("/console/audit?since=yesterday")
    assert failed.status_code == 422

    # The set-up's records were sealed a day after they were made (the clock jumped to Saturday before
    # the seal): to the chain they look back-dated, and the page says so, naming the first.
    verified = await page(b["city"], "/console/audit?verify=true")
    assert 'data-chain="broken"' in verified
    assert "inserted afterwards" in verified
    assert "data-last-hash" in verified
    second = await b["city"].http.get("/console/audit?page=2")
    assert second.status_code == 200  # past the last page: an empty page, not an error

    for who in ("operator", "finance", "county", "police"):
        refused = await b[who].http.get("/console/audit")
        assert refused.status_code == 403, who
        assert "staff.sign_in" not in refused.text


async def test_the_audit_chain_verified_on_the_page(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    admin = await make_user(sessions, settings, clock, "audit.admin", Role.CITY_ADMIN)
    browser = await signed_in(app, admin, clock)
    async with unit_of_work(sessions) as session:
        assert await audit.seal(session, clock=clock) == 2  # the account's creation and its sign-in
    text = await page(browser, "/console/audit?verify=true")
    assert 'data-chain="ok"' in text
    assert 'data-unsealed="0"' in text
    assert re.search(r"data-last-hash>[0-9a-f]{64}<", text)
