"""The words of the risk, complaint, inspection and announcement pages: every term of their vocabulary
and every refusal they show has its Chinese and English (the catalogue's own tests check the rest)."""

from __future__ import annotations

from enum import StrEnum

import pytest

from huimin.announcements.domain import AnnouncementKind, AnnouncementStatus
from huimin.complaints.domain import Action, Category, Channel, ComplaintStatus, Department
from huimin.console.complaint_pages import COMPLAINT_REFUSALS
from huimin.console.i18n import Translator
from huimin.console.till_pages import REFUND_REFUSAL_CODES
from huimin.risk.domain import AlertStatus, CaseAction, CaseStatus, Measure, Rule, SubjectKind
from huimin.risk.domain import Department as RiskDepartment
from huimin.supervision.domain import FindingKind, FindingStatus, Severity


@pytest.mark.parametrize(
    ("kind", "terms"),
    [
        ("risk_rule", Rule),
        ("alert_status", AlertStatus),
        ("case_status", CaseStatus),
        ("case_action", CaseAction),
        ("subject_kind", SubjectKind),
        ("risk_department", RiskDepartment),
        ("risk_measure", Measure),
        ("complaint_status", ComplaintStatus),
        ("complaint_category", Category),
        ("complaint_channel", Channel),
        ("complaint_department", Department),
        ("complaint_action", Action),
        ("finding_kind", FindingKind),
        ("severity", Severity),
        ("finding_status", FindingStatus),
        ("announcement_kind", AnnouncementKind),
        ("announcement_status", AnnouncementStatus),
    ],
)
def test_every_term_has_its_words(kind: str, terms: type[StrEnum]) -> None:
    for term in terms:
        assert Translator("zh").term(kind, term.value)
        assert Translator("en").term(kind, term.value)
        label = getattr(term, "label", None)
        if isinstance(label, str) and kind != "complaint_department":
            assert Translator("zh").term(kind, term.value) == label  # the domain's own word


def test_every_refusal_has_its_message() -> None:
    for code in COMPLAINT_REFUSALS:
        assert Translator("zh").term("complaint.refused", code)
    for code in REFUND_REFUSAL_CODES:
        assert Translator("en").term("till.refund_refused", code)
