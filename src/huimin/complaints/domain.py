"""Complaints (投诉) as pure rules: categories, channels, the departments that handle them, routing,
the lifecycle, due dates in working days and the overdue flag. No database, no framework.

The lifecycle (SPEC §3):

    registered ─assign─▶ assigned ─start─▶ in_progress ─resolve─▶ resolved ─close─▶ closed
                           ⟲ assign           ⟲ assign              │
                                                 ▲──────reopen───────┘

`assign` also re-assigns (from assigned or in_progress, which then waits for the new assignee to
start); `reopen` takes a resolution the complainant did not accept back to in_progress. Closed is
final. Every transition not in `TRANSITIONS` is refused with `invalid_transition`.

Routing (seed 六(五)(六)(七)(八)(九)): price and quality complaints go to the market regulator
(市场监管局); a merchant refusing vouchers (and any other merchant complaint) to the county commerce
office of the merchant's jurisdiction (县（区）商务主管部门); cannot-claim problems to the payment
operator (银联); suspected cash-out to the operator's risk team, linked to the merchant's risk case;
bank and payment complaints to the PBOC branch (人行). The jurisdiction is the merchant's, when there
is one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from huimin.errors import ConflictError, HuiminError, Problem
from huimin.kit.terms import Jurisdiction

__all__ = [
    "DEFAULT_SLA_DAYS",
    "OPEN_STATUSES",
    "TRANSITIONS",
    "Action",
    "Category",
    "Channel",
    "ComplaintStatus",
    "Department",
    "Route",
    "add_working_days",
    "allowed_actions",
    "due_at",
    "is_overdue",
    "next_status",
    "normalise_phone",
    "phone_problem",
    "route",
    "sla_days",
    "text_problem",
]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
TEXT_MAX_LENGTH = 2000
NOTE_MAX_LENGTH = 2000


class Category(StrEnum):
    CANNOT_CLAIM = "cannot_claim"  # 无法领券
    MERCHANT_REFUSED_VOUCHER = "merchant_refused_voucher"  # 商家拒收消费券
    DISGUISED_PRICE_INCREASE = "disguised_price_increase"  # 变相加价
    PRODUCT_QUALITY = "product_quality"  # 产品质量
    SUSPECTED_CASH_OUT = "suspected_cash_out"  # 疑似套现
    BANK_PAYMENT = "bank_payment"  # 银行卡、支付问题 (人行 消费投诉)
    OTHER = "other"  # 其他

    @property
    def label(self) -> str:
        return _CATEGORY_LABELS[self]


_CATEGORY_LABELS = {
    Category.CANNOT_CLAIM: "无法领券",
    Category.MERCHANT_REFUSED_VOUCHER: "商家拒收消费券",
    Category.DISGUISED_PRICE_INCREASE: "变相加价",
    Category.PRODUCT_QUALITY: "产品质量",
    Category.SUSPECTED_CASH_OUT: "疑似套现",
    Category.BANK_PAYMENT: "银行卡及支付",
    Category.OTHER: "其他",
}


class Channel(StrEnum):
    """Who registered it."""

    HOTLINE = "hotline"  # 12345 市民热线 (市大数据局)
    MARKET_REGULATOR = "market_regulator"  # 12315 / walk-in at the market regulator
    PBOC = "pboc"  # 人行资阳市中心支行
    RESIDENT_APP = "resident_app"  # the resident through the payment app (signed partner API)


class Department(StrEnum):
    """Who handles it."""

    CITY_COMMERCE = "city_commerce"  # 市商务局
    COUNTY_COMMERCE = "county_commerce"  # 县（区）商务主管部门 of the complaint's jurisdiction
    MARKET_REGULATOR = "market_regulator"  # 市市场监管局
    OPERATOR = "operator"  # 银联 customer service
    OPERATOR_RISK = "operator_risk"  # 银联 risk monitoring (实时监控, 预警)
    PBOC = "pboc"  # 人行资阳市中心支行

    @property
    def label(self) -> str:
        return _DEPARTMENT_LABELS[self]


_DEPARTMENT_LABELS = {
    Department.CITY_COMMERCE: "市商务局",
    Department.COUNTY_COMMERCE: "县（区）商务主管部门",
    Department.MARKET_REGULATOR: "市市场监管局",
    Department.OPERATOR: "银联客服",
    Department.OPERATOR_RISK: "银联风险监测",
    Department.PBOC: "人行资阳市中心支行",
}


class ComplaintStatus(StrEnum):
    REGISTERED = "registered"  # 已登记
    ASSIGNED = "assigned"  # 已分派
    IN_PROGRESS = "in_progress"  # 办理中
    RESOLVED = "resolved"  # 已办结
    CLOSED = "closed"  # 已关闭 (回访确认)

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    ComplaintStatus.REGISTERED: "已登记",
    ComplaintStatus.ASSIGNED: "已分派",
    ComplaintStatus.IN_PROGRESS: "办理中",
    ComplaintStatus.RESOLVED: "已办结",
    ComplaintStatus.CLOSED: "已关闭",
}

# A complaint still waiting for an answer: the due date runs against these.
OPEN_STATUSES = frozenset({ComplaintStatus.REGISTERED, ComplaintStatus.ASSIGNED, ComplaintStatus.IN_PROGRESS})


class Action(StrEnum):
    REGISTER = "register"  # not a transition: the first record of the history
    ASSIGN = "assign"
    START = "start"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"
    NOTE = "note"  # not a transition: a note in the history
    LINK_RISK_CASE = "link_risk_case"  # not a transition: the risk case it concerns


S = ComplaintStatus
TRANSITIONS: dict[Action, tuple[frozenset[ComplaintStatus], ComplaintStatus]] = {
    Action.ASSIGN: (frozenset({S.REGISTERED, S.ASSIGNED, S.IN_PROGRESS}), S.ASSIGNED),
    Action.START: (frozenset({S.ASSIGNED}), S.IN_PROGRESS),
    Action.RESOLVE: (frozenset({S.IN_PROGRESS}), S.RESOLVED),
    Action.REOPEN: (frozenset({S.RESOLVED}), S.IN_PROGRESS),
    Action.CLOSE: (frozenset({S.RESOLVED}), S.CLOSED),
}
# What must say why: a resolution is its text, a reopening its reason.
TEXT_REQUIRED = frozenset({Action.RESOLVE, Action.REOPEN, Action.NOTE})


class ComplaintRefused:
    @staticmethod
    def invalid_transition(current: ComplaintStatus, action: Action) -> HuiminError:
        allowed = ", ".join(item.value for item in allowed_actions(current)) or "none"
        return ConflictError(
            f"a complaint that is {current.value} cannot take {action.value} (allowed now: {allowed})",
            code="invalid_transition",
        )

    @staticmethod
    def closed() -> HuiminError:
        return ConflictError("the complaint is closed: nothing more can be added", code="complaint_closed")


def next_status(current: ComplaintStatus, action: Action) -> ComplaintStatus:
    sources, target = TRANSITIONS.get(action, (frozenset(), current))
    if current not in sources:
        raise ComplaintRefused.invalid_transition(current, action)
    return target


def allowed_actions(current: ComplaintStatus) -> list[Action]:
    return [action for action, (sources, _) in TRANSITIONS.items() if current in sources]


# Routing


@dataclass(frozen=True)
class Route:
    department: Department
    jurisdiction: Jurisdiction | None  # the merchant's; None for city-wide departments without a merchant


_BY_CATEGORY = {
    Category.CANNOT_CLAIM: Department.OPERATOR,
    Category.MERCHANT_REFUSED_VOUCHER: Department.COUNTY_COMMERCE,
    Category.DISGUISED_PRICE_INCREASE: Department.MARKET_REGULATOR,
    Category.PRODUCT_QUALITY: Department.MARKET_REGULATOR,
    Category.SUSPECTED_CASH_OUT: Department.OPERATOR_RISK,
    Category.BANK_PAYMENT: Department.PBOC,
    Category.OTHER: Department.COUNTY_COMMERCE,
}


def route(category: Category, merchant_jurisdiction: Jurisdiction | None) -> Route:
    """The department and jurisdiction responsible for a complaint. The county commerce office needs a
    jurisdiction: without a merchant its complaints go to the city commerce bureau."""
    department = _BY_CATEGORY[category]
    if department is Department.COUNTY_COMMERCE and merchant_jurisdiction is None:
        department = Department.CITY_COMMERCE
    return Route(department, merchant_jurisdiction)


# Due dates: working days in Asia/Shanghai

# Working days to answer, per category (12345 热线 practice: simple requests in 3 working days, those
# needing an inspection in 5). Settings may override any of them.
DEFAULT_SLA_DAYS: Mapping[Category, int] = {
    Category.CANNOT_CLAIM: 3,
    Category.MERCHANT_REFUSED_VOUCHER: 3,
    Category.DISGUISED_PRICE_INCREASE: 5,
    Category.PRODUCT_QUALITY: 5,
    Category.SUSPECTED_CASH_OUT: 5,
    Category.BANK_PAYMENT: 5,
    Category.OTHER: 5,
}


def sla_days(category: Category, overrides: Mapping[str, int] | None = None) -> int:
    days = (overrides or {}).get(category.value, DEFAULT_SLA_DAYS[category])
    if days < 1:
        raise ValueError(f"the SLA of {category.value} must be at least one working day")
    return days


def add_working_days(start: date, days: int, holidays: Collection[date] = ()) -> date:
    """The `days`-th working day after `start` (Monday to Friday, holidays skipped)."""
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            left -= 1
    return day


def due_at(registered_at: datetime, days: int, holidays: Collection[date] = ()) -> datetime:
    """The end (midnight after) of the `days`-th working day after the local day of registration: a
    complaint registered on Friday with 3 working days is due by the end of Wednesday."""
    local_day = registered_at.astimezone(LOCAL_TZ).date()
    last = add_working_days(local_day, days, holidays)
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=LOCAL_TZ).astimezone(
        registered_at.tzinfo
    )


def is_overdue(status: ComplaintStatus, due: datetime, now: datetime) -> bool:
    """Past its due date and still unanswered. A complaint resolved late is not overdue any more;
    its `resolved_at` against `due_at` tells it was late."""
    return status in OPEN_STATUSES and now >= due


# Inputs


def text_problem(field: str, text: str, *, max_length: int = TEXT_MAX_LENGTH) -> Problem | None:
    clean = text.strip()
    if not clean:
        return Problem(field, "must not be empty")
    if len(clean) > max_length:
        return Problem(field, f"at most {max_length} characters")
    return None


_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")


def normalise_phone(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value).strip().removeprefix("+86")
    return "".join(char for char in folded if not char.isspace() and char != "-")


def phone_problem(value: str) -> str | None:
    """A caller's number: a mainland mobile or a landline with its area code."""
    clean = normalise_phone(value)
    if _MOBILE.fullmatch(clean) or _LANDLINE.fullmatch(clean):
        return None
    return "an 11-digit mobile number or a landline with its area code, e.g. 028-26123456"
