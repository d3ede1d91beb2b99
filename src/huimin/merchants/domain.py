"""Merchants as pure rules: the onboarding state machine, the unified social credit code, what an
invitation and an application must hold, business hours. No database, no framework.

The lifecycle (SPEC §3; seed 三, 五(一), 六(八)(十)):

    invited ─apply─▶ applied ─submit─▶ submitted ─approve─▶ county_approved ─publish─▶ listed ─commit─▶ active
                      ▲  ⟲ apply           │
                      │    (amend)       reject
                      │                    ▼
                      └──────apply─── county_rejected

    active ─suspend─▶ suspended ─reinstate─▶ active
    active ─expel─▶ expelled            suspended ─expel─▶ expelled          (expelled is final)

Every transition not in `TRANSITIONS` is refused with `invalid_transition`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from huimin.errors import ConflictError, HuiminError, Problem
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass, TermError

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "EVENTS",
    "REASON_REQUIRED",
    "TRANSITIONS",
    "Action",
    "Application",
    "BusinessHours",
    "EventKind",
    "Invitation",
    "MerchantRefused",
    "MerchantStatus",
    "allowed_actions",
    "application_problems",
    "bank_account_problem",
    "credit_code_check_character",
    "credit_code_problem",
    "invitation_problems",
    "jurisdictions_of_place",
    "next_status",
    "normalise_account",
    "normalise_credit_code",
    "parse_business_hours",
    "phone_problem",
    "reason_problem",
]


class MerchantStatus(StrEnum):
    INVITED = "invited"  # 已邀约: on the commerce bureau's invitation list
    APPLIED = "applied"  # 已报名: the operator completed the application with the merchant
    SUBMITTED = "submitted"  # 待审核: handed to the county (区县) commerce department
    COUNTY_APPROVED = "county_approved"  # 县级审核通过
    COUNTY_REJECTED = "county_rejected"  # 县级审核未通过
    LISTED = "listed"  # 已列入名单: on the city's final list
    ACTIVE = "active"  # 参与中: commitment signed, may redeem
    SUSPENDED = "suspended"  # 已暂停
    EXPELLED = "expelled"  # 已清退: out of the campaign, on the dishonest list

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    MerchantStatus.INVITED: "已邀约",
    MerchantStatus.APPLIED: "已报名",
    MerchantStatus.SUBMITTED: "待县级审核",
    MerchantStatus.COUNTY_APPROVED: "县级审核通过",
    MerchantStatus.COUNTY_REJECTED: "县级审核未通过",
    MerchantStatus.LISTED: "已列入名单",
    MerchantStatus.ACTIVE: "参与中",
    MerchantStatus.SUSPENDED: "已暂停",
    MerchantStatus.EXPELLED: "已清退",
}


class Action(StrEnum):
    INVITE = "invite"  # the city commerce bureau invites (定向邀约)
    APPLY = "apply"  # the operator completes (or amends, or corrects after rejection) the application
    SUBMIT = "submit"  # the operator hands it to the county for review
    APPROVE = "approve"  # the county commerce department of the merchant's jurisdiction
    REJECT = "reject"
    PUBLISH = "publish"  # the city puts it on the final list (市商务局汇总)
    COMMIT = "commit"  # the merchant accepts the integrity commitment (承诺书): then active
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    EXPEL = "expel"  # 取消参与资格: dishonest list, frozen and clawed-back subsidy


S = MerchantStatus
# action -> (the states it may start from, the state it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[MerchantStatus], MerchantStatus]] = {
    Action.APPLY: (frozenset({S.INVITED, S.APPLIED, S.COUNTY_REJECTED}), S.APPLIED),
    Action.SUBMIT: (frozenset({S.APPLIED}), S.SUBMITTED),
    Action.APPROVE: (frozenset({S.SUBMITTED}), S.COUNTY_APPROVED),
    Action.REJECT: (frozenset({S.SUBMITTED}), S.COUNTY_REJECTED),
    Action.PUBLISH: (frozenset({S.COUNTY_APPROVED}), S.LISTED),
    Action.COMMIT: (frozenset({S.LISTED}), S.ACTIVE),
    Action.SUSPEND: (frozenset({S.ACTIVE}), S.SUSPENDED),
    Action.REINSTATE: (frozenset({S.SUSPENDED}), S.ACTIVE),
    Action.EXPEL: (frozenset({S.ACTIVE, S.SUSPENDED}), S.EXPELLED),
}


class EventKind(StrEnum):
    """What the money side hears about (the `merchant_events` outbox)."""

    ACTIVATED = "merchant.activated"  # may redeem from now on
    SUSPENDED = "merchant.suspended"  # may not redeem until reinstated
    REINSTATED = "merchant.reinstated"
    EXPELLED = "merchant.expelled"  # freeze unsettled subsidy, claw back settled subsidy (seed 六(十))


EVENTS = {
    Action.COMMIT: EventKind.ACTIVATED,
    Action.SUSPEND: EventKind.SUSPENDED,
    Action.REINSTATE: EventKind.REINSTATED,
    Action.EXPEL: EventKind.EXPELLED,
}
# A refusal or a sanction is explained to the merchant and to whoever reads the record later.
REASON_REQUIRED = frozenset({Action.REJECT, Action.SUSPEND, Action.REINSTATE, Action.EXPEL})
REASON_MAX_LENGTH = 500


class MerchantRefused:
    """The refusals of the merchants package, each with its stable code."""

    @staticmethod
    def invalid_transition(current: MerchantStatus, action: Action) -> HuiminError:
        allowed = ", ".join(action.value for action in allowed_actions(current)) or "none"
        return ConflictError(
            f"a merchant that is {current.value} cannot be {_PAST[action]} (allowed now: {allowed})",
            code="invalid_transition",
        )

    @staticmethod
    def dishonest(credit_code: str) -> HuiminError:
        return ConflictError(
            f"credit code {credit_code} is on the dishonest list (失信名单): it cannot take part",
            code="merchant_dishonest",
        )


_PAST = {
    Action.INVITE: "invited",
    Action.APPLY: "applied for",
    Action.SUBMIT: "submitted",
    Action.APPROVE: "approved",
    Action.REJECT: "rejected",
    Action.PUBLISH: "published",
    Action.COMMIT: "activated by a commitment",
    Action.SUSPEND: "suspended",
    Action.REINSTATE: "reinstated",
    Action.EXPEL: "expelled",
}


def next_status(current: MerchantStatus, action: Action) -> MerchantStatus:
    """The state `action` leads to from `current`; raises invalid_transition when not allowed."""
    sources, target = TRANSITIONS.get(action, (frozenset(), current))
    if current not in sources:
        raise MerchantRefused.invalid_transition(current, action)
    return target


def allowed_actions(current: MerchantStatus) -> list[Action]:
    return [action for action, (sources, _) in TRANSITIONS.items() if current in sources]


def reason_problem(action: Action, reason: str) -> Problem | None:
    if action in REASON_REQUIRED and not reason.strip():
        return Problem("reason", f"give a reason to {action.value} a merchant")
    if len(reason) > REASON_MAX_LENGTH:
        return Problem("reason", f"at most {REASON_MAX_LENGTH} characters")
    return None


# 统一社会信用代码 (GB 32100-2015): 18 characters from 31 symbols (no I, O, S, V, Z). 1: registration
# authority, 2: kind of organisation, 3-8: the registering authority's region code, 9-17: the
# organisation code, 18: a check character, weights 3^(i-1) mod 31.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def normalise_credit_code(value: str) -> str:
    """Full-width to half-width, spaces and dashes removed, upper case."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(char for char in folded if not char.isspace() and char != "-").upper()


