"""Complaints, fraud cases and sanctions, and settlement, for the summary: counts over the small tables
of the complaints, risk and settlement packages (hundreds or thousands of rows, not millions)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.complaints.models import ComplaintRow
from huimin.merchants.models import MerchantRow, MerchantTransitionRow
from huimin.risk.models import RiskAlertRow, RiskCaseRow

__all__ = ["Outcomes", "read_outcomes"]

COMPLAINT_CATEGORIES = {
    "cannot_claim": "无法领券",
    "merchant_refused_voucher": "商家拒收消费券",
    "disguised_price_increase": "变相加价",
    "product_quality": "产品质量",
    "suspected_cash_out": "疑似套现",
    "bank_payment": "银行卡、支付问题",
    "other": "其他",
}
COMPLAINT_STATUSES = {
    "registered": "已登记",
    "assigned": "已分派",
    "in_progress": "办理中",
    "resolved": "已办结",
    "closed": "已关闭",
}
RISK_RULES = {
    "self_claim_self_redeem": "自领自核",
    "threshold_hugging": "金额贴近门槛",
    "split_orders": "拆单",
    "velocity": "核销频次异常",
    "off_hours": "非营业时间核销",
    "refund_soon": "核销后短时退款",
    "refund_rate": "退款率高",
    "device_farm": "设备聚集",
    "resale_ring": "倒卖券",
    "location_spoofing": "位置异常",
}
ALERT_STATUSES = {"open": "待处理", "in_case": "调查中", "dismissed": "已排除", "confirmed": "已查实"}
CASE_STATUSES = {
    "open": "已立案",
    "investigating": "调查中",
    "dismissed": "已排除",
    "confirmed": "已查实",
    "referred": "已移交",
    "sanctioned": "已处理",
}
SANCTIONS = {"suspend": "暂停参与", "expel": "取消参与资格", "reinstate": "恢复参与"}


@dataclass(frozen=True)
class Outcomes:
    complaints: int = 0
    complaints_by_category: dict[str, int] = field(default_factory=dict)
    complaints_by_status: dict[str, int] = field(default_factory=dict)
    complaints_overdue_open: int = 0
    alerts: int = 0
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    alerts_by_status: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    cases_by_status: dict[str, int] = field(default_factory=dict)
    sanctions: dict[str, int] = field(default_factory=dict)  # merchant transitions: suspend, expel …
    dishonest: int = 0  # merchants expelled (on the dishonest list)


async def read_outcomes(session: AsyncSession, *, campaign_id: str, jurisdiction: str | None) -> Outcomes:
    """The campaign's complaints, alerts, cases and sanctions (a county: those of its jurisdiction)."""

    async def counted(column: object, table: object, *conditions: object) -> Counter[str]:
        query = select(column, func.count()).select_from(table).where(*conditions).group_by(column)  # type: ignore[call-overload]
        return Counter({str(key): int(count) for key, count in await session.execute(query)})

    scope_c = [] if jurisdiction is None else [ComplaintRow.jurisdiction == jurisdiction]
    scope_a = [] if jurisdiction is None else [RiskAlertRow.jurisdiction == jurisdiction]
    scope_k = [] if jurisdiction is None else [RiskCaseRow.jurisdiction == jurisdiction]
    scope_m = [] if jurisdiction is None else [MerchantRow.jurisdiction == jurisdiction]
    complaints_by_category = await counted(
        ComplaintRow.category, ComplaintRow, ComplaintRow.campaign_id == campaign_id, *scope_c
    )
    complaints_by_status = await counted(
        ComplaintRow.status, ComplaintRow, ComplaintRow.campaign_id == campaign_id, *scope_c
    )
    overdue = await session.scalar(
        select(func.count())
        .select_from(ComplaintRow)
        .where(
            ComplaintRow.campaign_id == campaign_id,
            ComplaintRow.status.in_(("registered", "assigned", "in_progress")),
            ComplaintRow.due_at < func.coalesce(ComplaintRow.resolved_at, ComplaintRow.updated_at),
            *scope_c,
        )
    )
    alerts_by_rule = await counted(
        RiskAlertRow.rule, RiskAlertRow, RiskAlertRow.campaign_id == campaign_id, *scope_a
    )
    alerts_by_status = await counted(
        RiskAlertRow.status, RiskAlertRow, RiskAlertRow.campaign_id == campaign_id, *scope_a
    )
    cases_by_status = await counted(
        RiskCaseRow.status, RiskCaseRow, RiskCaseRow.campaign_id == campaign_id, *scope_k
    )
    sanctions = Counter(
        {
            str(action): int(count)
            for action, count in await session.execute(
                select(MerchantTransitionRow.action, func.count())
                .join(MerchantRow, MerchantRow.id == MerchantTransitionRow.merchant_id)
                .where(
                    MerchantRow.campaign_id == campaign_id,
                    MerchantTransitionRow.action.in_(tuple(SANCTIONS)),
                    *scope_m,
                )
                .group_by(MerchantTransitionRow.action)
            )
        }
    )
    expelled = await session.scalar(
        select(func.count())
        .select_from(MerchantRow)
        .where(MerchantRow.campaign_id == campaign_id, MerchantRow.status == "expelled", *scope_m)
    )
    return Outcomes(
        complaints=sum(complaints_by_category.values()),
        complaints_by_category=dict(complaints_by_category.most_common()),
        complaints_by_status=dict(complaints_by_status),
        complaints_overdue_open=int(overdue or 0),
        alerts=sum(alerts_by_rule.values()),
        alerts_by_rule=dict(alerts_by_rule.most_common()),
        alerts_by_status=dict(alerts_by_status),
        cases=sum(cases_by_status.values()),
        cases_by_status=dict(cases_by_status),
        sanctions=dict(sanctions),
        dishonest=int(expelled or 0),
    )
