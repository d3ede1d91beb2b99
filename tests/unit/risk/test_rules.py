"""Each rule on a planted pattern (it fires, with its evidence) and on ordinary behaviour next to it (it
does not). Times are Asia/Shanghai wall time; amounts fen."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from itertools import count

from huimin.kit.clock import LOCAL_TZ
from huimin.merchants.domain import parse_business_hours
from huimin.risk.domain import RiskSettings, Rule, SubjectKind
from huimin.risk.rules import (
    ClaimFact,
    EventBatch,
    Identities,
    MerchantFact,
    MerchantTotals,
    RedemptionFact,
    RefundFact,
    device_farm,
    evaluate,
    off_hours,
    refund_rate,
    refund_soon,
    resale_ring,
    self_claim_self_redeem,
    split_orders,
    threshold_hugging,
    velocity,
)

CAMPAIGN = "cmp_test"
THRESHOLD = 10_000  # 满100减30
_serial = count(1)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2022, 6, day, hour, minute, tzinfo=LOCAL_TZ)


def merchant(
    merchant_id: str = "mer_a", *, hours: str = "09:00-21:00", phone: str | None = "phone-m"
) -> MerchantFact:
    return MerchantFact(
        merchant_id=merchant_id,
        campaign_id=CAMPAIGN,
        name="测试餐馆",
        jurisdiction="yanjiang",
        district="yanjiang",
        hours=parse_business_hours(hours) if hours else None,
        contact_phone_digest=phone,
        contact_phone_masked="138****5678",
    )


def redemption(
    at: datetime,
    *,
    person: str | None = None,
    amount: int = 15_000,
    merchant_id: str = "mer_a",
    floors: tuple[int, ...] = (THRESHOLD,),
    district: str = "yanjiang",
) -> RedemptionFact:
    serial = next(_serial)
    return RedemptionFact(
        redemption_id=f"rdm_{serial}",
        campaign_id=CAMPAIGN,
        merchant_id=merchant_id,
        person_id=person or f"psn_{serial}",
        voucher_id=f"vch_{serial}",
        terminal_id="T0000001",
        at=at,
        payable_fen=amount,
        counted_fen=amount,
        floors=floors,
        subsidy_fen=3_000,
        claim_district=district,
    )


def batch(
    new: list[RedemptionFact],
    *,
    old: list[RedemptionFact] = (),  # type: ignore[assignment]
    settings: RiskSettings | None = None,
    merchants: list[MerchantFact] | None = None,
    identities: Identities | None = None,
    refunds: list[RefundFact] = (),  # type: ignore[assignment]
    totals: dict[str, MerchantTotals] | None = None,
) -> EventBatch:
    history: dict[str, list[RedemptionFact]] = defaultdict(list)
    for item in sorted([*old, *new], key=lambda each: each.at):
        history[item.merchant_id].append(item)
    refund_history: dict[str, list[RefundFact]] = defaultdict(list)
    for refund in refunds:
        refund_history[refund.merchant_id].append(refund)
    return EventBatch(
        redemptions=new,
        refunds=refunds,
        history=history,
        refund_history=refund_history,
        merchants={m.merchant_id: m for m in (merchants or [merchant()])},
        totals=totals or {},
        identities=identities or Identities(),
        settings={CAMPAIGN: settings or RiskSettings()},
    )


# self-claim-self-redeem


def test_self_claim_fires_on_the_merchants_own_phone_and_a_device_shared_with_its_holder() -> None:
    owner, relative, stranger = "psn_owner", "psn_relative", "psn_stranger"
    identities = Identities(
        devices_of={
            owner: frozenset({"dev-1"}),
            relative: frozenset({"dev-1"}),
            stranger: frozenset({"dev-9"}),
        },
        phones_of={
            owner: frozenset({"phone-m"}),
            relative: frozenset({"phone-r"}),
            stranger: frozenset({"phone-s"}),
        },
        persons_with_phone={"phone-m": frozenset({owner})},
    )
    items = [redemption(local(24, 12), person=p) for p in (owner, relative, stranger)]
    [finding] = self_claim_self_redeem(batch(items, identities=identities))
    assert finding.subject_kind is SubjectKind.MERCHANT
    assert finding.subject_id == "mer_a"
    assert finding.figure == 2
    assert finding.threshold == 1
    assert finding.window == "2022-06-24"
    links = {entry["person_id"]: entry["linked_by"] for entry in finding.evidence["redemptions"]}
    assert links == {owner: ["phone", "device"], relative: ["device"]}
    assert finding.evidence["subsidy_fen"] == 6_000


def test_self_claim_is_silent_for_unlinked_residents() -> None:
    identities = Identities(
        devices_of={"psn_x": frozenset({"dev-x"})},
        phones_of={"psn_x": frozenset({"phone-x"})},
        persons_with_phone={"phone-m": frozenset({"psn_owner"})},
    )
    assert (
        self_claim_self_redeem(batch([redemption(local(24, 12), person="psn_x")], identities=identities))
        == []
    )


# threshold hugging


def test_hugging_fires_when_most_of_a_days_amounts_sit_just_above_the_threshold() -> None:
    items = [redemption(local(24, 10, i), amount=10_000 + 50 * (i % 5)) for i in range(9)]
    items.append(redemption(local(24, 11), amount=18_000))
    [finding] = threshold_hugging(batch(items))
    assert (finding.figure, finding.threshold, finding.unit) == (9_000, 7_000, "bp")
    assert finding.evidence["hugging"] == 9
    assert finding.evidence["eligible"] == 10
    assert len(finding.evidence["redemption_ids"]) == 9


def test_hugging_is_silent_on_spread_amounts_and_on_few_redemptions() -> None:
    spread = [redemption(local(24, 10, i), amount=10_000 + 1_000 * i) for i in range(12)]
    assert threshold_hugging(batch(spread)) == []
    few = [redemption(local(24, 10, i), amount=10_100) for i in range(5)]  # all hug, but 5 < 10
    assert threshold_hugging(batch(few)) == []


# split orders


def test_split_orders_fire_on_one_person_with_purchases_each_just_meeting_the_threshold() -> None:
    items = [redemption(local(24, 12, minute), person="psn_s", amount=10_200) for minute in (0, 10, 25)]
    [finding] = split_orders(batch(items))
    assert finding.figure == 3
    assert finding.window == "2022-06-24/psn_s"
    assert finding.evidence["redemption_ids"] == [item.redemption_id for item in items]
    assert finding.evidence["total_fen"] == 30_600


def test_split_orders_are_silent_when_purchases_are_far_apart_or_well_above_the_threshold() -> None:
    apart = [redemption(local(24, h), person="psn_s", amount=10_200) for h in (10, 14)]
    assert split_orders(batch(apart)) == []
    big = [redemption(local(24, 12, m), person="psn_s", amount=16_000) for m in (0, 5)]
    assert split_orders(batch(big)) == []


# velocity


def _baseline(days: int = 5, per_hour: int = 4) -> list[RedemptionFact]:
    return [
        redemption(local(24 - d, h, 5 * i))
        for d in range(1, days + 1)
        for h in (11, 12, 18)
        for i in range(per_hour)
    ]


def test_velocity_fires_far_above_the_merchants_own_median_hour() -> None:
    burst = [redemption(local(24, 15, i)) for i in range(25)]
    [finding] = velocity(batch(burst, old=_baseline()))
    assert finding.window == "2022-06-24T15"
    assert finding.figure == 25
    assert finding.evidence["baseline_median"] == 4
    assert finding.threshold == 20


def test_velocity_is_silent_on_a_busy_but_usual_hour() -> None:
    busy = [redemption(local(24, 12, 2 * i)) for i in range(6)]
    assert velocity(batch(busy, old=_baseline())) == []
    # a merchant that is always busy: 30 an hour is its normal
    assert (
        velocity(batch([redemption(local(24, 12, i)) for i in range(30)], old=_baseline(per_hour=10))) == []
    )


# outside business hours


def test_off_hours_fires_on_redemptions_while_closed() -> None:
    items = [redemption(local(24, 23, 10)), redemption(local(24, 3, 0)), redemption(local(24, 12))]
    [finding] = off_hours(batch(items))
    assert finding.figure == 2
    assert finding.evidence["local_times"] == ["03:00", "23:10"]


def test_off_hours_allows_the_grace_and_night_markets() -> None:
    closing = [redemption(local(24, 21, 10)), redemption(local(24, 8, 50))]  # within 15 minutes
    assert off_hours(batch(closing)) == []
    night = [redemption(local(24, 1, 0)), redemption(local(24, 23, 30))]
    assert off_hours(batch(night, merchants=[merchant(hours="18:00-02:00")])) == []


# refunds


def _refund(after: timedelta, *, at: datetime | None = None) -> RefundFact:
    redeemed = at or local(24, 12)
    return RefundFact(
        redemption_id=f"rdm_r{next(_serial)}",
        campaign_id=CAMPAIGN,
        merchant_id="mer_a",
        person_id="psn_r",
        amount_fen=12_000,
        at=redeemed + after,
        redeemed_at=redeemed,
    )


def test_refund_soon_fires_on_several_quick_refunds_in_a_day() -> None:
    refunds = [_refund(timedelta(minutes=2), at=local(24, 12, 10 * i)) for i in range(3)]
    [finding] = refund_soon(batch([], refunds=refunds))
    assert finding.figure == 3
    assert finding.evidence["refunds"][0]["seconds_after"] == 120


def test_refund_soon_is_silent_on_late_or_rare_refunds() -> None:
    late = [_refund(timedelta(hours=2), at=local(24, 10, i)) for i in range(4)]
    assert refund_soon(batch([], refunds=late)) == []
    rare = [_refund(timedelta(minutes=1), at=local(24, 10, i)) for i in range(2)]
    assert refund_soon(batch([], refunds=rare)) == []


def test_refund_rate_fires_above_the_line_and_not_below() -> None:
    refund = _refund(timedelta(days=1))
    [finding] = refund_rate(batch([], refunds=[refund], totals={"mer_a": MerchantTotals(40, 16)}))
    assert (finding.figure, finding.threshold) == (4_000, 3_000)
    assert refund_rate(batch([], refunds=[refund], totals={"mer_a": MerchantTotals(40, 4)})) == []
    assert refund_rate(batch([], refunds=[refund], totals={"mer_a": MerchantTotals(10, 9)})) == []  # too few


# device farms


def _claim(person: str, device: str) -> ClaimFact:
    return ClaimFact(
        event_id=next(_serial),
        campaign_id=CAMPAIGN,
        voucher_id=f"vch_{person}",
        person_id=person,
        resident_id=f"res_{person}",
        device=device,
        district="yanjiang",
        at=local(24, 10),
    )


def test_device_farm_fires_on_many_persons_on_one_device_and_one_person_on_many() -> None:
    farm = frozenset(f"psn_{i}" for i in range(6))
    identities = Identities(
        persons_on_device={"dev-farm": farm, "dev-home": frozenset({"psn_home"})},
        devices_of={"psn_hopper": frozenset({"d1", "d2", "d3", "d4"}), "psn_home": frozenset({"dev-home"})},
    )
    claims = [_claim("psn_0", "dev-farm"), _claim("psn_hopper", "d1"), _claim("psn_home", "dev-home")]
    findings = device_farm(EventBatch(claims=claims, identities=identities))
    assert {(f.subject_kind, f.subject_id, f.figure) for f in findings} == {
        (SubjectKind.DEVICE, "dev-farm", 6),
        (SubjectKind.PERSON, "psn_hopper", 4),
    }


def test_device_farm_is_silent_on_a_family_sharing_a_phone() -> None:
    identities = Identities(persons_on_device={"dev-family": frozenset({"psn_mum", "psn_dad", "psn_gran"})})
    assert device_farm(EventBatch(claims=[_claim("psn_mum", "dev-family")], identities=identities)) == []


# resale rings


def test_resale_ring_fires_when_redeemers_share_devices() -> None:
    persons = [f"psn_{i}" for i in range(12)]
    devices = {p: frozenset({f"dev-{i // 3}"}) for i, p in enumerate(persons)}  # four devices, three each
    items = [redemption(local(24, 12, i), person=p) for i, p in enumerate(persons)]
    [finding] = resale_ring(batch(items, identities=Identities(devices_of=devices)))
    assert finding.evidence["crossed"] == "linked"
    assert finding.figure == 10_000
    assert len(finding.evidence["shared_devices"]) == 4


def test_resale_ring_fires_when_nearly_all_claimed_in_another_district() -> None:
    items = [redemption(local(24, 12, i), district="anyue") for i in range(12)]
    [finding] = resale_ring(batch(items))
    assert finding.evidence["crossed"] == "far"
    assert finding.figure == 10_000


def test_resale_ring_is_silent_on_ordinary_customers() -> None:
    items = [redemption(local(24, 12, i), district="anyue" if i < 4 else "yanjiang") for i in range(12)]
    devices = {item.person_id: frozenset({f"dev-{item.person_id}"}) for item in items}
    devices[items[0].person_id] = devices[items[1].person_id]  # one couple sharing a phone
    assert resale_ring(batch(items, identities=Identities(devices_of=devices))) == []


def test_ordinary_day_raises_nothing_at_all() -> None:
    """A normal merchant day through every rule: spread amounts, usual hours, distinct customers."""
    items = [redemption(local(24, 10 + i % 10, (7 * i) % 60), amount=10_000 + 731 * i) for i in range(15)]
    identities = Identities(
        devices_of={item.person_id: frozenset({f"dev-{item.person_id}"}) for item in items}
    )
    assert evaluate(batch(items, old=_baseline(), identities=identities)) == []


def test_rules_read_their_thresholds_from_the_campaigns_settings() -> None:
    items = [redemption(local(24, 10, i), amount=10_100) for i in range(5)]
    assert threshold_hugging(batch(items)) == []
    [finding] = threshold_hugging(batch(items, settings=RiskSettings(hug_min_redemptions=5)))
    assert finding.rule is Rule.THRESHOLD_HUGGING
