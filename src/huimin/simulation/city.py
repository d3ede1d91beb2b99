"""The synthetic city behind `huimin demo`: residents of 资阳市 as the payment app knows them.

Everything is drawn from one `random.Random(seed)`, in a fixed order, so one seed gives one city:
the same ID numbers, phones, devices, homes and habits, whatever the machine.

- Homes are spread over the three districts by population (雁江区 about 1.1 million inhabitants, 安岳县
  1.0 million, 乐至县 0.5 million), at GCJ-02 points drawn uniformly inside each district's boundary
  (rejection sampling in its bounding box, accepted only where the geofence itself places the point in
  that district). About one resident in a hundred lives outside the city (around Chengdu) and tries anyway.
- Half the phones report their raw GPS fix (WGS-84), half a map SDK's GCJ-02 position: the WGS-84 point
  is the inverse of the published transform, so the platform's own conversion brings it back home.
- ID numbers are well formed (GB 11643 check digit, the district's region code, a birth date), phones are
  mainland mobiles; both are unique, so every resident is a different natural person.
- Residents live in households; in some households the members share one phone for the app (a device
  shared by a family is not one identity, but the risk rules will want to see it).
- About one in ten is a trade-union member, about one in fifty has not passed real-name verification.
- Habits: how likely someone is to try for vouchers in a given week, which categories they care about,
  and whether they are shopping for a car or home appliances this year (the big-ticket vouchers that
  sell out in minutes).

Probabilities are floats: they are behaviour, never money.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources

from shapely.geometry import shape

from huimin.eligibility.geofence import BOUNDARY_FILE, Crs, Location, default_geofence, wgs84_to_gcj02
from huimin.eligibility.identity import id_check_digit
from huimin.kit.terms import Category, District

__all__ = [
    "CHENGDU",
    "DISTRICT_POPULATION",
    "City",
    "Resident",
    "build_city",
    "gcj02_to_wgs84",
]

DISTRICT_POPULATION: dict[District, int] = {
    District.YANJIANG: 1_100_000,
    District.ANYUE: 1_000_000,
    District.LEZHI: 500_000,
}
"""Inhabitants per district (rounded): the weights by which homes are placed."""

CHENGDU = (104.06, 30.66)
"""GCJ-02 centre of Chengdu, about 60 km west of the city: where the outsiders are."""

OUTSIDE_SHARE = 0.01
UNION_SHARE = 0.10
UNVERIFIED_SHARE = 0.02
WGS84_SHARE = 0.5
SHARED_DEVICE_SHARE = 0.15  # of households with two or more members
CAR_BUYER_SHARE = 0.015
APPLIANCE_BUYER_SHARE = 0.04

# 行政区划代码 of the ID numbers: where a person's number was first issued.
_REGION_CODES = {District.YANJIANG: "512002", District.ANYUE: "512021", District.LEZHI: "512022"}
_OUTSIDE_REGION_CODE = "510104"  # 成都市锦江区
_PHONE_PREFIXES = (
    *("130", "131", "132", "133", "134", "135", "136", "137", "138", "139"),
    *("150", "151", "152", "153", "155", "156", "157", "158", "159"),
    *("177", "180", "181", "182", "183", "185", "186", "187", "188", "189", "199"),
)
_HOUSEHOLD_SIZES = (1, 2, 3, 4)
_HOUSEHOLD_WEIGHTS = (0.25, 0.35, 0.25, 0.15)
_HOUSEHOLD_SPREAD = 0.002  # degrees (~200 m): members of a household claim from around the same place
# Everyday categories and how much a typical resident cares for each, before personal variation.
_EVERYDAY_TASTE = {
    Category.CATERING: 1.0,
    Category.RETAIL: 0.9,
    Category.SERVICES: 0.5,
    Category.LODGING: 0.15,
    Category.WHOLESALE: 0.1,
}
_INVERSE_ITERATIONS = 6
_MAX_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class Resident:
    """One app user and the natural person behind it."""

    serial: int
    app_user_id: str
    id_number: str
    phone: str
    device_id: str
    real_name_verified: bool
    union_member: bool
    home: District | None  # None: lives outside the city
    location: Location  # where the app reports them, in the CRS their phone uses
    propensity: float  # chance of trying for vouchers in a given week
    taste: dict[Category, float]  # how much they want a voucher of each category (0: not at all)
    wants_car: int  # car vouchers they are after this year (0 or 1)
    wants_appliances: int  # appliance vouchers they are after (0, 1 or 2)


@dataclass(frozen=True)
class City:
    seed: int
    residents: tuple[Resident, ...]

    def by_district(self) -> dict[str, int]:
        """Residents per home district code, `outside` for those who live elsewhere."""
        counts = {district.value: 0 for district in District} | {"outside": 0}
        for resident in self.residents:
            counts[resident.home.value if resident.home else "outside"] += 1
        return counts


def gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    """The WGS-84 point that the published transform sends to the GCJ-02 point (lng, lat).

    Fixed-point iteration: the shift varies by millimetres over the few hundred metres it moves a point,
    so each round gains several digits and six leave an error far below a centimetre.
    """
    wgs_lng, wgs_lat = lng, lat
    for _ in range(_INVERSE_ITERATIONS):
        there_lng, there_lat = wgs84_to_gcj02(wgs_lng, wgs_lat)
        wgs_lng, wgs_lat = wgs_lng + (lng - there_lng), wgs_lat + (lat - there_lat)
    return wgs_lng, wgs_lat


class _Sampler:
    """Uniform GCJ-02 points inside a district: draw in the bounding box, keep what the geofence places
    in that district (which also settles the slivers where two surveyed boundaries overlap)."""

    def __init__(self) -> None:
        document = (resources.files("huimin.eligibility") / "data" / BOUNDARY_FILE).read_bytes()
        self.bounds: dict[District, tuple[float, float, float, float]] = {}
        for feature in json.loads(document)["features"]:
            district = District.parse(str(feature["properties"]["district"]))
            self.bounds[district] = shape(feature["geometry"]).bounds
        self.geofence = default_geofence()

    def point_in(self, rng: random.Random, district: District) -> tuple[float, float]:
        min_lng, min_lat, max_lng, max_lat = self.bounds[district]
        for _ in range(_MAX_SAMPLES):
            lng, lat = rng.uniform(min_lng, max_lng), rng.uniform(min_lat, max_lat)
            if self.geofence.district_of(Location(lng, lat, Crs.GCJ02)) is district:
                return lng, lat
        raise RuntimeError(f"no point found inside {district.label} after {_MAX_SAMPLES} draws")

    def near(self, rng: random.Random, district: District, lng: float, lat: float) -> tuple[float, float]:
        """A point around a household's home that is still in the same district."""
        for _ in range(_MAX_SAMPLES):
            here = lng + rng.uniform(-_HOUSEHOLD_SPREAD, _HOUSEHOLD_SPREAD)
            there = lat + rng.uniform(-_HOUSEHOLD_SPREAD, _HOUSEHOLD_SPREAD)
            if self.geofence.district_of(Location(here, there, Crs.GCJ02)) is district:
                return here, there
        return lng, lat


