"""Pure rules of merchants: the state machine, the credit code, invitations, applications, hours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huimin.errors import HuiminError
from huimin.kit.terms import Category, Jurisdiction, MerchantClass, TermError
from huimin.merchants.domain import (
    CREDIT_CODE_ALPHABET,
    Action,
    Application,
    MerchantStatus,
    allowed_actions,
    application_problems,
    credit_code_check_character,
    credit_code_problem,
    invitation_problems,
    jurisdictions_of_place,
    next_status,
    normalise_credit_code,
    parse_business_hours,
    phone_problem,
    reason_problem,
)

S = MerchantStatus
# SPEC §3, written out by hand so that a change to the table in domain.py must be made twice.
ALLOWED = {
    (S.INVITED, Action.APPLY): S.APPLIED,
    (S.APPLIED, Action.APPLY): S.APPLIED,  # amend before submission
    (S.COUNTY_REJECTED, Action.APPLY): S.APPLIED,  # correct and apply again
    (S.APPLIED, Action.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, Action.APPROVE): S.COUNTY_APPROVED,
    (S.SUBMITTED, Action.REJECT): S.COUNTY_REJECTED,
    (S.COUNTY_APPROVED, Action.PUBLISH): S.LISTED,
    (S.LISTED, Action.COMMIT): S.ACTIVE,
    (S.ACTIVE, Action.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, Action.REINSTATE): S.ACTIVE,
    (S.ACTIVE, Action.EXPEL): S.EXPELLED,
    (S.SUSPENDED, Action.EXPEL): S.EXPELLED,
}
STEPS = [action for action in Action if action is not Action.INVITE]


@pytest.mark.parametrize("status", list(MerchantStatus))
@pytest.mark.parametrize("action", STEPS)
def test_every_pair_of_state_and_step(status: MerchantStatus, action: Action) -> None:
    expected = ALLOWED.get((status, action))
    if expected is not None:
        assert next_status(status, action) is expected
        return
    with pytest.raises(HuiminError) as refused:
        next_status(status, action)
    assert (refused.value.code, refused.value.status) == ("invalid_transition", 409)
    assert status.value in refused.value.message


def test_allowed_actions_name_the_way_on() -> None:
    assert allowed_actions(S.INVITED) == [Action.APPLY]
    assert allowed_actions(S.ACTIVE) == [Action.SUSPEND, Action.EXPEL]
    assert allowed_actions(S.EXPELLED) == []
    assert {status for status in MerchantStatus if not allowed_actions(status)} == {S.EXPELLED}


@pytest.mark.parametrize("action", [Action.REJECT, Action.SUSPEND, Action.REINSTATE, Action.EXPEL])
def test_refusals_and_sanctions_need_a_reason(action: Action) -> None:
    assert reason_problem(action, "  ") is not None
    assert reason_problem(action, "套现") is None
    assert reason_problem(Action.APPROVE, "") is None
    assert reason_problem(action, "x" * 501) is not None


# 统一社会信用代码 (GB 32100-2015)

REAL_CODES = ["914403001922038216", "91330100799655058B", "9144030071526726XG", "91110000802100433B"]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_credit_codes_check_out(code: str) -> None:
    assert credit_code_problem(code) is None
    assert credit_code_check_character(code[:17]) == code[17]


@given(
    st.text(CREDIT_CODE_ALPHABET, min_size=17, max_size=17).filter(lambda body: body[2:8].isdigit()),
    st.integers(min_value=0, max_value=17),
    st.sampled_from(CREDIT_CODE_ALPHABET),
)
def test_any_single_wrong_character_is_caught(body: str, position: int, replacement: str) -> None:
    code = body + credit_code_check_character(body)
    assert credit_code_problem(code) is None
    typo = code[:position] + replacement + code[position + 1 :]
    if typo != code and typo[2:8].isdigit():
        assert credit_code_problem(typo) is not None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty credit code"),
        ("   ", "empty credit code"),
        ("91440300192203821", "a credit code has 18 characters, this one has 17"),
        ("9144030019220382166", "a credit code has 18 characters, this one has 19"),
        ("91440300I92203821X", "I cannot appear in a credit code (I, O, S, V and Z never do)"),
        ("91AB0300192203821X", "characters 3-8 of a credit code are the 6-digit region code"),
        ("914403001922038217", "check character does not match (GB 32100)"),
        ("91330100799655058b", None),  # lower case
        ("9133 0100 7996 5505 8B", None),  # spaced as printed on a licence
        ("９１３３０１００７９９６５５０５８Ｂ", None),  # full-width, as typed with a Chinese IME
        ("91-330100-799655058B", None),
    ],
)
def test_credit_code_problems(value: str, problem: str | None) -> None:
    assert credit_code_problem(value) == problem


def test_codes_are_normalised_before_they_are_keys() -> None:
    assert normalise_credit_code(" ９１３３０１００７９９６５５０５８ｂ ") == "91330100799655058B"


# Invitations


def test_an_invitation_takes_chinese_names_or_codes() -> None:
    invitation, problems = invitation_problems(
        credit_code="91330100799655058b",
        legal_name=" 资阳市某某餐饮有限公司 ",
        jurisdiction="临空经济区",
        category="catering",
        merchant_class="商业综合体入驻",
        contact_phone="+86 138 1234 5678",
    )
    assert problems == []
    assert invitation is not None
    assert invitation.credit_code == "91330100799655058B"
    assert invitation.legal_name == "资阳市某某餐饮有限公司"
    assert (invitation.jurisdiction, invitation.category, invitation.merchant_class) == (
        Jurisdiction.LINKONG,
        Category.CATERING,
        MerchantClass.COMPLEX_TENANT,
    )
    assert invitation.contact_phone == "13812345678"


def test_an_invitation_lists_every_problem() -> None:
    invitation, problems = invitation_problems(
        credit_code="91330100799655058A",
        legal_name="",
        jurisdiction="简阳市",  # in Chengdu since 2016: not Ziyang
        category="",
        merchant_class="大型",
        contact_name="联" * 51,
        contact_phone="110",
    )
    assert invitation is None
    assert [problem.field for problem in problems] == [
        "credit_code",
        "legal_name",
        "jurisdiction",
        "category",
        "merchant_class",
        "contact_name",
        "contact_phone",
    ]
    assert problems[2].message.startswith("unknown jurisdiction '简阳市'")


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        ("雁江区", {Jurisdiction.YANJIANG, Jurisdiction.GAOXIN, Jurisdiction.LINKONG}),
        ("yanjiang", {Jurisdiction.YANJIANG, Jurisdiction.GAOXIN, Jurisdiction.LINKONG}),
        ("安岳县", {Jurisdiction.ANYUE}),
        ("高新区", {Jurisdiction.GAOXIN}),
        ("linkong", {Jurisdiction.LINKONG}),
    ],
)
def test_a_district_holds_its_zones(place: str, expected: set[Jurisdiction]) -> None:
    assert jurisdictions_of_place(place) == expected


def test_an_unknown_place_is_refused() -> None:
    with pytest.raises(TermError):
        jurisdictions_of_place("成都")


# Applications


def application(**changes: object) -> Application:
    fields: dict[str, object] = {
        "registered_address": "资阳市雁江区娇子大道1号",
        "business_hours": "09:00-21:00",
        "terminals": ("A1234567",),
        "bank_name": "中国银行资阳分行",
        "bank_account": "6216 6123 4567 8901 234",
        "contact_name": "陈静",
        "contact_phone": "028-26123456",
        **changes,
    }
    return Application(**fields)  # type: ignore[arg-type]


def test_a_complete_application_has_no_problem() -> None:
    assert application_problems(application()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"registered_address": " "}, "registered_address"),
        ({"business_hours": "全天营业"}, "business_hours"),
        ({"terminals": ()}, "terminals"),
        ({"terminals": ("A1234567", "a1234567")}, "terminals[1]"),
        ({"terminals": ("T 1",)}, "terminals[0]"),
        ({"bank_name": ""}, "bank_name"),
        ({"bank_account": "1234567"}, "bank_account"),
        ({"bank_account": "6216abcd12345678"}, "bank_account"),
        ({"contact_name": ""}, "contact_name"),
        ({"contact_name": "名" * 51}, "contact_name"),
        ({"bank_name": "行" * 101}, "bank_name"),
        ({"business_hours": ",".join(["09:00-10:00"] * 9)}, "business_hours"),
        ({"contact_phone": "12345678901"}, "contact_phone"),
    ],
)
def test_an_incomplete_application_names_the_field(changes: dict[str, object], field: str) -> None:
    assert [problem.field for problem in application_problems(application(**changes))] == [field]


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("13812345678", True),
        ("028-26123456", True),
        ("02826123456", True),
        ("0832-2345678-801", True),
        ("2612345", False),
    ],
)
def test_contact_phones(phone: str, ok: bool) -> None:
    assert (phone_problem(phone) is None) is ok


# Business hours


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("09:00-21:00", "09:00-21:00"),
        ("9:00至21:30", "09:00-21:30"),
        ("10:00-14:00，17:00-22:00", "10:00-14:00,17:00-22:00"),
        ("１０：００－１４：００ 17:00~22:00", "10:00-14:00,17:00-22:00"),
        ("00:00-24:00", "00:00-24:00"),
        ("18:00-02:00", "18:00-02:00"),
    ],
)
def test_business_hours_are_read_as_officials_write_them(text: str, normalised: str) -> None:
    assert str(parse_business_hours(text)) == normalised


@pytest.mark.parametrize(
    "text", ["", "全天", "09:00-09:00", "25:00-26:00", "09:00-21:60", "09:00-21:00 周一休息"]
)
def test_business_hours_that_are_not_hours(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_business_hours(text)


def test_open_at() -> None:
    lunch_and_dinner = parse_business_hours("10:00-14:00,17:00-22:00")
    assert lunch_and_dinner.is_open_at(10 * 60)
    assert not lunch_and_dinner.is_open_at(14 * 60)
    assert not lunch_and_dinner.is_open_at(16 * 60)
    night = parse_business_hours("18:00-02:00")
    assert night.is_open_at(23 * 60)
    assert night.is_open_at(60)
    assert not night.is_open_at(12 * 60)
    assert parse_business_hours("00:00-24:00").is_open_at(23 * 60 + 59)
