"""Jobs over many redemptions: the county car and appliance sales ledger (汽车、家电销售台账, seed 六(八))
that each county hands to the city within a week of the campaign's end."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import BatchRow
from huimin.campaigns.service import get_campaign
from huimin.kit.clock import Clock, to_local
from huimin.kit.sheets import box, write_header, write_title
from huimin.kit.terms import Category, Jurisdiction
from huimin.merchants.models import MerchantRow
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.models import RedemptionRow
from huimin.redemptions.repository import RedemptionRepository

__all__ = ["SalesLedger", "export_sales_ledger"]

_STATUS_LABELS = {
    RedemptionStatus.PENDING_VERIFICATION: "待核验",
    RedemptionStatus.CONFIRMED: "已核验",
    RedemptionStatus.SETTLED: "已结算",
    RedemptionStatus.REFUNDED: "已退款",
    RedemptionStatus.REJECTED: "核验未通过",
    RedemptionStatus.CLAWED_BACK: "已追回",
}
_COLUMNS = (
    ("序号", 6),
    ("核销日期", 12),
    ("商家名称", 30),
    ("区县", 10),
    ("类别", 8),
    ("券批次", 24),
    ("销售发票号", 16),
    ("发票金额（元）", 14),
    ("税票号", 16),
    ("订单金额（元）", 14),
    ("商家优惠（元）", 12),
    ("补贴金额（元）", 12),
    ("状态", 10),
    ("核验时间", 17),
)
_YUAN = "#,##0.00"
_PAGE = 5000


def _yuan(fen: int) -> Decimal:
    """Exact yuan for a spreadsheet cell (a Decimal, never a float)."""
    return Decimal(fen).scaleb(-2)


@dataclass(frozen=True)
class SalesLedger:
    file_name: str
    content: bytes
    rows: int


async def export_sales_ledger(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    jurisdiction: Jurisdiction | None,
    clock: Clock,
) -> SalesLedger:
    """Every big-ticket redemption of one jurisdiction (a county reviewer: always its own), with its
    invoice numbers, as an XLSX workbook with Chinese headers and yuan number formats."""
    principal.require(Permission.SALES_LEDGER_EXPORT)
    campaign = await get_campaign(session, campaign_id=campaign_id)
    if principal.jurisdiction is not None:
        if jurisdiction is not None:
            principal.require_scope(jurisdiction, what="jurisdiction", object_id=jurisdiction.value)
        jurisdiction = principal.jurisdiction
    repository = RedemptionRepository(session)
    found: list[tuple[RedemptionRow, BatchRow, MerchantRow]] = []
    offset = 0
    while True:
        page = await repository.search(
            campaign_id=campaign_id,
            jurisdictions=None if jurisdiction is None else [jurisdiction.value],
            merchant_id=None,
            status=None,
            big_ticket=True,
            since=None,
            until=None,
            offset=offset,
            limit=_PAGE,
        )
        found += page
        offset += _PAGE
        if len(page) < _PAGE:
            break
    found.sort(key=lambda item: (item[0].business_day, item[0].redeemed_at, item[0].id))
    now = clock.now()
    scope = "全市" if jurisdiction is None else jurisdiction.label
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = "销售台账"
    counted = [item for item in found if item[0].status != RedemptionStatus.REJECTED.value]
    write_title(
        sheet,
        f"{campaign.name}汽车、家电销售台账（{scope}）",
        f"导出时间：{to_local(now):%Y-%m-%d %H:%M}    共 {len(counted)} 笔（另有核验未通过 "
        f"{len(found) - len(counted)} 笔）",
        len(_COLUMNS),
    )
    write_header(sheet, _COLUMNS)
    for number, (row, batch, merchant) in enumerate(found, start=1):
        sheet.append(
            [
                number,
                row.business_day.isoformat(),
                merchant.legal_name,
                Jurisdiction(row.jurisdiction).label,
                Category(row.category).label,
                batch.name,
                row.sales_invoice_no or "",
                _yuan(row.sales_invoice_fen or 0),
                row.tax_invoice_no or "",
                _yuan(row.order_fen),
                _yuan(row.merchant_discount_fen),
                _yuan(row.subsidy_fen),
                _STATUS_LABELS[RedemptionStatus(row.status)],
                "" if row.verified_at is None else f"{to_local(row.verified_at):%Y-%m-%d %H:%M}",
            ]
        )
        line = number + 3
        for column in (7, 9):
            sheet.cell(row=line, column=column).number_format = "@"
        for column in (8, 10, 11, 12):
            sheet.cell(row=line, column=column).number_format = _YUAN
    box(sheet, first_row=4, columns=len(_COLUMNS))
    sheet.page_setup.orientation = "landscape"
    buffer = io.BytesIO()
    workbook.save(buffer)
    await audit.record(
        session,
        principal=principal,
        action="export.sales_ledger",
        object_type="campaign",
        object_id=campaign_id,
        at=now,
        detail={"jurisdiction": jurisdiction.value if jurisdiction else None, "rows": len(found)},
    )
    return SalesLedger(
        file_name=f"{campaign.code}-汽车家电销售台账-{scope}-{to_local(now):%Y%m%d}.xlsx",
        content=buffer.getvalue(),
        rows=len(found),
    )