def credit_code_check_character(first_17: str) -> str:
    total = sum(
        CREDIT_CODE_ALPHABET.index(char) * weight
        for char, weight in zip(first_17, _CREDIT_WEIGHTS, strict=True)
    )
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(value: str) -> str | None:
    """Why a unified social credit code is invalid, or None when it is valid (after normalising)."""
    code = normalise_credit_code(value)
    if not code:
        return "empty credit code"
    if len(code) != 18:
        return f"a credit code has 18 characters, this one has {len(code)}"
    foreign = sorted({char for char in code if char not in CREDIT_CODE_ALPHABET})
    if foreign:
        return f"{''.join(foreign)} cannot appear in a credit code (I, O, S, V and Z never do)"
    if not code[2:8].isdigit():
        return "characters 3-8 of a credit code are the 6-digit region code"
    if code[17] != credit_code_check_character(code[:17]):
        return "check character does not match (GB 32100)"
    return None


_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}(-\d{1,6})?")
_ACCOUNT = re.compile(r"\d{8,32}")
_TERMINAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{3,31}")
MAX_TERMINALS = 50


def normalise_phone(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value).strip().removeprefix("+86")
    return "".join(char for char in folded if not char.isspace())


def phone_problem(value: str) -> str | None:
    """A contact number: a mainland mobile or a landline with its area code (028-12345678)."""
    clean = normalise_phone(value)
    if _MOBILE.fullmatch(clean) or _LANDLINE.fullmatch(clean):
        return None
    return "must be an 11-digit mobile number or a landline with its area code, e.g. 028-26123456"


