"""The console's redemption, invoice, money and till pages, and the resident page, through HTTP on
SQLite and PostgreSQL: what each shows, what each form does, and the refusals. (Who may open which
page is the authorization matrix of test_console_pages.py.)"""

from __future__ import annotations

import io
import re

import httpx
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy import func, select

from huimin.auth.principals import Principal, Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.money import Fen
from huimin.kit.terms import Jurisdiction
from huimin.ledger import service as ledger
from huimin.ledger.models import DepositRow
from huimin.redemptions.models import RedemptionRow
from tests.console_helpers import make_user
from tests.integration.test_console_pages import Browser, assert_page_is_clean, signed_in
from tests.integration.till import Till

CAR_PRICE = 12_000_000  # ¥120,000: the ¥100,000+ band, worth ¥5,000


async def _user(
    app: FastAPI,
    till: Till,
    settings: Settings,
    username: str,
    role: Role,
    *,
    jurisdiction: Jurisdiction | None = None,
    merchant: str | None = None,
) -> tuple[Browser, str]:
    created = await make_user(
        app.state.sessions,
        settings,
        till.clock,
        username,
        role,
        jurisdiction=jurisdiction,
        merchant_id=till.merchants[merchant] if merchant else None,
    )
    return await signed_in(app, created, till.clock), created.user.id


async def _car_purchase(till: Till, merchant: str, invoice_no: str) -> str:
    voucher = await till.voucher("cars")
    body = till.body(
        voucher,
        merchant,
        order_amount_fen=CAR_PRICE,
        category="cars",
        invoice={
            "sales_invoice_no": f"S{invoice_no}",
            "sales_invoice_amount_fen": CAR_PRICE,
            "tax_invoice_no": f"T{invoice_no}",
        },
    )
    response = await till.redeem(body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending_verification"
    return str(response.json()["redemption_id"])


async def test_the_county_verifies_invoices_of_its_own_jurisdiction(
    app: FastAPI, till: Till, settings: Settings
) -> None:
    own = await _car_purchase(till, "cars", "00000001")
    other = await _car_purchase(till, "cars_anyue", "00000002")
    second = await _car_purchase(till, "cars", "00000003")
    county, _ = await _user(
        app, till, settings, "yanjiang.zhou", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.YANJIANG
    )

    queue = await county.http.get("/console/invoices")
    assert queue.status_code == 200
    assert_page_is_clean(queue)
    assert own in queue.text
    assert second in queue.text
    assert other not in queue.text  # 安岳县's purchase is not 雁江区's to check
    assert re.search(r'data-total="count">2<', queue.text)
    assert (await county.http.get(f"/console/invoices/{other}")).status_code == 404

    page = await county.http.get(f"/console/invoices/{own}")
    assert "S00000001" in page.text
    assert "T00000001" in page.text
    assert "¥120,000.00" in page.text
    assert "与应付金额一致" in page.text

    refused = await county.http.post(
        f"/console/invoices/{own}/verification",
        data={"decision": "reject", "note": "  ", "csrf_token": county.csrf},
    )
    assert refused.status_code == 422
    assert "核验不通过时必须填写理由" in refused.text
    approved = await county.http.post(
        f"/console/invoices/{own}/verification",
        data={"decision": "approve", "note": "发票真实有效", "csrf_token": county.csrf},
    )
    assert approved.status_code == 303
    shown = await county.http.get(approved.headers["location"])
    assert "发票核验通过" in shown.text
    assert "发票真实有效" in shown.text
    again = await county.http.post(
        f"/console/invoices/{own}/verification",
        data={"decision": "approve", "note": "", "csrf_token": county.csrf},
    )
    assert again.status_code == 409
    assert "不在待核验状态" in again.text
    rejected = await county.http.post(
        f"/console/invoices/{second}/verification",
        data={"decision": "reject", "note": "税票号与发票不符", "csrf_token": county.csrf},
    )
    assert rejected.status_code == 303

    async with unit_of_work(app.state.sessions) as session:
        statuses = {row.id: row.status for row in await session.scalars(select(RedemptionRow))}
    assert statuses[own] == "confirmed"
    assert statuses[second] == "rejected"
    assert statuses[other] == "pending_verification"

    # The county's sales ledger: its own purchases only, invoice numbers kept as text.
    ledger_file = await county.http.get(f"/console/invoices/sales-ledger.xlsx?campaign_id={till.campaign_id}")
    assert ledger_file.status_code == 200
    assert ledger_file.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(ledger_file.content)).worksheets[0]
    cells = {str(cell.value) for row in sheet.iter_rows() for cell in row if cell.value is not None}
    assert {"S00000001", "S00000003"} <= cells
    assert "S00000002" not in cells
    elsewhere = await county.http.get(
        f"/console/invoices/sales-ledger.xlsx?campaign_id={till.campaign_id}&jurisdiction=anyue"
    )
    assert elsewhere.status_code == 404


