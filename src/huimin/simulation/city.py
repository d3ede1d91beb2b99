"""The synthetic city behind `huimin demo`: residents of 资阳市 as the payment app knows them, and the
shops the commerce bureau invites.

Everything is drawn from `random.Random` streams of the seed, in a fixed order, so one seed gives one
city: the same ID numbers, phones, devices, homes and habits, the same shops, whatever the machine.
Residents and merchants draw from streams of their own, so the number of merchants never changes who
the residents are.

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

Merchants (`Merchant`, `build_merchants`):

- spread over the five jurisdictions that review them: 雁江区 most, then 安岳县 and 乐至县, a few in 高新区
  and 临空经济区 (both inside 雁江区, where their customers live);
- categories weighted like a city's high streets: catering and retail most, then services, lodging and
  wholesale, and a few dozen car dealers and appliance shops (the big-ticket batches' only scope). The
  first merchants cover every category once, so even a tiny city has somewhere to spend every voucher;
- a statistical class fitting the trade, business hours fitting the trade (restaurants close between
  lunch and dinner, hotels never close, night-snack stalls run past midnight), one or two till
  terminals, a well-formed unified social credit code (GB 32100 check character, the jurisdiction's
  region code), a settlement account and a contact;
- about one in twenty has a problem the county will reject the application for (`review_problem`);
  some run promotions of their own that a voucher stacks with (`promotion`); some are busier than
  others (`popularity`).

Probabilities are floats: they are behaviour, never money.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources

from shapely.geometry import shape

from huimin.eligibility.geofence import BOUNDARY_FILE, Crs, Location, default_geofence, wgs84_to_gcj02
from huimin.eligibility.identity import id_check_digit
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.merchants.domain import CREDIT_CODE_ALPHABET, credit_code_check_character, parse_business_hours

__all__ = [
    "CHENGDU",
    "DISTRICT_POPULATION",
    "City",
    "Merchant",
    "Resident",
    "build_city",
    "build_merchants",
    "gcj02_to_wgs84",
    "point_in",
    "recruit",
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


@dataclass(frozen=True, slots=True)
class Merchant:
    """One shop on the commerce bureau's invitation list, with what the operator will complete."""

    serial: int
    credit_code: str
    legal_name: str
    jurisdiction: Jurisdiction
    category: Category
    merchant_class: MerchantClass
    registered_address: str
    business_hours: str
    open_spans: tuple[tuple[int, int], ...]  # minutes of the day; a span may run past midnight
    terminals: tuple[str, ...]
    bank_name: str
    bank_account: str
    contact_name: str
    contact_phone: str
    review_problem: str | None  # why the county rejects the application, None when it approves
    promotion: float  # share of purchases the merchant's own discount applies to (0: none)
    popularity: float  # relative number of customers

    @property
    def district(self) -> District:
        return self.jurisdiction.district


@dataclass(frozen=True)
class City:
    seed: int
    residents: tuple[Resident, ...]
    merchants: tuple[Merchant, ...] = ()

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


def build_city(*, residents: int, seed: int, merchants: int = 0) -> City:
    """`residents` app users and `merchants` invited shops, the same for the same seed."""
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
    return City(seed=seed, residents=tuple(people), merchants=build_merchants(count=merchants, seed=seed))


def recruit(
    rng: random.Random,
    city: City,
    *,
    first_serial: int,
    home: District | None,
    count: int,
    device_id: str | None = None,
    near: tuple[float, float] | None = None,
) -> list[Resident]:
    """`count` more app users after the city's own (serials from `first_serial`): people recruited for
    something other than their own shopping (the demo's planted fraud). They never try for vouchers on
    their own (no propensity, no big-ticket plans), are verified and not union members; their ID numbers
    and phones are new to the city. `device_id` puts them all on one phone; `near` (GCJ-02) places their
    app's reported location around that point instead of anywhere in `home`."""
    sampler = _shared_sampler()
    used_ids = {resident.id_number for resident in city.residents}
    used_phones = {resident.phone for resident in city.residents}
    people = []
    for serial in range(first_serial, first_serial + count):
        if home is None:
            gcj02 = (CHENGDU[0] + rng.uniform(-0.05, 0.05), CHENGDU[1] + rng.uniform(-0.05, 0.05))
        elif near is not None:
            gcj02 = sampler.near(rng, home, *near)
        else:
            gcj02 = sampler.point_in(rng, home)
        people.append(
            Resident(
                serial=serial,
                app_user_id=f"app-{serial:07d}",
                id_number=_id_number(rng, home, used_ids),
                phone=_phone(rng, used_phones),
                device_id=device_id or f"dev-{rng.getrandbits(64):016x}",
                real_name_verified=True,
                union_member=False,
                home=home,
                location=Location(gcj02[0], gcj02[1], Crs.GCJ02),
                propensity=0.0,
                taste={},
                wants_car=0,
                wants_appliances=0,
            )
        )
    return people


