"""Market-regulation inspections (市场监管巡查) as pure rules: what a finding records, how serious it is,
and what the city commerce bureau decides on it. No database, no framework.

Seed 六(六): the market regulator inspects participating merchants for food hygiene, prices and
epidemic rules, and reports what it verified to the city commerce bureau (查实的商家信息及时反馈市商务局),
which may suspend the merchant (seed 五(一)):

    open ─suspend─▶ merchant_suspended
    open ─no_action─▶ no_action

Both decisions are final for the finding (reinstating the merchant is a merchants-package act).
"""

from __future__ import annotations

from enum import StrEnum

from huimin.errors import ConflictError, HuiminError

__all__ = ["TRANSITIONS", "Decision", "FindingKind", "FindingStatus", "Severity", "next_status"]

DESCRIPTION_MAX_LENGTH = 2000
REASON_MAX_LENGTH = 500


class FindingKind(StrEnum):
    FOOD_HYGIENE = "food_hygiene"  # 食品卫生
    PRICES = "prices"  # 商品价格 (incl. 变相加价)
    EPIDEMIC_RULES = "epidemic_rules"  # 防疫
    PRODUCT_QUALITY = "product_quality"  # 产品质量
    OTHER = "other"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    FindingKind.FOOD_HYGIENE: "食品卫生",
    FindingKind.PRICES: "商品价格",
    FindingKind.EPIDEMIC_RULES: "防疫",
    FindingKind.PRODUCT_QUALITY: "产品质量",
    FindingKind.OTHER: "其他",
}


class Severity(StrEnum):
    MINOR = "minor"  # 一般: corrected on the spot
    MAJOR = "major"  # 较重: a deadline to correct
    SEVERE = "severe"  # 严重: the commerce bureau should consider suspension

    @property
    def label(self) -> str:
        return {"minor": "一般", "major": "较重", "severe": "严重"}[self.value]


class FindingStatus(StrEnum):
    OPEN = "open"  # recorded and notified: awaiting the commerce bureau's decision
    MERCHANT_SUSPENDED = "merchant_suspended"  # the commerce bureau suspended the merchant from it
    NO_ACTION = "no_action"  # the commerce bureau decided no sanction (corrected, minor)


class Decision(StrEnum):
    SUSPEND = "suspend"
    NO_ACTION = "no_action"


TRANSITIONS: dict[Decision, tuple[frozenset[FindingStatus], FindingStatus]] = {
    Decision.SUSPEND: (frozenset({FindingStatus.OPEN}), FindingStatus.MERCHANT_SUSPENDED),
    Decision.NO_ACTION: (frozenset({FindingStatus.OPEN}), FindingStatus.NO_ACTION),
}


def next_status(current: FindingStatus, decision: Decision) -> FindingStatus:
    sources, target = TRANSITIONS[decision]
    if current not in sources:
        raise invalid_transition(current, decision)
    return target


def invalid_transition(current: FindingStatus, decision: Decision) -> HuiminError:
    return ConflictError(
        f"a finding that is {current.value} was decided already: it cannot take {decision.value}",
        code="invalid_transition",
    )