def normalise_account(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value)
    return "".join(char for char in folded if not char.isspace() and char != "-")


def bank_account_problem(value: str) -> str | None:
    if not _ACCOUNT.fullmatch(normalise_account(value)):
        return "a settlement account number has 8 to 32 digits"
    return None


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours, the same every day, as spans of minutes since midnight. A span that closes
    before it opens runs past midnight (a night market: 18:00-02:00); 00:00-24:00 is all day."""

    spans: tuple[tuple[int, int], ...]

    def is_open_at(self, minute_of_day: int) -> bool:
        for opens, closes in self.spans:
            if opens < closes and opens <= minute_of_day < closes:
                return True
            if closes < opens and (minute_of_day >= opens or minute_of_day < closes):
                return True
        return False

    def __str__(self) -> str:
        return ",".join(f"{_hhmm(opens)}-{_hhmm(closes)}" for opens, closes in self.spans)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_SPAN = re.compile(r"(\d{1,2}):(\d{2})\s*(?:-|~|至|到)\s*(\d{1,2}):(\d{2})")
_SEPARATORS = re.compile(r"[\s,;、/]*")


def parse_business_hours(text: str) -> BusinessHours:
    """ "09:00-21:00", "10:00-14:00, 17:00-22:00", "9:00至21:30", full-width characters allowed.
    Raises ValueError with a message for an official."""
    folded = unicodedata.normalize("NFKC", text).strip()
    matches = list(_SPAN.finditer(folded))
    if not matches:
        raise ValueError('give the opening hours, e.g. "09:00-21:00" or "10:00-14:00,17:00-22:00"')
    if len(matches) > MAX_SPANS:
        raise ValueError(f"at most {MAX_SPANS} spans of hours")
    leftovers = _SPAN.sub(",", folded)
    if not _SEPARATORS.fullmatch(leftovers):
        raise ValueError(f'{text!r} is not a list of spans of hours such as "10:00-14:00,17:00-22:00"')
    spans = []
    for match in matches:
        oh, om, ch, cm = (int(group) for group in match.groups())
        opens, closes = oh * 60 + om, ch * 60 + cm
        if oh > 23 or om > 59 or cm > 59 or closes > 24 * 60:
            raise ValueError(f"{match.group(0)!r} is not a time of day")
        if opens == closes:
            raise ValueError(f"{match.group(0)!r} opens and closes at the same time")
        spans.append((opens, closes))
    return BusinessHours(tuple(spans))


@dataclass(frozen=True)
class Invitation:
    """One merchant on the commerce bureau's invitation list (邀约名单)."""

    credit_code: str
    legal_name: str
    jurisdiction: Jurisdiction
    category: Category
    merchant_class: MerchantClass
    registered_address: str = ""
    contact_name: str = ""
    contact_phone: str = ""


# Column widths (models.py): longer text is refused here, as a problem, never by the database.
NAME_MAX_LENGTH = 200
ADDRESS_MAX_LENGTH = 300
BANK_NAME_MAX_LENGTH = 100
CONTACT_NAME_MAX_LENGTH = 50
MAX_SPANS = 8  # of business hours: 8 spans fill the 100 characters of the column


