"""Risk monitoring as pure rules: the rules and their settings, findings and their scores, alert states,
and the case lifecycle. No database, no framework.

A case (seed 五(四): 移交市场监管、公安机关依法查处; SPEC §3):

    open ─investigate─▶ investigating ─confirm─▶ confirmed ─refer─▶ referred ─sanction─▶ sanctioned
      │                    │                       │   ▲              │ ⟲ refer (another department)
      └──────dismiss───────┴──▶ dismissed          └───┴──sanction────┘

`assign` and `note` record a step without changing the state (allowed until the case is closed).
Every transition not in `TRANSITIONS` is refused with `invalid_transition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from huimin.errors import ConflictError, HuiminError, InvalidInput, Problem

__all__ = [
    "CLOSED",
    "DEFAULT_SETTINGS",
    "MAX_SCORE",
    "MEASURES",
    "TRANSITIONS",
    "AlertStatus",
    "CaseAction",
    "CaseRefused",
    "CaseStatus",
    "Department",
    "Finding",
    "Measure",
    "RiskSettings",
    "Rule",
    "SubjectKind",
    "alert_score",
    "allowed_actions",
    "combined_score",
    "next_status",
    "settings_from",
    "step_problems",
]


class Rule(StrEnum):
    SELF_CLAIM_SELF_REDEEM = "self_claim_self_redeem"  # 自领自核: the merchant's own people
    THRESHOLD_HUGGING = "threshold_hugging"  # 金额贴近门槛
    SPLIT_ORDERS = "split_orders"  # 拆单
    VELOCITY = "velocity"  # 核销频次异常
    OFF_HOURS = "off_hours"  # 非营业时间核销
    REFUND_SOON = "refund_soon"  # 核销后短时退款
    REFUND_RATE = "refund_rate"  # 退款率高
    DEVICE_FARM = "device_farm"  # 设备农场: many persons on one device, one person on many devices
    RESALE_RING = "resale_ring"  # 倒卖券: unrelated claimers funnelled into one merchant
    LOCATION_SPOOFING = "location_spoofing"  # 位置伪造: a claim's place belied by its IP or by the clock

    @property
    def label(self) -> str:
        return _RULE_LABELS[self]


_RULE_LABELS = {
    Rule.SELF_CLAIM_SELF_REDEEM: "自领自核",
    Rule.THRESHOLD_HUGGING: "金额贴近门槛",
    Rule.SPLIT_ORDERS: "拆单核销",
    Rule.VELOCITY: "核销频次异常",
    Rule.OFF_HOURS: "非营业时间核销",
    Rule.REFUND_SOON: "核销后短时退款",
    Rule.REFUND_RATE: "退款率异常",
    Rule.DEVICE_FARM: "设备聚集",
    Rule.RESALE_RING: "疑似倒卖券",
    Rule.LOCATION_SPOOFING: "位置伪造",
}


class SubjectKind(StrEnum):
    MERCHANT = "merchant"
    PERSON = "person"  # a natural person (persons.id), whatever app accounts they use
    DEVICE = "device"  # a device digest (keyed hash): many persons on one device


class AlertStatus(StrEnum):
    OPEN = "open"  # raised, not yet in a case
    IN_CASE = "in_case"  # taken into a case that is not decided yet
    DISMISSED = "dismissed"  # its case was dismissed: it no longer counts in scores
    CONFIRMED = "confirmed"  # its case was confirmed (and possibly referred, sanctioned)


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    DISMISSED = "dismissed"
    CONFIRMED = "confirmed"
    REFERRED = "referred"  # 移交 the market regulator and/or the police
    SANCTIONED = "sanctioned"


class CaseAction(StrEnum):
    OPEN = "open"  # the case is opened from alerts (recorded as its first step)
    INVESTIGATE = "investigate"
    DISMISS = "dismiss"
    CONFIRM = "confirm"
    REFER = "refer"
    SANCTION = "sanction"
    ASSIGN = "assign"
    NOTE = "note"


class Department(StrEnum):
    """Who a confirmed case is handed to (seed 五(四), 六(三)(六))."""

    MARKET_REGULATOR = "market_regulator"  # 市市场监管局
    POLICE = "police"  # 市公安局


class Measure(StrEnum):
    """What a sanction does. To a merchant, through the merchants service (seed 五(一), 六(十)); to a person
    or a device, through the claim block list and the vouchers (issue 7: 回收未使用的券, 禁止领取)."""

    SUSPEND = "suspend"  # 暂停: may not redeem; settlement held
    EXPEL = "expel"  # 取消参与资格: dishonest list, unsettled subsidy frozen, settled subsidy clawed back
    BLOCK = "block"  # 禁止领取: no claim and no lottery entry in the campaign
    BLOCK_AND_REVOKE = "block_and_revoke"  # and the unused vouchers of the campaign revoked (作废)


# The measures a sanction may take, by the kind of subject it is about.
MEASURES: dict[SubjectKind, tuple[Measure, ...]] = {
    SubjectKind.MERCHANT: (Measure.SUSPEND, Measure.EXPEL),
    SubjectKind.PERSON: (Measure.BLOCK, Measure.BLOCK_AND_REVOKE),
    SubjectKind.DEVICE: (Measure.BLOCK, Measure.BLOCK_AND_REVOKE),
}


S = CaseStatus
CLOSED = frozenset({S.DISMISSED, S.SANCTIONED})
# action -> (the states it may start from, the state it leads to); None: the state does not change
TRANSITIONS: dict[CaseAction, tuple[frozenset[CaseStatus], CaseStatus | None]] = {
    CaseAction.INVESTIGATE: (frozenset({S.OPEN}), S.INVESTIGATING),
    CaseAction.DISMISS: (frozenset({S.OPEN, S.INVESTIGATING}), S.DISMISSED),
    CaseAction.CONFIRM: (frozenset({S.INVESTIGATING}), S.CONFIRMED),
    CaseAction.REFER: (frozenset({S.CONFIRMED, S.REFERRED}), S.REFERRED),
    CaseAction.SANCTION: (frozenset({S.CONFIRMED, S.REFERRED}), S.SANCTIONED),
    CaseAction.ASSIGN: (frozenset(CaseStatus) - CLOSED, None),
    CaseAction.NOTE: (frozenset(CaseStatus), None),
}
REASON_MAX_LENGTH = 2000


class CaseRefused:
    @staticmethod
    def invalid_transition(current: CaseStatus, action: CaseAction) -> HuiminError:
        allowed = ", ".join(action.value for action in allowed_actions(current)) or "none"
        return ConflictError(
            f"a case that is {current.value} cannot take the step {action.value} (allowed now: {allowed})",
            code="invalid_transition",
        )


def next_status(current: CaseStatus, action: CaseAction) -> CaseStatus:
    """The state `action` leads to from `current`; raises invalid_transition when not allowed."""
    sources, target = TRANSITIONS.get(action, (frozenset(), None))
    if current not in sources:
        raise CaseRefused.invalid_transition(current, action)
    return current if target is None else target


def allowed_actions(current: CaseStatus) -> list[CaseAction]:
    return [action for action, (sources, _) in TRANSITIONS.items() if current in sources]


def step_problems(
    action: CaseAction,
    *,
    subject: SubjectKind,
    reason: str,
    department: Department | None,
    measure: Measure | None,
    assignee: str | None,
) -> list[Problem]:
    """What a step needs: a reason for every decision, a department to refer to, a measure of the
    subject's kind to sanction with (`MEASURES`), someone to assign to."""
    problems = []
    if action is not CaseAction.ASSIGN and not reason.strip():
        problems.append(Problem("reason", f"give a reason to {action.value}"))
    if len(reason) > REASON_MAX_LENGTH:
        problems.append(Problem("reason", f"at most {REASON_MAX_LENGTH} characters"))
    if (action is CaseAction.REFER) != (department is not None):
        problems.append(Problem("department", "name the department for a referral, and only for one"))
    allowed = MEASURES[subject]
    if action is CaseAction.SANCTION and measure not in allowed:
        problems.append(
            Problem("measure", f"a sanction of a {subject.value} is {' or '.join(m.value for m in allowed)}")
        )
    if action is not CaseAction.SANCTION and measure is not None:
        problems.append(Problem("measure", "a measure belongs to a sanction"))
    if (action is CaseAction.ASSIGN) != bool(assignee and assignee.strip()):
        problems.append(Problem("assignee", "name the assignee when assigning, and only then"))
    return problems


