"""How many claims, redemptions and refunds a second the fraud rules get through on one core (issue 7:
≥ 5,000 events/s through all rules).

Run: .venv/bin/python bench/bench_risk.py [--merchants 1000] [--events 20000] [--postgres] [--profile]

A synthetic city: merchants with their business hours and contact phones, residents (some families
sharing a phone or device, some device farms), a week of ordinary redemptions as history, then one day's
stream of events (claims, redemptions, refunds) with fraud planted among ordinary behaviour: a device farm,
split orders, threshold hugging, a velocity spike, off-hours redemptions, quick refunds, a resale ring and
a merchant's own phone spending its vouchers. Two figures:

1. the rules alone: `rules.evaluate` over `EventBatch`es of 500 events, built in memory as the intake
   loaders build them (claims batches and redemption-log batches, as the scanner reads them); one process;
2. end to end: `flows.scan` (what `huimin risk scan` and the worker run) over the same day written to a
   database (SQLite; PostgreSQL too with --postgres, from HUIMIN_BENCH_POSTGRES_URL): reading the events,
   loading their context, evaluating, storing the alerts, moving the cursor, one transaction per batch.

Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import fresh_database
from sqlalchemy import insert, update

from huimin.auth.models import PartnerRow
from huimin.campaigns.service import load_campaign
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.eligibility.models import PersonIdentifierRow, PersonRow, ResidentRow
from huimin.kit.clock import ManualClock, local_datetime
from huimin.merchants.models import MerchantRow
from huimin.merchants.service import MerchantSealer
from huimin.migrate import upgrade
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow, RefundRow
from huimin.risk import flows
from huimin.risk.domain import DEFAULT_SETTINGS
from huimin.risk.models import RiskAlertRow, RiskCursorRow
from huimin.risk.rules import (
    ClaimFact,
    EventBatch,
    Identities,
    MerchantFact,
    MerchantTotals,
    RedemptionFact,
    RefundFact,
    evaluate,
)
from huimin.risk.service import MerchantLinks

SEED = 20220624
BATCH = 500
TODAY = date(2022, 6, 24)
HISTORY_DAYS = 7
JURISDICTIONS = {"yanjiang": "yanjiang", "anyue": "anyue", "lezhi": "lezhi", "gaoxin": "yanjiang"}
FLOORS = (10_000,)  # 满100减30: the threshold in fen
CAMPAIGN = """
[campaign]
code = "bench-risk-2022"
name = "风控基准活动"
starts_on = 2022-06-01
ends_on = 2022-12-31
budget = "100000000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "100000000"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "30"
threshold = "100"
validity = { days_after_claim = 30 }
funding = { fiscal = "100%" }
scope = { categories = ["餐饮", "零售"] }

