"""Every rule over a varied synthetic stream gives exactly the findings frozen in golden_findings.json.

The file was written by the rules as they were before they were made fast (issue 7: one index of the
history per batch instead of every rule re-reading it), so this test says that the fast rules find the same
things: the same findings in the same order, with the same figures, windows, summaries and evidence.

The stream (fixed seed): two campaigns (default settings and tighter ones), merchants with every kind of
business hours, threshold and price-band vouchers and vouchers with no floor, a week of ordinary history,
then a day of claims, redemptions and refunds with every rule's pattern planted among ordinary behaviour.
Times are a mix of UTC and Asia/Shanghai instants, some on the edge of a local day. It is cut into claims
batches, redemption-log batches and one mixed batch, each with its context as the loaders build it. It
runs three times: as the loaders give it, with each merchant's history shuffled (the index's row-by-row
path), and moved to the week when Asia/Shanghai's daylight-saving time ended in 1989 (local time and UTC
out of step).

Regenerate only when findings are meant to change: `.venv/bin/python -m tests.unit.risk.test_rules_golden`.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from huimin.kit.clock import LOCAL_TZ, to_local
from huimin.merchants.domain import BusinessHours, parse_business_hours
from huimin.risk.domain import Finding, RiskSettings, Rule
from huimin.risk.ip_regions import IpRegion
from huimin.risk.rules import (
    ClaimFact,
    EventBatch,
    Identities,
    MerchantFact,
    MerchantTotals,
    RedemptionFact,
    RefundFact,
    _LocalClock,
    evaluate,
)

GOLDEN = Path(__file__).with_name("golden_findings.json")
SEED = 20220624
TODAY = date(2022, 6, 24)
HISTORY_DAYS = 8  # one more than the default windows, so the baselines' edges are exercised
BATCH = 200
LOOK_BACK_DAYS = 7
DEFAULT = "cmp_default"  # no settings row: the defaults
TIGHT = "cmp_tight"
SETTINGS = {
    TIGHT: RiskSettings(
        hug_margin_bp=300,
        hug_min_redemptions=6,
        hug_share_bp=6000,
        split_window_minutes=10,
        split_min_orders=3,
        velocity_baseline_days=3,
        velocity_factor=3,
        velocity_baseline_floor=2,
        velocity_min_per_hour=8,
        off_hours_grace_minutes=0,
        off_hours_min_redemptions=1,
        refund_soon_minutes=5,
        refund_soon_min_refunds=2,
        refund_rate_bp=2000,
        refund_rate_min_redemptions=10,
        farm_persons_per_device=3,
        farm_devices_per_person=3,
        ring_window_days=3,
        ring_min_redeemers=6,
        ring_linked_share_bp=4000,
        ring_far_share_bp=7000,
        ip_outside_min_claims=2,
        travel_max_kmh=120,
        travel_min_km=10,
    )
}
HOURS = ("09:00-21:00", "10:00-14:00,17:00-22:00", "18:00-02:00", "00:00-24:00", None)
FLOORS: tuple[tuple[int, ...], ...] = ((10_000,), (5_000, 10_000, 20_000), ())
DISTRICTS = ("yanjiang", "anyue", "lezhi")
JURISDICTIONS = {"yanjiang": "yanjiang", "anyue": "anyue", "lezhi": "lezhi", "gaoxin": "yanjiang"}
# GCJ-02 points: the city centre, a county seat 70 km away, a point 12 km from the centre
PLACES = ((104.628, 30.129), (105.336, 30.099), (104.752, 30.129), (105.055, 30.287))
OUTSIDE_NET = "175.152.34.0/24"
INSIDE_NET = "222.209.80.0/24"
UNKNOWN_NET = "203.0.113.0/24"
IP_REGIONS = {
    OUTSIDE_NET: IpRegion(ipaddress.ip_network("175.152.0.0/16"), "成都市", in_city=False),
    INSIDE_NET: IpRegion(ipaddress.ip_network("222.209.80.0/20"), "雁江区", in_city=True),
}


@dataclass
class Person:
    id: str
    devices: list[str]
    phones: list[str]
    district: str


@dataclass
class Merchant:
    id: str
    campaign_id: str
    jurisdiction: str
    hours: BusinessHours | None
    phone: str | None
    per_day: int
    floors: tuple[int, ...]


@dataclass
class World:
    persons: dict[str, Person]
    merchants: dict[str, Merchant]
    history: list[RedemptionFact]
    # today's events in time order: ("claim", ClaimFact) | ("redemption", RedemptionFact) | ("refund", ...)
    day: list[tuple[str, Any]] = field(default_factory=list)


def _instant(rng: random.Random, day: date, hour: int, minute: int, second: int = 0) -> datetime:
    """A local wall time as an instant, half of them in UTC (as PostgreSQL returns them)."""
    local = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + timedelta(
        hours=hour, minutes=minute, seconds=second
    )
    if rng.random() < 0.1:
        local += timedelta(microseconds=rng.randint(1, 999_999))
    return local.astimezone(UTC) if rng.random() < 0.5 else local


def build_world(rng: random.Random) -> World:
    persons = {
        f"prs_{i:05d}": Person(f"prs_{i:05d}", [f"dev-{i:05d}"], [f"phone-{i:05d}"], rng.choice(DISTRICTS))
        for i in range(800)
    }
    people = list(persons.values())
    for family in range(0, 200, 2):  # families: a shared device or phone now and then
        if family % 4 == 0:
            people[family + 1].devices = list(people[family].devices)
        else:
            people[family + 1].phones.append(people[family].phones[0])
    for person in people[200:240]:  # a second phone or device
        person.devices.append(f"dev-extra-{person.id}")
    merchants = {}
    for i in range(48):
        merchants[f"mch_{i:03d}"] = Merchant(
            id=f"mch_{i:03d}",
            campaign_id=TIGHT if i % 3 == 1 else DEFAULT,
            jurisdiction=rng.choice(list(JURISDICTIONS)),
            hours=None if (text := HOURS[i % len(HOURS)]) is None else parse_business_hours(text),
            phone=None,
            per_day=rng.randint(0, 25),
            floors=FLOORS[i % len(FLOORS)] if i % 7 else FLOORS[0],
        )
    shops = list(merchants.values())
    refunder = shops[22]  # a tight-campaign merchant with few sales, most of today's refunded
    refunder.per_day = 2
    for quiet in (shops[15], shops[19]):  # the resale rings' merchants: few ordinary customers
        quiet.per_day = 1
    for shop in shops[20:30]:  # contact phones: of a resident, or of nobody registered
        shop.phone = rng.choice(people).phones[0] if rng.random() < 0.5 else f"phone-contact-{shop.id}"
    serial = iter(range(10**9))

    def redemption(
        shop: Merchant, person: Person, at: datetime, counted: int | None = None, *, far: bool = False
    ) -> RedemptionFact:
        n = next(serial)
        if counted is None:
            counted = rng.choice((4_000, 5_100, 9_000, 10_200, 12_000, 15_800, 20_500, 33_300))
        payable = counted - rng.choice((0, 0, 0, 500))
        district = JURISDICTIONS[shop.jurisdiction] if rng.random() < 0.85 else person.district
        if far:
            district = rng.choice([d for d in DISTRICTS if d != JURISDICTIONS[shop.jurisdiction]])
        return RedemptionFact(
            redemption_id=f"rdm_{n:07d}",
            campaign_id=shop.campaign_id,
            merchant_id=shop.id,
            person_id=person.id,
            voucher_id=f"vch_r{n:07d}",
            terminal_id=f"T{rng.randint(1, 3):07d}",
            at=at,
            payable_fen=payable,
            counted_fen=counted,
            floors=shop.floors,
            subsidy_fen=rng.choice((1_000, 3_000)),
            claim_district=district,
        )

    def ordinary_time(day: date, shop: Merchant | None = None) -> datetime:
        """Mostly while the shop is open; now and then late, around local midnight."""
        while True:
            hour = rng.choice((*range(8, 23), 23, 0, 1)) if rng.random() < 0.1 else rng.randint(0, 23)
            minute = rng.randint(0, 59)
            if shop is None or shop.hours is None or rng.random() < 0.02:
                break
            if shop.hours.is_open_at(hour * 60 + minute):
                break
        return _instant(rng, day, hour, minute, rng.randint(0, 59))

    history = []
    for back in range(HISTORY_DAYS, 0, -1):
        day = TODAY - timedelta(days=back)
        for shop in shops:
            for _ in range(shop.per_day + rng.randint(-2, 2) if shop.per_day > 2 else shop.per_day):
                history.append(redemption(shop, rng.choice(people), ordinary_time(day, shop)))
    velocity_tight = shops[7]  # a tight-campaign merchant with a steady baseline before its spike
    for back in range(1, 4):
        for hour in (10, 12, 18):
            for minute in range(0, 60, 20):
                at = _instant(rng, TODAY - timedelta(days=back), hour, minute)
                history.append(redemption(velocity_tight, rng.choice(people), at))
    history.sort(key=lambda item: item.at)

    day: list[tuple[str, Any]] = []
    spent: list[RedemptionFact] = []
    for _ in range(8):
        spent.append(redemption(refunder, rng.choice(people), ordinary_time(TODAY, refunder)))
    for _ in range(1_200):
        shop = rng.choice(shops)
        if shop is shops[19]:  # the far ring's merchant sees only the ring today
            continue
        spent.append(redemption(shop, rng.choice(people), ordinary_time(TODAY, shop)))
    # 拆单 (and hugging): one person, orders just over a floor, a few minutes apart; a near miss beside
    for minute in range(0, 30, 3):
        spent.append(redemption(shops[4], people[100], _instant(rng, TODAY, 12, minute), counted=10_100))
    for minute in (0, 5, 11, 16, 40, 45):
        spent.append(redemption(shops[10], people[101], _instant(rng, TODAY, 13, minute), counted=5_050))
    for minute in (0, 31, 62):  # each more than 30 minutes apart: not a split
        spent.append(redemption(shops[6], people[102], _instant(rng, TODAY, 14, minute), counted=10_000))
    # 金额贴近门槛
    for serial_no in range(40):
        at = _instant(rng, TODAY, 14, serial_no)
        spent.append(redemption(shops[9], rng.choice(people), at, counted=10_050 + serial_no))
    for serial_no in range(9):
        at = _instant(rng, TODAY, 16, serial_no * 3)
        spent.append(redemption(shops[13], rng.choice(people), at, counted=20_000 + serial_no * 50))
    # 核销频次异常: a spike, and a tight-campaign merchant's smaller one against its baseline
    for second in range(0, 3600, 30):
        at = _instant(rng, TODAY, 15, 0) + timedelta(seconds=second)
        spent.append(redemption(shops[3], rng.choice(people), at))
    for minute in range(0, 60, 5):
        spent.append(redemption(velocity_tight, rng.choice(people), _instant(rng, TODAY, 11, minute)))
    # 非营业时间核销: after closing, before a night market opens, inside and just outside a grace
    for minute in range(0, 50, 5):
        spent.append(redemption(shops[5], rng.choice(people), _instant(rng, TODAY, 23, minute)))
    for hour, minute in ((10, 0), (11, 30), (2, 10), (2, 20), (17, 50)):
        spent.append(redemption(shops[2], rng.choice(people), _instant(rng, TODAY, hour, minute)))
    for hour, minute in ((8, 50), (21, 10), (22, 30)):
        spent.append(redemption(shops[16], rng.choice(people), _instant(rng, TODAY, hour, minute)))
    # 倒卖券: redeemers sharing two devices; and one where everyone claimed in another district
    for n in range(20):
        person = people[400 + n]
        person.devices = [f"dev-ring-{n % 2}"]
        spent.append(redemption(shops[15], person, _instant(rng, TODAY, 16, n)))
    for n in range(12):
        spent.append(redemption(shops[19], people[450 + n], _instant(rng, TODAY, 9, n * 4), far=True))
    # 自领自核: the contact phone's holder, and a person sharing that holder's device
    owner, helper = people[300], people[301]
    helper.devices.append(owner.devices[0])
    for shop in (shops[0], shops[1]):
        shop.phone = owner.phones[0]
        spent.append(redemption(shop, owner, _instant(rng, TODAY, 11, 30)))
        spent.append(redemption(shop, helper, _instant(rng, TODAY, 11, 45)))
    # a merchant the batch knows nothing of (no merchant row), and one whose history is missing
    ghost = Merchant("mch_ghost", DEFAULT, "anyue", None, None, 0, FLOORS[0])
    for minute in range(0, 30, 2):
        spent.append(redemption(ghost, rng.choice(people), _instant(rng, TODAY, 19, minute), counted=10_010))
    spent.sort(key=lambda item: item.at)
    day.extend(("redemption", item) for item in spent)

    # refunds: quick ones at two merchants, a high refund rate at another, ordinary ones elsewhere
    refunded: set[str] = set()

    def refund(item: RedemptionFact, after: timedelta, part: int = 2) -> None:
        refunded.add(item.redemption_id)
        day.append(
            (
                "refund",
                RefundFact(
                    redemption_id=item.redemption_id,
                    campaign_id=item.campaign_id,
                    merchant_id=item.merchant_id,
                    person_id=item.person_id,
                    amount_fen=item.payable_fen // part,
                    at=item.at + after,
                    redeemed_at=item.at,
                ),
            )
        )

    for shop_index, minutes in ((11, 3), (12, 4), (14, 9)):
        mine = [item for item in spent if item.merchant_id == shops[shop_index].id][:6]
        for item in mine:
            refund(item, timedelta(minutes=minutes, seconds=rng.randint(0, 50)))
    for item in [item for item in spent if item.merchant_id == refunder.id]:
        refund(item, timedelta(hours=2), part=1)
    for item in rng.sample(spent, 80):
        if item.redemption_id not in refunded:
            refund(item, timedelta(minutes=rng.randint(20, 900)))

    # claims: ordinary ones, a device farm, a person on many devices, positions and networks
    claim_serial = iter(range(1, 10**9))

    def claim(person: Person, at: datetime, place: int | None, network: str | None, device: int = 0) -> None:
        n = next(claim_serial)
        spot = None if place is None else PLACES[place]
        day.append(
            (
                "claim",
                ClaimFact(
                    event_id=n,
                    campaign_id=TIGHT if n % 4 == 0 else DEFAULT,
                    voucher_id=f"vch_c{n:07d}",
                    person_id=person.id,
                    resident_id=f"res_{person.id}_{device}",
                    device=person.devices[device % len(person.devices)],
                    district=DISTRICTS[place % len(DISTRICTS)] if place is not None else person.district,
                    at=at,
                    lng=None if spot is None else spot[0],
                    lat=None if spot is None else spot[1],
                    ip_prefix=network,
                ),
            )
        )

    for _ in range(700):
        person = rng.choice(people[:260])  # a crowd small enough that some claim twice a day
        place = rng.choice((None, 0, 0, 0, 2))
        network = OUTSIDE_NET if rng.random() < 0.02 else rng.choice((None, INSIDE_NET, UNKNOWN_NET))
        claim(person, ordinary_time(TODAY), place, network)
    farm = "dev-farm-0001"
    for n in range(8):
        people[500 + n].devices = [farm]
        claim(people[500 + n], _instant(rng, TODAY, 10, n), 0, INSIDE_NET)
    collector = people[520]
    collector.devices = [f"dev-collector-{n}" for n in range(5)]
    for n in range(5):
        claim(collector, _instant(rng, TODAY, 13, n * 7), 0, UNKNOWN_NET, device=n)
    traveller = people[530]  # 70 km in ten minutes, and two hops that add up
    for hour, minute, place in ((9, 0, 0), (9, 10, 1), (15, 0, 0), (15, 20, 2), (15, 40, 3)):
        claim(traveller, _instant(rng, TODAY, hour, minute), place, None)
    for minute in (0, 30):  # the same network outside the city, twice
        claim(people[531], _instant(rng, TODAY, 20, minute), 0, OUTSIDE_NET)
    day.sort(key=lambda event: event[1].at)
    return World(persons, merchants, history, day)


def _local_midnight(at: datetime) -> datetime:
    local = at.astimezone(LOCAL_TZ)
    return datetime(local.year, local.month, local.day, tzinfo=LOCAL_TZ)


def golden_batches() -> list[EventBatch]:
    """The stream cut as the scanner reads it, each batch with the context the loaders give it."""
    world = build_world(random.Random(SEED))  # noqa: S311 (a reproducible stream, not a secret)
    persons, merchants = world.persons, world.merchants
    facts = {
        m.id: MerchantFact(
            merchant_id=m.id,
            campaign_id=m.campaign_id,
            name=f"商户{m.id}",
            jurisdiction=m.jurisdiction,
            district=JURISDICTIONS[m.jurisdiction],
            hours=m.hours,
            contact_phone_digest=m.phone,
            contact_phone_masked="138****0000" if m.phone else "",
        )
        for m in merchants.values()
    }
    devices_of = {p.id: frozenset(p.devices) for p in persons.values()}
    phones_of = {p.id: frozenset(p.phones) for p in persons.values()}
    on_device: dict[str, set[str]] = defaultdict(set)
    with_phone: dict[str, set[str]] = defaultdict(set)
    for person in persons.values():
        for device in person.devices:
            on_device[device].add(person.id)
        for phone in person.phones:
            with_phone[phone].add(person.id)

    claims = [fact for kind, fact in world.day if kind == "claim"]
    log = [(kind, fact) for kind, fact in world.day if kind != "claim"]
    chunks: list[tuple[list[ClaimFact], list[tuple[str, Any]]]] = [
        (claims[start : start + BATCH], []) for start in range(0, len(claims), BATCH)
    ]
    chunks += [([], log[start : start + BATCH]) for start in range(0, len(log), BATCH)]
    # the last claims and the last log events again, together: one mixed batch
    chunks.append((claims[-60:], log[-90:]))

    batches = []
    for new_claims, new_log in chunks:
        redemptions = [fact for kind, fact in new_log if kind == "redemption"]
        refunds = [fact for kind, fact in new_log if kind == "refund"]
        last = max([event.at for event in (*new_claims, *redemptions, *refunds)])
        touched = {item.merchant_id for item in redemptions} | {item.merchant_id for item in refunds}
        refund_merchants = {item.merchant_id for item in refunds}
        since = _local_midnight(min([item.at for item in (*redemptions, *refunds)] or [last])) - timedelta(
            days=LOOK_BACK_DAYS
        )
        done = [item for kind, item in world.day if kind == "redemption" and item.at <= last]
        window: dict[str, list[RedemptionFact]] = defaultdict(list)
        for item in (*world.history, *done):
            if item.merchant_id in touched and item.merchant_id != "mch_ghost" and item.at >= since:
                window[item.merchant_id].append(item)
        history = {m: sorted(items, key=lambda item: item.at) for m, items in window.items()}
        refunds_done = [item for kind, item in world.day if kind == "refund" and item.at <= last]
        refund_history: dict[str, list[RefundFact]] = defaultdict(list)
        for refund in refunds_done:
            if refund.merchant_id in refund_merchants and refund.at >= since:
                refund_history[refund.merchant_id].append(refund)
        totals = {}
        for merchant_id in refund_merchants:
            count = sum(item.merchant_id == merchant_id for item in (*world.history, *done))
            back = sum(item.merchant_id == merchant_id for item in refunds_done)
            totals[merchant_id] = MerchantTotals(redemptions=count, refunded=back)
        redeemers = {item.person_id for items in history.values() for item in items}
        owners = {
            p
            for m in touched
            if m in facts and facts[m].contact_phone_digest
            for p in with_phone[facts[m].contact_phone_digest or ""]
        }
        claimers = {claim.person_id for claim in new_claims}
        days = {_local_midnight(claim.at) for claim in new_claims}
        claim_history: dict[str, list[ClaimFact]] = defaultdict(list)
        for claim in claims:
            if claim.person_id in claimers and _local_midnight(claim.at) in days and claim.at <= last:
                claim_history[claim.person_id].append(claim)
        devices = {claim.device for claim in new_claims}
        batches.append(
            EventBatch(
                claims=new_claims,
                redemptions=redemptions,
                refunds=refunds,
                history=history,
                refund_history=dict(refund_history),
                merchants={m: facts[m] for m in touched if m in facts},
                totals=totals,
                identities=Identities(
                    devices_of={p: devices_of[p] for p in redeemers | owners | claimers},
                    phones_of={p: phones_of[p] for p in redeemers | owners},
                    persons_on_device={d: frozenset(on_device[d]) for d in devices},
                    persons_with_phone={
                        phone: frozenset(with_phone[phone])
                        for m in touched
                        if m in facts and (phone := facts[m].contact_phone_digest)
                    },
                ),
                settings=SETTINGS,
                claim_history=dict(claim_history),
                ip_regions=IP_REGIONS,
            )
        )
    return batches


def _plain(value: Any) -> Any:
    """JSON of a finding that keeps what JSON alone would blur: tuples, enums, datetimes and their offset."""
    if isinstance(value, Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, tuple):
        return {"tuple": [_plain(each) for each in value]}
    if isinstance(value, list):
        return [_plain(each) for each in value]
    if isinstance(value, dict):
        return {"dict": [[_plain(key), _plain(each)] for key, each in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"unexpected {type(value).__name__} in a finding")


def serialised(findings: Sequence[Finding]) -> list[Any]:
    return [
        {name: _plain(getattr(finding, name)) for name in finding.__dataclass_fields__}
        for finding in findings
    ]


def _shuffled(batch: EventBatch, rng: random.Random) -> EventBatch:
    """The batch with each merchant's history in no particular order."""
    history = {m: rng.sample(list(items), len(items)) for m, items in batch.history.items()}
    return replace(batch, history=history)