# Settings: every threshold of every rule, per campaign (risk_settings), defaults here. Amount shares and
# rates are basis points (1/10,000), never floats.


@dataclass(frozen=True)
class RiskSettings:
    # threshold hugging: share of a merchant's threshold redemptions on one local day whose amount is within
    # `hug_margin_bp` above a floor (满T threshold or a price band's minimum)
    hug_margin_bp: int = 500
    hug_min_redemptions: int = 10
    hug_share_bp: int = 7000
    # split orders: one person, one merchant, each purchase hugging a floor, consecutive ones this close
    split_window_minutes: int = 30
    split_min_orders: int = 2
    # velocity: redemptions in one local clock hour against the merchant's trailing median of busy hours
    velocity_baseline_days: int = 7
    velocity_factor: int = 5
    velocity_baseline_floor: int = 3
    velocity_min_per_hour: int = 20
    # outside business hours (with a grace at opening and closing), per merchant and local day
    off_hours_grace_minutes: int = 15
    off_hours_min_redemptions: int = 2
    # refunds: soon after the redemption (per merchant and local day), and the campaign-to-date rate
    refund_soon_minutes: int = 10
    refund_soon_min_refunds: int = 3
    refund_rate_bp: int = 3000
    refund_rate_min_redemptions: int = 20
    # device farms: persons registered on one device; devices of one person's accounts
    farm_persons_per_device: int = 5
    farm_devices_per_person: int = 4
    # resale rings: a merchant's redeemers over the trailing window, linked (sharing a device or phone with
    # another of its redeemers) or far (claimed in another district than the merchant's)
    ring_window_days: int = 7
    ring_min_redeemers: int = 10
    ring_linked_share_bp: int = 3000
    ring_far_share_bp: int = 9000
    # location spoofing, per person and local day: claims whose client network is known (risk_ip_regions)
    # to be outside the city though the reported position was inside it; and two claims whose distance
    # (at least `travel_min_km`, so GPS jitter and neighbouring districts never count) over their time gap
    # means travelling faster than `travel_max_kmh`
    ip_outside_min_claims: int = 1
    travel_max_kmh: int = 200
    travel_min_km: int = 20
    # scores: points per rule, an alert scores up to twice its rule's weight as its figure exceeds the line
    weights: Mapping[str, int] = field(
        default_factory=lambda: {
            Rule.SELF_CLAIM_SELF_REDEEM.value: 60,
            Rule.THRESHOLD_HUGGING.value: 30,
            Rule.SPLIT_ORDERS.value: 30,
            Rule.VELOCITY.value: 25,
            Rule.OFF_HOURS.value: 20,
            Rule.REFUND_SOON.value: 20,
            Rule.REFUND_RATE.value: 25,
            Rule.DEVICE_FARM.value: 40,
            Rule.RESALE_RING.value: 50,
            Rule.LOCATION_SPOOFING.value: 35,
        }
    )
    watch_score: int = 60  # on the watch list from this combined score

    def weight(self, rule: Rule) -> int:
        return int(self.weights.get(rule.value, 0))

    def as_dict(self) -> dict[str, Any]:
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["weights"] = dict(self.weights)
        return values