def point_in(rng: random.Random, district: District) -> tuple[float, float]:
    """A uniform GCJ-02 point inside `district`, as the geofence places it."""
    return _shared_sampler().point_in(rng, district)


@functools.cache
def _shared_sampler() -> _Sampler:
    return _Sampler()


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


# --- merchants ----------------------------------------------------------------------------------------

_JURISDICTION_WEIGHTS = {
    Jurisdiction.YANJIANG: 0.44,
    Jurisdiction.ANYUE: 0.28,
    Jurisdiction.LEZHI: 0.18,
    Jurisdiction.GAOXIN: 0.06,
    Jurisdiction.LINKONG: 0.04,
}
# 800 merchants: about 320 restaurants, 256 shops, ... 24 car dealers and 40 appliance shops.
_CATEGORY_WEIGHTS = {
    Category.CATERING: 0.40,
    Category.RETAIL: 0.32,
    Category.SERVICES: 0.10,
    Category.LODGING: 0.06,
    Category.WHOLESALE: 0.04,
    Category.CARS: 0.03,
    Category.APPLIANCES: 0.05,
}
_CLASS_WEIGHTS = {
    Category.CATERING: {
        MerchantClass.BELOW_QUOTA_SAMPLED: 0.5,
        MerchantClass.ABOVE_QUOTA: 0.2,
        MerchantClass.COMPLEX_TENANT: 0.2,
        MerchantClass.KEY_CULTIVATION: 0.1,
    },
    Category.RETAIL: {
        MerchantClass.BELOW_QUOTA_SAMPLED: 0.4,
        MerchantClass.ABOVE_QUOTA: 0.3,
        MerchantClass.COMPLEX_TENANT: 0.2,
        MerchantClass.KEY_CULTIVATION: 0.1,
    },
    Category.SERVICES: {
        MerchantClass.ABOVE_SCALE_SERVICES: 0.4,
        MerchantClass.BELOW_QUOTA_SAMPLED: 0.4,
        MerchantClass.COMPLEX_TENANT: 0.2,
    },
    Category.LODGING: {MerchantClass.ABOVE_SCALE_SERVICES: 0.6, MerchantClass.ABOVE_QUOTA: 0.4},
    Category.WHOLESALE: {MerchantClass.ABOVE_QUOTA: 0.7, MerchantClass.KEY_CULTIVATION: 0.3},
    Category.CARS: {MerchantClass.ABOVE_QUOTA: 0.8, MerchantClass.KEY_CULTIVATION: 0.2},
    Category.APPLIANCES: {
        MerchantClass.ABOVE_QUOTA: 0.6,
        MerchantClass.COMPLEX_TENANT: 0.2,
        MerchantClass.BELOW_QUOTA_SAMPLED: 0.2,
    },
}
_HOURS = {
    Category.CATERING: (("10:00-14:00,17:00-22:00", 0.5), ("09:00-21:00", 0.4), ("18:00-02:00", 0.1)),
    Category.RETAIL: (("09:00-21:00", 0.6), ("08:30-22:00", 0.3), ("00:00-24:00", 0.1)),
    Category.SERVICES: (("09:00-20:00", 0.7), ("10:00-22:00", 0.3)),
    Category.LODGING: (("00:00-24:00", 1.0),),
    Category.WHOLESALE: (("08:00-18:00", 1.0),),
    Category.CARS: (("09:00-18:00", 1.0),),
    Category.APPLIANCES: (("09:00-21:00", 1.0),),
}
_TRADE_NAMES = {
    Category.CATERING: ("火锅店", "餐馆", "小吃店", "面馆", "烧烤店", "中餐厅", "川菜馆"),
    Category.RETAIL: ("超市", "便利店", "百货店", "服装店", "鞋店", "书店", "文具店"),
    Category.SERVICES: ("美容美发店", "洗衣店", "摄影工作室", "健身中心", "汽车美容店"),
    Category.LODGING: ("酒店", "宾馆", "商务酒店"),
    Category.WHOLESALE: ("商贸有限公司", "批发部", "农副产品批发部"),
    Category.CARS: ("汽车销售服务有限公司", "汽车贸易有限公司"),
    Category.APPLIANCES: ("家电商场", "电器有限公司", "数码家电城"),
}
_COMPANIES = frozenset({Category.LODGING, Category.WHOLESALE, Category.CARS, Category.APPLIANCES})
_BRANDS = (
    "老码头", "蜀味", "柠都", "安岳", "乐至", "迎春", "金沙", "兴隆", "福满", "好运来", "鑫源", "佳家",
    "德顺", "丰收", "天府", "沱江", "莲花", "九曲河", "宏达", "万家", "永丰", "嘉禾", "龙泉", "红星",
)  # fmt: skip
_STREETS = ("建设路", "和平路", "娇子大道", "人民路", "外北街", "新华路", "南门路", "车城大道", "凤岭路")
_CREDIT_REGION = {  # 行政区划代码 where the company is registered; both zones lie in 雁江区
    Jurisdiction.YANJIANG: "512002",
    Jurisdiction.ANYUE: "512021",
    Jurisdiction.LEZHI: "512022",
    Jurisdiction.GAOXIN: "512002",
    Jurisdiction.LINKONG: "512002",
}
_BANKS = ("中国工商银行资阳分行", "中国农业银行资阳分行", "中国建设银行资阳分行", "四川农信资阳分行")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚"
REVIEW_PROBLEMS = (
    "营业执照已过期",
    "经营范围与申报行业不符",
    "结算账户户名与营业执照不一致",
    "未提供食品经营许可证",
)
REJECTED_SHARE = 0.05
PROMOTING_SHARE = 0.3  # merchants running a promotion of their own (seed 六(十): vouchers stack with it)
TWO_TILLS_SHARE = 0.3


