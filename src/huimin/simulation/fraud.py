"""Planted fraud for `huimin demo`: every pattern the risk rules look for (docs/risk.md), acted out next to
the ordinary city, so the rules, the cases and the sanctions meet it as they would in a real campaign,
and the demo can say how much of it they found (recall) and how often they pointed at the innocent.

Pure planning, no database: `plant(city, seed=…, sets=…)` returns the city with the people recruited for
the schemes appended after the ordinary residents (so the ordinary residents and their behaviour stay
exactly what the seed makes them) and the merchants' contact phones changed where a scheme needs it, and
the list of `Plant`s. The walk (`simulation.run`) sends each planted claim through the same claim
service as everybody's, at its round's release, and each purchase through the same till service; a
request the services refuse is refused here too (a merchant expelled in the meantime refuses the rest of
its scheme's vouchers).

One *set* plants each pattern once (the device farm twice: a device with many persons, a person on many
devices); each plant is a fresh merchant (for the merchant patterns) with its own crew. The schemes, with
the figures they are sized to cross (the defaults of `RiskSettings`):

| pattern | subject | what the crew does |
|---|---|---|
| `self_claim_self_redeem` | merchant | the merchant's contact phone is the owner's own: the owner claims a voucher and spends it at the shop |
| `threshold_hugging` | merchant | 12 people spend vouchers there on one day, every basket 0–4 % above the threshold |
| `split_orders` | merchant | one person pays with two vouchers a few minutes apart, both baskets just above their thresholds |
| `velocity` | merchant | 22 vouchers are redeemed there within one hour |
| `off_hours` | merchant | 3 vouchers are redeemed there in the small hours, while the shop is closed |
| `refund_soon` | merchant | 4 purchases are refunded in full within minutes |
| `refund_rate` | merchant | 12 people spend 2 vouchers each there over the week; 18 of the 24 purchases are refunded in full 30-90 minutes later, before closing |
| `resale_ring` | merchant | 12 people from another district, sharing phones in pairs, claim vouchers that all end at the shop |
| `device_farm` (device) | device | 6 identities registered on one phone each claim a voucher (sold on: not followed) |
| `device_farm` (person) | person | one person's ID number on 4 app accounts on 4 phones; the last one claims |
| `location_spoofing` | person | someone in Chengdu fakes a Ziyang position (the request's address says Chengdu); someone else claims twice, 50 km apart, four minutes apart |

Everything is drawn from a stream named after the seed, so one seed plants the same schemes. The
crews claim at the surge of a Friday round (rounds 2 to 25, spread over the campaign) and spend in the
following days, during the shop's opening hours unless the scheme is the opposite.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Literal

from huimin.eligibility.geofence import Crs, Location
from huimin.kit.terms import Category, District
from huimin.simulation.city import City, Merchant, Resident, point_in, recruit

__all__ = [
    "PATTERNS",
    "Basket",
    "Claim",
    "Plant",
    "Purchase",
    "distance_km",
    "ip_of",
    "ip_region_table",
    "open_minute",
    "plant",
]

PATTERNS = (
    "self_claim_self_redeem",
    "threshold_hugging",
    "split_orders",
    "velocity",
    "off_hours",
    "refund_soon",
    "refund_rate",
    "resale_ring",
    "device_farm",
    "location_spoofing",
)
"""The risk rules' names (`huimin.risk.domain.Rule`), one pattern each."""

FIRST_ROUND, LAST_ROUND = 2, 25  # the Friday rounds the schemes run in (0 is the first, 2022-06-24)
CHEAP_BATCH = "general-100-30"  # the voucher most schemes use: 满100减30, catering, retail, lodging, services
EVERYDAY = {Category.CATERING, Category.RETAIL, Category.LODGING, Category.SERVICES}
SECOND_BATCH = {Category.CATERING: "dining-60-20"}  # a catering split pays with this and the cheap one
OTHER_SECOND = "general-300-80"  # ... any other everyday shop with this (retail, lodging, services)
# The IP prefixes the demo's address table knows (documentation ranges would do, but a government intranet
# hands out private addresses): each district its own /16, Chengdu another.
IP_PREFIX = {District.YANJIANG: "10.51.", District.ANYUE: "10.52.", District.LEZHI: "10.53."}
CHENGDU_IP_PREFIX = "10.28."

Basket = Literal["hug", "normal"]


@dataclass(frozen=True)
class Purchase:
    """What a crew member does with the voucher a planted claim gets."""

    day: int  # days after the round's Friday
    minute: int  # minute of that local day
    basket: Basket  # "hug": 0-4 % above the threshold; "normal": 1.2-1.7 x
    refund_after_minutes: int | None = None  # a full refund this long after the purchase