[[schedules]]
code = "daily"
every = "day"
at = 10:00:00
first = 2022-06-15
last = 2022-06-30
window_hours = 12
stock = { "general" = 100000 }
"""


@dataclass
class Person:
    id: str
    device: str
    phone: str
    district: str
    extra_devices: tuple[str, ...] = ()


@dataclass
class Merchant:
    id: str
    jurisdiction: str
    per_day: int
    phone: str | None = None  # the contact phone digest (hashed as residents' phones are)


@dataclass
class Event:
    """One event of the day, in time order: a claim, a redemption or a refund."""

    kind: str
    at: datetime
    person: Person
    voucher_id: str
    merchant: Merchant | None = None
    redemption_id: str = ""
    counted_fen: int = 0
    amount_fen: int = 0
    redeemed_at: datetime | None = None


@dataclass
class World:
    persons: list[Person]
    merchants: list[Merchant]
    history: list[RedemptionFact]  # the week before, in time order
    day: list[Event]  # today's events, in time order
    planted: dict[str, str] = field(default_factory=dict)


def _at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return local_datetime(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute, seconds=second)


def build_world(merchant_count: int, events: int, rng: random.Random) -> World:
    districts = list(JURISDICTIONS.values())
    persons = [
        Person(f"prs_{i:08d}", f"dev-{i:08d}", f"phone-{i:08d}", rng.choice(districts))
        for i in range(max(events, 20_000))
    ]
    for family in range(0, len(persons) // 20, 2):  # families: a shared phone or device now and then
        persons[family + 1].device = persons[family].device
    merchants = [
        Merchant(f"mch_{i:08d}", rng.choice(list(JURISDICTIONS)), per_day=rng.randint(5, 40))
        for i in range(merchant_count)
    ]
    for merchant in merchants[: merchant_count // 10]:
        merchant.phone = f"phone-contact-{merchant.id}"
    counter = iter(range(10**9))

    def fact(merchant: Merchant, person: Person, at: datetime, counted: int | None = None) -> RedemptionFact:
        n = next(counter)
        counted = counted if counted is not None else rng.choice((9_000, 12_000, 15_800, 21_000, 33_300))
        return RedemptionFact(
            redemption_id=f"rdm_{n:010d}",
            campaign_id="bench",
            merchant_id=merchant.id,
            person_id=person.id,
            voucher_id=f"vch_{n:010d}",
            terminal_id="T0000001",
            at=at,
            payable_fen=counted,
            counted_fen=counted,
            floors=FLOORS,
            subsidy_fen=3_000,
            claim_district=person.district if rng.random() < 0.8 else rng.choice(districts),
        )

    history = []
    for back in range(HISTORY_DAYS, 0, -1):
        day = TODAY - timedelta(days=back)
        for merchant in merchants:
            for _ in range(merchant.per_day):
                at = _at(day, rng.randint(9, 20), rng.randint(0, 59), rng.randint(0, 59))
                history.append(fact(merchant, rng.choice(persons), at))
    history.sort(key=lambda item: item.at)

    day: list[Event] = []
    redemptions = int(events * 0.55)
    refunds = int(events * 0.05)
    claims = events - redemptions - refunds
    for _ in range(claims):
        person = rng.choice(persons)
        at = _at(TODAY, rng.randint(10, 21), rng.randint(0, 59), rng.randint(0, 59))
        day.append(Event("claim", at, person, f"vch_c{next(counter):010d}"))
    spent = []
    for _ in range(redemptions):
        merchant = rng.choice(merchants)
        item = fact(merchant, rng.choice(persons), _at(TODAY, rng.randint(9, 20), rng.randint(0, 59)))
        spent.append(item)
    # the frauds
    farm_device = "dev-farm-0001"
    for serial in range(8):  # 设备聚集: eight persons registered on one device, each claiming
        persons[serial].device = farm_device
        day.append(Event("claim", _at(TODAY, 10, serial), persons[serial], f"vch_f{serial:09d}"))
    hugger, splitter, fast, night, ring = merchants[1], merchants[2], merchants[3], merchants[4], merchants[5]
    for minute in range(0, 60, 2):  # 拆单 + 金额贴近门槛: one person, thirty orders just over 满100
        spent.append(fact(splitter, persons[100], _at(TODAY, 12, minute), counted=10_100))
    for serial in range(40):  # 金额贴近门槛
        spent.append(fact(hugger, rng.choice(persons), _at(TODAY, 14, serial), counted=10_050 + serial))
    for second in range(0, 3600, 30):  # 核销频次异常: 120 in one hour
        spent.append(fact(fast, rng.choice(persons), _at(TODAY, 15, 0, 0) + timedelta(seconds=second)))
    for minute in range(10):  # 非营业时间核销
        spent.append(fact(night, rng.choice(persons), _at(TODAY, 23, minute * 5)))
    for serial in range(20):  # 倒卖券: redeemers sharing two devices
        persons[200 + serial].device = f"dev-ring-{serial % 2}"
        spent.append(fact(ring, persons[200 + serial], _at(TODAY, 16, serial)))
    contact = merchants[0]  # 自领自核: the merchant's contact phone holder spends there
    persons[300].phone = contact.phone or ""
    spent.append(fact(contact, persons[300], _at(TODAY, 11, 30)))
    by_person = {person.id: person for person in persons}
    by_merchant = {merchant.id: merchant for merchant in merchants}
    for item in spent:
        day.append(
            Event(
                "redemption",
                item.at,
                by_person[item.person_id],
                item.voucher_id,
                by_merchant[item.merchant_id],
                item.redemption_id,
                item.counted_fen,
                item.payable_fen,
            )
        )
    quick = [event for event in day if event.kind == "redemption" and event.at.hour < 20]
    for event in rng.sample(quick, refunds):
        minutes = 3 if event.merchant is merchants[6] else rng.randint(30, 600)
        day.append(
            Event(
                "refund",
                event.at + timedelta(minutes=minutes),
                event.person,
                event.voucher_id,
                event.merchant,
                event.redemption_id,
                event.counted_fen,
                event.amount_fen // 2,
                redeemed_at=event.at,
            )
        )
    day.sort(key=lambda event: event.at)
    return World(persons, merchants, history, day, planted={"farm_device": farm_device})


# -- 1. the rules alone --------------------------------------------------------------------------------


def _fact_of(event: Event) -> RedemptionFact:
    assert event.merchant is not None
    return RedemptionFact(
        redemption_id=event.redemption_id,
        campaign_id="bench",
        merchant_id=event.merchant.id,
        person_id=event.person.id,
        voucher_id=event.voucher_id,
        terminal_id="T0000001",
        at=event.at,
        payable_fen=event.amount_fen,
        counted_fen=event.counted_fen,
        floors=FLOORS,
        subsidy_fen=3_000,
        claim_district=event.person.district,
    )


def memory_batches(world: World) -> list[tuple[str, EventBatch]]:
    """The batches the scanner would evaluate: claims in batches of 500, then the redemption log (its
    redemptions and refunds) in batches of 500, each with the context the loaders read."""
    merchants = {
        m.id: MerchantFact(
            merchant_id=m.id,
            campaign_id="bench",
            name=m.id,
            jurisdiction=m.jurisdiction,
            district=JURISDICTIONS[m.jurisdiction],
            hours=_hours(),
            contact_phone_digest=m.phone,
        )
        for m in world.merchants
    }
    devices_of: dict[str, set[str]] = defaultdict(set)
    persons_on: dict[str, set[str]] = defaultdict(set)
    phones_of: dict[str, set[str]] = defaultdict(set)
    with_phone: dict[str, set[str]] = defaultdict(set)
    for person in world.persons:
        devices_of[person.id].add(person.device)
        persons_on[person.device].add(person.id)
        phones_of[person.id].add(person.phone)
        with_phone[person.phone].add(person.id)
    settings = {"bench": DEFAULT_SETTINGS}
    batches: list[tuple[str, EventBatch]] = []
    claims = [event for event in world.day if event.kind == "claim"]
    for start in range(0, len(claims), BATCH):
        chunk = claims[start : start + BATCH]
        people = {event.person.id for event in chunk}
        devices = {event.person.device for event in chunk}
        batches.append(
            (
                "claims",
                EventBatch(
                    claims=[
                        ClaimFact(
                            event_id=start + i,
                            campaign_id="bench",
                            voucher_id=event.voucher_id,
                            person_id=event.person.id,
                            resident_id=event.person.id,
                            device=event.person.device,
                            district=event.person.district,
                            at=event.at,
                        )
                        for i, event in enumerate(chunk)
                    ],
                    identities=Identities(
                        devices_of={p: frozenset(devices_of[p]) for p in people},
                        persons_on_device={d: frozenset(persons_on[d]) for d in devices},
                    ),
                    settings=settings,
                ),
            )
        )
    log = [event for event in world.day if event.kind != "claim"]
    history: dict[str, list[RedemptionFact]] = defaultdict(list)
    for item in world.history:
        history[item.merchant_id].append(item)
    refunds_of: dict[str, list[RefundFact]] = defaultdict(list)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in world.history:
        totals[item.merchant_id][0] += 1
    for start in range(0, len(log), BATCH):
        chunk = log[start : start + BATCH]
        redemptions, refunds = [], []
        for event in chunk:
            assert event.merchant is not None
            if event.kind == "redemption":
                item = _fact_of(event)
                history[item.merchant_id].append(item)
                totals[item.merchant_id][0] += 1
                redemptions.append(item)
            else:
                assert event.redeemed_at is not None
                refund = RefundFact(
                    redemption_id=event.redemption_id,
                    campaign_id="bench",
                    merchant_id=event.merchant.id,
                    person_id=event.person.id,
                    amount_fen=event.amount_fen,
                    at=event.at,
                    redeemed_at=event.redeemed_at,
                )
                refunds_of[refund.merchant_id].append(refund)
                totals[refund.merchant_id][1] += 1
                refunds.append(refund)
        touched = {item.merchant_id for item in redemptions} | {item.merchant_id for item in refunds}
        window = {m: sorted(history[m], key=lambda item: item.at) for m in touched}
        people = {item.person_id for items in window.values() for item in items}
        owners = {
            p
            for m in touched
            if merchants[m].contact_phone_digest
            for p in with_phone[merchants[m].contact_phone_digest or ""]
        }
        batches.append(
            (
                "redemption log",
                EventBatch(
                    redemptions=redemptions,
                    refunds=refunds,
                    history=window,
                    refund_history={m: list(refunds_of[m]) for m in {r.merchant_id for r in refunds}},
                    merchants={m: merchants[m] for m in touched},
                    totals={
                        m: MerchantTotals(totals[m][0], totals[m][1])
                        for m in {r.merchant_id for r in refunds}
                    },
                    identities=Identities(
                        devices_of={p: frozenset(devices_of[p]) for p in people | owners},
                        phones_of={p: frozenset(phones_of[p]) for p in people},
                        persons_with_phone={
                            merchants[m].contact_phone_digest or "": frozenset(
                                with_phone[merchants[m].contact_phone_digest or ""]
                            )
                            for m in touched
                            if merchants[m].contact_phone_digest
                        },
                    ),
                    settings=settings,
                ),
            )
        )
    return batches


def _hours() -> Any:
    from huimin.merchants.domain import parse_business_hours

    return parse_business_hours("09:00-21:00")


def _events_in(batch: EventBatch) -> int:
    return len(batch.claims) + len(batch.redemptions) + len(batch.refunds)


def bench_rules(world: World) -> None:
    began = time.perf_counter()
    batches = memory_batches(world)
    print(f"  {len(batches)} batches built in {time.perf_counter() - began:.1f} s (not timed below)")
    # The prebuilt batches (millions of objects) are this bench's heap, not the scanner's, which holds one
    # batch at a time: without this, the collector's full passes over them are timed as the rules' own.
    gc.collect()
    gc.freeze()
    for _, batch in batches[:3]:
        evaluate(batch)  # warm up
    figures: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    findings = 0
    for label, batch in batches:
        started = time.perf_counter()
        found = evaluate(batch)
        figures[label].append(time.perf_counter() - started)
        counts[label] += _events_in(batch)
        findings += len(found)
    total_events = sum(counts.values())
    total_time = sum(sum(values) for values in figures.values())
    for label, values in figures.items():
        per_batch = statistics.fmean(values) * 1e3
        print(
            f"  {label:<15} {counts[label]:>7,} events in {len(values):>3} batches: {per_batch:7.1f} ms a batch, "
            f"{counts[label] / sum(values):>9,.0f} events/s"
        )
    print(
        f"  all rules, one core: {total_events:,} events in {total_time:.2f} s = "
        f"{total_events / total_time:,.0f} events/s ({findings} findings)"
    )


# -- 2. end to end through the database ----------------------------------------------------------------


async def write_world(url: str, world: World, settings: Settings) -> str:
    """The campaign, merchants, residents, a week of redemptions and the day's events, by bulk inserts."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = ManualClock(datetime(2022, 6, 1, tzinfo=UTC))
    sealer = MerchantSealer.from_settings(settings)
    hasher = settings.hasher
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        campaign_id = (await load_campaign(session, text=CAMPAIGN, clock=clock)).campaign_id
    async with engine.begin() as connection:
        from sqlalchemy import text

        batch_id = (
            await connection.execute(
                text("SELECT id FROM batches WHERE campaign_id = :c"), {"c": campaign_id}
            )
        ).scalar_one()
        round_id = (
            await connection.execute(
                text("SELECT id FROM rounds WHERE campaign_id = :c ORDER BY opens_at LIMIT 1"),
                {"c": campaign_id},
            )
        ).scalar_one()
        now = datetime(2022, 6, 1, tzinfo=UTC)

        async def many(table: Any, rows: Sequence[dict[str, Any]]) -> None:
            for start in range(0, len(rows), 5_000):
                await connection.execute(insert(table), list(rows[start : start + 5_000]))

        await many(
            PartnerRow,
            [
                {
                    "id": "ptn_bench",
                    "key_id": "bench",
                    "name": "bench",
                    "kind": "app",
                    "secret_sealed": b"x",
                    "created_at": now,
                }
            ],
        )
        await many(PersonRow, [{"id": p.id, "created_at": now} for p in world.persons])
        residents = []
        for p in world.persons:
            residents.append(
                {
                    "id": "res_" + p.id[4:],
                    "partner_id": "ptn_bench",
                    "app_user_id": p.id,
                    "person_id": p.id,
                    "real_name_verified": True,
                    "id_number_digest": "x",
                    "id_number_masked": "x",
                    "phone_digest": hasher.digest("phone", p.phone),
                    "phone_masked": "138****0000",
                    "device_digest": p.device,
                    "registered_at": now,
                    "updated_at": now,
                }
            )
        await many(ResidentRow, residents)
        await many(
            PersonIdentifierRow,
            [
                {
                    "kind": "phone",
                    "digest": hasher.digest("phone", p.phone),
                    "person_id": p.id,
                    "masked": "138****0000",
                }
                for p in world.persons
            ],
        )
        await many(
            MerchantRow,
            [
                {
                    "id": m.id,
                    "campaign_id": campaign_id,
                    "credit_code": f"92512000{i:010d}",
                    "legal_name": f"资阳基准商户{i}",
                    "jurisdiction": m.jurisdiction,
                    "category": "catering",
                    "merchant_class": "above_quota",
                    "registered_address": "资阳市",
                    "business_hours": "09:00-21:00",
                    "bank_account_sealed": b"x",
                    "contact_phone_sealed": sealer.contact_phone.seal(m.phone) if m.phone else None,
                    "contact_phone_masked": "138****0000",
                    "status": "active",
                    "invited_at": now,
                    "status_changed_at": now,
                    "commitment_sha256": "0" * 64,
                }
                for i, m in enumerate(world.merchants)
            ],
        )
        by_person = {p.id: p for p in world.persons}
        vouchers, redemptions, voucher_events, redemption_events, refunds = [], [], [], [], []
        merchants = {m.id: m for m in world.merchants}

        def voucher(voucher_id: str, person_id: str, at: datetime, status: str) -> None:
            vouchers.append(
                {
                    "id": voucher_id,
                    "code": voucher_id.upper(),
                    "campaign_id": campaign_id,
                    "batch_id": batch_id,
                    "round_id": round_id,
                    "resident_id": "res_" + person_id[4:],
                    "person_id": person_id,
                    "status": status,
                    "value_fen": 3_000,
                    "claimed_at": at - timedelta(hours=1),
                    "valid_until": at + timedelta(days=30),
                    "district": by_person[person_id].district,
                }
            )

        def redemption(item: RedemptionFact, refunded: int = 0) -> None:
            redemptions.append(
                {
                    "id": item.redemption_id,
                    "campaign_id": campaign_id,
                    "voucher_id": item.voucher_id,
                    "batch_id": batch_id,
                    "person_id": item.person_id,
                    "merchant_id": item.merchant_id,
                    "terminal_id": "T0000001",
                    "partner_id": "ptn_bench",
                    "jurisdiction": merchants[item.merchant_id].jurisdiction,
                    "category": "catering",
                    "status": "confirmed",
                    "order_fen": item.payable_fen,
                    "merchant_discount_fen": 0,
                    "voucher_value_fen": 3_000,
                    "subsidy_fen": 3_000,
                    "refunded_fen": refunded,
                    "subsidy_returned_fen": 0,
                    "redeemed_at": item.at,
                    "business_day": item.at.date(),
                }
            )

        for item in world.history:
            voucher(item.voucher_id, item.person_id, item.at, "redeemed")
            redemption(item)
        refunded = {event.redemption_id: event.amount_fen for event in world.day if event.kind == "refund"}
        for event in world.day:
            if event.kind == "claim":
                voucher(event.voucher_id, event.person.id, event.at + timedelta(hours=1), "claimed")
                voucher_events.append(
                    {"voucher_id": event.voucher_id, "kind": "claimed", "value_fen": 3_000, "at": event.at}
                )
            elif event.kind == "redemption":
                voucher(event.voucher_id, event.person.id, event.at, "redeemed")
                redemption(_fact_of(event), refunded.get(event.redemption_id, 0))
                voucher_events.append(
                    {"voucher_id": event.voucher_id, "kind": "redeemed", "value_fen": 3_000, "at": event.at}
                )
            else:
                refunds.append(
                    {
                        "id": "rfd_" + event.redemption_id[4:],
                        "redemption_id": event.redemption_id,
                        "amount_fen": event.amount_fen,
                        "subsidy_returned_fen": 0,
                        "resident_refund_fen": event.amount_fen,
                        "voucher_restored": False,
                        "partner_id": "ptn_bench",
                        "refunded_at": event.at,
                        "business_day": event.at.date(),
                    }
                )
            if event.kind != "claim":
                assert event.merchant is not None
                redemption_events.append(
                    {
                        "kind": "redeemed" if event.kind == "redemption" else "refunded",
                        "campaign_id": campaign_id,
                        "redemption_id": event.redemption_id,
                        "merchant_id": event.merchant.id,
                        "person_id": event.person.id,
                        "amount_fen": event.amount_fen,
                        "subsidy_fen": 3_000 if event.kind == "redemption" else 0,
                        "at": event.at,
                    }
                )
        await many(VoucherRow, vouchers)
        await many(RedemptionRow, redemptions)
        await many(VoucherEventRow, voucher_events)
        await many(RedemptionEventRow, redemption_events)
        await many(RefundRow, refunds)
        if connection.dialect.name == "postgresql":
            for table in (
                "vouchers",
                "redemptions",
                "voucher_events",
                "redemption_events",
                "residents",
                "refunds",
            ):
                await connection.execute(text(f"ANALYZE {table}"))
        else:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()
    print(
        f"  written in {time.perf_counter() - started:.1f} s: {len(world.persons):,} persons, {len(world.merchants):,} "
        f"merchants, {len(world.history):,} redemptions of the week before, {len(world.day):,} events today"
    )
    return campaign_id