def _shifted(batch: EventBatch, by: timedelta) -> EventBatch:
    """The batch moved in time by whole days. A time in UTC keeps its instant's distance; a local time keeps
    its wall clock, so around a change of the offset local and UTC times no longer run in step."""

    def fact(item: Any) -> Any:
        if isinstance(item, RefundFact):
            return replace(item, at=item.at + by, redeemed_at=item.redeemed_at + by)
        return replace(item, at=item.at + by)

    def each(items: Sequence[Any]) -> list[Any]:
        return [fact(item) for item in items]

    return replace(
        batch,
        claims=each(batch.claims),
        redemptions=each(batch.redemptions),
        refunds=each(batch.refunds),
        history={m: each(items) for m, items in batch.history.items()},
        refund_history={m: each(items) for m, items in batch.refund_history.items()},
        claim_history={p: each(items) for p, items in batch.claim_history.items()},
    )


def streams() -> dict[str, list[EventBatch]]:
    """The stream as the loaders give it; with each merchant's history shuffled; and moved to the week of
    1989-09-17, when Asia/Shanghai's daylight-saving time ended (local 01:00-02:00 happened twice)."""
    batches = golden_batches()
    rng = random.Random(SEED)  # noqa: S311 (a reproducible order, not a secret)
    dst_end = datetime(1989, 9, 17) - datetime(2022, 6, 20)  # noqa: DTZ001 (whole days between two dates)
    return {
        "in_order": batches,
        "shuffled_history": [_shuffled(batch, rng) for batch in batches],
        "dst_1989": [_shifted(batch, dst_end) for batch in batches],
    }


