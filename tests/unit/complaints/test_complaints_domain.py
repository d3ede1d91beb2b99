"""The pure rules of complaints, inspections, announcements and the purge: transition tables, routing,
due dates in working days, the overdue flag."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from huimin.announcements import domain as announcements
from huimin.complaints import domain
from huimin.complaints.domain import Action, Category, ComplaintStatus, Department
from huimin.errors import HuiminError
from huimin.kit.terms import Jurisdiction
from huimin.privacy import domain as privacy
from huimin.supervision import domain as supervision

S = ComplaintStatus
ALLOWED = {
    (S.REGISTERED, Action.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, Action.ASSIGN): S.ASSIGNED,
    (S.IN_PROGRESS, Action.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, Action.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, Action.RESOLVE): S.RESOLVED,
    (S.RESOLVED, Action.REOPEN): S.IN_PROGRESS,
    (S.RESOLVED, Action.CLOSE): S.CLOSED,
}


@pytest.mark.parametrize("status", list(ComplaintStatus))
@pytest.mark.parametrize("action", list(domain.TRANSITIONS))
def test_every_pair_of_the_lifecycle(status: ComplaintStatus, action: Action) -> None:
    expected = ALLOWED.get((status, action))
    if expected is None:
        with pytest.raises(HuiminError) as refused:
            domain.next_status(status, action)
        assert (refused.value.code, refused.value.status) == ("invalid_transition", 409)
    else:
        assert domain.next_status(status, action) is expected


def test_closed_is_final_and_notes_are_not_transitions() -> None:
    assert domain.allowed_actions(S.CLOSED) == []
    with pytest.raises(HuiminError):
        domain.next_status(S.IN_PROGRESS, Action.NOTE)


@pytest.mark.parametrize(
    ("category", "jurisdiction", "department", "routed_to"),
    [
        (Category.CANNOT_CLAIM, None, Department.OPERATOR, None),
        (
            Category.MERCHANT_REFUSED_VOUCHER,
            Jurisdiction.ANYUE,
            Department.COUNTY_COMMERCE,
            Jurisdiction.ANYUE,
        ),
        (Category.MERCHANT_REFUSED_VOUCHER, None, Department.CITY_COMMERCE, None),
        (
            Category.DISGUISED_PRICE_INCREASE,
            Jurisdiction.LEZHI,
            Department.MARKET_REGULATOR,
            Jurisdiction.LEZHI,
        ),
        (Category.PRODUCT_QUALITY, None, Department.MARKET_REGULATOR, None),
        (Category.SUSPECTED_CASH_OUT, Jurisdiction.GAOXIN, Department.OPERATOR_RISK, Jurisdiction.GAOXIN),
        (Category.BANK_PAYMENT, None, Department.PBOC, None),
        (Category.OTHER, Jurisdiction.YANJIANG, Department.COUNTY_COMMERCE, Jurisdiction.YANJIANG),
        (Category.OTHER, None, Department.CITY_COMMERCE, None),
    ],
)
def test_routing(
    category: Category,
    jurisdiction: Jurisdiction | None,
    department: Department,
    routed_to: Jurisdiction | None,
) -> None:
    assert domain.route(category, jurisdiction) == domain.Route(department, routed_to)


def test_working_days_skip_weekends_and_holidays() -> None:
    friday = date(2022, 6, 24)
    assert domain.add_working_days(friday, 1) == date(2022, 6, 27)  # Monday
    assert domain.add_working_days(friday, 3) == date(2022, 6, 29)
    assert domain.add_working_days(friday, 3, holidays={date(2022, 6, 27)}) == date(2022, 6, 30)


def test_due_at_is_the_end_of_the_last_working_day_in_ziyang() -> None:
    # Friday 2022-06-24 23:30 in Ziyang is 15:30 UTC: still Friday locally
    registered = datetime(2022, 6, 24, 15, 30, tzinfo=UTC)
    due = domain.due_at(registered, 3)
    assert due == datetime(2022, 6, 29, 16, 0, tzinfo=UTC)  # Thursday 00:00 local
    assert not domain.is_overdue(S.IN_PROGRESS, due, due - timedelta(seconds=1))
    assert domain.is_overdue(S.IN_PROGRESS, due, due)
    assert not domain.is_overdue(S.RESOLVED, due, due + timedelta(days=9))


def test_sla_overrides_and_refusals() -> None:
    assert domain.sla_days(Category.CANNOT_CLAIM) == 3
    assert domain.sla_days(Category.CANNOT_CLAIM, {"cannot_claim": 1}) == 1
    with pytest.raises(ValueError, match="at least one"):
        domain.sla_days(Category.OTHER, {"other": 0})


@pytest.mark.parametrize(
    ("phone", "ok"),
    [("13812345678", True), ("028-26123456", True), ("+86 138 1234 5678", True), ("12345", False)],
)
def test_caller_numbers(phone: str, ok: bool) -> None:
    assert (domain.phone_problem(phone) is None) is ok


def test_text_problems() -> None:
    assert domain.text_problem("text", "  ") is not None
    assert domain.text_problem("text", "x" * (domain.TEXT_MAX_LENGTH + 1)) is not None
    assert domain.text_problem("text", "商家拒收消费券") is None


def test_a_finding_is_decided_once() -> None:
    status = supervision.FindingStatus
    assert supervision.next_status(status.OPEN, supervision.Decision.SUSPEND) is status.MERCHANT_SUSPENDED
    assert supervision.next_status(status.OPEN, supervision.Decision.NO_ACTION) is status.NO_ACTION
    for decided in (status.MERCHANT_SUSPENDED, status.NO_ACTION):
        for decision in supervision.Decision:
            with pytest.raises(HuiminError):
                supervision.next_status(decided, decision)


def test_announcements_lifecycle_and_visibility() -> None:
    state = announcements.AnnouncementStatus
    assert announcements.next_status(state.DRAFT, announcements.Action.PUBLISH) is state.PUBLISHED
    assert announcements.next_status(state.PUBLISHED, announcements.Action.UNPUBLISH) is state.WITHDRAWN
    assert announcements.next_status(state.WITHDRAWN, announcements.Action.PUBLISH) is state.PUBLISHED
    with pytest.raises(HuiminError):
        announcements.next_status(state.DRAFT, announcements.Action.UNPUBLISH)
    now = datetime(2022, 6, 1, tzinfo=UTC)
    assert announcements.is_public(state.PUBLISHED, now, now)
    assert not announcements.is_public(state.PUBLISHED, now + timedelta(seconds=1), now)  # scheduled
    assert not announcements.is_public(state.WITHDRAWN, now, now)


def test_purge_due_date_and_tombstones() -> None:
    assert privacy.purge_due_on(date(2022, 12, 31), 180) == date(2023, 6, 29)
    assert privacy.tombstone("res_1") != privacy.tombstone("res_2")
    assert privacy.tombstone("res_1").startswith(privacy.PURGED_PREFIX)
    with pytest.raises(ValueError, match="negative"):
        privacy.purge_due_on(date(2022, 12, 31), -1)