def build_merchants(*, count: int, seed: int) -> tuple[Merchant, ...]:
    """`count` merchants to invite, the same for the same seed (a stream of their own)."""
    rng = random.Random(f"{seed}/merchants")  # noqa: S311 (a reproducible synthetic list, not a secret)
    categories = list(_CATEGORY_WEIGHTS)
    jurisdictions = list(_JURISDICTION_WEIGHTS)
    used: set[str] = set()
    merchants = []
    for serial in range(count):
        # the first ones cover every category, in 雁江区, so even a tiny city can spend every voucher
        if serial < len(categories):
            category, jurisdiction = categories[serial], Jurisdiction.YANJIANG
        else:
            category = rng.choices(categories, list(_CATEGORY_WEIGHTS.values()))[0]
            jurisdiction = rng.choices(jurisdictions, list(_JURISDICTION_WEIGHTS.values()))[0]
        merchants.append(_merchant(rng, serial, category, jurisdiction, used))
    return tuple(merchants)


def _merchant(
    rng: random.Random, serial: int, category: Category, jurisdiction: Jurisdiction, used: set[str]
) -> Merchant:
    classes = _CLASS_WEIGHTS[category]
    hours = _HOURS[category]
    business_hours = rng.choices([text for text, _ in hours], [weight for _, weight in hours])[0]
    company = category in _COMPANIES or rng.random() < 0.3
    place = "资阳市" + (jurisdiction.district.label if jurisdiction.district is not District.YANJIANG else "")
    name = f"{place}{rng.choice(_BRANDS)}{rng.choice(_TRADE_NAMES[category])}"
    if company and not name.endswith("公司"):
        name += "有限公司"
    contact = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))
    tills = 2 if rng.random() < TWO_TILLS_SHARE else 1
    return Merchant(
        serial=serial,
        credit_code=_credit_code(rng, "91" if company else "92", _CREDIT_REGION[jurisdiction], used),
        legal_name=name,
        jurisdiction=jurisdiction,
        category=category,
        merchant_class=rng.choices(list(classes), list(classes.values()))[0],
        registered_address=f"四川省资阳市{jurisdiction.label}{rng.choice(_STREETS)}{rng.randint(1, 399)}号",
        business_hours=business_hours,
        open_spans=parse_business_hours(business_hours).spans,
        terminals=tuple(f"T{serial:06d}{till}" for till in range(1, tills + 1)),
        bank_name=rng.choice(_BANKS),
        bank_account="6222" + "".join(rng.choices("0123456789", k=15)),
        contact_name=contact,
        contact_phone=rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(100_000_000):08d}",
        review_problem=rng.choice(REVIEW_PROBLEMS) if rng.random() < REJECTED_SHARE else None,
        promotion=rng.uniform(0.3, 0.8) if rng.random() < PROMOTING_SHARE else 0.0,
        popularity=rng.lognormvariate(0.0, 0.6),
    )


def _credit_code(rng: random.Random, kind: str, region: str, used: set[str]) -> str:
    """统一社会信用代码: registration authority and kind (91 a company, 92 an individual business), the
    region code, a 9-character organisation code and the GB 32100 check character."""
    while True:
        body = f"{kind}{region}MA" + "".join(rng.choices(CREDIT_CODE_ALPHABET, k=7))
        code = body + credit_code_check_character(body)
        if code not in used:
            used.add(code)
            return code
