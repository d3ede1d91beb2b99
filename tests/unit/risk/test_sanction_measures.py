"""Which measure a sanction takes, by the kind of subject of its case (issue 7): a merchant is suspended
or expelled, a person or a device is blocked from claiming (and its unused vouchers revoked)."""

from __future__ import annotations

import pytest

from huimin.risk.domain import MEASURES, CaseAction, Measure, SubjectKind, step_problems

A = CaseAction


def measure_problems(action: CaseAction, subject: SubjectKind, measure: Measure | None) -> list[str]:
    return [
        problem.message
        for problem in step_problems(
            action, subject=subject, reason="核查属实", department=None, measure=measure, assignee=None
        )
        if problem.field == "measure"
    ]


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        (SubjectKind.MERCHANT, {Measure.SUSPEND, Measure.EXPEL}),
        (SubjectKind.PERSON, {Measure.BLOCK, Measure.BLOCK_AND_REVOKE}),
        (SubjectKind.DEVICE, {Measure.BLOCK, Measure.BLOCK_AND_REVOKE}),
    ],
)
def test_a_sanction_takes_a_measure_of_its_subjects_kind(subject: SubjectKind, allowed: set[Measure]) -> None:
    assert set(MEASURES[subject]) == allowed
    for measure in Measure:
        assert (measure_problems(A.SANCTION, subject, measure) == []) == (measure in allowed), measure


@pytest.mark.parametrize("subject", list(SubjectKind))
def test_a_sanction_without_a_measure_is_refused_and_names_the_choices(subject: SubjectKind) -> None:
    [message] = measure_problems(A.SANCTION, subject, None)
    assert all(measure.value in message for measure in MEASURES[subject])


@pytest.mark.parametrize("action", [action for action in CaseAction if action is not CaseAction.SANCTION])
def test_only_a_sanction_takes_a_measure(action: CaseAction) -> None:
    assert measure_problems(action, SubjectKind.PERSON, Measure.BLOCK) == ["a measure belongs to a sanction"]
    assert measure_problems(action, SubjectKind.PERSON, None) == []


def test_every_measure_fits_the_columns_that_record_it() -> None:
    # risk_cases.measure, risk_case_transitions.measure and claim_blocks.measure are String(16)
    assert max(len(measure.value) for measure in Measure) <= 16