async def test_redemption_search_is_scoped_and_totalled(app: FastAPI, till: Till, settings: Settings) -> None:
    for merchant, order in (("catering", 12_000), ("catering", 20_000), ("anyue_above", 8_000)):
        batch = "anyue" if merchant == "anyue_above" else "general"
        response = await till.redeem(till.body(await till.voucher(batch), merchant, order_amount_fen=order))
        assert response.status_code == 201, response.text

    city, _ = await _user(app, till, settings, "city.wang", Role.CITY_ADMIN)
    everything = await city.http.get("/console/redemptions")
    assert everything.status_code == 200
    assert_page_is_clean(everything)
    assert re.search(r'data-total="count">3<', everything.text)
    assert re.search(r'data-total="order">¥400.00<', everything.text)
    assert re.search(r'data-total="subsidy">¥70.00<', everything.text)  # 30 + 30 + 10

    county, _ = await _user(
        app, till, settings, "anyue.liu", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.ANYUE
    )
    anyue = await county.http.get("/console/redemptions")
    assert re.search(r'data-total="count">1<', anyue.text)
    assert "¥80.00" in anyue.text
    merchant, _ = await _user(app, till, settings, "shop.chen", Role.MERCHANT, merchant="catering")
    own = await merchant.http.get(f"/console/redemptions?merchant_id={till.merchants['anyue_above']}")
    assert re.search(r'data-total="count">2<', own.text)  # its own, whatever the filter says

    filtered = await city.http.get(
        f"/console/redemptions?merchant_id={till.merchants['catering']}&status=confirmed&big_ticket=no"
        "&since=2022-06-24&until=2022-06-24"
    )
    assert re.search(r'data-total="count">2<', filtered.text)
    none = await city.http.get("/console/redemptions?since=2022-06-25")
    assert "没有符合条件的核销记录" in none.text
    assert (await city.http.get("/console/redemptions?status=lost")).status_code == 422
    assert (await city.http.get("/console/redemptions?since=24.06.2022")).status_code == 422

    first = re.search(r'data-redemption="(rdm_[^"]+)"', everything.text)
    assert first
    detail = await city.http.get(f"/console/redemptions/{first.group(1)}")
    assert detail.status_code == 200
    assert "核销详情" in detail.text
    assert 'data-amount="subsidy"' in detail.text


async def test_deposits_are_recorded_approved_and_checked(
    app: FastAPI, till: Till, settings: Settings
) -> None:
    operator, _ = await _user(app, till, settings, "operator.li", Role.OPERATOR)
    finance, finance_id = await _user(app, till, settings, "finance.zhao", Role.FINANCE)

    page = await operator.http.get("/console/money")
    assert page.status_code == 200
    assert "登记拨付" in page.text
    bad = await operator.http.post(
        "/console/money/deposits",
        data={
            "campaign_id": till.campaign_id,
            "funder": "fiscal",
            "amount": "-5",
            "csrf_token": operator.csrf,
        },
    )
    assert bad.status_code == 422
    assert "金额须为正数" in bad.text
    recorded = await operator.http.post(
        "/console/money/deposits",
        data={
            "campaign_id": till.campaign_id,
            "funder": "fiscal",
            "amount": "800000",
            "note": "第一批财政资金",
            "csrf_token": operator.csrf,
        },
    )
    assert recorded.status_code == 303
    assert "待市财政局审批" in (await operator.http.get(recorded.headers["location"])).text

    async with unit_of_work(app.state.sessions) as session:
        [deposit] = (await session.scalars(select(DepositRow))).all()
        # A deposit recorded under the finance user's own id (as the CLI could): it may not approve it.
        own = await ledger.request_deposit(
            session,
            principal=Principal(actor_id=finance_id, role=Role.SYSTEM, name="finance.zhao"),
            campaign_id=till.campaign_id,
            funder_code="social",
            amount=Fen(200_000_00),
            clock=till.clock,
        )
    board = await finance.http.get("/console/money")
    assert "审批入账" in board.text
    assert "登记拨付" not in board.text  # the finance bureau approves, it does not record
    refused = await finance.http.post(
        f"/console/money/deposits/{own.row.id}/approve",
        data={"campaign_id": till.campaign_id, "csrf_token": finance.csrf},
    )
    assert refused.status_code == 403
    assert "双人复核" in refused.text
    assert_page_is_clean(refused)
    approved = await finance.http.post(
        f"/console/money/deposits/{deposit.id}/approve",
        data={"campaign_id": till.campaign_id, "csrf_token": finance.csrf},
    )
    assert approved.status_code == 303
    assert "已审批入账" in (await finance.http.get(approved.headers["location"])).text

    balances = await finance.http.get("/console/money/balances")
    assert balances.status_code == 200
    assert re.search(r'data-kind="funder">.*?¥800,000.00', balances.text, flags=re.DOTALL)
    # A claim ahead of the social funder's deposit leaves its budget below zero: the check says so.
    await till.redeem(till.body(await till.voucher("general"), "catering"))
    check = await finance.http.get("/console/money/check")
    assert check.status_code == 200
    assert_page_is_clean(check)
    assert 'data-verdict="fail"' in check.text
    assert "deposits missing?" in check.text
    assert 'data-check="I2"' in check.text
    async with unit_of_work(app.state.sessions) as session:
        approved_count = await session.scalar(
            select(func.count()).select_from(DepositRow).where(DepositRow.status == "approved")
        )
    assert approved_count == 1


