"""位置伪造: each branch on a planted pattern (it fires, with its evidence) and on the near misses beside it
(it does not). Positions are GCJ-02 points in Ziyang; times Asia/Shanghai wall time."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime
from itertools import count

import pytest

from huimin.kit.clock import LOCAL_TZ
from huimin.risk.domain import DEFAULT_SETTINGS, RiskSettings, Rule, SubjectKind, alert_score
from huimin.risk.ip_regions import IpRegion
from huimin.risk.rules import ClaimFact, EventBatch, distance_km, evaluate, location_spoofing

CAMPAIGN = "cmp_test"
PERSON = "psn_1"
# 雁江区 (the city centre) and 安岳县 (its county seat), 70 km apart as the crow flies
YANJIANG = (104.628, 30.129)
ANYUE = (105.336, 30.099)
# 12 km east of the centre, still 雁江区
NEARBY = (104.752, 30.129)
CHENGDU_NET = "175.152.34.0/24"
YANJIANG_NET = "222.209.80.0/24"
UNKNOWN_NET = "203.0.113.0/24"
REGIONS = {
    CHENGDU_NET: IpRegion(ipaddress.ip_network("175.152.0.0/16"), "成都市", in_city=False),
    YANJIANG_NET: IpRegion(ipaddress.ip_network("222.209.80.0/20"), "雁江区", in_city=True),
}
_serial = count(1)


def local(hour: int, minute: int = 0, *, day: int = 24) -> datetime:
    return datetime(2022, 6, day, hour, minute, tzinfo=LOCAL_TZ)


def claim(
    at: datetime,
    place: tuple[float, float] | None = YANJIANG,
    *,
    network: str | None = None,
    person: str = PERSON,
    district: str = "yanjiang",
) -> ClaimFact:
    serial = next(_serial)
    return ClaimFact(
        event_id=serial,
        campaign_id=CAMPAIGN,
        voucher_id=f"vch_{serial}",
        person_id=person,
        resident_id=f"res_{person}",
        device=f"dev-{person}",
        district=district,
        at=at,
        lng=place[0] if place else None,
        lat=place[1] if place else None,
        ip_prefix=network,
    )


def batch(
    new: list[ClaimFact], *, earlier: Sequence[ClaimFact] = (), settings: RiskSettings | None = None
) -> EventBatch:
    history: dict[str, list[ClaimFact]] = {}
    for item in sorted([*earlier, *new], key=lambda each: each.at):
        history.setdefault(item.person_id, []).append(item)
    return EventBatch(
        claims=new,
        claim_history=history,
        ip_regions=REGIONS,
        settings={CAMPAIGN: settings or RiskSettings()},
    )


def test_the_distances_are_great_circle_kilometres() -> None:
    assert distance_km(*YANJIANG, *ANYUE) == pytest.approx(68.3, abs=0.5)
    assert distance_km(*YANJIANG, *NEARBY) == pytest.approx(12.0, abs=0.2)
    assert distance_km(*YANJIANG, *YANJIANG) == 0


# (a) the network says elsewhere


def test_a_claim_from_a_network_outside_the_city_fires_with_its_evidence() -> None:
    outside = claim(local(10), network=CHENGDU_NET)
    [finding] = location_spoofing(batch([outside]))
    assert (finding.rule, finding.subject_kind, finding.subject_id) == (
        Rule.LOCATION_SPOOFING,
        SubjectKind.PERSON,
        PERSON,
    )
    assert finding.window == "2022-06-24"
    assert (finding.figure, finding.threshold, finding.unit) == (1, 1, "count")
    assert finding.evidence["crossed"] == ["ip_region"]
    assert finding.evidence["claim_ids"] == [outside.voucher_id]
    assert finding.evidence["ip_outside"] == [
        {
            "voucher_id": outside.voucher_id,
            "at": outside.at.isoformat(),
            "district": "yanjiang",
            "ip_prefix": CHENGDU_NET,
            "ip_region": "成都市",
        }
    ]
    assert finding.evidence["impossible_travel"] == []
    assert "成都市" in finding.summary


def test_an_unknown_network_or_one_inside_the_city_says_nothing() -> None:
    claims = [
        claim(local(10), network=UNKNOWN_NET),
        claim(local(11), network=YANJIANG_NET),
        claim(local(12), network=None),
    ]
    assert location_spoofing(batch(claims)) == []


def test_the_outside_claims_a_day_may_be_raised() -> None:
    claims = [claim(local(10), network=CHENGDU_NET), claim(local(11), network=YANJIANG_NET)]
    assert location_spoofing(batch(claims, settings=RiskSettings(ip_outside_min_claims=2))) == []
    claims.append(claim(local(12), network=CHENGDU_NET))
    [finding] = location_spoofing(batch(claims, settings=RiskSettings(ip_outside_min_claims=2)))
    assert (finding.figure, finding.threshold) == (2, 2)


# (b) impossible travel


def test_two_claims_70_km_apart_within_ten_minutes_fire_with_both_claims() -> None:
    first = claim(local(10, 0), YANJIANG, network=UNKNOWN_NET)
    second = claim(local(10, 10), ANYUE, district="anyue")
    [finding] = location_spoofing(batch([first, second]))
    assert finding.evidence["crossed"] == ["travel"]
    assert finding.unit == "km_per_hour"
    [trip] = finding.evidence["impossible_travel"]
    assert (trip["first_voucher_id"], trip["second_voucher_id"]) == (first.voucher_id, second.voucher_id)
    assert (trip["first_district"], trip["second_district"]) == ("yanjiang", "anyue")
    assert trip["first_location"] == list(YANJIANG)
    assert trip["second_location"] == list(ANYUE)
    assert trip["distance_km"] == pytest.approx(68.3, abs=0.5)
    assert trip["minutes"] == 10
    assert trip["speed_kmh"] == pytest.approx(410, abs=3)
    assert (finding.figure, finding.threshold) == (trip["speed_kmh"], 200)
    # twice the speed limit, twice the weight: the score is capped there
    assert alert_score(DEFAULT_SETTINGS.weight(Rule.LOCATION_SPOOFING), figure=410, threshold=200) == 70


def test_the_same_distance_over_enough_time_is_an_ordinary_trip() -> None:
    # 68 km in 30 minutes is 137 km/h: a motorway, not a spoof
    assert location_spoofing(batch([claim(local(10, 0), YANJIANG), claim(local(10, 30), ANYUE)])) == []


def test_short_distances_never_count_however_quick() -> None:
    # 12 km in one minute is 720 km/h, but under travel_min_km: a position jumping inside one district
    assert location_spoofing(batch([claim(local(10, 0), YANJIANG), claim(local(10, 1), NEARBY)])) == []
    [finding] = location_spoofing(
        batch(
            [claim(local(10, 0), YANJIANG), claim(local(10, 1), NEARBY)],
            settings=RiskSettings(travel_min_km=10),
        )
    )
    assert finding.evidence["impossible_travel"][0]["speed_kmh"] > 700


def test_claims_without_a_position_or_on_other_days_or_of_others_say_nothing() -> None:
    claims = [
        claim(local(10, 0), YANJIANG),
        claim(local(10, 5), None),  # a lottery win or an older claim
        claim(local(10, 5), ANYUE, person="psn_2"),  # someone else
        claim(local(0, 5, day=25), ANYUE),  # the next local day, 14 hours later
    ]
    assert location_spoofing(batch(claims)) == []


def test_travel_across_batches_is_caught_from_the_days_earlier_claims() -> None:
    earlier = claim(local(9, 0), YANJIANG)
    later = claim(local(9, 5), ANYUE)
    [finding] = location_spoofing(batch([later], earlier=[earlier]))
    assert finding.evidence["claim_ids"] == [earlier.voucher_id, later.voucher_id]
    assert finding.evidence["impossible_travel"][0]["first_voucher_id"] == earlier.voucher_id
    assert finding.at == later.at


def test_two_short_hops_that_add_up_to_an_impossible_one_are_caught() -> None:
    # each hop under travel_min_km, but the first and the last claim are 24 km apart in two minutes
    claims = [
        claim(local(10, 0), YANJIANG),
        claim(local(10, 1), NEARBY),
        claim(local(10, 2), (104.876, 30.129)),
    ]
    [finding] = location_spoofing(batch(claims))
    [trip] = finding.evidence["impossible_travel"]
    assert (trip["first_voucher_id"], trip["second_voucher_id"]) == (
        claims[0].voucher_id,
        claims[2].voucher_id,
    )


def test_both_branches_make_one_alert_scored_by_the_speed() -> None:
    claims = [claim(local(10, 0), YANJIANG, network=CHENGDU_NET), claim(local(10, 3), ANYUE)]
    [finding] = location_spoofing(batch(claims))
    assert finding.evidence["crossed"] == ["ip_region", "travel"]
    assert finding.unit == "km_per_hour"


def test_the_rule_runs_with_the_others() -> None:
    findings = evaluate(batch([claim(local(10), network=CHENGDU_NET)]))
    assert [finding.rule for finding in findings] == [Rule.LOCATION_SPOOFING]
