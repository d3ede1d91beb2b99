"""XLSX exports for officials (SPEC §7): claims and redemptions (personal data masked: first 3 + last 4),
merchant participation with what each was paid, and the final statement per funder (决算).

Money cells are exact yuan (`Decimal`, never a float) formatted "#,##0.00"; codes and invoice numbers
are text. Claims and redemptions stream (openpyxl's write-only mode, read in pages by id), a sheet per
million rows, so a campaign of ten million redemptions exports in bounded memory. Every export is
audited (`export.report_*`) in the caller's transaction.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import BatchRow, CampaignRow, RoundRow
from huimin.campaigns.service import get_campaign
from huimin.claims.models import VoucherRow
from huimin.eligibility.models import ResidentRow
from huimin.kit.clock import Clock, to_local
from huimin.kit.hashing import mask
from huimin.kit.money import Fen, split_by_shares
from huimin.kit.sheets import box, write_header, write_title
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.ledger import domain as ledger
from huimin.merchants.models import MerchantRow
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.models import RedemptionRow
from huimin.reports import service
from huimin.reports.domain import Dimension, Totals
from huimin.reports.repository import Filter, ReportRepository
from huimin.settlement import service as settlement

__all__ = ["Export", "ExportKind", "export"]

YUAN = "#,##0.00"
SHEET_ROWS = 1_000_000  # below Excel's 1,048,576 with the title and header
PAGE = 5_000
REDEMPTION_STATUS = {
    RedemptionStatus.PENDING_VERIFICATION: "待核验",
    RedemptionStatus.CONFIRMED: "已核销",
    RedemptionStatus.SETTLED: "已结算",
    RedemptionStatus.REFUNDED: "已退款",
    RedemptionStatus.REJECTED: "核验未通过",
    RedemptionStatus.CLAWED_BACK: "已追回",
}
_VOUCHER_STATUS = {
    "claimed": "未使用",
    "redeemed": "已核销",
    "settled": "已结算",
    "expired": "已过期",
    "recycled": "已回收",
    "reversed": "已退款作废",
    "revoked": "已撤销",
}


class ExportKind(StrEnum):
    CLAIMS = "claims"  # 领取明细
    REDEMPTIONS = "redemptions"  # 核销明细
    MERCHANTS = "merchants"  # 商户参与及结算
    STATEMENT = "statement"  # 资金决算（按资金来源）


_TITLES = {
    ExportKind.CLAIMS: "消费券领取明细",
    ExportKind.REDEMPTIONS: "消费券核销明细",
    ExportKind.MERCHANTS: "参与商户核销及结算汇总",
    ExportKind.STATEMENT: "资金决算表（按资金来源）",
}


@dataclass(frozen=True)
class Export:
    file_name: str
    content: bytes
    rows: int


def yuan(fen: int) -> Decimal:
    """Exact yuan for a spreadsheet cell."""
    return Decimal(fen).scaleb(-2)


async def export(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    kind: ExportKind,
    clock: Clock,
    jurisdiction: Jurisdiction | None = None,
) -> Export:
    """One XLSX export. A county reviewer's exports hold its own jurisdiction only (claims: residents
    who claimed in its district; a zone has none); the statement needs `settlement.read`."""
    scope = service.scope_of(principal, jurisdiction)
    if kind is ExportKind.STATEMENT:
        principal.require(Permission.SETTLEMENT_READ)
    campaign = await get_campaign(session, campaign_id=campaign_id)
    now = clock.now()
    subtitle = f"导出时间：{to_local(now):%Y-%m-%d %H:%M}    范围：{'全市' if scope is None else scope.label}"
    if kind is ExportKind.CLAIMS:
        content, rows = await _claims(session, campaign, scope, subtitle)
    elif kind is ExportKind.REDEMPTIONS:
        content, rows = await _redemptions(session, campaign, scope, subtitle)
    elif kind is ExportKind.MERCHANTS:
        content, rows = await _merchants(session, principal, campaign, scope, subtitle)
    else:
        content, rows = await _statement(session, principal, campaign, subtitle)
    await audit.record(
        session,
        principal=principal,
        action=f"export.report_{kind.value}",
        object_type="campaign",
        object_id=campaign_id,
        at=now,
        detail={"jurisdiction": None if scope is None else scope.value, "rows": rows},
    )
    where = "全市" if scope is None else scope.label
    return Export(
        file_name=f"{campaign.code}-{_TITLES[kind]}-{where}-{to_local(now):%Y%m%d}.xlsx",
        content=content,
        rows=rows,
    )


# Streaming sheets


class _Stream:
    """A write-only workbook: a title, a header and data rows, a new sheet every SHEET_ROWS rows."""

    def __init__(self, title: str, subtitle: str, columns: Sequence[tuple[str, int, str | None]]) -> None:
        self.workbook = Workbook(write_only=True)
        self.title, self.subtitle, self.columns = title, subtitle, columns
        self.sheet: WriteOnlyWorksheet | None = None
        self.rows = 0
        self._in_sheet = 0

    def _open(self) -> WriteOnlyWorksheet:
        number = self.rows // SHEET_ROWS + 1
        sheet: WriteOnlyWorksheet = self.workbook.create_sheet(f"第{number}页" if number > 1 else "明细")
        for index, (_, width, _) in enumerate(self.columns):
            # write-only sheets take column widths before the first row; the stubs do not know it
            sheet.column_dimensions[chr(ord("A") + index)].width = width  # type: ignore[attr-defined]
        sheet.freeze_panes = "A4"
        title = WriteOnlyCell(sheet, self.title)
        title.font = Font(bold=True, size=14)
        sheet.append([title])
        sheet.append([self.subtitle])
        header = []
        for name, _, _ in self.columns:
            cell = WriteOnlyCell(sheet, name)
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
            cell.alignment = Alignment(horizontal="center", wrap_text=True)
            header.append(cell)
        sheet.append(header)
        return sheet

    def append(self, values: Sequence[Any]) -> None:
        if self.sheet is None or self._in_sheet >= SHEET_ROWS:
            self.sheet = self._open()
            self._in_sheet = 0
        cells = []
        for value, (_, _, number_format) in zip(values, self.columns, strict=True):
            cell = WriteOnlyCell(self.sheet, value)
            if number_format:
                cell.number_format = number_format
            cells.append(cell)
        self.sheet.append(cells)
        self.rows += 1
        self._in_sheet += 1

    def content(self) -> bytes:
        if self.sheet is None:
            self.sheet = self._open()
        buffer = io.BytesIO()
        self.workbook.save(buffer)
        return buffer.getvalue()


def _masked_code(code: str) -> str:
    # A voucher's code spends it: an export shows only enough to find it.
    return mask(code)


async def _pages(session: AsyncSession, query: Any, key: Any) -> AsyncIterator[Sequence[Any]]:
    after = ""
    while True:
        rows = (await session.execute(query.where(key > after).order_by(key).limit(PAGE))).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


async def _claims(
    session: AsyncSession, campaign: CampaignRow, scope: Jurisdiction | None, subtitle: str
) -> tuple[bytes, int]:
    stream = _Stream(
        f"{campaign.name}{_TITLES[ExportKind.CLAIMS]}",
        subtitle,
        [
            ("券码（脱敏）", 22, "@"),
            ("券批次", 26, None),
            ("场次", 18, None),
            ("领取时间", 17, None),
            ("领取区县", 10, None),
            ("手机号（脱敏）", 15, "@"),
            ("身份证号（脱敏）", 21, "@"),
            ("券值（元）", 12, YUAN),
            ("有效期至", 17, None),
            ("状态", 10, None),
        ],
    )
    if scope is not None and scope.value not in {district.value for district in District}:
        return stream.content(), 0  # a zone inside 雁江区: claims are placed by district only
    query = (
        select(
            VoucherRow.id,
            VoucherRow.code,
            BatchRow.name,
            RoundRow.code,
            VoucherRow.claimed_at,
            VoucherRow.district,
            ResidentRow.phone_masked,
            ResidentRow.id_number_masked,
            VoucherRow.value_fen,
            VoucherRow.valid_until,
            VoucherRow.status,
        )
        .join(BatchRow, BatchRow.id == VoucherRow.batch_id)
        .join(RoundRow, RoundRow.id == VoucherRow.round_id)
        .join(ResidentRow, ResidentRow.id == VoucherRow.resident_id)
        .where(VoucherRow.campaign_id == campaign.id)
    )
    if scope is not None:
        query = query.where(VoucherRow.district == scope.value)
    async for page in _pages(session, query, VoucherRow.id):
        for _, code, batch, round_code, claimed_at, district, phone, id_number, value, until, status in page:
            stream.append(
                [
                    _masked_code(code),
                    batch,
                    round_code,
                    f"{to_local(claimed_at):%Y-%m-%d %H:%M}",
                    District(district).label if district in District._value2member_map_ else district,
                    phone,
                    id_number,
                    yuan(value),
                    f"{to_local(until):%Y-%m-%d %H:%M}",
                    _VOUCHER_STATUS.get(status, status),
                ]
            )
    return stream.content(), stream.rows


async def _redemptions(
    session: AsyncSession, campaign: CampaignRow, scope: Jurisdiction | None, subtitle: str
) -> tuple[bytes, int]:
    stream = _Stream(
        f"{campaign.name}{_TITLES[ExportKind.REDEMPTIONS]}",
        subtitle,
        [
            ("核销时间", 17, None),
            ("商户名称", 30, None),
            ("区县", 10, None),
            ("行业", 8, None),
            ("商户类别", 14, None),
            ("券批次", 26, None),
            ("券码（脱敏）", 22, "@"),
            ("手机号（脱敏）", 15, "@"),
            ("订单金额（元）", 14, YUAN),
            ("商户优惠（元）", 13, YUAN),
            ("实付金额（元）", 14, YUAN),
            ("补贴金额（元）", 13, YUAN),
            ("退款金额（元）", 13, YUAN),
            ("退回补贴（元）", 13, YUAN),
            ("状态", 10, None),
            ("销售发票号", 16, "@"),
            ("税票号", 16, "@"),
        ],
    )
    query = (
        select(
            RedemptionRow.id,
            RedemptionRow.redeemed_at,
            MerchantRow.legal_name,
            RedemptionRow.jurisdiction,
            RedemptionRow.category,
            MerchantRow.merchant_class,
            BatchRow.name,
            VoucherRow.code,
            ResidentRow.phone_masked,
            RedemptionRow.order_fen,
            RedemptionRow.merchant_discount_fen,
            RedemptionRow.subsidy_fen,
            RedemptionRow.refunded_fen,
            RedemptionRow.subsidy_returned_fen,
            RedemptionRow.status,
            RedemptionRow.sales_invoice_no,
            RedemptionRow.tax_invoice_no,
        )
        .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
        .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
        .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
        .join(ResidentRow, ResidentRow.id == VoucherRow.resident_id)
        .where(RedemptionRow.campaign_id == campaign.id)
    )
    if scope is not None:
        query = query.where(RedemptionRow.jurisdiction == scope.value)
    async for page in _pages(session, query, RedemptionRow.id):
        for row in page:
            (_, at, name, jurisdiction, category, merchant_class, batch, code, phone) = row[:9]
            order, discount, subsidy, refunded, returned, status, sales_no, tax_no = row[9:]
            stream.append(
                [
                    f"{to_local(at):%Y-%m-%d %H:%M}",
                    name,
                    Jurisdiction(jurisdiction).label,
                    Category(category).label,
                    MerchantClass(merchant_class).label,
                    batch,
                    _masked_code(code),
                    phone,
                    yuan(order),
                    yuan(discount),
                    yuan(order - discount),
                    yuan(subsidy),
                    yuan(refunded),
                    yuan(returned),
                    REDEMPTION_STATUS[RedemptionStatus(status)],
                    sales_no or "",
                    tax_no or "",
                ]
            )
    return stream.content(), stream.rows


# Small sheets (kit/sheets look)


async def _merchants(
    session: AsyncSession,
    principal: Principal,
    campaign: CampaignRow,
    scope: Jurisdiction | None,
    subtitle: str,
) -> tuple[bytes, int]:
    lines = await service.merchant_lines(
        session, principal=principal, campaign_id=campaign.id, jurisdiction=scope
    )
    balances = await ReportRepository(session).account_balances(campaign.id)
    columns = (
        ("序号", 6),
        ("商户名称", 30),
        ("区县", 10),
        ("行业", 8),
        ("商户类别", 14),
        ("商户状态", 10),
        ("核销笔数", 10),
        ("拉动消费（元）", 15),
        ("补贴金额（元）", 14),
        ("其中待核验（元）", 14),
        ("已结算（元）", 14),
        ("待结算（元）", 14),
        ("应退回（元）", 12),
        ("首笔核销", 11),
        ("末笔核销", 11),
    )
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = "商户汇总"
    write_title(sheet, f"{campaign.name}{_TITLES[ExportKind.MERCHANTS]}", subtitle, len(columns))
    write_header(sheet, columns)
    for number, line in enumerate(lines, start=1):
        found = Totals(redemptions=line.measures).figures(claims_known=False)

        def account(make: Any, merchant: str = line.merchant_id) -> Decimal:
            key = make(merchant)
            return yuan(int(ledger.shown_balance(key, balances.get(key, 0))))

        sheet.append(
            [
                number,
                line.name,
                Jurisdiction(line.jurisdiction).label,
                Category(line.category).label,
                MerchantClass(line.merchant_class).label,
                _MERCHANT_STATUS.get(line.status, line.status),
                found.redeemed,
                yuan(found.consumption_fen),
                yuan(found.subsidy_fen),
                account(ledger.pending),
                account(ledger.settled),
                account(ledger.payable),
                account(ledger.receivable),
                line.first_day.isoformat(),
                line.last_day.isoformat(),
            ]
        )
        for column in range(8, 14):
            sheet.cell(row=number + 3, column=column).number_format = YUAN
    box(sheet, first_row=4, columns=len(columns))
    sheet.page_setup.orientation = "landscape"
    return _save(workbook), len(lines)


_MERCHANT_STATUS = {
    "active": "正常",
    "suspended": "暂停",
    "expelled": "清退",
    "listed": "已入围",
}


async def _statement(
    session: AsyncSession, principal: Principal, campaign: CampaignRow, subtitle: str
) -> tuple[bytes, int]:
    """Per funder: deposited, vouchers claimed (exact: a batch's vouchers all split alike), what reached
    merchants, settled and outstanding (apportioned by settlement.statement), recovered, unused."""
    money = await service.money(session, campaign=campaign)
    claimed = await _claimed_by_funder(session, campaign)
    settled = await _settlement_statement(session, principal, campaign.id)
    columns = (
        ("资金来源", 16),
        ("拨付金额（元）", 16),
        ("领取券面额（元）", 16),
        ("支付商户补贴（元）", 17),
        ("其中已结算（元）", 16),
        ("待收回（元）", 13),
        ("已追回（元）", 13),
        ("回收财政（元）", 15),
        ("未使用（元）", 15),
    )
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = "资金决算"
    write_title(sheet, f"{campaign.name}{_TITLES[ExportKind.STATEMENT]}", subtitle, len(columns))
    write_header(sheet, columns)
    totals = [0] * 8
    for funder in money.funders:
        unused = funder.unclaimed + funder.vouchers + funder.expired
        paid = settled.get(funder.code, (0, 0, 0))
        values = [
            funder.deposited,
            claimed.get(funder.code, 0),
            funder.deposited - funder.recovered - unused,
            paid[0],
            paid[1],
            paid[2],
            funder.recovered,
            unused,
        ]
        totals = [total + value for total, value in zip(totals, values, strict=True)]
        sheet.append([funder.name, *(yuan(value) for value in values)])
    sheet.append(["合计", *(yuan(value) for value in totals)])
    sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True)
    for line in sheet.iter_rows(min_row=4, max_row=sheet.max_row, min_col=2, max_col=len(columns)):
        for cell in line:
            cell.number_format = YUAN
    box(sheet, first_row=4, columns=len(columns))
    note = sheet.max_row + 2
    sheet.cell(row=note, column=1).value = (
        "说明：拨付、领取、回收、未使用按总账逐笔记账；支付商户补贴 = 拨付 − 回收 − 未使用；"
        "已结算、待收回、已追回按各资金来源支付商户补贴的比例分摊。"
    )
    sheet.page_setup.orientation = "landscape"
    return _save(workbook), len(money.funders)


async def _claimed_by_funder(session: AsyncSession, campaign: CampaignRow) -> dict[str, int]:
    by_batch = await ReportRepository(session).voucher_measures(campaign.id, Filter(), Dimension.BATCH)
    found: dict[str, int] = {}
    for batch in campaign.batches:
        measures = by_batch.get(batch.id)
        if measures is None or measures.issued == 0:
            continue
        shares = sorted(batch.funding, key=lambda item: item.position)
        parts = split_by_shares(Fen(batch.max_value_fen), [item.share_bp for item in shares])
        for item, part in zip(shares, parts, strict=True):
            found[item.funder.code] = found.get(item.funder.code, 0) + int(part) * measures.issued
    return found


async def _settlement_statement(
    session: AsyncSession, principal: Principal, campaign_id: str
) -> dict[str, tuple[int, int, int]]:
    """(settled, outstanding, clawed back) per funder from the settlement package, when it is there."""
    found = await settlement.statement(session, principal=principal, campaign_id=campaign_id)
    return {
        item.funder: (int(item.subsidy_paid), int(item.outstanding), int(item.clawed_back))
        for item in found.funders
    }


def _save(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