def build_city(*, residents: int, seed: int) -> City:
    """`residents` app users, the same for the same seed."""
    if residents < 1:
        raise ValueError("a city needs at least one resident")
    rng = random.Random(seed)  # noqa: S311 (a reproducible synthetic population, not a secret)
    sampler = _Sampler()
    used_ids: set[str] = set()
    used_phones: set[str] = set()
    people: list[Resident] = []
    for household in _households(rng, residents):
        home = _home_district(rng)
        if home is None:
            base = (CHENGDU[0] + rng.uniform(-0.05, 0.05), CHENGDU[1] + rng.uniform(-0.05, 0.05))
        else:
            base = sampler.point_in(rng, home)
        shared_device = (
            f"dev-{rng.getrandbits(64):016x}"
            if len(household) > 1 and (rng.random() < SHARED_DEVICE_SHARE)
            else None
        )
        for serial in household:
            if home is None:
                lng, lat = base[0] + rng.uniform(-0.01, 0.01), base[1] + rng.uniform(-0.01, 0.01)
            else:
                lng, lat = sampler.near(rng, home, *base)
            people.append(
                _resident(
                    rng,
                    serial=serial,
                    home=home,
                    gcj02=(lng, lat),
                    device_id=shared_device or f"dev-{rng.getrandbits(64):016x}",
                    id_number=_id_number(rng, home, used_ids),
                    phone=_phone(rng, used_phones),
                    sampler=sampler,
                )
            )
    return City(seed=seed, residents=tuple(people))


def _households(rng: random.Random, residents: int) -> Iterator[list[int]]:
    serial = 0
    while serial < residents:
        size = min(rng.choices(_HOUSEHOLD_SIZES, _HOUSEHOLD_WEIGHTS)[0], residents - serial)
        yield list(range(serial, serial + size))
        serial += size


def _home_district(rng: random.Random) -> District | None:
    if rng.random() < OUTSIDE_SHARE:
        return None
    districts = list(DISTRICT_POPULATION)
    return rng.choices(districts, [DISTRICT_POPULATION[district] for district in districts])[0]


def _resident(
    rng: random.Random,
    *,
    serial: int,
    home: District | None,
    gcj02: tuple[float, float],
    device_id: str,
    id_number: str,
    phone: str,
    sampler: _Sampler,
) -> Resident:
    return Resident(
        serial=serial,
        app_user_id=f"app-{serial:07d}",
        id_number=id_number,
        phone=phone,
        device_id=device_id,
        real_name_verified=rng.random() >= UNVERIFIED_SHARE,
        union_member=rng.random() < UNION_SHARE,
        home=home,
        location=_reported(rng, home, gcj02, sampler),
        propensity=rng.uniform(0.05, 0.25),
        taste={category: weight * rng.uniform(0.2, 1.8) for category, weight in _EVERYDAY_TASTE.items()},
        wants_car=1 if rng.random() < CAR_BUYER_SHARE else 0,
        wants_appliances=rng.choice((1, 1, 2)) if rng.random() < APPLIANCE_BUYER_SHARE else 0,
    )


def _reported(
    rng: random.Random, home: District | None, gcj02: tuple[float, float], sampler: _Sampler
) -> Location:
    """The location as the resident's phone reports it. A WGS-84 report must land back in the home
    district once the platform converts it; a point a centimetre from a boundary might not, so such a
    phone reports GCJ-02 instead."""
    gcj = Location(gcj02[0], gcj02[1], Crs.GCJ02)
    if rng.random() >= WGS84_SHARE:
        return gcj
    wgs = Location(*gcj02_to_wgs84(*gcj02), Crs.WGS84)
    return wgs if sampler.geofence.district_of(wgs) is home else gcj


def _id_number(rng: random.Random, home: District | None, used: set[str]) -> str:
    """A new person's ID number: the home's region code, a birth date (aged about 18 to 80 in 2022), a
    sequence number and the check digit; drawn again in the rare case it is taken."""
    region = _REGION_CODES[home] if home else _OUTSIDE_REGION_CODE
    while True:
        born = date(1942, 1, 1) + timedelta(days=rng.randrange(62 * 365))
        body = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
        number = body + id_check_digit(body)
        if number not in used:
            used.add(number)
            return number


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        number = rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
        if number not in used:
            used.add(number)
            return number
