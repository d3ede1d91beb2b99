"""`huimin demo`: the Ziyang 2022 campaign, June to December, on a simulated clock, through the services.

A fresh embedded database, the campaign file as the city loaded it, each funder's budget deposited and
approved (`ledger.request_deposit`, `approve_deposit`), an app partner and a till (terminal) partner,
the union's member list and a synthetic city (`simulation.city`); then the clock walks through every
event in time order. The merchants are onboarded in June (`simulation.onboarding`). Every claim is
`claims.service.claim_voucher` in its own transaction (what the claim endpoint runs inside its
idempotency wrapper), every lottery entry `enter_lottery`, every draw `draw_lottery` followed by
`verify_lottery`, every purchase at a till `redemptions.service.redeem`, every invoice check `verify`
by the county reviewer of the merchant's jurisdiction, every refund `refund`, and `expire_and_recycle`
runs at every local midnight. Nothing is written behind the services' backs: a request the API would
refuse is refused here, and counted by its code.

What residents do:

- at a first-come round (Friday 10:00) residents try, with their own weekly propensity, for one or two
  everyday batches they like (category taste); people shopping for a car or appliances go for those
  vouchers at the release, nearly all of them at a batch's first release and about one in three at each
  later one, until they have what they want. Most press 领取 in the first minutes after 10:00 (the
  surge), a few a second too early, the rest during the day;
- at a union lottery (Wednesday 10:00 to Friday 10:00) the operator commits the seed when registration
  opens, members enter during the window, a few non-members try; at the close the draw runs and is
  verified from its revealed seed;
- people learn: after `limit_reached` they stop asking for that batch, and whoever has their car stops
  asking for car vouchers;
- the app registers a user through `register_resident` just before their first request (at the round's
  planning, five minutes before it opens): residents who never try for a voucher never reach the
  platform, so `residents_registered` is below `residents` in a large city;
- whoever gets a voucher (at a claim, or as a lottery winner at the draw) plans what to do with it
  (`simulation.spending`): most spend it within its validity at an active merchant near home, during
  the merchant's hours, on a basket around the threshold; a basket found short (`below_threshold`) is
  topped up and scanned once more; big-ticket purchases carry invoices, which the county checks the next
  working day (a few are rejected and the voucher goes back to its holder); a few purchases come back
  for a refund, in full (the voucher returns when the batch allows, and is planned again) or in part;
  some holders let the voucher lapse, and a few of those try at a till after it expired.

Cost. On SQLite a claim is about 10-15 ms of ORM work and a registration about 9 ms (measured on two
cores), so the walk costs what its requests cost; concurrent waves cost SQLite about 40 % more than the
same requests one by one (writers queue on BEGIN IMMEDIATE and poll), which is the price of a real surge. The demand knobs below (`EVERYDAY_REQUESTS_PER_ROUND`,
`LOTTERY_ENTRIES_PER_ROUND`) scale everyone's propensity down evenly in a large city; they bound the
number of requests, never the rules. A redemption costs about what a claim costs, and nearly every
voucher leads to one (plus an invoice check for big-ticket ones), so the same knobs bound the tills'
work too; onboarding costs about 4 ms per merchant and step. docs/demo.md has the measured timings.

Determinism. The same seed gives the same summary.json. Ids and voucher codes come from `secrets` and
are not in the summary; everything counted is a function of the seed because concurrency is only used
where it cannot change an outcome. Requests run in *waves* of up to `SURGE_CONCURRENCY` concurrent
transactions (`asyncio.gather` under a semaphore: the surge at a release is real concurrency), and a
wave is cut, in the fixed arrival order, so that

1. no person has two requests in one wave (their limits are read by one transaction at a time), and
2. no wave holds more claims on a round's batch than that batch has stock left when the wave starts,
   unless it has none left at all.

Within such a wave every request meets the same database state whatever order the transactions commit
in: nobody can take a voucher somebody else in the wave would have got, so the interleaving cannot
change who succeeds. A batch about to sell out is therefore claimed in short waves in arrival order, and
its last vouchers go to the earliest requests, as a fair queue would give them. The clock stands at the
wave's last arrival while it runs (a wave spans at most `WAVE_SPAN` and never straddles a release, a
close or a draw: those are events of their own).

The tills run one transaction at a time, in the heap's fixed order (never in a wave): a merchant's daily
cap per batch (`per_merchant_daily`) is the one rule where two redemptions of different vouchers meet,
so their order decides, and a serial order is the simplest order that is always the same. Each voucher's
behaviour comes from a random stream named after the voucher's round, holder and batch (one voucher per
person, round and batch in this campaign), so no other event shifts it; order and invoice numbers
count the tills' requests in that same fixed order.

One thing stays random by design: the lottery's seed (`secrets`, committed before registration). The
draw picks the same *number* of winners from the same entries, and while a draw has no more entries
than stock (always, within the entry budget: 5,000 union vouchers a week) everybody who entered wins,
so the summary is still the same. `lotteries_oversubscribed` counts the draws where chance picked.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as day_time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.allocation import service as allocation
from huimin.allocation.domain import Limits as AllocationLimits
from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.campaigns.domain import ClaimMode
from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.claims import flows
from huimin.claims import service as claims
from huimin.claims.lottery import lottery_sealer
from huimin.claims.models import LotteryEntryRow, StockMovementRow, VoucherEventRow, VoucherRow
from huimin.complaints.domain import Category as ComplaintCategory
from huimin.complaints.models import ComplaintRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Geofence, Location, default_geofence
from huimin.eligibility.models import ResidentRow, UnionMemberRow
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import ConfigurationError, HuiminError
from huimin.kit.clock import ManualClock, local_datetime, to_local
from huimin.kit.hashing import mask, normalise_identifier
from huimin.kit.money import Fen
from huimin.kit.sealing import Sealer
from huimin.kit.terms import Category, District
from huimin.ledger import service as ledger
from huimin.ledger.checks import run_checks
from huimin.merchants.models import MerchantRow
from huimin.merchants.service import MerchantSealer
from huimin.migrate import upgrade
from huimin.redemptions import service as redemptions
from huimin.redemptions.domain import HOLDS_VOUCHER, RedemptionStatus
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.reports import exports as report_exports
from huimin.reports import rollup as report_rollup
from huimin.reports import summary as report_summary
from huimin.reports.exports import ExportKind
from huimin.risk.ip_regions import parse_ip_regions
from huimin.risk.models import RiskAlertRow, RiskCaseRow
from huimin.risk.repository import RiskRepository
from huimin.settlement import reconcile as settlement_reconcile
from huimin.settlement import service as settlement
from huimin.settlement.models import SettlementRunRow
from huimin.simulation import backoffice, fraud, spending
from huimin.simulation.backoffice import Hotline, RiskDesk, SettlementDesk, Staff
from huimin.simulation.city import City, Resident, build_city
from huimin.simulation.fraud import Plant, Purchase
from huimin.simulation.onboarding import CITY, FINANCE, STEPS, Onboarding, reviewer
from huimin.simulation.spending import Shop, Shops, Visit

__all__ = [
    "CAMPAIGN_FILE",
    "DATABASE_FILE",
    "FRAUD_SETS",
    "SIGN_INS_FILE",
    "SUMMARY_FILE",
    "campaign_file",
    "run_demo",
]

CAMPAIGN_FILE = "ziyang-2022.toml"
SUMMARY_FILE = "summary.json"
DATABASE_FILE = "huimin-demo.db"

SIGN_INS_FILE = "sign-ins.json"
FRAUD_SETS = 3  # each pattern of the risk rules planted this many times (docs/demo.md)
COMPLAINT_ONE_IN = 120  # purchases after which the resident complains about the merchant
CANNOT_CLAIM_ONE_IN = 60  # sold-out answers after which the resident complains
SETTLE_AT = day_time(9, 30)  # the settlement desk's morning run (T+1), working days
BANK_AT = day_time(15, 0)  # the bank's confirmation file, the same afternoon
RISK_AT = day_time(8, 0)  # the risk desk's morning scan and cases, every day
PLANNER_FROM_ROUND = 3  # with `--allocation planner`: the first Friday round the planner proposes for
OFFER_BOOST = (1.5, 1.25)  # assumed: how much likelier a batch shown first (second) is picked
Allocation = Literal["static", "planner"]

SURGE_CONCURRENCY = 20  # concurrent claim transactions at a release
MAX_WAVE = 200
WAVE_SPAN = timedelta(seconds=2)  # requests further apart than this are not simultaneous
REGISTRATION_CHUNK = 500  # residents registered per transaction (each through register_resident)

# Demand. One claim costs about 15 ms of ORM work on SQLite (the services' real statements), so the walk's
# cost is its number of requests: the knobs below bound it, the rules are never relaxed. Each resident's
# weekly propensity (5-25 %, see `city`) is scaled down evenly when the city would send more everyday
# requests per round than the budget; lottery entries likewise. Big-ticket shoppers are not scaled: they
# are what makes the car and appliance batches sell out at the release.
EVERYDAY_REQUESTS_PER_ROUND = 35  # expected everyday claims per first-come round, at most
LOTTERY_ENTRIES_PER_ROUND = 20  # expected member entries per lottery, at most
LOTTERY_ENTRY_SHARE = 0.6  # members who enter a given week, when the budget allows
NON_MEMBER_ENTRY_SHARE = 0.0005  # non-members who try to enter anyway
LAUNCH_EAGERNESS = 0.9  # big-ticket shoppers who try at a batch's first release (pent-up demand)
BIG_TICKET_EAGERNESS = 0.3  # ... and at each later release, until they have what they want
EARLY_SHARE = 0.01  # requests sent a moment before the release
SURGE_SHARE = 0.75  # everyday claims in the minutes after the release; the rest come during the day
SURGE_MEAN_SECONDS = 120.0
BIG_TICKET_MEAN_SECONDS = 20.0
ENTRY_MEAN_SECONDS = 6 * 3600.0


def campaign_file() -> Path:
    """The Ziyang campaign file in the repository's campaigns/ directory."""
    path = Path(__file__).parents[3] / "campaigns" / CAMPAIGN_FILE
    if not path.is_file():
        raise ConfigurationError(
            f"the demo needs the campaign file {path}: run it from a checkout of the repository "
            "(campaigns/ is not part of the installed package)"
        )
    return path