def current() -> dict[str, list[list[Any]]]:
    return {name: [serialised(evaluate(batch)) for batch in batches] for name, batches in streams().items()}


@pytest.fixture(scope="module")
def golden() -> dict[str, list[list[Any]]]:
    found: dict[str, list[list[Any]]] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize("stream", ["in_order", "shuffled_history", "dst_1989"])
def test_every_rule_finds_exactly_what_the_golden_file_holds(
    stream: str, golden: dict[str, list[list[Any]]]
) -> None:
    batches = streams()[stream]
    assert len(batches) == len(golden[stream])
    for index, (batch, expected) in enumerate(zip(batches, golden[stream], strict=True)):
        assert serialised(evaluate(batch)) == expected, f"{stream}, batch {index}"


def test_the_golden_stream_fires_every_rule(golden: dict[str, list[list[Any]]]) -> None:
    """The golden file is only worth something if every rule has something to find in it."""
    fired = {finding["rule"]["value"] for batch in golden["in_order"] for finding in batch}
    assert fired == {rule.value for rule in Rule}


@pytest.mark.parametrize(
    "around",
    [
        datetime(1901, 1, 1, tzinfo=LOCAL_TZ),  # local mean time (+08:05:43) to +08:00, off the hour in UTC
        datetime(1989, 9, 17, 1, 30, tzinfo=LOCAL_TZ),  # daylight-saving time ends: 01:00-02:00 twice
        datetime(1989, 4, 16, 2, 30, tzinfo=LOCAL_TZ),  # and starts: 02:00-03:00 never happens
        datetime(2022, 6, 24, 0, 0, tzinfo=LOCAL_TZ),
    ],
)
def test_the_rules_local_clock_agrees_with_to_local(around: datetime) -> None:
    """The index's cheap local time (whole local seconds since 1970) is `to_local`'s, every 7 minutes and
    a few seconds over a day around each change of Asia/Shanghai's offset."""
    clock = _LocalClock()
    for step in range(-200, 200):
        at = (around + timedelta(minutes=7 * step, seconds=step % 60, microseconds=step % 7)).astimezone(UTC)
        local = to_local(at)
        expected = (local.replace(tzinfo=None) - datetime(1970, 1, 1)) // timedelta(seconds=1)  # noqa: DTZ001
        assert clock.seconds(at) == expected, at


if __name__ == "__main__":
    GOLDEN.write_text(
        json.dumps(current(), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"wrote {GOLDEN}")
