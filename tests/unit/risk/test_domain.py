"""The case lifecycle, step requirements, settings and scores (pure)."""

from __future__ import annotations

import pytest

from huimin.errors import ConflictError, InvalidInput
from huimin.risk.domain import (
    DEFAULT_SETTINGS,
    MAX_SCORE,
    CaseAction,
    CaseStatus,
    Department,
    Measure,
    Rule,
    SubjectKind,
    alert_score,
    allowed_actions,
    combined_score,
    next_status,
    settings_from,
    step_problems,
)

A, S = CaseAction, CaseStatus


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        (S.OPEN, A.INVESTIGATE, S.INVESTIGATING),
        (S.OPEN, A.DISMISS, S.DISMISSED),
        (S.INVESTIGATING, A.DISMISS, S.DISMISSED),
        (S.INVESTIGATING, A.CONFIRM, S.CONFIRMED),
        (S.CONFIRMED, A.REFER, S.REFERRED),
        (S.REFERRED, A.REFER, S.REFERRED),
        (S.CONFIRMED, A.SANCTION, S.SANCTIONED),
        (S.REFERRED, A.SANCTION, S.SANCTIONED),
        (S.INVESTIGATING, A.ASSIGN, S.INVESTIGATING),
        (S.SANCTIONED, A.NOTE, S.SANCTIONED),
    ],
)
def test_allowed_steps(start: CaseStatus, action: CaseAction, end: CaseStatus) -> None:
    assert next_status(start, action) is end


@pytest.mark.parametrize(
    ("start", "action"),
    [
        (S.OPEN, A.CONFIRM),  # confirmed only after an investigation
        (S.OPEN, A.REFER),
        (S.INVESTIGATING, A.SANCTION),
        (S.DISMISSED, A.INVESTIGATE),  # closed
        (S.DISMISSED, A.ASSIGN),
        (S.SANCTIONED, A.REFER),
        (S.CONFIRMED, A.DISMISS),
        (S.OPEN, A.OPEN),
    ],
)
def test_refused_steps(start: CaseStatus, action: CaseAction) -> None:
    with pytest.raises(ConflictError) as refused:
        next_status(start, action)
    assert refused.value.code == "invalid_transition"


def test_closed_cases_only_take_notes() -> None:
    assert allowed_actions(S.DISMISSED) == [A.NOTE]
    assert allowed_actions(S.SANCTIONED) == [A.NOTE]


def test_step_requirements() -> None:
    def problems(action: CaseAction, **given: object) -> set[str]:
        arguments: dict[str, object] = {
            "subject": SubjectKind.MERCHANT,
            "reason": "核实",
            "department": None,
            "measure": None,
            "assignee": None,
            **given,
        }
        return {problem.field for problem in step_problems(action, **arguments)}  # type: ignore[arg-type]

    assert problems(A.CONFIRM, reason=" ") == {"reason"}
    assert problems(A.REFER) == {"department"}
    assert problems(A.REFER, department=Department.POLICE) == set()
    assert problems(A.SANCTION) == {"measure"}
    assert problems(A.SANCTION, measure=Measure.EXPEL) == set()
    assert problems(A.SANCTION, subject=SubjectKind.PERSON) == {"measure"}  # block or block_and_revoke
    assert problems(A.SANCTION, subject=SubjectKind.PERSON, measure=Measure.SUSPEND) == {"measure"}
    assert problems(A.ASSIGN, reason="") == {"assignee"}
    assert problems(A.ASSIGN, reason="", assignee="李强") == set()


def test_settings_overrides_and_their_problems() -> None:
    settings = settings_from({"hug_share_bp": 8000, "weights": {"velocity": 10}})
    assert settings.hug_share_bp == 8000
    assert settings.weight(Rule.VELOCITY) == 10
    assert settings.weight(Rule.SELF_CLAIM_SELF_REDEEM) == DEFAULT_SETTINGS.weight(
        Rule.SELF_CLAIM_SELF_REDEEM
    )
    with pytest.raises(InvalidInput) as refused:
        settings_from({"hug_share_bp": 12_000, "nope": 1, "velocity_factor": 2.5, "weights": {"x": 1}})
    assert {problem.field for problem in refused.value.problems} == {
        "hug_share_bp",
        "nope",
        "velocity_factor",
        "weights.x",
    }


def test_scores_scale_with_the_figure_and_are_capped() -> None:
    assert alert_score(30, figure=7000, threshold=7000) == 30
    assert alert_score(30, figure=10_500, threshold=7000) == 45
    assert alert_score(30, figure=100, threshold=1) == 60  # at most doubled
    assert combined_score([600, 600]) == MAX_SCORE
