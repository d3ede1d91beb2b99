"""The next-round planner's proposals respect every limit the city admin sets, whatever the figures
(issue 13): the allowed change per batch, the minimum shares per category and jurisdiction, and never
more value, in total or for any funder, than the campaign planned for the round."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huimin.allocation.domain import BatchRecord, Limits, OfferBatch, check, plan, rank_offers
from huimin.errors import InvalidInput
from huimin.kit.money import Fen

CATEGORIES = ("catering", "retail", "lodging", "cars", "appliances")
JURISDICTIONS = ("yanjiang", "anyue", "lezhi")
FUNDINGS = ((("fiscal", 10_000),), (("fiscal", 7_500), ("social", 2_500)), (("union", 10_000),))


@st.composite
def batch_records(draw: st.DrawFn, code: str) -> BatchRecord:
    released = draw(st.integers(0, 50_000))
    claimed = draw(st.integers(0, released))
    redeemed = draw(st.integers(0, claimed))
    unit = draw(st.sampled_from([1_000, 3_000, 5_000, 50_000, 300_000]))
    subsidy = redeemed * unit
    return BatchRecord(
        code=code,
        categories=frozenset(draw(st.sets(st.sampled_from(CATEGORIES), min_size=1, max_size=3))),
        jurisdictions=frozenset(draw(st.sets(st.sampled_from(JURISDICTIONS), max_size=2))),
        unit_value=Fen(unit),
        funding=draw(st.sampled_from(FUNDINGS)),
        planned=draw(st.integers(0, 20_000)),
        released=released,
        claimed=claimed,
        redeemed=redeemed,
        subsidy=Fen(subsidy),
        consumption=Fen(subsidy * draw(st.integers(1, 40))),
        sold_out_share=draw(st.none() | st.floats(0, 1)),
        days_to_redeem=draw(st.none() | st.floats(0, 60)),
        complaints=draw(st.integers(0, 50)),
    )


@st.composite
def rounds(draw: st.DrawFn) -> list[BatchRecord]:
    count = draw(st.integers(1, 6))
    return [draw(batch_records(f"b{index}")) for index in range(count)]


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    return Limits(
        max_change_bp=draw(st.integers(0, 10_000)),
        min_category_share_bp=draw(
            st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 6_000), max_size=3)
        ),
        min_jurisdiction_share_bp=draw(
            st.dictionaries(st.sampled_from(JURISDICTIONS), st.integers(0, 6_000), max_size=2)
        ),
    )


@settings(max_examples=300, deadline=None)
@given(
    batches=rounds(),
    limits=limits(),
    headroom=st.dictionaries(st.sampled_from(("fiscal", "social", "union")), st.integers(0, 10**9)),
)
def test_every_proposal_respects_every_limit(
    batches: list[BatchRecord], limits: Limits, headroom: dict[str, int]
) -> None:
    planned_problems = check(batches, {batch.code: batch.planned for batch in batches}, limits, headroom)
    if planned_problems:
        # Refused only when the planned split itself breaks the limits: then no split within the
        # allowed change could be promised, and the planner says which limit.
        with pytest.raises(InvalidInput) as refused:
            plan(batches, limits, headroom)
        assert refused.value.code == "limits_unreachable"
        return
    proposal = plan(batches, limits, headroom)
    assert check(batches, proposal.stock(), limits, headroom) == []
    assert set(proposal.stock()) == {batch.code for batch in batches}
    assert 0.0 <= proposal.fallback <= 1.0


@settings(max_examples=200, deadline=None)
@given(batches=rounds(), change=st.integers(0, 10_000))
def test_the_planned_split_meeting_the_limits_always_gives_a_proposal(
    batches: list[BatchRecord], change: int
) -> None:
    # Minimum shares the planned split already meets: the planner must never refuse them.
    limits = Limits(max_change_bp=change)
    proposal = plan(batches, limits)
    assert check(batches, proposal.stock(), limits) == []


def test_a_batch_that_drives_more_consumption_gets_more_stock() -> None:
    common = {
        "categories": frozenset({"catering"}),
        "jurisdictions": frozenset(),
        "unit_value": Fen(3_000),
        "funding": (("fiscal", 10_000),),
        "planned": 10_000,
        "released": 10_000,
        "claimed": 10_000,
        "subsidy": Fen(3_000 * 9_000),
    }
    strong = BatchRecord(code="strong", redeemed=9_000, consumption=Fen(3_000 * 9_000 * 5), **common)
    weak = BatchRecord(code="weak", redeemed=9_000, consumption=Fen(3_000 * 9_000 * 2), **common)
    proposal = plan([strong, weak], Limits(max_change_bp=2_000))
    stock = proposal.stock()
    assert stock["strong"] == 12_000  # capped at +20 %
    assert stock["weak"] == 8_000
    assert proposal.fallback == 0.0


def test_a_minimum_share_pulls_the_proposal_back_toward_the_plan() -> None:
    common = {
        "jurisdictions": frozenset(),
        "unit_value": Fen(3_000),
        "funding": (("fiscal", 10_000),),
        "planned": 10_000,
        "released": 10_000,
        "claimed": 10_000,
        "redeemed": 9_000,
        "subsidy": Fen(3_000 * 9_000),
    }
    catering = BatchRecord(
        code="catering", categories=frozenset({"catering"}), consumption=Fen(27_000_000 * 5), **common
    )
    retail = BatchRecord(
        code="retail", categories=frozenset({"retail"}), consumption=Fen(27_000_000 * 2), **common
    )
    limits = Limits(max_change_bp=2_000, min_category_share_bp={"retail": 4_500})
    proposal = plan([catering, retail], limits)
    assert check([catering, retail], proposal.stock(), limits) == []
    assert 0.0 < proposal.fallback < 1.0
    assert proposal.stock()["retail"] >= 9_000


def test_offers_keep_every_batch_and_put_the_residents_own_habits_first() -> None:
    batches = [
        OfferBatch(code="general", categories=frozenset({"catering", "retail"}), position=0),
        OfferBatch(code="cars", categories=frozenset({"cars"}), position=1),
        OfferBatch(code="lodging", categories=frozenset({"lodging"}), position=2),
    ]
    nothing = rank_offers(batches, own={}, district={})
    assert [offer.code for offer in nothing] == ["general", "cars", "lodging"]
    lodger = rank_offers(batches, own={"lodging": 6}, district={"catering": 50, "retail": 40, "lodging": 10})
    assert [offer.code for offer in lodger] == ["lodging", "general", "cars"]
    assert {offer.code for offer in lodger} == {"general", "cars", "lodging"}