@dataclass(frozen=True)
class Claim:
    resident: int  # serial in the city
    batch: str  # batch code
    second: float  # seconds after the release
    location: Location | None = None  # None: where the resident's phone usually is
    purchase: Purchase | None = None


@dataclass(frozen=True)
class Plant:
    pattern: str
    number: int  # the set it belongs to, from 1
    subject: Literal["merchant", "person", "device"]
    round_index: int  # which Friday round (0 = the first)
    claims: tuple[Claim, ...]
    merchant: int | None = (
        None  # serial of the merchant the scheme spends at (and, for merchant subjects, the subject)
    )
    person: int | None = None  # serial of the (first) app account of a person subject
    device: str | None = None  # the device id of a device subject
    registered: tuple[int, ...] = ()  # app accounts the app registers before the round without a claim


def ip_region_table() -> str:
    """The address table the demo's risk engine is given (`huimin risk ip-regions import`'s CSV)."""
    rows = [f"{prefix}0.0/16,{district.label},true" for district, prefix in IP_PREFIX.items()]
    return "\n".join(["network,region,in_city", *rows, f"{CHENGDU_IP_PREFIX}0.0/16,成都市,false"]) + "\n"


def distance_km(one: Location, other: Location) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    lng1, lat1, lng2, lat2 = map(math.radians, (one.lng, one.lat, other.lng, other.lat))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def ip_of(resident: Resident) -> str:
    """The address a resident's requests come from: their district's prefix, Chengdu's for outsiders."""
    prefix = IP_PREFIX[resident.home] if resident.home is not None else CHENGDU_IP_PREFIX
    return f"{prefix}{resident.serial // 250 % 250}.{resident.serial % 250 + 1}"


def open_minute(rng: random.Random, merchant: Merchant, *, span: int = 60) -> int | None:
    """A minute of the day the merchant is open for at least `span` more minutes (not past midnight)."""
    starts = [
        minute
        for opens, closes in merchant.open_spans
        if opens < closes
        for minute in range(opens + 15, closes - span - 15)
    ]
    return rng.choice(starts) if starts else None


def closed_minute(rng: random.Random, merchant: Merchant) -> int | None:
    """A minute of the small hours at which the merchant has been closed for over half an hour and stays
    closed for over half an hour (far outside any grace at opening and closing)."""
    minutes = [minute for minute in range(60, 6 * 60) if _closed(merchant, minute, margin=40)]
    return rng.choice(minutes) if minutes else None


def _open(merchant: Merchant, minute: int) -> bool:
    return not _closed(merchant, minute, margin=0)


def _closed(merchant: Merchant, minute: int, *, margin: int) -> bool:
    for opens, closes in merchant.open_spans:
        pieces = [(opens, closes)] if opens < closes else [(opens, 24 * 60), (0, closes)]
        for start, end in pieces:
            if start - margin <= minute < end + margin:
                return False
    return True