def invitation_problems(
    *,
    credit_code: str,
    legal_name: str,
    jurisdiction: str,
    category: str,
    merchant_class: str,
    registered_address: str = "",
    contact_name: str = "",
    contact_phone: str = "",
) -> tuple[Invitation | None, list[Problem]]:
    """An invitation from the text an official typed, or every problem with it. Terms may be given by
    code or by Chinese name; a jurisdiction outside Ziyang's five is refused (registration in Ziyang
    is a precondition, seed 六(十))."""
    problems = []
    code_problem = credit_code_problem(credit_code)
    if code_problem:
        problems.append(Problem("credit_code", code_problem))
    name = unicodedata.normalize("NFKC", legal_name).strip()
    if not name:
        problems.append(Problem("legal_name", "empty name"))
    elif len(name) > NAME_MAX_LENGTH:
        problems.append(Problem("legal_name", f"at most {NAME_MAX_LENGTH} characters"))
    if len(registered_address.strip()) > ADDRESS_MAX_LENGTH:
        problems.append(Problem("registered_address", f"at most {ADDRESS_MAX_LENGTH} characters"))
    terms: dict[str, Jurisdiction | Category | MerchantClass] = {}
    for field, kind, text in (
        ("jurisdiction", Jurisdiction, jurisdiction),
        ("category", Category, category),
        ("merchant_class", MerchantClass, merchant_class),
    ):
        clean = unicodedata.normalize("NFKC", text).strip()
        if not clean:
            problems.append(Problem(field, f"empty {field.replace('_', ' ')}"))
            continue
        try:
            terms[field] = kind.parse(clean)
        except TermError as error:
            problems.append(Problem(field, str(error)))
    if len(contact_name.strip()) > CONTACT_NAME_MAX_LENGTH:
        problems.append(Problem("contact_name", f"at most {CONTACT_NAME_MAX_LENGTH} characters"))
    if contact_phone.strip() and (phone := phone_problem(contact_phone)):
        problems.append(Problem("contact_phone", phone))
    if problems:
        return None, problems
    return (
        Invitation(
            credit_code=normalise_credit_code(credit_code),
            legal_name=name,
            jurisdiction=Jurisdiction(terms["jurisdiction"]),
            category=Category(terms["category"]),
            merchant_class=MerchantClass(terms["merchant_class"]),
            registered_address=registered_address.strip(),
            contact_name=contact_name.strip(),
            contact_phone=normalise_phone(contact_phone) if contact_phone.strip() else "",
        ),
        [],
    )


@dataclass(frozen=True)
class Application:
    """What the operator completes with the merchant (seed 三(一): 银联一对一对接, 帮助完善相关资料)."""

    registered_address: str
    business_hours: str
    terminals: tuple[str, ...]  # till terminal numbers (终端号)
    bank_name: str  # 开户银行
    bank_account: str  # 结算账号: sealed when stored, shown masked
    contact_name: str
    contact_phone: str


def application_problems(application: Application) -> list[Problem]:
    problems = []
    address = application.registered_address.strip()
    if not address:
        problems.append(Problem("registered_address", "give the registered address (注册地址)"))
    elif len(address) > ADDRESS_MAX_LENGTH:
        problems.append(Problem("registered_address", f"at most {ADDRESS_MAX_LENGTH} characters"))
    try:
        parse_business_hours(application.business_hours)
    except ValueError as error:
        problems.append(Problem("business_hours", str(error)))
    if not application.terminals:
        problems.append(Problem("terminals", "name at least one till terminal (收银终端号)"))
    if len(application.terminals) > MAX_TERMINALS:
        problems.append(Problem("terminals", f"at most {MAX_TERMINALS} terminals"))
    seen: set[str] = set()
    for index, terminal in enumerate(application.terminals):
        if not _TERMINAL.fullmatch(terminal):
            problems.append(
                Problem(
                    f"terminals[{index}]", "4-32 letters, digits, '-' or '_', starting with a letter or digit"
                )
            )
        elif terminal.upper() in seen:
            problems.append(Problem(f"terminals[{index}]", f"terminal {terminal} is named twice"))
        seen.add(terminal.upper())
    if not application.bank_name.strip():
        problems.append(Problem("bank_name", "give the bank of the settlement account (开户银行)"))
    elif len(application.bank_name.strip()) > BANK_NAME_MAX_LENGTH:
        problems.append(Problem("bank_name", f"at most {BANK_NAME_MAX_LENGTH} characters"))
    if problem := bank_account_problem(application.bank_account):
        problems.append(Problem("bank_account", problem))
    if not application.contact_name.strip():
        problems.append(Problem("contact_name", "give a contact person"))
    elif len(application.contact_name.strip()) > CONTACT_NAME_MAX_LENGTH:
        problems.append(Problem("contact_name", f"at most {CONTACT_NAME_MAX_LENGTH} characters"))
    if problem := phone_problem(application.contact_phone):
        problems.append(Problem("contact_phone", problem))
    return problems


def jurisdictions_of_place(place: str) -> frozenset[Jurisdiction]:
    """The jurisdictions in a place a resident names: a district (雁江区 includes 高新区 and 临空经济区,
    which lie inside it) or one jurisdiction. Raises TermError for an unknown place."""
    try:
        district = District.parse(place)
    except TermError:
        return frozenset({Jurisdiction.parse(place)})
    return frozenset(item for item in Jurisdiction if item.district is district)