async def run_demo(
    *,
    residents: int,
    merchants: int,
    seed: int,
    out: Path,
    database_url: str | None = None,
    progress: bool = True,
    fraud_sets: int = FRAUD_SETS,
    allocation: Allocation = "static",
) -> dict[str, Any]:
    """Run the whole campaign on a fresh database and write `out/summary.json`; returns the summary.

    The default database is a new SQLite file `out/huimin-demo.db` (an existing one is replaced); a
    `database_url` must name a migrated-or-empty database without the campaign (it is never deleted).
    With `progress`, rich progress bars show each phase and a final table and the timings are printed;
    timings are never part of the summary, so the same seed writes the same file.
    """
    if residents < 1:
        raise ValueError("the demo needs at least one resident")
    if merchants < 0:
        raise ValueError("the number of merchants cannot be negative")
    if fraud_sets < 0:
        raise ValueError("the number of planted fraud sets cannot be negative")
    source, url = _prepare(out, database_url)
    console = Console(quiet=not progress)
    timings: dict[str, float] = {}
    with _progress(console) as bars:
        with _phase(
            bars, timings, "city", f"synthetic city of {residents:,} residents and {merchants:,} merchants"
        ):
            city, plants = fraud.plant(
                build_city(residents=residents, merchants=merchants, seed=seed), seed=seed, sets=fraud_sets
            )
        with _phase(bars, timings, "database", "database schema"):
            await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        try:
            with _phase(bars, timings, "set-up", "campaign, deposits, partners, union member list"):
                demo = await _Demo.set_up(
                    sessions=create_sessionmaker(engine),
                    settings=Settings(database_url=url),
                    city=city,
                    plants=plants,
                    source=source,
                    seed=seed,
                    ordinary_residents=residents,
                    allocation=allocation,
                )
                await demo.import_union_list()
            with _timed(timings, "campaign"):
                await demo.walk(bars)
            timings["of which registration"] = demo.registration_seconds
            timings["of which onboarding"] = demo.onboarding_seconds
            timings["of which redemptions"] = demo.redemption_seconds
            for kind, seconds in sorted(demo.phase_seconds.items()):
                timings[f"of which {kind}"] = seconds
            with _phase(bars, timings, "reports", "report rollups, the summary report and the XLSX exports"):
                async with unit_of_work(demo.sessions) as session:
                    await report_rollup.rollup(session, clock=demo.clock)
                await demo.write_reports(out)
            with _phase(bars, timings, "summary", "summary and invariants"):
                summary = await demo.summary()
        finally:
            await engine.dispose()
    (out / SUMMARY_FILE).write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    sign_ins = out / SIGN_INS_FILE
    sign_ins.write_text(
        json.dumps(demo.staff.sign_ins(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    sign_ins.chmod(0o600)
    _report(console, summary, timings, out / SUMMARY_FILE)
    _print_sign_ins(console, demo.staff, out)
    return summary


# --- the run ------------------------------------------------------------------------------------------


Kind = Literal["claim", "entry"]


@dataclass(frozen=True)
class _Attempt:
    """One request a resident's app sends."""

    kind: Kind
    resident: int  # serial in the city
    round: RoundRow
    batch: BatchRow
    idempotency_key: str | None = None
    location: Location | None = None  # None: where the resident's phone usually is
    plant: Plant | None = None  # a planted scheme's claim (simulation.fraud)
    purchase: Purchase | None = None  # ... and what its crew member does with the voucher


@dataclass(frozen=True)
class _Held:
    """A voucher a resident holds, as their app shows it, and the random stream of what they do with it."""

    voucher_id: str
    code: str
    resident: int  # serial in the city
    batch: BatchRow
    claimed_at: datetime
    valid_until: datetime
    stream: str


@dataclass(frozen=True)
class _Spend:
    """A purchase at the till with a voucher (or a late try with an expired one)."""

    held: _Held
    visit: Visit
    topped_up: bool = False  # the second scan, after adding to a basket below the threshold
    late: bool = False  # the voucher had expired: the resident tries anyway


@dataclass(frozen=True)
class _AfterSale:
    """What follows a redemption: the county's invoice check, or a refund."""

    redemption_id: str
    payable: int
    spend: _Spend


@dataclass(frozen=True)
class _Complaint:
    """A resident's complaint through the app, and once registered, its id."""

    resident_id: str
    merchant_id: str | None
    what: tuple[ComplaintCategory, str, str]  # category, text, the department's answer
    complaint_id: str = ""


EventKind = Literal[
    "attempt",
    "plan",
    "boundary",
    "draw",
    "midnight",
    "onboard",
    "spend",
    "verify",
    "refund",
    "risk",
    "settle",
    "bank",
    "complain",
    "handle",
    "close",
]
_BACK_OFFICE = frozenset({"risk", "settle", "bank", "complain", "handle", "close"})


@dataclass(frozen=True)
class _Event:
    """Something that happens at an instant: a request, or a job of the campaign's calendar."""

    kind: EventKind
    attempt: _Attempt | None = None
    round: RoundRow | None = None
    step: str = ""  # onboarding
    spend: _Spend | None = None
    after_sale: _AfterSale | None = None
    run_id: str = ""  # a settlement run awaiting the bank
    complaint: _Complaint | None = None


# Same instant: calendar jobs before requests (the release before the first claim at 10:00:00, the draw
# before the claims of the same Friday morning).
_PRIORITY = {
    "midnight": 0,
    "boundary": 0,
    "plan": 0,
    "onboard": 0,
    "draw": 1,
    "attempt": 2,
    "spend": 2,
    "verify": 2,
    "refund": 2,
    "risk": 1,
    "settle": 1,
    "bank": 1,
    "complain": 2,
    "handle": 2,
    "close": 1,
}


@dataclass
class _Tally:
    claim_outcomes: Counter[str] = field(default_factory=Counter)
    entry_outcomes: Counter[str] = field(default_factory=Counter)
    draws: int = 0
    lotteries_verified: int = 0
    lotteries_oversubscribed: int = 0
    sold_out: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # batch -> rounds
    redemption_outcomes: Counter[str] = field(default_factory=Counter)  # every scan at a till
    topped_up: Counter[str] = field(default_factory=Counter)  # outcome of the second scan
    late_tries: Counter[str] = field(default_factory=Counter)  # outcome of the expired vouchers' tries
    verifications: Counter[str] = field(default_factory=Counter)
    refund_outcomes: Counter[str] = field(default_factory=Counter)
    scheme_claims: Counter[str] = field(default_factory=Counter)  # planted schemes: pattern/outcome
    plans_accepted: int = 0  # the planner's proposals accepted (`--allocation planner`)
    plan_refusals: Counter[str] = field(default_factory=Counter)


class _Demo:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        city: City,
        plants: tuple[Plant, ...],
        ordinary_residents: int,
        allocation: Allocation,
        seed: int,
        clock: ManualClock,
        campaign: CampaignRow,
        partner_id: str,
        till_partner_id: str,
        staff: Staff,
    ) -> None:
        self.sessions = sessions
        self.plants = plants
        self.staff = staff
        self.settings = settings
        self.city = city
        self.seed = seed
        self.clock = clock
        self.campaign = campaign
        self.partner_id = partner_id  # the payment app's key
        self.till_partner_id = till_partner_id  # the merchants' till terminals' key (the acquirer)
        self.geofence: Geofence = default_geofence()
        self.sealer: Sealer = lottery_sealer(settings.secret_key.get_secret_value())
        self.resident_ids: dict[int, str] = {}  # serial -> resident id, once registered
        self.serials: dict[str, int] = {}  # resident id -> serial
        self.registration_seconds = 0.0
        self.onboarding_seconds = 0.0
        self.redemption_seconds = 0.0
        self.onboarding = Onboarding(
            sessions=sessions,
            sealer=MerchantSealer.from_settings(settings),
            clock=clock,
            campaign_id=campaign.id,
            merchants=city.merchants,
        )
        self.shops = Shops(())  # the active merchants, once onboarded
        self.terms = {batch.id: batch.terms() for batch in campaign.batches}
        self.tills = itertools.count(1)  # the tills' order and invoice numbers
        self.tally = _Tally()
        self.semaphore = asyncio.Semaphore(SURGE_CONCURRENCY)
        self.events: list[tuple[datetime, int, int, _Event]] = []
        self.sequence = itertools.count()
        self.stock: dict[tuple[str, str], int] = {}  # remaining stock known at the start of a wave
        self.given_up: set[tuple[int, str]] = set()  # (resident, batch id) after limit_reached
        self.got: Counter[tuple[int, str]] = Counter()  # big-ticket vouchers each resident has
        self.released: set[str] = set()  # batches released at least once (first-come)
        # the demand budget (see EVERYDAY_REQUESTS_PER_ROUND): how much of their propensity people use
        expected = sum(resident.propensity for resident in city.residents) * 4 / 3  # 1 or 2 batches
        self.everyday_scale = min(1.0, EVERYDAY_REQUESTS_PER_ROUND / expected)
        members = sum(1 for resident in city.residents if resident.union_member)
        self.entry_share = min(LOTTERY_ENTRY_SHARE, LOTTERY_ENTRIES_PER_ROUND / max(members, 1))
        # the back office (simulation.backoffice) and the planted fraud (simulation.fraud)
        self.fridays = {
            round_.id: index
            for index, round_ in enumerate(
                sorted((r for r in campaign.rounds if not _is_lottery(r)), key=lambda r: r.opens_at)
            )
        }
        self.planted: dict[int, list[tuple[Plant, fraud.Claim]]] = defaultdict(list)
        for plant in plants:
            self.planted[plant.round_index].extend((plant, claim) for claim in plant.claims)
        self.shop_of: dict[int, Shop] = {}  # merchant serial -> the active merchant
        self.settlement = SettlementDesk(sessions, settings, clock, campaign.id, staff)
        self.risk = RiskDesk(sessions, settings, clock, campaign.id, staff, guilty={})
        self.hotline = Hotline(sessions, settings, clock, campaign.id, partner_id, staff)
        self.recovered: int | None = None
        self.ordinary_residents = ordinary_residents  # the city before the planted schemes' recruits
        self.allocation = allocation
        self.phase_seconds: dict[str, float] = {}  # wall clock of the walk's phases (`_timed`)
        self.close_problems: list[str] = []

    @classmethod
    async def set_up(
        cls,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        city: City,
        plants: tuple[Plant, ...],
        source: str,
        seed: int,
        ordinary_residents: int,
        allocation: Allocation,
    ) -> _Demo:
        """Load the campaign and create the payment app's partner key, on 2022-06-01 00:00 local."""
        clock = ManualClock(local_datetime(date(2022, 6, 1), datetime.min.time()))
        async with unit_of_work(sessions) as session:
            loaded = await campaigns.load_campaign(session, text=source, clock=clock)
            if not loaded.created:
                raise ConfigurationError(
                    f"campaign {loaded.code} is already in {_redacted(sessions)}: the demo needs an empty database"
                )
            sealer = partner_sealer(settings.secret_key.get_secret_value())
            partner = await create_partner(
                session, name="惠民 demo payment app", kind=PartnerKind.APP, sealer=sealer, clock=clock
            )
            tills = await create_partner(
                session,
                name="惠民 demo merchant tills (收单机构)",
                kind=PartnerKind.TERMINAL,
                sealer=sealer,
                clock=clock,
            )
            campaign = await campaigns.get_campaign(session, campaign_id=loaded.campaign_id)
            await _deposit_budgets(session, campaign, clock)
            # the operator's offline address table for the location rule (`huimin risk ip-regions import`)
            await RiskRepository(session).replace_ip_regions(
                parse_ip_regions(fraud.ip_region_table()), at=clock.now()
            )
        staff = await Staff.create(sessions, settings, clock)
        return cls(
            sessions=sessions,
            settings=settings,
            city=city,
            plants=plants,
            ordinary_residents=ordinary_residents,
            allocation=allocation,
            seed=seed,
            clock=clock,
            campaign=campaign,
            partner_id=partner.partner.id,
            till_partner_id=tills.partner.id,
            staff=staff,
        )

    # --- registration ---------------------------------------------------------------------------------

    async def import_union_list(self) -> None:
        """The trade union's member list (市总工会), as keyed hashes of the members' ID numbers."""
        now = self.clock.now()
        async with unit_of_work(self.sessions) as session:
            session.add_all(
                UnionMemberRow(
                    id_number_digest=self.settings.hasher.digest(
                        "id_number", normalise_identifier(resident.id_number)
                    ),
                    id_number_masked=mask(resident.id_number),
                    source="demo: 资阳市总工会 member list (synthetic)",
                    imported_at=now,
                )
                for resident in self.city.residents
                if resident.union_member
            )

    async def _register(self, serials: set[int]) -> None:
        """Residents about to use the voucher page for the first time: the app registers them through
        `register_resident` (a chunk per transaction, in serial order). Residents who never try for a
        voucher never reach the platform, as in a real app."""
        new = sorted(serial for serial in serials if serial not in self.resident_ids)
        started = time.perf_counter()
        for start in range(0, len(new), REGISTRATION_CHUNK):
            async with unit_of_work(self.sessions) as session:
                for serial in new[start : start + REGISTRATION_CHUNK]:
                    resident = self.city.residents[serial]
                    registered = await eligibility.register_resident(
                        session,
                        partner_id=self.partner_id,
                        data=ResidentIn(
                            app_user_id=resident.app_user_id,
                            real_name_verified=resident.real_name_verified,
                            id_number=resident.id_number,
                            phone=resident.phone,
                            device_id=resident.device_id,
                        ),
                        hasher=self.settings.hasher,
                        clock=self.clock,
                    )
                    self.resident_ids[serial] = registered.resident.id
                    self.serials[registered.resident.id] = serial
        self.registration_seconds += time.perf_counter() - started

    # --- the walk -------------------------------------------------------------------------------------

    async def walk(self, bars: Progress) -> None:
        """Every event of the campaign in time order; `expire_and_recycle` at every local midnight."""
        for step, at in STEPS:
            self._push(at, _Event("onboard", step=step))
        for round_ in self.campaign.rounds:
            self._push(round_.opens_at - timedelta(minutes=5), _Event("plan", round=round_))
            self._push(round_.opens_at, _Event("boundary"))
            self._push(round_.closes_at, _Event("draw" if _is_lottery(round_) else "boundary", round=round_))
        first_day = to_local(self.clock.now()).date()
        # the calendar runs until the last voucher a claim on the last day could hold has expired, and a
        # week more for the last invoice checks and payouts; then the campaign is closed
        validity = max(
            max(
                batch.validity_days or 0,
                ((batch.validity_until or self.campaign.ends_on) - self.campaign.ends_on).days,
            )
            for batch in self.campaign.batches
        )
        last_day = self.campaign.ends_on + timedelta(days=validity + 8)
        days = (last_day - first_day).days
        first_settlement = min(round_.opens_at for round_ in self.campaign.rounds)
        for offset in range(1, days + 1):
            day = first_day + timedelta(days=offset)
            self._push(local_datetime(day, datetime.min.time()), _Event("midnight"))
            if local_datetime(day, RISK_AT) > first_settlement:
                self._push(local_datetime(day, RISK_AT), _Event("risk"))
                if spending.is_working_day(day):
                    self._push(local_datetime(day, SETTLE_AT), _Event("settle"))
        self._push(local_datetime(last_day, day_time(12)), _Event("close"))
        onboarding = bars.add_task(f"onboarding {len(self.city.merchants):,} merchants", total=len(STEPS))
        task = bars.add_task("campaign 2022-06-01", total=days)
        while self.events:
            at, _, _, event = heapq.heappop(self.events)
            if event.kind == "attempt":
                with _timed(self.phase_seconds, "claims and entries"):
                    await self._wave(at, event)
                continue
            self.clock.set(at)
            if event.kind in ("spend", "verify", "refund"):
                await self._at_the_till(event)
                continue
            if event.kind in _BACK_OFFICE:
                with _timed(self.phase_seconds, event.kind):
                    await self._back_office(event)
                continue
            self.stock.clear()  # calendar jobs move stock; read it again before the next wave
            if event.kind == "onboard":
                await self._onboard(event.step)
                bars.update(onboarding, advance=1)
            elif event.kind == "plan":
                assert event.round is not None  # noqa: S101 (pushed with its round)
                with _timed(self.phase_seconds, "planning (with registration)"):
                    await self._plan(event.round)
            elif event.kind == "draw":
                assert event.round is not None  # noqa: S101
                with _timed(self.phase_seconds, "draws"):
                    await self._draw(event.round)
            elif event.kind == "midnight":
                with _timed(self.phase_seconds, "expiry"):
                    await self._expire()
                redeemed = self.tally.redemption_outcomes["ok"]
                bars.update(
                    task, advance=1, description=f"campaign {to_local(at):%Y-%m-%d}, {redeemed:,} redemptions"
                )

    def _push(self, at: datetime, event: _Event) -> None:
        heapq.heappush(self.events, (at, _PRIORITY[event.kind], next(self.sequence), event))

    async def _plan(self, round_: RoundRow) -> None:
        """Decide who sends what to this round, and when (a random stream of its own per round)."""
        rng = random.Random(f"{self.seed}/{round_.code}")  # noqa: S311 (reproducible behaviour, not a secret)
        if _is_lottery(round_):
            async with unit_of_work(self.sessions) as session:
                # the operator publishes the seed's SHA-256 before the first entry (huimin lottery commit)
                await claims.commit_seed(session, round_id=round_.id, sealer=self.sealer, clock=self.clock)
            planned = [
                entry
                for resident in self.city.residents
                for batch in _released(round_)
                if (entry := self._plan_entry(rng, round_, batch, resident))
            ]
        else:
            planned = await self._plan_claims(rng, round_)
        await self._register({attempt.resident for _, attempt in planned} | self._accounts_of_schemes(round_))
        for at, attempt in planned:
            self._push(at, _Event("attempt", attempt=attempt))

    async def _plan_claims(self, rng: random.Random, round_: RoundRow) -> list[tuple[datetime, _Attempt]]:
        planned = []
        wanting: list[tuple[Resident, int]] = []
        batches = [batch for batch in _released(round_) if not batch.members_only]
        everyday = [batch for batch in batches if not batch.big_ticket]
        eagerness = {
            batch.id: BIG_TICKET_EAGERNESS if batch.id in self.released else LAUNCH_EAGERNESS
            for batch in batches
        }
        self.released.update(batch.id for batch in batches)
        for resident in self.city.residents:
            for batch in batches:
                if (
                    batch.big_ticket
                    and self._shops_for(resident, batch)
                    and rng.random() < eagerness[batch.id]
                ):
                    planned.append(self._plan_claim(rng, round_, batch, resident, BIG_TICKET_MEAN_SECONDS))
            if rng.random() < resident.propensity * self.everyday_scale:
                wanting.append((resident, rng.choice((1, 1, 2))))
        # which everyday batches: by taste, and with the planner (`--allocation planner`) also by the order
        # the app shows them in (personalised offers); each resident's choice from a stream of its own
        boosts = await self._offer_boosts(round_, [resident for resident, _ in wanting])
        for resident, count in wanting:
            own = random.Random(f"{self.seed}/{round_.code}/{resident.serial}/everyday")  # noqa: S311
            liked = [
                (batch, self._likes(resident, batch) * boosts.get((resident.serial, batch.id), 1.0))
                for batch in everyday
            ]
            for batch in _pick(own, liked, count):
                planned.append(self._plan_claim(own, round_, batch, resident, SURGE_MEAN_SECONDS))
        return planned + self._plan_schemes(round_, batches)

    async def _offer_boosts(
        self, round_: RoundRow, residents: list[Resident]
    ) -> dict[tuple[int, str], float]:
        """With the planner: the next round's split proposed by the planner and accepted by the city admin
        (from the round `PLANNER_FROM_ROUND` on, when there are figures to plan from), and the order of
        each resident's offers as the app would show it at the release (`allocation.service.offers_for`):
        a resident is assumed `OFFER_BOOST` times likelier to pick a batch shown first or second than
        their taste alone says. Static allocation: nothing changes."""
        if self.allocation != "planner":
            return {}
        index = self.fridays.get(round_.id, -1)
        if index >= PLANNER_FROM_ROUND:
            async with unit_of_work(self.sessions) as session:
                try:
                    proposal = await allocation.propose(
                        session,
                        principal=self.staff["cityadmin"],
                        campaign_id=self.campaign.id,
                        limits=AllocationLimits(),
                        clock=self.clock,
                        round_id=round_.id,
                    )
                    await allocation.decide(
                        session,
                        principal=self.staff["cityadmin"],
                        plan_id=proposal.id,
                        accept=True,
                        clock=self.clock,
                        note="按测算方案投放",
                    )
                    self.tally.plans_accepted += 1
                except HuiminError as refusal:
                    self.tally.plan_refusals[refusal.code] += 1
        await self._register({resident.serial for resident in residents})
        at_release = ManualClock(round_.opens_at)
        boosts: dict[tuple[int, str], float] = {}
        async with self.sessions() as session:
            for resident in residents:
                offers = await allocation.offers_for(
                    session,
                    partner_id=self.partner_id,
                    resident_id=self.resident_ids[resident.serial],
                    clock=at_release,
                )
                shown = [offer.batch_id for offer in offers if offer.round_id == round_.id]
                for rank, batch_id in enumerate(shown[: len(OFFER_BOOST)]):
                    boosts[(resident.serial, batch_id)] = OFFER_BOOST[rank]
        return boosts

    def _plan_schemes(self, round_: RoundRow, batches: list[BatchRow]) -> list[tuple[datetime, _Attempt]]:
        """The planted schemes' claims of this round (simulation.fraud), at the surge like everybody's."""
        index = self.fridays.get(round_.id, -1)
        by_code = {batch.code: batch for batch in batches}
        planned = []
        for plant, claim in self.planted.get(index, []):
            batch = by_code.get(claim.batch)
            if batch is None:
                continue
            attempt = _Attempt(
                "claim",
                claim.resident,
                round_,
                batch,
                idempotency_key=f"demo-{round_.code}-{claim.resident}-{batch.code}",
                location=claim.location,
                plant=plant,
                purchase=claim.purchase,
            )
            planned.append((round_.opens_at + timedelta(seconds=claim.second), attempt))
        return planned

    def _accounts_of_schemes(self, round_: RoundRow) -> set[int]:
        """App accounts a scheme registers before the round without claiming from them."""
        index = self.fridays.get(round_.id, -1)
        return {serial for plant, _ in self.planted.get(index, []) for serial in plant.registered}

    def _shops_for(self, resident: Resident, batch: BatchRow) -> bool:
        if (resident.serial, batch.id) in self.given_up:
            return False
        wanted = 0
        if Category.CARS in batch.categories:
            wanted = resident.wants_car
        elif Category.APPLIANCES in batch.categories:
            wanted = resident.wants_appliances
        return self.got[(resident.serial, batch.id)] < wanted

    def _likes(self, resident: Resident, batch: BatchRow) -> float:
        if (resident.serial, batch.id) in self.given_up:
            return 0.0
        return max((resident.taste.get(Category(code), 0.0) for code in batch.categories), default=0.0)

    def _plan_claim(
        self, rng: random.Random, round_: RoundRow, batch: BatchRow, resident: Resident, mean: float
    ) -> tuple[datetime, _Attempt]:
        window = (round_.closes_at - round_.opens_at).total_seconds() - 1.0
        draw = rng.random()
        if draw < EARLY_SHARE:
            seconds = -rng.uniform(0.5, 5.0)
        elif mean == BIG_TICKET_MEAN_SECONDS or draw < SURGE_SHARE:
            seconds = min(rng.expovariate(1.0 / mean), window)
        else:
            seconds = rng.uniform(0.0, window)
        at = round_.opens_at + timedelta(seconds=round(seconds, 3))
        key = f"demo-{round_.code}-{resident.serial}-{batch.code}"
        return at, _Attempt("claim", resident.serial, round_, batch, idempotency_key=key)

    def _plan_entry(
        self, rng: random.Random, round_: RoundRow, batch: BatchRow, resident: Resident
    ) -> tuple[datetime, _Attempt] | None:
        share = self.entry_share if resident.union_member else NON_MEMBER_ENTRY_SHARE
        if (resident.serial, batch.id) in self.given_up or rng.random() >= share:
            return None
        window = (round_.closes_at - round_.opens_at).total_seconds() - 60.0
        seconds = min(rng.expovariate(1.0 / ENTRY_MEAN_SECONDS), window)
        at = round_.opens_at + timedelta(seconds=round(seconds, 3))
        return at, _Attempt("entry", resident.serial, round_, batch)

    async def _wave(self, at: datetime, first: _Event) -> None:
        """`first` and the requests right after it that cannot influence each other (see the module's
        docstring), run concurrently; outcomes are recorded in arrival order."""
        assert first.attempt is not None  # noqa: S101 (attempt events carry their attempt)
        wave = [first.attempt]
        people = {first.attempt.resident}
        claims_on: Counter[tuple[str, str]] = Counter()
        await self._count_claim(first.attempt, claims_on)
        last = at
        while self.events and len(wave) < MAX_WAVE:
            next_at, _, _, event = self.events[0]
            attempt = event.attempt
            if attempt is None or next_at - at > WAVE_SPAN or attempt.resident in people:
                break
            if attempt.kind == "claim":
                key = (attempt.round.id, attempt.batch.id)
                left = await self._remaining(key)
                if left and claims_on[key] >= left:
                    break
                claims_on[key] += 1
            heapq.heappop(self.events)
            wave.append(attempt)
            people.add(attempt.resident)
            last = next_at
        self.clock.set(last)
        outcomes = await asyncio.gather(*(self._send(attempt) for attempt in wave))
        for attempt, (outcome, voucher) in zip(wave, outcomes, strict=True):
            self._record(attempt, outcome, voucher)

    async def _count_claim(self, attempt: _Attempt, claims_on: Counter[tuple[str, str]]) -> None:
        if attempt.kind == "claim":
            key = (attempt.round.id, attempt.batch.id)
            await self._remaining(key)
            claims_on[key] += 1

    async def _remaining(self, key: tuple[str, str]) -> int:
        if key not in self.stock:
            async with self.sessions() as session:
                left = await session.scalar(
                    select(func.coalesce(func.sum(StockShardRow.remaining), 0)).where(
                        StockShardRow.round_id == key[0], StockShardRow.batch_id == key[1]
                    )
                )
            self.stock[key] = int(left or 0)
        return self.stock[key]

    async def _send(self, attempt: _Attempt) -> tuple[str, _Held | None]:
        """The request as the payment app sends it; its outcome is "ok" or the refusal's code, with the
        voucher a claim got."""
        resident = self.city.residents[attempt.resident]
        resident_id = self.resident_ids[attempt.resident]
        async with self.semaphore:
            try:
                if attempt.kind == "entry":
                    async with unit_of_work(self.sessions) as session:
                        await claims.enter_lottery(
                            session,
                            partner_id=self.partner_id,
                            resident_id=resident_id,
                            round_id=attempt.round.id,
                            batch_id=attempt.batch.id,
                            location=attempt.location or resident.location,
                            geofence=self.geofence,
                            sealer=self.sealer,
                            clock=self.clock,
                        )
                    return "ok", None
                voucher = await self._claim(attempt, resident, resident_id)
            except HuiminError as refusal:
                return refusal.code, None
        return "ok", voucher

    async def _claim(self, attempt: _Attempt, resident: Resident, resident_id: str) -> _Held:
        """POST /api/v1/rounds/{round}/claims without HTTP: the service the endpoint calls, in one
        transaction, with the request's Idempotency-Key stored on the voucher."""
        async with unit_of_work(self.sessions) as session:
            claimed = await claims.claim_voucher(
                session,
                partner_id=self.partner_id,
                resident_id=resident_id,
                round_id=attempt.round.id,
                batch_id=attempt.batch.id,
                location=attempt.location or resident.location,
                geofence=self.geofence,
                clock=self.clock,
                idempotency_key=attempt.idempotency_key,
                client_ip=fraud.ip_of(resident),
            )
            voucher = claimed.voucher
            return self._held(voucher, attempt.round, attempt.resident, attempt.batch)

    def _held(self, voucher: VoucherRow, round_: RoundRow, serial: int, batch: BatchRow) -> _Held:
        """A claimed voucher in its holder's hands; what they do with it is drawn from a stream of its
        own (one voucher per person, round and batch), so no other event changes it."""
        return _Held(
            voucher_id=voucher.id,
            code=voucher.code,
            resident=serial,
            batch=batch,
            claimed_at=voucher.claimed_at,
            valid_until=voucher.valid_until,
            stream=f"{self.seed}/spend/{round_.code}/{serial}/{batch.code}",
        )

    def _record(self, attempt: _Attempt, outcome: str, voucher: _Held | None) -> None:
        serial, batch = attempt.resident, attempt.batch
        if attempt.kind == "entry":
            self.tally.entry_outcomes[outcome] += 1
            if outcome in ("limit_reached", "not_union_member"):
                self.given_up.add((serial, batch.id))
            return
        self.tally.claim_outcomes[outcome] += 1
        if attempt.plant is not None:
            self.tally.scheme_claims[f"{attempt.plant.pattern}/{outcome}"] += 1
        if outcome == "ok":
            self.got[(serial, batch.id)] += 1
            self.stock[(attempt.round.id, batch.id)] -= 1
            if voucher is not None and attempt.plant is not None:
                self._plan_scheme_purchase(voucher, attempt)
            elif voucher is not None:
                self._plan_spending(voucher, after=voucher.claimed_at)
        elif outcome == "limit_reached":
            self.given_up.add((serial, batch.id))
        elif outcome == "sold_out":
            self.tally.sold_out[batch.code].add(attempt.round.code)
            rng = random.Random(f"{self.seed}/cannot-claim/{attempt.round.code}/{serial}/{batch.code}")  # noqa: S311
            if rng.randrange(CANNOT_CLAIM_ONE_IN) == 0 and serial in self.resident_ids:
                complaint = _Complaint(self.resident_ids[serial], None, backoffice.CANNOT_CLAIM)
                at = self.clock.now() + timedelta(minutes=rng.randrange(30, 360))
                self._push(at, _Event("complain", complaint=complaint))

    def _plan_scheme_purchase(self, held: _Held, attempt: _Attempt) -> None:
        """A crew member spends a scheme's voucher as the scheme says: where, when, what basket."""
        purchase, plant = attempt.purchase, attempt.plant
        if purchase is None or plant is None or plant.merchant is None:
            return
        shop = self.shop_of.get(plant.merchant)
        if shop is None:
            return
        rng = random.Random(f"{held.stream}/scheme")  # noqa: S311 (reproducible behaviour)
        day = to_local(attempt.round.opens_at).date() + timedelta(days=purchase.day)
        minute = purchase.minute % (24 * 60)
        at = local_datetime(day, day_time(minute // 60, minute % 60, rng.randrange(60)))
        if not held.claimed_at < at < held.valid_until:
            return
        threshold = int(self.terms[held.batch.id].threshold)
        factor = rng.uniform(1.0, 1.04) if purchase.basket == "hug" else rng.uniform(1.2, 1.7)
        order = max(threshold, round(threshold * factor / 10) * 10)
        visit = spending.Visit(
            at=at,
            shop=shop,
            terminal=shop.merchant.terminals[0],
            category=shop.merchant.category,
            order=Fen(order),
            discount=Fen(0),
            refund_at=None
            if purchase.refund_after_minutes is None
            else at + timedelta(minutes=purchase.refund_after_minutes, seconds=rng.randrange(60)),
        )
        self._push(at, _Event("spend", spend=_Spend(held, visit)))

    async def _draw(self, round_: RoundRow) -> None:
        async with unit_of_work(self.sessions) as session:
            report = await flows.draw_lottery(
                session, round_id=round_.id, sealer=self.sealer, clock=self.clock
            )
            released = await session.scalar(
                select(func.sum(RoundBatchRow.stock + RoundBatchRow.recycled_in)).where(
                    RoundBatchRow.round_id == round_.id
                )
            )
        async with unit_of_work(self.sessions) as session:
            verified = await flows.verify_lottery(session, round_id=round_.id)
        self.tally.draws += 1
        self.tally.lotteries_verified += verified.matches
        self.tally.lotteries_oversubscribed += report.entries > int(released or 0)
        async with self.sessions() as session:
            won = (await session.scalars(select(VoucherRow).where(VoucherRow.round_id == round_.id))).all()
        batches = {batch.id: batch for batch in self.campaign.batches}
        for voucher in sorted(
            won, key=lambda row: (self.serials[row.resident_id], batches[row.batch_id].position)
        ):
            held = self._held(voucher, round_, self.serials[voucher.resident_id], batches[voucher.batch_id])
            self._plan_spending(held, after=voucher.claimed_at)

    async def _expire(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await flows.expire_and_recycle(session, clock=self.clock)

    # --- merchants and the tills -----------------------------------------------------------------------

    async def _onboard(self, step: str) -> None:
        """One onboarding step for every merchant; after the commitments, the active merchants are on the
        residents' map (`GET /api/v1/merchants`: the database says who is active)."""
        started = time.perf_counter()
        await self.onboarding.step(step)
        if step == STEPS[-1][0]:
            by_code = {merchant.credit_code: merchant for merchant in self.city.merchants}
            async with self.sessions() as session:
                active = await session.execute(
                    select(MerchantRow.id, MerchantRow.credit_code).where(
                        MerchantRow.campaign_id == self.campaign.id, MerchantRow.status == "active"
                    )
                )
                shops = [Shop(by_code[code], merchant_id) for merchant_id, code in active]
                self.shops = Shops(shops)
                self.shop_of = {shop.merchant.serial: shop for shop in shops}
        self.onboarding_seconds += time.perf_counter() - started

    def _plan_spending(self, held: _Held, *, after: datetime) -> None:
        """Whether, where and when the holder spends the voucher (see `simulation.spending`); a holder who
        lets it lapse sometimes tries at a till after it expired."""
        rng = random.Random(held.stream)  # noqa: S311 (reproducible behaviour, not a secret)
        resident = self.city.residents[held.resident]
        terms = self.terms[held.batch.id]
        category = spending.choose_category(rng, resident, terms.scope, self.shops)
        if category is None:
            return
        if rng.random() < spending.SPEND_PROPENSITY[category]:
            visit = spending.plan_visit(
                rng,
                resident=resident,
                batch=terms,
                category=category,
                shops=self.shops,
                after=after + timedelta(minutes=10),
                before=held.valid_until,
                mean_days=None if terms.big_ticket else spending.EVERYDAY_MEAN_DAYS,
            )
            if visit is not None:
                self._push(visit.at, _Event("spend", spend=_Spend(held, visit)))
            return
        if rng.random() < spending.EXPIRED_TRY_SHARE:
            visit = spending.plan_visit(
                rng,
                resident=resident,
                batch=terms,
                category=category,
                shops=self.shops,
                after=held.valid_until + timedelta(hours=1),
                before=held.valid_until + timedelta(days=4),
                mean_days=None,
            )
            if visit is not None:
                self._push(visit.at, _Event("spend", spend=_Spend(held, visit, late=True)))

    async def _at_the_till(self, event: _Event) -> None:
        """One redemption, verification or refund, each in its own transaction, one at a time: the
        per-merchant daily caps make the order of redemptions matter, and the heap's order is fixed."""
        started = time.perf_counter()
        if event.spend is not None:
            await self._redeem(event.spend)
        elif event.after_sale is not None and event.kind == "verify":
            await self._verify(event.after_sale)
        elif event.after_sale is not None:
            await self._refund(event.after_sale)
        self.redemption_seconds += time.perf_counter() - started

    async def _redeem(self, spend: _Spend) -> None:
        """POST /api/v1/redemptions without HTTP: the till's request, signed by the terminal partner."""
        held, visit = spend.held, spend.visit
        number = next(self.tills)
        local = to_local(self.clock.now())
        payable = Fen(visit.order - visit.discount)
        invoice = (
            redemptions.Invoice(
                sales_invoice_no=f"{local:%y}{number:08d}",
                sales_invoice_fen=payable,
                tax_invoice_no=f"51{local:%y}{number:010d}",
            )
            if held.batch.big_ticket
            else None
        )
        request = redemptions.RedemptionRequest(
            voucher_code=held.code,
            merchant_id=visit.shop.merchant_id,
            terminal_id=visit.terminal,
            order_amount=visit.order,
            merchant_discount=visit.discount,
            category=visit.category,
            invoice=invoice,
            order_ref=f"{visit.terminal}-{local:%Y%m%d}-{number:06d}",
        )
        redemption_id = ""
        try:
            async with unit_of_work(self.sessions) as session:
                redeemed = await redemptions.redeem(
                    session,
                    partner_id=self.till_partner_id,
                    request=request,
                    clock=self.clock,
                    idempotency_key=f"demo-redeem-{number}",
                )
                redemption_id = redeemed.redemption.id
            outcome = "ok"
        except HuiminError as refusal:
            outcome = refusal.code
        self.tally.redemption_outcomes[outcome] += 1
        if spend.late:
            self.tally.late_tries[outcome] += 1
            return
        if spend.topped_up:
            self.tally.topped_up[outcome] += 1
        if outcome == "below_threshold" and not spend.topped_up:
            # the cashier says it is short; the resident adds something and the cashier scans again
            rng = random.Random(f"{held.stream}/top-up")  # noqa: S311 (reproducible behaviour)
            order = spending.top_up(
                rng, self.terms[held.batch.id], order=visit.order, discount=visit.discount
            )
            again = _Spend(held, replace(visit, order=order), topped_up=True)
            self._push(
                self.clock.now()
                + timedelta(seconds=rng.randrange(30, spending.LAST_ORDERS_MINUTES * 60 - 60)),
                _Event("spend", spend=again),
            )
        elif outcome == "ok":
            after_sale = _AfterSale(redemption_id, int(payable), spend)
            if visit.verify_at is not None:
                self._push(visit.verify_at, _Event("verify", after_sale=after_sale))
            elif visit.refund_at is not None:
                self._push(visit.refund_at, _Event("refund", after_sale=after_sale))
            rng = random.Random(f"{held.stream}/complaint")  # noqa: S311 (reproducible behaviour)
            if rng.randrange(COMPLAINT_ONE_IN) == 0:
                complaint = _Complaint(
                    self.resident_ids[held.resident],
                    visit.shop.merchant_id,
                    rng.choice(backoffice.COMPLAINTS),
                )
                at = self.clock.now() + timedelta(minutes=rng.randrange(60, 48 * 60))
                self._push(at, _Event("complain", complaint=complaint))

    async def _verify(self, after_sale: _AfterSale) -> None:
        """The county commerce department of the merchant's jurisdiction checks the invoices (seed 六(八))."""
        approve = not after_sale.spend.visit.invoice_rejected
        try:
            async with unit_of_work(self.sessions) as session:
                await redemptions.verify(
                    session,
                    principal=reviewer(after_sale.spend.visit.shop.merchant.jurisdiction),
                    redemption_id=after_sale.redemption_id,
                    approve=approve,
                    note="发票真实有效，核验通过" if approve else "销售发票与税务发票信息不一致",
                    clock=self.clock,
                )
            outcome = "verified" if approve else "rejected"
        except HuiminError as refusal:
            outcome = refusal.code
        self.tally.verifications[outcome] += 1

    async def _refund(self, after_sale: _AfterSale) -> None:
        """The purchase comes back: all of it, or part of it (rounded to the yuan). A full refund within the
        voucher's validity gives the voucher back, and its holder plans to spend it again."""
        share = after_sale.spend.visit.refund_share
        payable = after_sale.payable
        amount = payable
        if share is not None and payable > 200:
            amount = min(payable - 100, max(100, round(payable * share / 100) * 100))
        restored = False
        try:
            async with unit_of_work(self.sessions) as session:
                refunded = await redemptions.refund(
                    session,
                    partner_id=self.till_partner_id,
                    redemption_id=after_sale.redemption_id,
                    amount=Fen(amount),
                    clock=self.clock,
                    idempotency_key=f"demo-refund-{after_sale.redemption_id}",
                )
                restored = refunded.refund.voucher_restored
            outcome = "full" if amount == payable else "partial"
        except HuiminError as refusal:
            outcome = refusal.code
        self.tally.refund_outcomes[outcome] += 1
        if restored:
            held = after_sale.spend.held
            self._plan_spending(replace(held, stream=f"{held.stream}/again"), after=self.clock.now())

    # --- the back office --------------------------------------------------------------------------------

    async def _back_office(self, event: _Event) -> None:
        if event.kind == "risk":
            self.risk.guilty = await self.guilty()
            await self.risk.morning()
        elif event.kind == "settle":
            run_id = await self.settlement.prepare_and_approve()
            if run_id is not None:
                self._push(
                    local_datetime(to_local(self.clock.now()).date(), BANK_AT), _Event("bank", run_id=run_id)
                )
        elif event.kind == "bank":
            await self.settlement.bank_answers(event.run_id)
        elif event.kind == "complain" and event.complaint is not None:
            complaint = event.complaint
            complaint_id = await self.hotline.register(
                resident_id=complaint.resident_id, complaint=complaint.what, merchant_id=complaint.merchant_id
            )
            if complaint_id is not None:
                rng = random.Random(f"{self.seed}/complaint/{complaint_id[-6:]}")  # noqa: S311
                day = spending.next_working_day(to_local(self.clock.now()).date())
                at = local_datetime(day, day_time(9)) + timedelta(minutes=rng.randrange(8 * 60))
                self._push(at, _Event("handle", complaint=replace(complaint, complaint_id=complaint_id)))
        elif event.kind == "handle" and event.complaint is not None:
            await self.hotline.handle(event.complaint.complaint_id, event.complaint.what[2])
        elif event.kind == "close":
            await self._close()

    async def _close(self) -> None:
        """The campaign's close (seed 五(四)): once every voucher has expired or been spent and the last
        payouts are confirmed, the operator requests the recovery and finance approves it. A blocker (a
        payout the bank refused on the last run) is settled on the next working day, and tried again."""
        day = to_local(self.clock.now()).date()
        for _ in range(10):
            try:
                self.recovered = await self.settlement.recover()
                self.close_problems = []
                return
            except HuiminError as refusal:
                self.close_problems = [str(refusal)]
            day = spending.next_working_day(day)
            self.clock.set(local_datetime(day, SETTLE_AT))
            run_id = await self.settlement.prepare_and_approve()
            if run_id is not None:
                self.clock.set(local_datetime(day, BANK_AT))
                await self.settlement.bank_answers(run_id)

    async def guilty(self) -> dict[tuple[str, str], str]:
        """Who the planted schemes are, as the risk alerts name them: merchant ids, person ids, device
        digests (the investigators' ground truth)."""
        guilty: dict[tuple[str, str], str] = {}
        persons = {
            self.resident_ids[plant.person]
            for plant in self.plants
            if plant.person is not None and plant.person in self.resident_ids
        }
        person_of: dict[str, str] = {}
        if persons:
            async with self.sessions() as session:
                rows = await session.execute(
                    select(ResidentRow.id, ResidentRow.person_id).where(ResidentRow.id.in_(persons))
                )
                person_of = {resident_id: person_id for resident_id, person_id in rows}
        for plant in self.plants:
            if plant.subject == "merchant" and plant.merchant in self.shop_of:
                guilty[("merchant", self.shop_of[plant.merchant].merchant_id)] = plant.pattern
            elif plant.subject == "person" and plant.person in self.resident_ids:
                person = person_of.get(self.resident_ids[plant.person])
                if person is not None:
                    guilty[("person", person)] = plant.pattern
            elif plant.subject == "device" and plant.device is not None:
                guilty[("device", self.settings.hasher.digest("device", plant.device))] = plant.pattern
        return guilty

    async def write_reports(self, out: Path) -> None:
        """What the city gets at the end: the summary report (HTML and PDF) and every XLSX export."""
        reports = out / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        async with unit_of_work(self.sessions) as session:
            stem, html, pdf = await report_summary.render(
                session, campaign_id=self.campaign.id, clock=self.clock
            )
            (reports / f"{stem}.html").write_text(html, encoding="utf-8")
            (reports / f"{stem}.pdf").write_bytes(pdf)
            for kind in ExportKind:
                made = await report_exports.export(
                    session,
                    principal=self.staff["finance"],
                    campaign_id=self.campaign.id,
                    kind=kind,
                    clock=self.clock,
                )
                (reports / made.file_name).write_bytes(made.content)

    # --- the summary ----------------------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        async with self.sessions() as session:
            facts = await _Facts.read(session, self.campaign)
            sales = await _Sales.read(session, self.campaign)
            ledger_report = await run_checks(session, self.campaign)
        ledger_checks = {f"{result.invariant} {result.name}": result.ok for result in ledger_report.results}
        tally = self.tally
        rounds = self.campaign.rounds
        lottery_rounds = sum(1 for round_ in rounds if _is_lottery(round_))
        back_office = await _back_office_summary(self)
        async with self.sessions() as session:
            holders = await session.scalar(select(func.count(func.distinct(VoucherRow.person_id))))
            spenders = await session.scalar(
                select(func.count(func.distinct(VoucherRow.person_id))).where(
                    VoucherRow.id.in_(
                        select(RedemptionRow.voucher_id).where(
                            RedemptionRow.status.in_(
                                [
                                    status.value
                                    for status in HOLDS_VOUCHER
                                    if status is not RedemptionStatus.CLAWED_BACK
                                ]
                            )
                        )
                    )
                )
            )
        summary: dict[str, Any] = back_office
        summary.update(
            {
                "seed": self.seed,
                "campaign": self.campaign.code,
                "residents": self.ordinary_residents,
                "fraud_recruits": len(self.city.residents) - self.ordinary_residents,
                "residents_registered": len(self.resident_ids),
                "residents_by_district": replace(
                    self.city, residents=self.city.residents[: self.ordinary_residents]
                ).by_district(),
                "union_members": sum(1 for resident in self.city.residents if resident.union_member),
                "rounds": len(rounds),
                "lottery_rounds": lottery_rounds,
                "lotteries_drawn": tally.draws,
                "lotteries_verified": tally.lotteries_verified,
                "lotteries_oversubscribed": tally.lotteries_oversubscribed,
                "lottery_entries_attempted": sum(tally.entry_outcomes.values()),
                "lottery_entry_outcomes": dict(sorted(tally.entry_outcomes.items())),
                "lottery_winners": facts.lottery_winners,
                "claims_attempted": sum(tally.claim_outcomes.values()),
                "claim_outcomes": dict(sorted(tally.claim_outcomes.items())),
                "sold_out_rounds": {code: len(tally.sold_out.get(code, ())) for code in facts.batch_codes},
                "vouchers_claimed": facts.vouchers,
                "vouchers_claimed_value_fen": facts.vouchers_value,
                "vouchers_by_batch": facts.vouchers_by_batch,
                "claimed_by_district": facts.by_district,
                "vouchers_expired": facts.expired,
                "vouchers_recycled": facts.recycled,
                "vouchers_expired_for_recovery": facts.expired - facts.recycled,
                "stock_recycled": facts.stock_recycled,
                "stock_unclaimed_at_end": facts.remaining,
                "merchants_invited": sales.merchants_invited,
                "merchants_rejected": sales.merchants_by_status.get("county_rejected", 0),
                "merchants_active": sales.merchants_by_status.get("active", 0),
                "merchants_suspended": sales.merchants_by_status.get("suspended", 0),
                "merchants_expelled": sales.merchants_by_status.get("expelled", 0),
                "merchants_active_by_jurisdiction": sales.active_by_jurisdiction,
                "merchants_active_by_category": sales.active_by_category,
                "redemptions_attempted": sum(tally.redemption_outcomes.values()),
                "redemption_outcomes": dict(sorted(tally.redemption_outcomes.items())),
                "redemptions_topped_up": dict(sorted(tally.topped_up.items())),
                "redemptions_after_expiry": dict(sorted(tally.late_tries.items())),
                "redemptions_by_status": sales.by_status,
                "vouchers_redeemed": sales.redeemed,
                "vouchers_redeemed_by_batch": {
                    code: sales.redeemed_by_batch.get(code, 0) for code in facts.batch_codes
                },
                "redemption_rate": _ratio(sales.redeemed, facts.vouchers, places=4),
                "persons_with_vouchers": int(holders or 0),
                "persons_who_redeemed": int(spenders or 0),
                "persons_who_redeemed_share": _ratio(int(spenders or 0), int(holders or 0), places=4),
                "allocation": self.allocation,
                "allocation_plans_accepted": tally.plans_accepted,
                "allocation_plan_refusals": dict(sorted(tally.plan_refusals.items())),
                "consumption_driven_fen": sales.consumption,
                "subsidy_fen": sales.subsidy_confirmed + sales.subsidy_pending,
                "subsidy_confirmed_fen": sales.subsidy_confirmed,
                "subsidy_pending_fen": sales.subsidy_pending,
                "merchant_discounts_fen": sales.merchant_discounts,
                "leverage": _ratio(
                    sales.consumption, sales.subsidy_confirmed + sales.subsidy_pending, places=2
                ),
                "redemptions_by_category": sales.by_category,
                "invoices": {
                    **{outcome: tally.verifications.get(outcome, 0) for outcome in ("verified", "rejected")},
                    "pending": sales.by_status.get(RedemptionStatus.PENDING_VERIFICATION.value, 0),
                },
                "refunds": sales.refunds | {"outcomes": dict(sorted(tally.refund_outcomes.items()))},
                "ledger_checks": ledger_checks,
                "invariants": facts.invariants(
                    lotteries_verified=tally.lotteries_verified == tally.draws == lottery_rounds,
                    more={**sales.checks, "ledger_checks": ledger_report.ok, **back_office.pop("checks")},
                ),
            }
        )
        return summary


async def _back_office_summary(demo: _Demo) -> dict[str, Any]:
    """Settlement, recovery, risk and complaints at the end, with their checks."""
    campaign_id = demo.campaign.id
    sealer = MerchantSealer.from_settings(demo.settings).bank_account
    async with demo.sessions() as session:
        statement = await settlement.statement(
            session, principal=demo.staff["finance"], campaign_id=campaign_id
        )
        alerts = (
            await session.execute(
                select(RiskAlertRow.rule, RiskAlertRow.subject_kind, RiskAlertRow.subject_id).where(
                    RiskAlertRow.campaign_id == campaign_id
                )
            )
        ).all()
        case_statuses = Counter(
            (
                await session.scalars(
                    select(RiskCaseRow.status).where(RiskCaseRow.campaign_id == campaign_id)
                )
            ).all()
        )
        complaint_statuses = Counter(
            (
                await session.scalars(
                    select(ComplaintRow.status).where(ComplaintRow.campaign_id == campaign_id)
                )
            ).all()
        )
        days = sorted(
            set(
                (
                    await session.scalars(
                        select(SettlementRunRow.business_day).where(
                            SettlementRunRow.campaign_id == campaign_id
                        )
                    )
                ).all()
            )
        )
        reconciled = [
            (
                await settlement_reconcile.reconcile(
                    session,
                    principal=demo.staff["finance"],
                    day=day,
                    sealer=sealer,
                    campaign_code=demo.campaign.code,
                )
            ).clean
            for day in days
        ]
    guilty = await demo.guilty()
    detection = _detection(demo.plants, guilty, alerts)
    confirmed = sum(case_statuses.get(status, 0) for status in ("confirmed", "referred", "sanctioned"))
    unused = sum(int(funder.unused) for funder in statement.funders)
    return {
        "subsidy_settled_fen": int(statement.subsidy_paid),
        "recovered_fen": demo.recovered,
        "settlement": {
            "runs": demo.settlement.runs,
            "payouts": dict(sorted(demo.settlement.payouts.items())),
            "clawed_back_fen": int(statement.clawed_back),
            "clawed_back_collected_fen": int(statement.clawed_back_collected),
            "outstanding_fen": int(statement.outstanding),
            "frozen_fen": int(statement.frozen),
            "in_transit_fen": int(statement.in_transit),
            "unused_after_recovery_fen": unused,
            "by_funder": {
                funder.funder: {
                    "deposited_fen": int(funder.deposited),
                    "to_merchants_fen": int(funder.to_merchants),
                    "recovered_fen": int(funder.recovered),
                }
                for funder in statement.funders
            },
            "close_problems": demo.close_problems,
        },
        "alerts": len(alerts),
        "alerts_by_rule": dict(sorted(Counter(rule for rule, _, _ in alerts).items())),
        "risk_scans": demo.risk.scans,
        "cases": dict(sorted(demo.risk.cases.items())),
        "cases_by_status": dict(sorted(case_statuses.items())),
        "cases_confirmed": confirmed,
        "fraud_planted": len(demo.plants),
        "fraud_claims": dict(sorted(demo.tally.scheme_claims.items())),
        "fraud_detection": detection,
        "complaints": dict(sorted(demo.hotline.outcomes.items())),
        "complaints_by_status": dict(sorted(complaint_statuses.items())),
        "checks": {
            "settlement_reconciled": all(reconciled),
            "bank_files_applied": demo.settlement.differences == 0,
            "campaign_closed_and_recovered": demo.recovered is not None,
            "nothing_unused_after_recovery": demo.recovered is not None and unused == 0,
        },
    }


def _detection(plants: tuple[Plant, ...], guilty: dict[tuple[str, str], str], alerts: Any) -> dict[str, Any]:
    """Per pattern: the planted subjects, those the pattern's own rule raised an alert about (recall), and
    the alerts about subjects nobody planted anything on (the innocent)."""
    flagged: dict[str, set[tuple[str, str]]] = defaultdict(set)
    innocent: Counter[str] = Counter()
    innocent_merchants = 0
    merchant_alerts = 0
    for rule, kind, subject_id in alerts:
        flagged[rule].add((kind, subject_id))
        if kind == "merchant":
            merchant_alerts += 1
        if (kind, subject_id) not in guilty:
            innocent[rule] += 1
            innocent_merchants += kind == "merchant"
    by_pattern: dict[str, Any] = {}
    for pattern in fraud.PATTERNS:
        planted = [subject for subject, planted_as in guilty.items() if planted_as == pattern]
        found = [subject for subject in planted if subject in flagged[pattern]]
        by_pattern[pattern] = {
            "planted": len(planted),
            "detected": len(found),
            "recall": _ratio(len(found), len(planted), places=2),
            "innocent_alerts": innocent.get(pattern, 0),
        }
    return {
        "by_pattern": by_pattern,
        "plants_without_subject": len(plants) - len(guilty),
        "innocent_alerts": sum(innocent.values()),
        "innocent_share": _ratio(sum(innocent.values()), len(alerts), places=4),
        "innocent_merchant_alerts": innocent_merchants,
        "innocent_merchant_share": _ratio(innocent_merchants, merchant_alerts, places=4),
    }


def _ratio(numerator: int, denominator: int, *, places: int) -> str | None:
    """numerator ÷ denominator as a decimal string (half-even), None when there is nothing to divide by."""
    if denominator == 0:
        return None
    return str(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    )


async def _deposit_budgets(session: AsyncSession, campaign: CampaignRow, clock: ManualClock) -> None:
    """资金拨付: each funder's whole budget, recorded by the commerce bureau and approved by the finance
    bureau (maker and checker are different people), so the ledger's budget covers every claim."""
    for funder in sorted(campaign.funders, key=lambda funder: funder.position):
        deposit = await ledger.request_deposit(
            session,
            principal=CITY,
            campaign_id=campaign.id,
            funder_code=funder.code,
            amount=Fen(funder.budget_fen),
            clock=clock,
            note=f"{funder.name} 资金拨付 (demo)",
        )
        await ledger.approve_deposit(session, principal=FINANCE, deposit_id=deposit.row.id, clock=clock)


@dataclass
class _Sales:
    """Merchants and redemptions as the database holds them at the end, and their invariants."""

    merchants_invited: int
    merchants_by_status: dict[str, int]
    active_by_jurisdiction: dict[str, int]
    active_by_category: dict[str, int]
    by_status: dict[str, int]
    redeemed: int
    redeemed_by_batch: dict[str, int]
    consumption: int  # what residents and vouchers paid at the till, net of refunds, holding redemptions
    subsidy_confirmed: int  # confirmed (and settled), net of subsidy returned by refunds
    subsidy_pending: int  # big-ticket, awaiting the county's invoice check
    merchant_discounts: int
    by_category: dict[str, dict[str, int]]
    refunds: dict[str, int]
    checks: dict[str, bool]

    @classmethod
    async def read(cls, session: AsyncSession, campaign: CampaignRow) -> _Sales:
        merchants = (
            await session.execute(
                select(MerchantRow.status, MerchantRow.jurisdiction, MerchantRow.category).where(
                    MerchantRow.campaign_id == campaign.id
                )
            )
        ).all()
        active = [
            (jurisdiction, category) for status, jurisdiction, category in merchants if status == "active"
        ]
        codes = {batch.id: batch.code for batch in campaign.batches}
        rows = (
            await session.scalars(select(RedemptionRow).where(RedemptionRow.campaign_id == campaign.id))
        ).all()
        holding_statuses = {status.value for status in HOLDS_VOUCHER}
        holding = [row for row in rows if row.status in holding_statuses]
        # what the campaign achieved: the redemptions it paid for (a clawed-back one's subsidy came back
        # from the expelled merchant, so it counts as the reports count it: not at all)
        counted = [row for row in holding if row.status != RedemptionStatus.CLAWED_BACK.value]
        confirmed = (RedemptionStatus.CONFIRMED.value, RedemptionStatus.SETTLED.value)
        by_category: dict[str, dict[str, int]] = {}
        for row in counted:
            figures = by_category.setdefault(
                row.category, {"redeemed": 0, "consumption_fen": 0, "subsidy_fen": 0}
            )
            figures["redeemed"] += 1
            figures["consumption_fen"] += _net_payable(row)
            figures["subsidy_fen"] += row.subsidy_fen - row.subsidy_returned_fen
        holders = Counter(row.voucher_id for row in holding)
        spent = set(
            (
                await session.scalars(
                    select(VoucherRow.id).where(
                        VoucherRow.campaign_id == campaign.id, VoucherRow.status.in_(("redeemed", "settled"))
                    )
                )
            ).all()
        )
        refunds = (
            await session.execute(
                select(RefundRow.amount_fen, RefundRow.subsidy_returned_fen, RefundRow.voucher_restored)
                .join(RedemptionRow, RedemptionRow.id == RefundRow.redemption_id)
                .where(RedemptionRow.campaign_id == campaign.id)
            )
        ).all()
        return cls(
            merchants_invited=len(merchants),
            merchants_by_status=dict(sorted(Counter(status for status, _, _ in merchants).items())),
            active_by_jurisdiction=dict(sorted(Counter(jurisdiction for jurisdiction, _ in active).items())),
            active_by_category=dict(sorted(Counter(category for _, category in active).items())),
            by_status=dict(sorted(Counter(row.status for row in rows).items())),
            redeemed=len(counted),
            redeemed_by_batch=dict(Counter(codes[row.batch_id] for row in counted)),
            consumption=sum(_net_payable(row) for row in counted),
            subsidy_confirmed=sum(
                row.subsidy_fen - row.subsidy_returned_fen for row in counted if row.status in confirmed
            ),
            subsidy_pending=sum(
                row.subsidy_fen
                for row in counted
                if row.status == RedemptionStatus.PENDING_VERIFICATION.value
            ),
            merchant_discounts=sum(row.merchant_discount_fen for row in counted),
            by_category=dict(sorted(by_category.items())),
            refunds={
                "count": len(refunds),
                "amount_fen": sum(amount for amount, _, _ in refunds),
                "subsidy_returned_fen": sum(returned for _, returned, _ in refunds),
                "vouchers_restored": sum(1 for _, _, restored in refunds if restored),
            },
            checks={
                "I3_one_holding_redemption_per_voucher": all(count == 1 for count in holders.values()),
                "I3_vouchers_redeemed_equal_holding_redemptions": set(holders) == spent,
                "subsidy_within_voucher_value": all(
                    0 < row.subsidy_fen <= min(row.voucher_value_fen, _payable(row))
                    and 0 <= row.subsidy_returned_fen <= row.subsidy_fen
                    and 0 <= row.refunded_fen <= _payable(row)
                    for row in rows
                ),
            },
        )


def _payable(row: RedemptionRow) -> int:
    return row.order_fen - row.merchant_discount_fen


def _net_payable(row: RedemptionRow) -> int:
    return _payable(row) - row.refunded_fen


@dataclass
class _Facts:
    """What the database says at the end, and the invariants checked on it."""

    batch_codes: list[str]
    vouchers: int
    vouchers_value: int
    vouchers_by_batch: dict[str, int]
    by_district: dict[str, int]
    expired: int
    recycled: int
    lottery_winners: int
    stock_recycled: dict[str, int]
    remaining: int
    checks: dict[str, bool]

    def invariants(self, *, lotteries_verified: bool, more: dict[str, bool]) -> dict[str, bool]:
        return dict(sorted({**self.checks, **more, "lotteries_verified": lotteries_verified}.items()))

    @classmethod
    async def read(cls, session: AsyncSession, campaign: CampaignRow) -> _Facts:
        batches = {batch.id: batch for batch in campaign.batches}
        codes = {batch.id: batch.code for batch in campaign.batches}
        issued: Counter[tuple[str, str]] = Counter()  # (round, batch)
        held: list[tuple[str, str, str, int]] = []  # (person, round, batch, vouchers)
        query = select(VoucherRow.person_id, VoucherRow.round_id, VoucherRow.batch_id, func.count()).group_by(
            VoucherRow.person_id, VoucherRow.round_id, VoucherRow.batch_id
        )
        for person, round_id, batch_id, count in await session.execute(query):
            issued[(round_id, batch_id)] += count
            held.append((person, round_id, batch_id, count))
        by_batch: Counter[str] = Counter()
        for (_, batch_id), count in issued.items():
            by_batch[codes[batch_id]] += count
        district_rows = await session.execute(
            select(VoucherRow.district, func.count()).group_by(VoucherRow.district)
        )
        by_district = {district.value: 0 for district in District} | {
            district: count for district, count in district_rows
        }
        value = await session.scalar(select(func.coalesce(func.sum(VoucherRow.value_fen), 0)))
        expired = await session.scalar(
            select(func.count()).select_from(VoucherEventRow).where(VoucherEventRow.kind == "expired")
        )
        # `recycled`: back into a later round's stock, or (event `recovered`) back to the funders at the close
        recovered = await session.scalar(
            select(func.count()).select_from(VoucherEventRow).where(VoucherEventRow.kind == "recovered")
        )
        recycled = (
            await session.scalar(
                select(func.count()).select_from(VoucherRow).where(VoucherRow.status == "recycled")
            )
            or 0
        ) - (recovered or 0)
        winners = await session.scalar(
            select(func.count()).select_from(LotteryEntryRow).where(LotteryEntryRow.won.is_(True))
        )
        released = {
            (row.round_id, row.batch_id): (row.stock, row.recycled_in)
            for row in (await session.scalars(select(RoundBatchRow))).all()
        }
        remaining: Counter[tuple[str, str]] = Counter()
        negative_shards = False
        for round_id, batch_id, left in await session.execute(
            select(StockShardRow.round_id, StockShardRow.batch_id, StockShardRow.remaining)
        ):
            remaining[(round_id, batch_id)] += left
            negative_shards |= left < 0
        moved_out: Counter[tuple[str, str]] = Counter()
        moved_in: Counter[tuple[str, str]] = Counter()
        recycled_by_kind: Counter[str] = Counter()
        for kind, batch_id, source, target, quantity in await session.execute(
            select(
                StockMovementRow.kind,
                StockMovementRow.batch_id,
                StockMovementRow.from_round_id,
                StockMovementRow.to_round_id,
                StockMovementRow.quantity,
            )
        ):
            moved_in[(target, batch_id)] += quantity
            recycled_by_kind[kind] += quantity
            if kind == "unclaimed":
                moved_out[(source, batch_id)] += quantity
        keys = await session.execute(
            select(VoucherRow.idempotency_key, func.count())
            .where(VoucherRow.idempotency_key.is_not(None))
            .group_by(VoucherRow.idempotency_key)
        )
        vouchers_per_key = {str(key): int(count) for key, count in keys}
        checks = {
            "I3_no_over_issue": not negative_shards
            and all(issued[key] <= stock + recycled_in for key, (stock, recycled_in) in released.items())
            and set(issued) <= set(released),
            "I3_per_person_limits": _within_limits(held, batches, campaign),
            # without HTTP there is no replay to test: each request's key is on at most one voucher
            "I4_one_voucher_per_idempotency_key": all(count == 1 for count in vouchers_per_key.values()),
            "stock_conservation": all(
                stock + recycled_in == issued[key] + remaining[key] + moved_out[key]
                and recycled_in == moved_in[key]
                for key, (stock, recycled_in) in released.items()
            )
            and int(recycled or 0) == recycled_by_kind["expired"],
        }
        return cls(
            batch_codes=[batch.code for batch in campaign.batches],
            vouchers=sum(issued.values()),
            vouchers_value=int(value or 0),
            vouchers_by_batch={batch.code: by_batch[batch.code] for batch in campaign.batches},
            by_district=by_district,
            expired=int(expired or 0),
            recycled=int(recycled or 0),
            lottery_winners=int(winners or 0),
            stock_recycled={
                "unclaimed": recycled_by_kind["unclaimed"],
                "expired": recycled_by_kind["expired"],
                "total": sum(recycled_by_kind.values()),
            },
            remaining=sum(remaining.values()),
            checks=checks,
        )


def _within_limits(
    held: list[tuple[str, str, str, int]], batches: dict[str, BatchRow], campaign: CampaignRow
) -> bool:
    """No person above a batch's per-round or per-batch limit, the campaign's limit or a category's."""
    per_batch: Counter[tuple[str, str]] = Counter()
    per_campaign: Counter[str] = Counter()
    per_category: Counter[tuple[str, str]] = Counter()
    for person, _, batch_id, count in held:
        batch = batches[batch_id]
        if count > batch.per_person_per_round:
            return False
        per_batch[(person, batch_id)] += count
        per_campaign[person] += count
        for category in batch.categories:
            per_category[(person, category)] += count
    return (
        all(
            batches[batch_id].per_person_total is None or count <= (batches[batch_id].per_person_total or 0)
            for (_, batch_id), count in per_batch.items()
        )
        and (
            campaign.per_person_total is None
            or all(count <= campaign.per_person_total for count in per_campaign.values())
        )
        and all(
            count <= campaign.per_person_per_category.get(category, count)
            for (_, category), count in per_category.items()
        )
    )


# --- helpers ------------------------------------------------------------------------------------------


def _is_lottery(round_: RoundRow) -> bool:
    return round_.mode == ClaimMode.LOTTERY


def _released(round_: RoundRow) -> list[BatchRow]:
    """The round's batches in the campaign file's order. `RoundRow.stock` has no order of its own (the
    database returns it by batch id, which is random), and the order decides how the seed is used."""
    return sorted((item.batch for item in round_.stock), key=lambda batch: batch.position)


def _pick(rng: random.Random, weighted: list[tuple[BatchRow, float]], count: int) -> list[BatchRow]:
    """Up to `count` different batches, each drawn with probability proportional to its weight."""
    left = [(batch, weight) for batch, weight in weighted if weight > 0]
    picked: list[BatchRow] = []
    while left and len(picked) < count:
        index = rng.choices(range(len(left)), [weight for _, weight in left])[0]
        picked.append(left.pop(index)[0])
    return picked


def _prepare(out: Path, database_url: str | None) -> tuple[str, str]:
    """The campaign file's text and the database URL; the default SQLite file of a previous demo in
    `out` is removed."""
    source = campaign_file().read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    if database_url is not None:
        return source, database_url  # someone else's database: never deleted, refused unless empty
    url = f"sqlite+aiosqlite:///{out.resolve() / DATABASE_FILE}"
    _remove_sqlite_file(url)
    return source, url


def _remove_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(parsed.database + suffix).unlink(missing_ok=True)


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Add the block's wall-clock seconds to `timings[phase]` (a phase may be timed many times)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - started


@contextmanager
def _phase(bars: Progress, timings: dict[str, float], phase: str, description: str) -> Iterator[None]:
    """A phase of one step: its own line among the progress bars, and its duration."""
    task = bars.add_task(description, total=1)
    with _timed(timings, phase):
        yield
    bars.update(task, completed=1)


def _redacted(sessions: async_sessionmaker[AsyncSession]) -> str:
    bind = sessions.kw.get("bind")
    return "the database" if bind is None else bind.url.render_as_string(hide_password=True)


def _print_sign_ins(console: Console, staff: Staff, out: Path) -> None:
    """How to look at the result in the console: the address and the demo's accounts."""
    table = Table(title="demo console accounts (this database only)")
    for column in ("username", "role", "name"):
        table.add_column(column)
    for account in staff.accounts.values():
        table.add_row(account.username, account.role.value, account.display_name)
    console.print(table)
    url = f"sqlite+aiosqlite:///{out / DATABASE_FILE}"
    console.print(
        f"password for every account: {backoffice.DEMO_PASSWORD}; the 6-digit code: "
        f"`huimin demo-totp USERNAME --out {out}` (or enrol totp_secret from {out / SIGN_INS_FILE} in an "
        f"authenticator app)\nserve it: HUIMIN_DATABASE_URL={url} huimin serve, then open "
        "http://127.0.0.1:8000/console",
        markup=False,
    )


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=console.quiet,
    )
    with bars:
        yield bars


def _report(console: Console, summary: dict[str, Any], timings: dict[str, float], path: Path) -> None:
    table = Table(title=f"惠民 demo: {summary['campaign']}, seed {summary['seed']}", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "residents",
        "union_members",
        "rounds",
        "lottery_rounds",
        "lotteries_verified",
        "claims_attempted",
        "vouchers_claimed",
        "vouchers_expired",
        "vouchers_recycled",
        "merchants_invited",
        "merchants_rejected",
        "merchants_active",
        "redemptions_attempted",
        "vouchers_redeemed",
    ):
        table.add_row(key, f"{summary[key]:,}")
    for key in ("consumption_driven_fen", "subsidy_fen", "merchant_discounts_fen"):
        table.add_row(key.removesuffix("_fen"), Fen(summary[key]).format())
    table.add_row("redemption rate, leverage", f"{summary['redemption_rate']}, {summary['leverage']}")
    table.add_row(
        "claim outcomes", ", ".join(f"{code} {count:,}" for code, count in summary["claim_outcomes"].items())
    )
    table.add_row(
        "sold-out rounds", ", ".join(f"{code} {count}" for code, count in summary["sold_out_rounds"].items())
    )
    table.add_row(
        "by district",
        ", ".join(f"{code} {count:,}" for code, count in summary["claimed_by_district"].items()),
    )
    table.add_row(
        "redemption outcomes",
        ", ".join(f"{code} {count:,}" for code, count in summary["redemption_outcomes"].items()),
    )
    table.add_row("invoices", ", ".join(f"{code} {count:,}" for code, count in summary["invoices"].items()))
    table.add_row(
        "refunds",
        ", ".join(f"{code} {count:,}" for code, count in summary["refunds"]["outcomes"].items()) or "none",
    )
    for name, holds in summary["invariants"].items():
        table.add_row(name, "[green]holds[/green]" if holds else "[red]VIOLATED[/red]")
    detection = summary["fraud_detection"]
    table.add_row(
        "fraud planted, recall by pattern",
        ", ".join(
            f"{pattern} {found['detected']}/{found['planted']}"
            for pattern, found in detection["by_pattern"].items()
            if found["planted"]
        ),
    )
    table.add_row(
        "alerts, innocent share, cases confirmed",
        f"{summary['alerts']:,}, {detection['innocent_share']}, {summary['cases_confirmed']:,}",
    )
    money = summary["settlement"]
    table.add_row(
        "settlement runs, payouts",
        f"{money['runs']:,}, "
        + ", ".join(f"{outcome} {count:,}" for outcome, count in money["payouts"].items()),
    )
    for key in ("subsidy_settled_fen", "recovered_fen"):
        table.add_row(key.removesuffix("_fen"), Fen(summary[key] or 0).format())
    table.add_row("clawed back", Fen(money["clawed_back_fen"]).format())
    table.add_row(
        "complaints", ", ".join(f"{outcome} {count:,}" for outcome, count in summary["complaints"].items())
    )
    console.print(table)
    console.print(
        "timings: "
        + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in timings.items())
        + f"; total {sum(seconds for phase, seconds in timings.items() if not phase.startswith('of which')):.1f} s"
    )
    console.print(f"summary written to {path}")