class _Planter:
    """Picks the schemes' merchants (the quieter half of those the county will approve, each once) and
    recruits their crews."""

    def __init__(self, city: City, seed: int) -> None:
        self.city = city
        self.rng = random.Random(f"{seed}/fraud")  # noqa: S311 (reproducible planted fraud, not a secret)
        self.people: list[Resident] = []
        self.next_serial = len(city.residents)
        self.merchants = list(city.merchants)
        self.taken: set[int] = set()
        self.plants: list[Plant] = []
        self.rounds = iter(range(0, 10_000))

    def round_index(self) -> int:
        slot = next(self.rounds)
        return FIRST_ROUND + (slot * 7) % (LAST_ROUND - FIRST_ROUND + 1)

    def crew(self, home: District | None, count: int, *, device_id: str | None = None) -> list[Resident]:
        people = recruit(
            self.rng,
            self._city(),
            first_serial=self.next_serial,
            home=home,
            count=count,
            device_id=device_id,
        )
        self.people += people
        self.next_serial += count
        return people

    def _city(self) -> City:
        return replace(self.city, residents=(*self.city.residents, *self.people))

    def merchant(self, categories: set[Category], *, closes: bool = False) -> Merchant | None:
        """A merchant the county will approve, of one of `categories`, not planted yet."""
        candidates = [
            merchant
            for merchant in self.merchants
            if merchant.serial not in self.taken
            and merchant.review_problem is None
            and merchant.category in categories
            and (not closes or closed_minute(random.Random(0), merchant) is not None)  # noqa: S311
        ]
        if not candidates:
            return None
        # small shops: the quieter half (their own customers would drown a scheme less, as in life)
        candidates.sort(key=lambda merchant: (merchant.popularity, merchant.serial))
        chosen = self.rng.choice(candidates[: max(1, len(candidates) // 2)])
        self.taken.add(chosen.serial)
        return chosen

    def add(self, plant: Plant) -> None:
        self.plants.append(plant)

    # --- the schemes ---------------------------------------------------------------------------------

    def self_claim_self_redeem(self, number: int) -> None:
        shop = self.merchant(EVERYDAY)
        if shop is None:
            return
        owner = self.crew(shop.district, 1)[0]
        self.merchants[self.merchants.index(shop)] = replace(shop, contact_phone=owner.phone)
        minute = open_minute(self.rng, shop) or 12 * 60
        purchase = Purchase(day=1, minute=minute, basket="normal")
        self.add(
            Plant(
                "self_claim_self_redeem",
                number,
                "merchant",
                self.round_index(),
                (Claim(owner.serial, CHEAP_BATCH, self._second(), purchase=purchase),),
                merchant=shop.serial,
            )
        )

    def threshold_hugging(self, number: int) -> None:
        self._many("threshold_hugging", number, count=12, basket="hug", within=None)

    def velocity(self, number: int) -> None:
        self._many("velocity", number, count=22, basket="normal", within=60)

    def _many(self, pattern: str, number: int, *, count: int, basket: Basket, within: int | None) -> None:
        shop = self.merchant(EVERYDAY)
        if shop is None:
            return
        people = self.crew(shop.district, count)
        start = open_minute(self.rng, shop, span=60) or 12 * 60
        if within:  # one clock hour the shop is open all through (the velocity rule counts by local hour)
            hours = [hour for hour in range(24) if all(_open(shop, hour * 60 + m) for m in range(60))]
            start = (self.rng.choice(hours) if hours else 12) * 60 + 2
        claims = []
        for index, person in enumerate(people):
            minute = start + index * 55 // count if within else open_minute(self.rng, shop, span=10) or start
            claims.append(
                Claim(
                    person.serial,
                    CHEAP_BATCH,
                    self._second(),
                    purchase=Purchase(day=1, minute=minute, basket=basket),
                )
            )
        self.add(Plant(pattern, number, "merchant", self.round_index(), tuple(claims), merchant=shop.serial))

    def split_orders(self, number: int) -> None:
        shop = self.merchant(EVERYDAY)
        if shop is None:
            return
        person = self.crew(shop.district, 1)[0]
        minute = open_minute(self.rng, shop, span=30) or 12 * 60
        second_batch = SECOND_BATCH.get(shop.category, OTHER_SECOND)
        claims = (
            Claim(person.serial, CHEAP_BATCH, self._second(), purchase=Purchase(2, minute, "hug")),
            Claim(person.serial, second_batch, self._second(), purchase=Purchase(2, minute + 7, "hug")),
        )
        self.add(Plant("split_orders", number, "merchant", self.round_index(), claims, merchant=shop.serial))

    def off_hours(self, number: int) -> None:
        shop = self.merchant(EVERYDAY, closes=True)
        if shop is None:
            return
        people = self.crew(shop.district, 3)
        claims = tuple(
            Claim(
                person.serial,
                CHEAP_BATCH,
                self._second(),
                purchase=Purchase(day=1, minute=closed_minute(self.rng, shop) or 3 * 60, basket="normal"),
            )
            for person in people
        )
        self.add(Plant("off_hours", number, "merchant", self.round_index(), claims, merchant=shop.serial))

    def refund_soon(self, number: int) -> None:
        shop = self.merchant(EVERYDAY)
        if shop is None:
            return
        people = self.crew(shop.district, 4)
        claims = tuple(
            Claim(
                person.serial,
                CHEAP_BATCH,
                self._second(),
                purchase=Purchase(
                    day=1,
                    minute=open_minute(self.rng, shop, span=20) or 12 * 60,
                    basket="normal",
                    refund_after_minutes=self.rng.randrange(2, 8),
                ),
            )
            for person in people
        )
        self.add(Plant("refund_soon", number, "merchant", self.round_index(), claims, merchant=shop.serial))

    def refund_rate(self, number: int) -> None:
        shop = self.merchant(EVERYDAY - {Category.CATERING})  # both general batches take it
        if shop is None:
            return
        people = self.crew(shop.district, 12)
        claims = []
        refunded = set(self.rng.sample(range(2 * len(people)), 18))  # 18 of 24 purchases
        for index, (person, batch) in enumerate(
            (person, batch) for person in people for batch in (CHEAP_BATCH, OTHER_SECOND)
        ):
            purchase = Purchase(
                day=self.rng.randrange(1, 6),
                minute=open_minute(self.rng, shop, span=100) or 12 * 60,
                basket="normal",
                refund_after_minutes=self.rng.randrange(30, 90) if index in refunded else None,
            )
            claims.append(Claim(person.serial, batch, self._second(), purchase=purchase))
        self.add(
            Plant("refund_rate", number, "merchant", self.round_index(), tuple(claims), merchant=shop.serial)
        )

    def resale_ring(self, number: int) -> None:
        shop = self.merchant(EVERYDAY)
        if shop is None:
            return
        elsewhere = next(district for district in District if district is not shop.district)
        people = []
        for _ in range(6):  # accounts bought up in pairs: two identities on each phone
            device = f"dev-{self.rng.getrandbits(64):016x}"
            people += self.crew(elsewhere, 2, device_id=device)
        claims = tuple(
            Claim(
                person.serial,
                CHEAP_BATCH,
                self._second(),
                purchase=Purchase(
                    day=1 + index % 3, minute=open_minute(self.rng, shop, span=10) or 12 * 60, basket="normal"
                ),
            )
            for index, person in enumerate(people)
        )
        self.add(Plant("resale_ring", number, "merchant", self.round_index(), claims, merchant=shop.serial))

    def device_farm(self, number: int) -> None:
        home = self.rng.choice(list(District))
        device = f"dev-farm-{self.rng.getrandbits(48):012x}"
        people = self.crew(home, 6, device_id=device)
        claims = tuple(Claim(person.serial, CHEAP_BATCH, self._second()) for person in people)
        self.add(Plant("device_farm", number, "device", self.round_index(), claims, device=device))
        # one person on many phones: the same ID number and phone on four app accounts
        first = self.crew(home, 1)[0]
        accounts = [first] + [
            replace(
                first,
                serial=self.next_serial + index,
                app_user_id=f"app-{self.next_serial + index:07d}",
                device_id=f"dev-{self.rng.getrandbits(64):016x}",
            )
            for index in range(3)
        ]
        self.people += accounts[1:]
        self.next_serial += 3
        # every account is registered before the round; the last one claims
        claims = (Claim(accounts[-1].serial, CHEAP_BATCH, self._second()),)
        self.add(
            Plant(
                "device_farm",
                number,
                "person",
                self.round_index(),
                claims,
                person=first.serial,
                registered=tuple(account.serial for account in accounts[:-1]),
            )
        )

    def location_spoofing(self, number: int) -> None:
        # someone in Chengdu whose phone says Ziyang (the request's address does not)
        outsider = self.crew(None, 1)[0]
        district = self.rng.choice(list(District))
        faked = Location(*point_in(self.rng, district), Crs.GCJ02)
        claims: tuple[Claim, ...] = (Claim(outsider.serial, CHEAP_BATCH, self._second(), location=faked),)
        self.add(
            Plant("location_spoofing", number, "person", self.round_index(), claims, person=outsider.serial)
        )
        # someone who claims in 安岳县 and, four minutes later, in 乐至县's far side
        traveller = self.crew(District.ANYUE, 1)[0]
        far = self._far_from(traveller.location, District.YANJIANG, km=40.0)
        first = self._second()
        claims = (
            Claim(traveller.serial, CHEAP_BATCH, first),
            Claim(traveller.serial, "dining-60-20", first + 240.0, location=far),
        )
        self.add(
            Plant("location_spoofing", number, "person", self.round_index(), claims, person=traveller.serial)
        )

    def _far_from(self, here: Location, district: District, *, km: float) -> Location:
        """A point of `district` at least `km` from `here` (both GCJ-02: the shift is the same to a few
        metres over the city, so the distance is the one the rule will measure)."""
        while True:
            there = Location(*point_in(self.rng, district), Crs.GCJ02)
            if distance_km(here, there) >= km:
                return there

    def _second(self) -> float:
        """When a crew member presses 领取: in the surge's first minutes, like everybody."""
        return round(self.rng.uniform(1.0, 300.0), 3)

    def result(self) -> City:
        return replace(
            self.city, residents=(*self.city.residents, *self.people), merchants=tuple(self.merchants)
        )


def plant(city: City, *, seed: int, sets: int) -> tuple[City, tuple[Plant, ...]]:
    """The city with every scheme of `sets` sets planted, and the plants."""
    planter = _Planter(city, seed)
    for number in range(1, sets + 1):
        for pattern in PATTERNS:
            getattr(planter, pattern)(number)
    return planter.result(), tuple(planter.plants)