def _form_key(page: str) -> str:
    match = re.search(r'name="form_key" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_the_till_previews_redeems_once_and_refuses_a_used_voucher(
    app: FastAPI, till: Till, settings: Settings
) -> None:
    cashier, _ = await _user(app, till, settings, "shop.wu", Role.MERCHANT, merchant="catering")
    voucher = await till.voucher("general")
    page = await cashier.http.get("/console/till")
    assert page.status_code == 200
    assert_page_is_clean(page)
    key = _form_key(page.text)
    form = {
        "voucher_code": voucher["qr_payload"],
        "order_amount": "120",
        "merchant_discount": "15",
        "terminal_id": till.terminals["catering"],
        "form_key": key,
        "csrf_token": cashier.csrf,
    }
    preview = await cashier.http.post("/console/till", data={**form, "step": "preview"})
    assert preview.status_code == 200
    assert re.search(r'data-quote="subsidy">− ¥30.00<', preview.text)
    assert re.search(r'data-quote="resident">¥75.00<', preview.text)
    assert _form_key(preview.text) == key  # one purchase, one key, from preview to confirmation

    confirmed = await cashier.http.post("/console/till", data={**form, "step": "confirm"})
    assert confirmed.status_code == 303
    receipt = await cashier.http.get(confirmed.headers["location"])
    assert "核销成功" in receipt.text
    assert re.search(r'data-receipt-amount="resident">¥75.00<', receipt.text)
    twice = await cashier.http.post("/console/till", data={**form, "step": "confirm"})  # a double click
    assert twice.status_code == 303
    assert twice.headers["location"] == confirmed.headers["location"]
    other_purchase = await cashier.http.post(
        "/console/till", data={**form, "order_amount": "200", "step": "confirm"}
    )
    assert other_purchase.status_code == 422
    assert "此表单已提交过" in other_purchase.text

    fresh = _form_key((await cashier.http.get("/console/till")).text)
    used = await cashier.http.post("/console/till", data={**form, "form_key": fresh, "step": "preview"})
    assert used.status_code == 409
    assert "该券已使用" in used.text
    used = await cashier.http.post("/console/till", data={**form, "form_key": fresh, "step": "confirm"})
    assert used.status_code == 409
    assert "该券已使用" in used.text

    below = await cashier.http.post(
        "/console/till",
        data={
            **form,
            "voucher_code": (await till.voucher("general"))["code"],
            "order_amount": "100",
            "step": "preview",
        },
    )
    assert below.status_code == 422
    assert "未达到使用门槛" in below.text
    typo = await cashier.http.post(
        "/console/till", data={**form, "order_amount": "12.345", "step": "preview"}
    )
    assert typo.status_code == 422
    assert "最多两位小数" in typo.text

    async with unit_of_work(app.state.sessions) as session:
        rows = (await session.scalars(select(RedemptionRow))).all()
    assert len(rows) == 1
    assert rows[0].terminal_id == till.terminals["catering"]
    assert rows[0].idempotency_key == f"till:{key}"
    other_shop, _ = await _user(app, till, settings, "shop.zheng", Role.MERCHANT, merchant="retail")
    assert (await other_shop.http.get(confirmed.headers["location"])).status_code == 404


async def test_the_resident_page_is_public(client: httpx.AsyncClient, till: Till) -> None:
    await till.voucher("general")
    page = await client.get("/h5")
    assert page.status_code == 200
    assert_page_is_clean(page)
    assert 'lang="zh-CN"' in page.text
    assert "请在云闪付APP内领取" in page.text
    assert "核销测试活动" in page.text
    assert re.search(r'data-remaining="[^"]+">59<', page.text)  # 60 general vouchers, one claimed
    assert "满100减30" in page.text
    assert "资阳市测试商贸有限公司1号店" in page.text
    assert "资阳市测试商贸有限公司7号店" not in page.text  # suspended: not where to spend
    anyue = await client.get("/h5?category=catering&district=anyue")
    names = re.findall(r'h5-merchant-name">([^<]+)<', anyue.text)
    assert names == ["资阳市测试商贸有限公司5号店", "资阳市测试商贸有限公司6号店"]
    assert (await client.get("/h5?category=weapons")).status_code == 422
    english = await client.get("/h5?lang=en")
    assert "Claim in the UnionPay app" in english.text