DEFAULT_SETTINGS = RiskSettings()
_BP_SETTINGS = frozenset(
    {"hug_margin_bp", "hug_share_bp", "refund_rate_bp", "ring_linked_share_bp", "ring_far_share_bp"}
)


def settings_from(overrides: Mapping[str, Any]) -> RiskSettings:
    """The defaults with a campaign's overrides; every unknown or impossible value is a problem."""
    problems: list[Problem] = []
    names = {item.name for item in fields(RiskSettings)}
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in names:
            problems.append(Problem(name, "not a risk setting"))
        elif name == "weights":
            if not isinstance(value, Mapping):
                problems.append(Problem(name, "a table of rule: points"))
                continue
            weights = dict(DEFAULT_SETTINGS.weights)
            for rule, points in value.items():
                if rule not in Rule.__members__.values():
                    problems.append(Problem(f"weights.{rule}", "not a rule"))
                elif not isinstance(points, int) or isinstance(points, bool) or not 0 <= points <= 1000:
                    problems.append(Problem(f"weights.{rule}", "a whole number of points from 0 to 1000"))
                else:
                    weights[rule] = points
            changes[name] = weights
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(Problem(name, "a whole number, 0 or more (shares in basis points: 7000 = 70 %)"))
        elif name in _BP_SETTINGS and value > 10_000:
            problems.append(Problem(name, "basis points, at most 10000 (100 %)"))
        else:
            changes[name] = value
    if problems:
        raise InvalidInput(problems, code="invalid_risk_settings")
    return replace(DEFAULT_SETTINGS, **changes)


@dataclass(frozen=True)
class Finding:
    """What a rule saw: about whom, in which window (the deduplication key with the rule and subject),
    the figure that crossed the line and the line, and the evidence (transactions, persons, devices)."""

    rule: Rule
    campaign_id: str
    subject_kind: SubjectKind
    subject_id: str
    window: str  # "2022-06-24" (local day), "2022-06-24T10" (local hour), "to-date"
    figure: int
    threshold: int
    unit: str  # "count", "per_hour", "bp"
    summary: str
    evidence: Mapping[str, Any]
    at: datetime  # the latest event it rests on
    jurisdiction: str | None = None  # the merchant's, for county scope


MAX_SCORE = 1000


def alert_score(weight: int, *, figure: int, threshold: int) -> int:
    """The rule's weight, scaled by how far the figure went past the line, at most doubled."""
    if threshold <= 0:
        return weight * 2 if figure > 0 else weight
    return weight * min(figure * 100 // threshold, 200) // 100


def combined_score(scores: list[int]) -> int:
    """A subject's risk score: the sum of its live alerts' scores, capped."""
    return min(sum(scores), MAX_SCORE)
