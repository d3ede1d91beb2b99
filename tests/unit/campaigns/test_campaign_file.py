"""The campaign file: the shipped Ziyang campaign parses, and every kind of bad file is refused with a
message that names the field."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from huimin.campaigns.domain import BatchKind, ClaimMode, planned_value
from huimin.campaigns.schemas import parse_campaign_data, parse_campaign_file
from huimin.errors import InvalidInput
from huimin.kit.money import Fen
from tests.conftest import ZIYANG_FILE

ZIYANG: dict[str, Any] = tomllib.loads(ZIYANG_FILE.read_text(encoding="utf-8"))


def ziyang() -> dict[str, Any]:
    return copy.deepcopy(ZIYANG)


def batch(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(item for item in data["batches"] if item["code"] == code)


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        parse_campaign_data(data)
    assert caught.value.code == "invalid_campaign"
    return {problem.field: problem.message for problem in caught.value.problems}


def test_the_ziyang_campaign_follows_the_seed() -> None:
    campaign = parse_campaign_file(ZIYANG_FILE.read_text(encoding="utf-8"))
    assert campaign.name == "嗨购资阳·惠民共享"
    assert (campaign.starts_on.isoformat(), campaign.ends_on.isoformat()) == ("2022-06-01", "2022-12-31")
    assert campaign.budget == 8_000_000_000  # 80 million yuan, in fen
    assert {funder.kind for funder in campaign.funders} == {"fiscal", "union", "social"}
    assert sum(funder.budget for funder in campaign.funders) == campaign.budget
    kinds = {item.kind for item in campaign.batches}
    assert kinds == {BatchKind.THRESHOLD, BatchKind.TIERED, BatchKind.PERCENTAGE}
    assert campaign.batch("union-50-20").members_only
    assert campaign.batch("car").big_ticket
    assert campaign.batch("appliance").big_ticket
    fridays = [round_ for round_ in campaign.rounds if round_.code.startswith("friday-")]
    assert len(fridays) == 28
    first = min(fridays, key=lambda round_: round_.opens_at)
    assert first.opens_at == datetime(2022, 6, 24, 2, 0, tzinfo=UTC)  # Friday 10:00 in Ziyang
    assert first.mode is ClaimMode.FIRST_COME
    assert {r.mode for r in campaign.rounds if r.code.startswith("union-lottery-")} == {ClaimMode.LOTTERY}
    assert planned_value(campaign) == Fen.yuan(65_800_000)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_face_value_that_is_not_positive_is_refused(value: str) -> None:
    data = ziyang()
    batch(data, "dining-60-20")["face_value"] = value
    assert problems_of(data)["batches[2].face_value"].startswith("must be positive")


def test_a_threshold_below_the_face_value_is_refused() -> None:
    data = ziyang()
    batch(data, "general-100-30")["threshold"] = "20"
    assert "below the face value" in problems_of(data)["batches[0].threshold"]


def test_funding_shares_must_add_up_to_100_percent() -> None:
    data = ziyang()
    batch(data, "general-300-80")["funding"] = {"fiscal": "70%", "social": "20%"}
    assert problems_of(data)["batches[1].funding"] == "shares add up to 90%, they must add up to 100%"


def test_funding_by_an_unknown_funder_is_refused() -> None:
    data = ziyang()
    batch(data, "appliance")["funding"] = {"lottery-fund": "100%"}
    assert problems_of(data)["batches[4].funding.lottery-fund"] == "unknown funder 'lottery-fund'"


def test_funder_budgets_must_add_up_to_the_campaign_budget() -> None:
    data = ziyang()
    data["funders"][0]["budget"] = "50000000"
    assert "add up to ¥70,000,000.00" in problems_of(data)["funders"]


def test_rounds_outside_the_campaign_period_are_refused() -> None:
    data = ziyang()
    data["schedules"][0]["last"] = date(2023, 1, 13)
    with pytest.raises(InvalidInput) as caught:
        parse_campaign_data(data)
    assert [(problem.field, problem.message) for problem in caught.value.problems] == [
        (
            "schedules[0]",
            f"round friday-{day} ({day[:4]}-{day[4:6]}-{day[6:]} 10:00 to {day[:4]}-{day[4:6]}-{int(day[6:]) + 1:02d} "
            "00:00) is outside the campaign period 2022-06-01 to 2022-12-31",
        )
        for day in ("20230106", "20230113")
    ]


def test_rounds_overlapping_for_the_same_batch_are_refused() -> None:
    data = ziyang()
    extra = copy.deepcopy(data["schedules"][0])
    extra.update(code="extra", every="once", first=date(2022, 7, 1), at=time(20, 0))
    del extra["last"], extra["weekday"]
    extra["stock"] = {"dining-60-20": 100}
    data["schedules"].append(extra)
    message = problems_of(data)["schedules[2]"]
    assert message == "rounds friday-20220701 and extra-20220701 overlap for batch 'dining-60-20'"


def test_rounds_releasing_other_batches_at_the_same_time_do_not_overlap() -> None:
    data = ziyang()
    extra = {
        "code": "car-extra",
        "every": "once",
        "at": time(20, 0),
        "first": date(2022, 7, 1),
        "stock": {"union-50-20": 10},  # union stock is released by lottery on Wednesdays only
    }
    data["schedules"].append(extra)
    campaign = parse_campaign_data(data)
    assert any(round_.code == "car-extra-20220701" for round_ in campaign.rounds)


@pytest.mark.parametrize(
    ("where", "value", "field", "fragment"),
    [
        ("categories", ["餐饮", "奢侈品"], "batches[0].scope.categories[1]", "unknown category '奢侈品'"),
        (
            "jurisdictions",
            ["雁江区", "成都市"],
            "batches[0].scope.jurisdictions[1]",
            "unknown jurisdiction '成都市'",
        ),
        (
            "merchant_classes",
            ["规下"],
            "batches[0].scope.merchant_classes[0]",
            "unknown merchant class '规下'",
        ),
    ],
)
def test_unknown_terms_are_refused(where: str, value: list[str], field: str, fragment: str) -> None:
    data = ziyang()
    batch(data, "general-100-30")["scope"][where] = value
    assert fragment in problems_of(data)[field]


def test_chinese_and_english_terms_are_both_accepted() -> None:
    data = ziyang()
    batch(data, "general-100-30")["scope"] = {
        "categories": ["catering", "零售"],
        "jurisdictions": ["gaoxin", "临空经济区"],
        "merchant_classes": ["限上"],
    }
    scope = parse_campaign_data(data).batch("general-100-30").scope
    assert scope.categories == {"catering", "retail"}
    assert scope.jurisdictions == {"gaoxin", "linkong"}
    assert scope.merchant_classes == {"above_quota"}


def test_stock_worth_more_than_the_budget_is_refused() -> None:
    data = ziyang()
    data["schedules"][0]["stock"]["general-300-80"] = 40_000  # 28 rounds x 40,000 x ¥80 = ¥89.6 million
    problems = problems_of(data)
    assert "more than the budget ¥80,000,000.00" in problems["schedules"]
    assert "more than its budget ¥60,000,000.00" in problems["funders[0].budget"]


def test_stock_that_one_funder_cannot_pay_is_refused_even_within_the_total() -> None:
    data = ziyang()
    data["schedules"][1]["stock"]["union-50-20"] = (
        9_000  # 28 x 9,000 x ¥20 = ¥5.04 million > union's ¥5 million
    )
    problems = problems_of(data)
    assert problems == {
        "funders[1].budget": "the planned stock charges ¥5,040,000.00 to 'union', more than its budget ¥5,000,000.00"
    }


def test_money_must_be_written_exactly() -> None:
    data = ziyang()
    batch(data, "dining-60-20")["face_value"] = 19.9
    assert "not a floating-point number" in problems_of(data)["batches[2].face_value"]
    batch(data, "dining-60-20")["face_value"] = "19.999"
    assert "at most two decimals" in problems_of(data)["batches[2].face_value"]


def test_unknown_keys_are_named() -> None:
    data = ziyang()
    batch(data, "car")["facevalue"] = "100"
    assert problems_of(data) == {"batches[3].facevalue": "unknown field (check its spelling)"}


def test_tiers_must_rise_without_overlap() -> None:
    data = ziyang()
    tiers = batch(data, "car")["tiers"]
    tiers[1], tiers[2] = tiers[2], tiers[1]
    assert "overlaps the previous tier" in problems_of(data)["batches[3].tiers[2].min_price"]


def test_validity_needs_exactly_one_form() -> None:
    data = ziyang()
    batch(data, "car")["validity"] = {"days_after_claim": 30, "same_day": True}
    assert "exactly one of" in problems_of(data)["batches[3].validity"]


def test_a_file_that_is_not_toml_is_refused_with_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_campaign_file("[campaign]\ncode = ziyang\n")
    [problem] = caught.value.problems
    assert problem.field == "file"
    assert "line 2" in problem.message


def test_every_problem_is_reported_at_once() -> None:
    data = ziyang()
    batch(data, "general-100-30")["face_value"] = "0"
    batch(data, "general-300-80")["funding"] = {"fiscal": "50%"}
    assert set(problems_of(data)) == {"batches[0].face_value", "batches[1].funding"}


def test_a_key_that_does_not_belong_to_the_kind_is_refused_before_the_database_sees_it() -> None:
    data = ziyang()
    batch(data, "appliance")["face_value"] = "0"
    batch(data, "general-100-30")["cap"] = "0"
    batch(data, "car")["threshold"] = "1000"
    problems = problems_of(data)
    assert problems["batches[4].face_value"] == "a percentage batch has no face value: remove it"
    assert problems["batches[0].cap"] == "only a percentage batch has a cap, this one is threshold"
    assert problems["batches[3].threshold"] == "a tiered batch has no threshold: its price bands decide"


def test_counts_and_flags_are_not_coerced_from_text() -> None:
    data = ziyang()
    batch(data, "car")["limits"]["per_person_total"] = "1"
    batch(data, "car")["members_only"] = "yes"
    assert set(problems_of(data)) == {"batches[3].limits.per_person_total", "batches[3].members_only"}


def test_schedule_shape_mistakes() -> None:
    data = ziyang()
    data["schedules"][1]["code"] = "friday"
    data["schedules"][0]["every"] = "day"
    problems = problems_of(data)
    assert problems["schedules[1].code"] == "schedule code 'friday' is used twice"
    assert problems["schedules[0]"] == "a daily schedule takes no `weekday`"


def test_a_mistake_repeated_in_every_round_is_reported_once() -> None:
    data = ziyang()
    data["schedules"][0]["stock"]["no-such-batch"] = 5
    with pytest.raises(InvalidInput) as caught:
        parse_campaign_data(data)
    assert [str(problem) for problem in caught.value.problems] == [
        "schedules[0].stock.no-such-batch: unknown batch 'no-such-batch'"
    ]


def test_a_campaign_needs_batches_and_known_limit_categories() -> None:
    data = ziyang()
    data["campaign"]["limits"]["per_person_per_category"] = {"food": 2}
    assert "unknown category 'food'" in problems_of(data)["campaign.limits.per_person_per_category.food"]
    data = ziyang()
    data["batches"], data["schedules"] = [], []
    assert problems_of(data)["batches"] == "a campaign needs at least one batch"


def test_the_sandbox_counts_from_the_moment_it_is_loaded() -> None:
    text = (ZIYANG_FILE.parent / "sandbox.toml").read_text(encoding="utf-8")
    loaded_at = datetime(2026, 11, 28, 1, 46, 30, tzinfo=UTC)  # 09:46:30 in Ziyang
    campaign = parse_campaign_file(text, now=loaded_at)
    assert campaign.code == "sandbox-20261128094630"
    assert (campaign.starts_on, campaign.ends_on) == (date(2026, 11, 28), date(2026, 11, 29))
    first, second = campaign.rounds[:2]
    assert first.opens_at == datetime(2026, 11, 28, 1, 47, tzinfo=UTC)  # the next whole minute
    assert first.closes_at - first.opens_at == timedelta(minutes=4)
    assert second.opens_at - first.opens_at == timedelta(minutes=5)
    assert len(campaign.rounds) == 48
    assert parse_campaign_file(text, now=loaded_at) == campaign  # the same moment gives the same campaign


def test_relative_schedules_belong_to_relative_campaigns() -> None:
    data = ziyang()
    data["schedules"][0] = {
        "code": "live",
        "every": "minutes",
        "starts_in_minutes": 1,
        "interval_minutes": 5,
        "window_minutes": 4,
        "count": 3,
        "stock": {"car": 1},
    }
    assert "relative (sandbox) campaigns only" in problems_of(data)["schedules[0]"]
    data = ziyang()
    data["campaign"]["relative"] = True
    assert "lasts_days" in problems_of(data)["campaign"]