async def bench_scan(url: str, world: World, settings: Settings, profile: bool) -> None:
    await write_world(url, world, settings)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    links = MerchantLinks(hasher=settings.hasher, sealer=MerchantSealer.from_settings(settings))
    clock = ManualClock(_at(TODAY + timedelta(days=1), 3, 0))  # the day is settled

    async def reset() -> None:
        async with unit_of_work(sessions) as session:
            await session.execute(update(RiskCursorRow).values(last_id=0, events=0))
            await session.execute(RiskAlertRow.__table__.delete())  # type: ignore[attr-defined]

    runs = []
    for attempt in range(2):
        await reset()
        profiler = cProfile.Profile() if profile and attempt == 1 else None
        started = time.perf_counter()
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        report = await flows.scan(sessions, links=links, clock=clock)
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        runs.append(elapsed)
        print(
            f"  run {attempt + 1}: {report.events:,} events in {report.batches} batches, {elapsed:.2f} s "
            f"({cpu:.2f} s CPU of this process): {report.events / elapsed:,.0f} events/s; "
            f"{report.raised} alerts raised, {report.updated} updated"
        )
        if profiler:
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(25)
    async with unit_of_work(sessions) as session:
        from sqlalchemy import func, select

        rules = dict(
            (await session.execute(select(RiskAlertRow.rule, func.count()).group_by(RiskAlertRow.rule))).all()
        )
    print(f"  alerts by rule: {rules}")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=1_000)
    parser.add_argument(
        "--events", type=int, default=20_000, help="today's events (claims, redemptions, refunds)"
    )
    parser.add_argument("--postgres", action="store_true", help="also end to end on PostgreSQL")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the second end-to-end run")
    arguments = parser.parse_args()
    world = build_world(arguments.merchants, arguments.events, random.Random(SEED))
    print(
        f"synthetic city: {len(world.merchants):,} merchants, {len(world.persons):,} persons, "
        f"{len(world.history):,} redemptions in the {HISTORY_DAYS} days before, {len(world.day):,} events on {TODAY} "
        f"({sum(e.kind == 'claim' for e in world.day):,} claims, {sum(e.kind == 'redemption' for e in world.day):,} "
        f"redemptions, {sum(e.kind == 'refund' for e in world.day):,} refunds)"
    )
    print("1. the rules alone (rules.evaluate, batches of 500, one process):")
    bench_rules(world)
    settings = Settings()
    backends = ([] if arguments.skip_sqlite else ["sqlite"]) + (["postgresql"] if arguments.postgres else [])
    for backend in backends:
        print(f"2. end to end on {backend} (flows.scan: read, load, evaluate, store, batches of 500):")
        with (
            tempfile.TemporaryDirectory() as scratch,
            fresh_database(backend, Path(scratch), prefix="huimin_bench_risk") as url,
        ):
            upgrade(url)
            asyncio.run(bench_scan(url, world, settings, arguments.profile))


if __name__ == "__main__":
    main()
