"""The fraud rules, each a pure function from one batch of events and its context to findings.

A rule recomputes the whole window (a merchant's local day, a local hour, to-date) that the batch's new
events touch, from the context's history, so that a finding is always complete: the alert it updates
carries every transaction of the window, not only the ones of the last batch. What several rules read
(each touched merchant's history by local day and hour) is worked out once per batch, by `EventBatch.index`.
Rules never read a clock; times come from the events. Money is integer fen, shares integer basis points.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from itertools import chain, compress
from operator import not_
from statistics import median_low

from huimin.kit.clock import to_local
from huimin.merchants.domain import BusinessHours
from huimin.risk.domain import DEFAULT_SETTINGS, Finding, RiskSettings, Rule, SubjectKind
from huimin.risk.ip_regions import IpRegion

__all__ = [
    "RULES",
    "ClaimFact",
    "EventBatch",
    "HistoryIndex",
    "Identities",
    "MerchantFact",
    "MerchantTotals",
    "RedemptionFact",
    "RefundFact",
    "RuleFn",
    "device_farm",
    "distance_km",
    "evaluate",
    "hugs",
    "location_spoofing",
    "off_hours",
    "refund_rate",
    "refund_soon",
    "resale_ring",
    "self_claim_self_redeem",
    "split_orders",
    "threshold_hugging",
    "velocity",
]

MAX_LISTED = 50  # evidence lists at most this many items of a kind (and says how many there were)


@dataclass(frozen=True)
class ClaimFact:
    """A claim (领取): the voucher, who claimed it through which app account and device, where."""

    event_id: int
    campaign_id: str
    voucher_id: str
    person_id: str
    resident_id: str
    device: str  # keyed hash of the app account's device id
    district: str
    at: datetime
    # the reported position (GCJ-02, 3 decimals) and the client's network (/24, /48); None: not recorded
    lng: float | None = None
    lat: float | None = None
    ip_prefix: str | None = None


@dataclass(frozen=True, slots=True)  # slots: a batch reads a week of them, tens of thousands, row by row
class RedemptionFact:
    """A redemption (核销) with what the rules need: amounts, the voucher's floors, the claim's district."""

    redemption_id: str
    campaign_id: str
    merchant_id: str
    person_id: str
    voucher_id: str
    terminal_id: str
    at: datetime
    payable_fen: int  # order minus the merchant's own discount
    counted_fen: int  # the amount the voucher's threshold is met on (payable or the order, per batch)
    floors: tuple[int, ...]  # the 满T threshold or the price bands' minimums; empty for none
    subsidy_fen: int
    claim_district: str


@dataclass(frozen=True)
class RefundFact:
    """A refund (退款) of part or all of a redemption, with when that redemption was made."""

    redemption_id: str
    campaign_id: str
    merchant_id: str
    person_id: str
    amount_fen: int
    at: datetime
    redeemed_at: datetime


@dataclass(frozen=True)
class MerchantFact:
    merchant_id: str
    campaign_id: str
    name: str
    jurisdiction: str
    district: str  # the geographic district of its jurisdiction (高新区 and 临空经济区 are in 雁江区)
    hours: BusinessHours | None  # None: unknown, the off-hours rule is silent
    contact_phone_digest: str | None  # keyed hash (as residents' phones are) of the contact phone
    contact_phone_masked: str = ""


@dataclass(frozen=True)
class MerchantTotals:
    """Campaign to date: redemptions at the merchant, and how many of them were refunded (even partly)."""

    redemptions: int
    refunded: int


@dataclass(frozen=True)
class Identities:
    """Who shares what, as keyed hashes: persons' devices and phones, and the reverse."""

    devices_of: Mapping[str, frozenset[str]] = field(default_factory=dict)  # person -> devices
    phones_of: Mapping[str, frozenset[str]] = field(default_factory=dict)  # person -> phones
    persons_on_device: Mapping[str, frozenset[str]] = field(default_factory=dict)
    persons_with_phone: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventBatch:
    """One batch of the intake: its new events and the context the rules read."""

    claims: Sequence[ClaimFact] = ()
    redemptions: Sequence[RedemptionFact] = ()
    refunds: Sequence[RefundFact] = ()
    # merchant -> its redemptions (and refunds) over the look-back window, the new ones included, by time
    history: Mapping[str, Sequence[RedemptionFact]] = field(default_factory=dict)
    refund_history: Mapping[str, Sequence[RefundFact]] = field(default_factory=dict)
    merchants: Mapping[str, MerchantFact] = field(default_factory=dict)
    totals: Mapping[str, MerchantTotals] = field(default_factory=dict)
    identities: Identities = field(default_factory=Identities)
    settings: Mapping[str, RiskSettings] = field(default_factory=dict)  # campaign -> its settings
    # person -> their claims on the local days the new claims fall on, the new ones included, by time
    claim_history: Mapping[str, Sequence[ClaimFact]] = field(default_factory=dict)
    # a claim's client network -> its region (longest-prefix match in risk_ip_regions); absent: unknown
    ip_regions: Mapping[str, IpRegion] = field(default_factory=dict)

    def settings_for(self, campaign_id: str) -> RiskSettings:
        return self.settings.get(campaign_id, DEFAULT_SETTINGS)

    @cached_property
    def index(self) -> HistoryIndex:
        """The history read once for every rule of this batch (a batch is not changed once evaluated)."""
        return HistoryIndex(self)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_SECONDS = 86_400


def _utc_hour(at: datetime) -> int:
    return math.floor(at.timestamp()) // 3600


def _offset_over(utc_hour: int) -> int | None:
    """The local UTC offset in whole seconds over one UTC hour; None if it changes within the hour."""
    start = datetime.fromtimestamp(utc_hour * 3600, UTC)
    first, last = to_local(start).utcoffset(), to_local(start + timedelta(seconds=3599)).utcoffset()
    if first is None or first != last or first.microseconds:
        return None
    return first.days * _DAY_SECONDS + first.seconds


class _LocalClock:
    """Local wall-clock time of instants as whole seconds since 1970-01-01 00:00 local time: `// 3600` is the
    local hour, `// 86400` the local day, `// 60 % 1440` the minute of the day.

    `to_local` on every row of a week of history costs more than all the rules together. So the UTC offset
    is looked up once per UTC hour, and where it does not change over a stretch of time (Asia/Shanghai's
    has not since 1991) local time is the UTC time shifted by it."""

    def __init__(self) -> None:
        self._offsets: dict[int, int | None] = {}
        self._uniform: tuple[int, int, int] | None = None  # (first, last UTC hour, the offset of them all)

    def _offset(self, utc_hour: int) -> int | None:
        if utc_hour not in self._offsets:
            self._offsets[utc_hour] = _offset_over(utc_hour)
        return self._offsets[utc_hour]

    def uniform_offset(self, lo: datetime, hi: datetime) -> int | None:
        """The offset if it is the same all the way from `lo` to `hi`, else None."""
        for edge in (lo, hi):
            if edge.tzinfo is None:
                to_local(edge)  # refuses naive times, as `to_local` everywhere does
        first, last = _utc_hour(lo), _utc_hour(hi)
        if self._uniform is None:
            offset = self._offset(first)
            if offset is None:
                return None
            self._uniform = (first, first, offset)
        known_first, known_last, offset = self._uniform
        if known_first <= first and last <= known_last:
            return offset
        beyond = chain(range(first, known_first), range(known_last + 1, last + 1))
        if any(self._offset(hour) != offset for hour in beyond):
            return None
        self._uniform = (min(first, known_first), max(last, known_last), offset)
        return offset

    def seconds(self, at: datetime) -> int:
        """One instant's local seconds, exactly (an hour in which the offset changes is converted)."""
        if at.tzinfo is None:
            to_local(at)
        utc = math.floor(at.timestamp())
        offset = self._offset(utc // 3600)
        if offset is None:
            local = to_local(at)
            day = local.toordinal() - _EPOCH_ORDINAL
            return day * _DAY_SECONDS + local.hour * 3600 + local.minute * 60 + local.second
        return utc + offset


class _MerchantHistory:
    """One merchant's history with each row's local time worked out once, and its rows per local hour.

    History comes in time order (the loaders sort it). Then local time only grows along it, and the rows of
    a local day or hour, or between two instants, are a run found by bisection. Any other order is read
    row by row, with the same results."""

    def __init__(self, items: Sequence[RedemptionFact], clock: _LocalClock) -> None:
        self.items = items
        self._clock = clock
        offset = clock.uniform_offset(items[0].at, items[-1].at) if items else None
        if offset is not None:
            floor = math.floor
            self._seconds = [floor(item.at.timestamp()) + offset for item in items]
            # in order, every row lies between the first and the last, where the offset was checked
            self._monotone = self._seconds == sorted(self._seconds)
        else:
            self._monotone = False
        if not self._monotone:
            self._seconds = [clock.seconds(item.at) for item in items]
        self.hour_counts = Counter([second // 3600 for second in self._seconds])
        self._hours = sorted(self.hour_counts)
        self._positions: dict[tuple[int, int], Sequence[int]] = {}

    def _between(self, first: int, end: int) -> Sequence[int]:
        """The positions of the rows from local second `first` to before `end`, in history order."""
        if (first, end) not in self._positions:
            if self._monotone:
                found: Sequence[int] = range(
                    bisect_left(self._seconds, first), bisect_left(self._seconds, end)
                )
            else:
                found = [p for p, s in enumerate(self._seconds) if first <= s < end]
            self._positions[first, end] = found
        return self._positions[first, end]

    def _rows(self, positions: Sequence[int]) -> list[RedemptionFact]:
        if isinstance(positions, range):
            return list(self.items[positions.start : positions.stop])
        return [self.items[position] for position in positions]

    def day_positions(self, day: date) -> Sequence[int]:
        first = (day.toordinal() - _EPOCH_ORDINAL) * _DAY_SECONDS
        return self._between(first, first + _DAY_SECONDS)

    def of_day(self, day: date) -> list[RedemptionFact]:
        return self._rows(self.day_positions(day))

    def of_hour(self, hour: int) -> list[RedemptionFact]:
        return self._rows(self._between(hour * 3600, hour * 3600 + 3600))

    def minute_of_day(self, position: int) -> int:
        return self._seconds[position] // 60 % 1440

    def _runs_with_time(self, lo: datetime, hi: datetime) -> bool:
        """Local time grows with time over the rows and from `lo` to `hi`: a row in a later local second
        than an instant is later than it, a row in an earlier one is earlier."""
        if not self._monotone:
            return False
        span = (min(lo, self.items[0].at), max(hi, self.items[-1].at))
        return self._clock.uniform_offset(*span) is not None

    def between(self, since: datetime, until: datetime) -> Sequence[RedemptionFact]:
        """The rows from `since` to `until`, both included, in history order."""
        if since > until:
            return []
        if not self._runs_with_time(since, until):
            return [item for item in self.items if since <= item.at <= until]
        # the rows of the local seconds after `since`'s and before `until`'s are in; the rows of those two
        # seconds themselves are looked at
        low, high = self._clock.seconds(since), self._clock.seconds(until)
        first, last = bisect_left(self._seconds, low), bisect_right(self._seconds, high)
        inner_first, inner_last = bisect_right(self._seconds, low), bisect_left(self._seconds, high)
        if inner_first > inner_last:  # `since` and `until` in the same second
            return [item for item in self.items[first:last] if since <= item.at <= until]
        head = [item for item in self.items[first:inner_first] if since <= item.at]
        tail = [item for item in self.items[inner_last:last] if item.at <= until]
        return [*head, *self.items[inner_first:inner_last], *tail]

    def busy_hours_before(self, hour: int, start: datetime) -> list[int]:
        """The row counts of the local hours before `hour` that have a row at or after `start`, in order."""
        before = self._hours[: bisect_left(self._hours, hour)]
        if not self._runs_with_time(start, start):
            return [self.hour_counts[h] for h in before if self._busy_since(h, start)]
        # an hour after the one `start` falls in has only rows after it, an hour before has none: only
        # the rows of that hour itself are looked at
        edge = self._clock.seconds(start) // 3600
        after = bisect_right(before, edge)
        counts = [self.hour_counts[h] for h in before[after:]]
        if after and before[after - 1] == edge and self._busy_since(edge, start):
            counts.insert(0, self.hour_counts[edge])
        return counts

    def _busy_since(self, hour: int, start: datetime) -> bool:
        return any(item.at >= start for item in self.of_hour(hour))


class HistoryIndex:
    """What several rules read from one batch, worked out once for all of them: the local days and hours
    the new redemptions touch, each merchant's history by local hour and day (built when a rule first asks
    for that merchant), and who shares a device or a phone with anyone else."""

    def __init__(self, batch: EventBatch) -> None:
        self._batch = batch
        self._clock = _LocalClock()
        self._merchants: dict[str, _MerchantHistory] = {}

    def merchant(self, merchant_id: str) -> _MerchantHistory:
        if merchant_id not in self._merchants:
            history = self._batch.history.get(merchant_id, ())
            self._merchants[merchant_id] = _MerchantHistory(history, self._clock)
        return self._merchants[merchant_id]

    @cached_property
    def touched_days(self) -> dict[str, set[date]]:
        """Merchant -> the local days of its new redemptions, merchants in the order they first appear."""
        days: dict[str, set[date]] = defaultdict(set)
        for item in self._batch.redemptions:
            days[item.merchant_id].add(_day(item.at))
        return days

    @cached_property
    def touched_hours(self) -> dict[str, dict[str, int]]:
        """Merchant -> the local hours of its new redemptions ("2022-06-24T10" -> that hour as the local
        clock's seconds // 3600), merchants in the order they first appear."""
        hours: dict[str, dict[str, int]] = defaultdict(dict)
        for item in self._batch.redemptions:
            hours[item.merchant_id][_hour(item.at)] = self._clock.seconds(item.at) // 3600
        return hours

    @cached_property
    def sharing(self) -> frozenset[str]:
        """The persons of the identities with a device or a phone that another of them has too: only
        they can be linked to another redeemer."""
        ids = self._batch.identities
        found: set[str] = set()
        for of_person in (ids.devices_of, ids.phones_of):
            holders = Counter(chain.from_iterable(of_person.values()))
            shared = {digest for digest, count in holders.items() if count > 1}
            if shared:
                sharing = map(not_, map(shared.isdisjoint, of_person.values()))
                found.update(compress(of_person.keys(), sharing))
        return frozenset(found)


RuleFn = Callable[[EventBatch], list[Finding]]


def _day(at: datetime) -> date:
    return to_local(at).date()


def _hour(at: datetime) -> str:
    return to_local(at).strftime("%Y-%m-%dT%H")


def _listed(items: Iterable[str]) -> list[str]:
    return list(items)[:MAX_LISTED]


def _short(digest: str) -> str:
    return digest[:12]  # enough to tell devices apart on screen; the key makes it irreversible


def _of_day(batch: EventBatch, merchant_id: str, day: date) -> list[RedemptionFact]:
    return batch.index.merchant(merchant_id).of_day(day)


def _jurisdiction(batch: EventBatch, merchant_id: str) -> str | None:
    merchant = batch.merchants.get(merchant_id)
    return None if merchant is None else merchant.jurisdiction


def hugs(item: RedemptionFact, margin_bp: int) -> bool:
    """The amount the threshold is met on lies within `margin_bp` above one of the voucher's floors."""
    return any(floor <= item.counted_fen <= floor + floor * margin_bp // 10_000 for floor in item.floors)


def _hugging(items: Iterable[RedemptionFact], margin_bp: int) -> list[RedemptionFact]:
    """The items that `hugs` the margin, each voucher's floors' margins worked out once."""
    spans_of: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    found = []
    for item in items:
        spans = spans_of.get(item.floors)
        if spans is None:
            spans = spans_of[item.floors] = [(f, f + f * margin_bp // 10_000) for f in item.floors]
        if any(low <= item.counted_fen <= high for low, high in spans):
            found.append(item)
    return found


def self_claim_self_redeem(batch: EventBatch) -> list[Finding]:
    """自领自核: vouchers spent at a merchant by persons linked to it: a phone that is the merchant's contact
    phone, or a device shared with the person who holds that phone. Per merchant and local day."""
    findings = []
    for merchant_id, days in batch.index.touched_days.items():
        merchant = batch.merchants.get(merchant_id)
        if merchant is None or merchant.contact_phone_digest is None:
            continue
        phone = merchant.contact_phone_digest
        owners = batch.identities.persons_with_phone.get(phone, frozenset())
        owner_devices = frozenset().union(*(batch.identities.devices_of.get(p, frozenset()) for p in owners))
        for day in sorted(days):
            linked: list[dict[str, object]] = []
            of_day = _of_day(batch, merchant_id, day)
            for item in of_day:
                links = []
                if phone in batch.identities.phones_of.get(item.person_id, frozenset()):
                    links.append("phone")
                shared = batch.identities.devices_of.get(item.person_id, frozenset()) & owner_devices
                if shared:
                    links.append("device")
                if links:
                    linked.append(
                        {
                            "redemption_id": item.redemption_id,
                            "person_id": item.person_id,
                            "linked_by": links,
                            "devices": sorted(_short(d) for d in shared),
                            "payable_fen": item.payable_fen,
                            "subsidy_fen": item.subsidy_fen,
                            "at": item.at.isoformat(),
                        }
                    )
            if not linked:
                continue
            findings.append(
                Finding(
                    rule=Rule.SELF_CLAIM_SELF_REDEEM,
                    campaign_id=merchant.campaign_id,
                    subject_kind=SubjectKind.MERCHANT,
                    subject_id=merchant_id,
                    window=day.isoformat(),
                    figure=len(linked),
                    threshold=1,
                    unit="count",
                    summary=f"{len(linked)} voucher(s) spent by persons linked to the merchant's contact "
                    f"phone {merchant.contact_phone_masked or '(sealed)'} on {day.isoformat()}",
                    evidence={
                        "contact_phone_masked": merchant.contact_phone_masked,
                        "linked_persons": sorted({str(entry["person_id"]) for entry in linked}),
                        "redemptions": linked[:MAX_LISTED],
                        "redemption_count": len(linked),
                        "subsidy_fen": sum(int(str(entry["subsidy_fen"])) for entry in linked),
                    },
                    at=max(item.at for item in of_day),
                    jurisdiction=merchant.jurisdiction,
                )
            )
    return findings


def threshold_hugging(batch: EventBatch) -> list[Finding]:
    """金额贴近门槛: on one local day, the share of a merchant's redemptions of threshold vouchers whose amount
    sits just above the threshold (a faked order is made to just qualify)."""
    findings = []
    for merchant_id, days in batch.index.touched_days.items():
        for day in sorted(days):
            eligible = [item for item in _of_day(batch, merchant_id, day) if item.floors]
            if not eligible:
                continue
            settings = batch.settings_for(eligible[0].campaign_id)
            hugging = _hugging(eligible, settings.hug_margin_bp)
            share = len(hugging) * 10_000 // len(eligible)
            if len(eligible) < settings.hug_min_redemptions or share < settings.hug_share_bp:
                continue
            findings.append(
                Finding(
                    rule=Rule.THRESHOLD_HUGGING,
                    campaign_id=eligible[0].campaign_id,
                    subject_kind=SubjectKind.MERCHANT,
                    subject_id=merchant_id,
                    window=day.isoformat(),
                    figure=share,
                    threshold=settings.hug_share_bp,
                    unit="bp",
                    summary=f"{len(hugging)} of {len(eligible)} threshold redemptions on {day.isoformat()} "
                    f"within {settings.hug_margin_bp / 100:g} % above the threshold",
                    evidence={
                        "hugging": len(hugging),
                        "eligible": len(eligible),
                        "margin_bp": settings.hug_margin_bp,
                        "min_redemptions": settings.hug_min_redemptions,
                        "redemption_ids": _listed(item.redemption_id for item in hugging),
                        "amounts_fen": _listed(str(item.counted_fen) for item in hugging),
                        "persons": sorted({item.person_id for item in hugging})[:MAX_LISTED],
                    },
                    at=max(item.at for item in eligible),
                    jurisdiction=_jurisdiction(batch, merchant_id),
                )
            )
    return findings


def split_orders(batch: EventBatch) -> list[Finding]:
    """拆单: one person at one merchant, several purchases in a row each just meeting a floor, each within
    `split_window_minutes` of the previous one (one purchase split to use several vouchers)."""
    findings = []
    for merchant_id, days in batch.index.touched_days.items():
        for day in sorted(days):
            by_person: dict[str, list[RedemptionFact]] = defaultdict(list)
            for item in _of_day(batch, merchant_id, day):
                by_person[item.person_id].append(item)
            for person_id, items in sorted(by_person.items()):
                settings = batch.settings_for(items[0].campaign_id)
                if len(items) < max(settings.split_min_orders, 2):
                    continue  # the run is a part of the person's orders
                run = _longest_run(
                    _hugging(items, settings.hug_margin_bp),
                    timedelta(minutes=settings.split_window_minutes),
                )
                if len(run) < max(settings.split_min_orders, 2):
                    continue
                findings.append(
                    Finding(
                        rule=Rule.SPLIT_ORDERS,
                        campaign_id=items[0].campaign_id,
                        subject_kind=SubjectKind.MERCHANT,
                        subject_id=merchant_id,
                        window=f"{day.isoformat()}/{person_id}",
                        figure=len(run),
                        threshold=max(settings.split_min_orders, 2),
                        unit="count",
                        summary=f"person {person_id} made {len(run)} purchases each just meeting the "
                        f"threshold within {settings.split_window_minutes} minutes of each other",
                        evidence={
                            "person_id": person_id,
                            "redemption_ids": [item.redemption_id for item in run],
                            "amounts_fen": [item.counted_fen for item in run],
                            "total_fen": sum(item.payable_fen for item in run),
                            "first_at": run[0].at.isoformat(),
                            "last_at": run[-1].at.isoformat(),
                            "window_minutes": settings.split_window_minutes,
                        },
                        at=run[-1].at,
                        jurisdiction=_jurisdiction(batch, merchant_id),
                    )
                )
    return findings


def _longest_run(items: list[RedemptionFact], gap: timedelta) -> list[RedemptionFact]:
    best: list[RedemptionFact] = []
    current: list[RedemptionFact] = []
    for item in sorted(items, key=lambda each: each.at):
        if current and item.at - current[-1].at > gap:
            current = []
        current.append(item)
        if len(current) > len(best):
            best = list(current)
    return best


def velocity(batch: EventBatch) -> list[Finding]:
    """核销频次异常: redemptions in one local clock hour far above the merchant's own baseline, the median of
    its busy hours (hours with any redemption) over the trailing days."""
    findings = []
    for merchant_id, touched in batch.index.touched_hours.items():
        history = batch.history.get(merchant_id, ())
        if not history:
            continue
        settings = batch.settings_for(history[0].campaign_id)
        view = batch.index.merchant(merchant_id)
        for hour in sorted(touched):
            in_hour = view.of_hour(touched[hour])
            if not in_hour:
                continue
            start = in_hour[0].at - timedelta(days=settings.velocity_baseline_days)
            baseline_counts = view.busy_hours_before(touched[hour], start)
            baseline = median_low(baseline_counts) if baseline_counts else 0
            limit = max(
                settings.velocity_min_per_hour,
                settings.velocity_factor * max(baseline, settings.velocity_baseline_floor),
            )
            if len(in_hour) < limit:
                continue
            findings.append(
                Finding(
                    rule=Rule.VELOCITY,
                    campaign_id=in_hour[0].campaign_id,
                    subject_kind=SubjectKind.MERCHANT,
                    subject_id=merchant_id,
                    window=hour,
                    figure=len(in_hour),
                    threshold=limit,
                    unit="per_hour",
                    summary=f"{len(in_hour)} redemptions in the hour {hour}:00, the merchant's median busy hour "
                    f"has {baseline}",
                    evidence={
                        "baseline_median": baseline,
                        "baseline_hours": len(baseline_counts),
                        "baseline_days": settings.velocity_baseline_days,
                        "factor": settings.velocity_factor,
                        "redemption_ids": _listed(item.redemption_id for item in in_hour),
                        "terminals": sorted({item.terminal_id for item in in_hour}),
                        "persons": len({item.person_id for item in in_hour}),
                    },
                    at=max(item.at for item in in_hour),
                    jurisdiction=_jurisdiction(batch, merchant_id),
                )
            )
    return findings


def _closed(hours: BusinessHours, minute: int, grace: int) -> bool:
    # open within `grace` minutes of any opening hour: a till closing up late is not fraud
    return not any(hours.is_open_at((minute + shift) % 1440) for shift in (-grace, 0, grace))


def off_hours(batch: EventBatch) -> list[Finding]:
    """非营业时间核销: redemptions while the merchant is closed by its own declared business hours (local
    time), beyond a grace at opening and closing; per merchant and local day."""
    findings = []
    for merchant_id, days in batch.index.touched_days.items():
        merchant = batch.merchants.get(merchant_id)
        if merchant is None or merchant.hours is None:
            continue
        settings = batch.settings_for(merchant.campaign_id)
        view = batch.index.merchant(merchant_id)
        for day in sorted(days):
            outside = [
                view.items[position]
                for position in view.day_positions(day)
                if _closed(merchant.hours, view.minute_of_day(position), settings.off_hours_grace_minutes)
            ]
            if len(outside) < max(settings.off_hours_min_redemptions, 1):
                continue
            findings.append(
                Finding(
                    rule=Rule.OFF_HOURS,
                    campaign_id=merchant.campaign_id,
                    subject_kind=SubjectKind.MERCHANT,
                    subject_id=merchant_id,
                    window=day.isoformat(),
                    figure=len(outside),
                    threshold=max(settings.off_hours_min_redemptions, 1),
                    unit="count",
                    summary=f"{len(outside)} redemptions on {day.isoformat()} outside the business hours "
                    f"{merchant.hours}",
                    evidence={
                        "business_hours": str(merchant.hours),
                        "grace_minutes": settings.off_hours_grace_minutes,
                        "redemption_ids": _listed(item.redemption_id for item in outside),
                        "local_times": _listed(to_local(item.at).strftime("%H:%M") for item in outside),
                    },
                    at=max(item.at for item in outside),
                    jurisdiction=merchant.jurisdiction,
                )
            )
    return findings


def refund_soon(batch: EventBatch) -> list[Finding]:
    """核销后短时退款: refunds within minutes of the redemption (a voucher "cashed" through a refund of the
    resident's part), per merchant and local day."""
    findings = []
    touched: dict[str, set[date]] = defaultdict(set)
    for refund in batch.refunds:
        touched[refund.merchant_id].add(_day(refund.at))
    for merchant_id, days in touched.items():
        refunds = batch.refund_history.get(merchant_id, ())
        if not refunds:
            continue
        settings = batch.settings_for(refunds[0].campaign_id)
        limit = timedelta(minutes=settings.refund_soon_minutes)
        refund_days = [_day(r.at) for r in refunds]
        for day in sorted(days):
            quick = [
                r
                for r, refund_day in zip(refunds, refund_days, strict=True)
                if refund_day == day and r.at - r.redeemed_at <= limit
            ]
            if len(quick) < max(settings.refund_soon_min_refunds, 1):
                continue
            findings.append(
                Finding(
                    rule=Rule.REFUND_SOON,
                    campaign_id=quick[0].campaign_id,
                    subject_kind=SubjectKind.MERCHANT,
                    subject_id=merchant_id,
                    window=day.isoformat(),
                    figure=len(quick),
                    threshold=max(settings.refund_soon_min_refunds, 1),
                    unit="count",
                    summary=f"{len(quick)} refunds on {day.isoformat()} within {settings.refund_soon_minutes} "
                    "minutes of their redemption",
                    evidence={
                        "minutes": settings.refund_soon_minutes,
                        "refunds": [
                            {
                                "redemption_id": r.redemption_id,
                                "person_id": r.person_id,
                                "amount_fen": r.amount_fen,
                                "seconds_after": int((r.at - r.redeemed_at).total_seconds()),
                            }
                            for r in quick[:MAX_LISTED]
                        ],
                    },
                    at=max(r.at for r in quick),
                    jurisdiction=_jurisdiction(batch, merchant_id),
                )
            )
    return findings


def refund_rate(batch: EventBatch) -> list[Finding]:
    """退款率异常: the share of a merchant's redemptions refunded (even partly), campaign to date."""
    findings = []
    latest: dict[str, RefundFact] = {}
    for refund in batch.refunds:
        if refund.merchant_id not in latest or refund.at > latest[refund.merchant_id].at:
            latest[refund.merchant_id] = refund
    for merchant_id, refund in sorted(latest.items()):
        totals = batch.totals.get(merchant_id)
        if totals is None or totals.redemptions == 0:
            continue
        settings = batch.settings_for(refund.campaign_id)
        rate = totals.refunded * 10_000 // totals.redemptions
        if totals.redemptions < settings.refund_rate_min_redemptions or rate < settings.refund_rate_bp:
            continue
        findings.append(
            Finding(
                rule=Rule.REFUND_RATE,
                campaign_id=refund.campaign_id,
                subject_kind=SubjectKind.MERCHANT,
                subject_id=merchant_id,
                window="to-date",
                figure=rate,
                threshold=settings.refund_rate_bp,
                unit="bp",
                summary=f"{totals.refunded} of {totals.redemptions} redemptions refunded",
                evidence={
                    "redemptions": totals.redemptions,
                    "refunded": totals.refunded,
                    "min_redemptions": settings.refund_rate_min_redemptions,
                    "latest_refund_of": refund.redemption_id,
                },
                at=refund.at,
                jurisdiction=_jurisdiction(batch, merchant_id),
            )
        )
    return findings


def device_farm(batch: EventBatch) -> list[Finding]:
    """设备聚集: claims from a device that many persons are registered on, or by a person whose app accounts
    sit on many devices (accounts bought or farmed to claim vouchers)."""
    findings = []
    devices: dict[str, ClaimFact] = {}
    persons: dict[str, ClaimFact] = {}
    for claim in batch.claims:
        devices[claim.device] = claim
        persons[claim.person_id] = claim
    ids = batch.identities
    for device, claim in sorted(devices.items()):
        settings = batch.settings_for(claim.campaign_id)
        on_device = ids.persons_on_device.get(device, frozenset())
        if len(on_device) >= settings.farm_persons_per_device:
            findings.append(
                Finding(
                    rule=Rule.DEVICE_FARM,
                    campaign_id=claim.campaign_id,
                    subject_kind=SubjectKind.DEVICE,
                    subject_id=device,
                    window="to-date",
                    figure=len(on_device),
                    threshold=settings.farm_persons_per_device,
                    unit="count",
                    summary=f"{len(on_device)} persons registered on device {_short(device)}",
                    evidence={"device": _short(device), "persons": sorted(on_device)[:MAX_LISTED]},
                    at=claim.at,
                )
            )
    for person_id, claim in sorted(persons.items()):
        settings = batch.settings_for(claim.campaign_id)
        own = ids.devices_of.get(person_id, frozenset())
        if len(own) >= settings.farm_devices_per_person:
            findings.append(
                Finding(
                    rule=Rule.DEVICE_FARM,
                    campaign_id=claim.campaign_id,
                    subject_kind=SubjectKind.PERSON,
                    subject_id=person_id,
                    window="to-date",
                    figure=len(own),
                    threshold=settings.farm_devices_per_person,
                    unit="count",
                    summary=f"person {person_id} has app accounts on {len(own)} devices",
                    evidence={"person_id": person_id, "devices": sorted(_short(d) for d in own)},
                    at=claim.at,
                )
            )
    return findings


def resale_ring(batch: EventBatch) -> list[Finding]:
    """倒卖券: a merchant where many of the redeemers are linked to each other (sharing a device or a phone
    with another of its redeemers) or claimed far away (in another district): vouchers bought from residents
    and all spent at one till. Over the trailing `ring_window_days`, to date."""
    findings = []
    latest: dict[str, datetime] = {}
    for item in batch.redemptions:
        latest[item.merchant_id] = max(item.at, latest.get(item.merchant_id, item.at))
    ids = batch.identities
    for merchant_id, until in sorted(latest.items()):
        merchant = batch.merchants.get(merchant_id)
        history = batch.history.get(merchant_id, ())
        if merchant is None or not history:
            continue
        settings = batch.settings_for(merchant.campaign_id)
        since = until - timedelta(days=settings.ring_window_days)
        recent = batch.index.merchant(merchant_id).between(since, until)
        redeemers = {item.person_id for item in recent}
        if len(redeemers) < max(settings.ring_min_redeemers, 1):
            continue
        device_owners: dict[str, set[str]] = defaultdict(set)
        phone_owners: dict[str, set[str]] = defaultdict(set)
        for person in redeemers & batch.index.sharing:  # no one else has the others' devices and phones
            for device in ids.devices_of.get(person, frozenset()):
                device_owners[device].add(person)
            for phone in ids.phones_of.get(person, frozenset()):
                phone_owners[phone].add(person)
        shared = {d: owners for d, owners in device_owners.items() if len(owners) > 1}
        linked = set().union(*shared.values(), *(o for o in phone_owners.values() if len(o) > 1))
        far = {item.person_id for item in recent if item.claim_district != merchant.district}
        linked_share = len(linked) * 10_000 // len(redeemers)
        far_share = len(far) * 10_000 // len(redeemers)
        flagged = linked | far
        if linked_share >= settings.ring_linked_share_bp:
            figure, threshold, what = linked_share, settings.ring_linked_share_bp, "linked"
        elif far_share >= settings.ring_far_share_bp:
            figure, threshold, what = far_share, settings.ring_far_share_bp, "far"
        else:
            continue
        findings.append(
            Finding(
                rule=Rule.RESALE_RING,
                campaign_id=merchant.campaign_id,
                subject_kind=SubjectKind.MERCHANT,
                subject_id=merchant_id,
                window="to-date",
                figure=figure,
                threshold=threshold,
                unit="bp",
                summary=f"of {len(redeemers)} redeemers in {settings.ring_window_days} days, {len(linked)} share "
                f"a device or phone with another, {len(far)} claimed in another district",
                evidence={
                    "crossed": what,
                    "redeemers": len(redeemers),
                    "linked_persons": sorted(linked)[:MAX_LISTED],
                    "far_persons": sorted(far)[:MAX_LISTED],
                    "linked_share_bp": linked_share,
                    "far_share_bp": far_share,
                    "shared_devices": {
                        _short(d): sorted(owners)[:MAX_LISTED]
                        for d, owners in sorted(shared.items())[:MAX_LISTED]
                    },
                    "merchant_district": merchant.district,
                    "redemption_ids": _listed(
                        item.redemption_id for item in recent if item.person_id in flagged
                    ),
                },
                at=until,
                jurisdiction=merchant.jurisdiction,
            )
        )
    return findings


EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)


def distance_km(lng_a: float, lat_a: float, lng_b: float, lat_b: float) -> float:
    """The great-circle distance (haversine). GCJ-02's offset, a few hundred metres that vary slowly over a
    city, is lost in the `travel_min_km` that a pair must cover before its speed counts."""
    phi_a, phi_b = math.radians(lat_a), math.radians(lat_b)
    d_phi, d_lambda = phi_b - phi_a, math.radians(lng_b - lng_a)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _claims_of_day(batch: EventBatch) -> dict[tuple[str, str, date], list[ClaimFact]]:
    """(campaign, person, local day) touched by the new claims -> all of that day's claims, by time."""
    touched = {(claim.campaign_id, claim.person_id, _day(claim.at)) for claim in batch.claims}
    days: dict[tuple[str, str, date], dict[str, ClaimFact]] = defaultdict(dict)
    earlier = (
        claim for person in {key[1] for key in touched} for claim in batch.claim_history.get(person, ())
    )
    for claim in (*earlier, *batch.claims):  # one claim per voucher: the history holds the new ones too
        key = (claim.campaign_id, claim.person_id, _day(claim.at))
        if key in touched:
            days[key][claim.voucher_id] = claim
    return {key: sorted(found.values(), key=lambda c: (c.at, c.event_id)) for key, found in days.items()}


@dataclass(frozen=True)
class _Trip:
    """Two claims of one person, in time order, with the distance and the time between them."""

    first: ClaimFact
    second: ClaimFact
    km: float
    seconds: float

    @property
    def speed_kmh(self) -> int:
        return int(self.km * 3600 / self.seconds)

    def evidence(self) -> dict[str, object]:
        return {
            "first_voucher_id": self.first.voucher_id,
            "first_at": self.first.at.isoformat(),
            "first_district": self.first.district,
            "first_location": [self.first.lng, self.first.lat],
            "second_voucher_id": self.second.voucher_id,
            "second_at": self.second.at.isoformat(),
            "second_district": self.second.district,
            "second_location": [self.second.lng, self.second.lat],
            "distance_km": round(self.km, 1),
            "minutes": round(self.seconds / 60, 1),
            "speed_kmh": self.speed_kmh,
        }


def _trip(first: ClaimFact, second: ClaimFact) -> _Trip | None:
    if first.lng is None or first.lat is None or second.lng is None or second.lat is None:
        return None  # a claim with no recorded position (a lottery win, an older claim) says nothing
    km = distance_km(first.lng, first.lat, second.lng, second.lat)
    return _Trip(first, second, km, max((second.at - first.at).total_seconds(), 1.0))  # same second: 1 s


def location_spoofing(batch: EventBatch) -> list[Finding]:
    """位置伪造: per person and local day, (a) claims made from a network that the IP-region table places
    outside the city while the reported position was inside it (every claim's position passed the
    geofence: its district is where it claimed to be); (b) impossible travel: two claims whose distance,
    at least `travel_min_km`, over the time between them means a speed above `travel_max_kmh`.
    An unknown network, a network inside the city and a claim with no recorded position say nothing."""
    findings = []
    for (campaign_id, person_id, day), claims in sorted(_claims_of_day(batch).items()):
        settings = batch.settings_for(campaign_id)
        outside = []
        for claim in claims:
            region = batch.ip_regions.get(claim.ip_prefix or "")
            if region is not None and not region.in_city and claim.district:
                outside.append(
                    {
                        "voucher_id": claim.voucher_id,
                        "at": claim.at.isoformat(),
                        "district": claim.district,
                        "ip_prefix": claim.ip_prefix,
                        "ip_region": region.region,
                    }
                )
        # every pair, not only consecutive claims: two short hops can add up to an impossible one
        travel = [
            trip
            for i, first in enumerate(claims)
            for second in claims[i + 1 :]
            if (trip := _trip(first, second)) is not None
            and trip.km >= settings.travel_min_km
            and trip.speed_kmh > settings.travel_max_kmh
        ]
        ip_crossed = len(outside) >= max(settings.ip_outside_min_claims, 1)
        if not ip_crossed and not travel:
            continue
        crossed = [name for name, hit in (("ip_region", ip_crossed), ("travel", bool(travel))) if hit]
        parts = []
        if ip_crossed:
            regions = sorted({str(entry["ip_region"]) for entry in outside})
            parts.append(f"{len(outside)} claim(s) from networks in {', '.join(regions)}, outside the city")
        if travel:
            fastest = max(travel, key=lambda trip: trip.speed_kmh)
            parts.append(
                f"claims {fastest.km:.1f} km apart within {fastest.seconds / 60:.1f} minutes "
                f"({fastest.speed_kmh} km/h)"
            )
            figure, threshold, unit = fastest.speed_kmh, settings.travel_max_kmh, "km_per_hour"
        else:
            figure, threshold, unit = len(outside), max(settings.ip_outside_min_claims, 1), "count"
        findings.append(
            Finding(
                rule=Rule.LOCATION_SPOOFING,
                campaign_id=campaign_id,
                subject_kind=SubjectKind.PERSON,
                subject_id=person_id,
                window=day.isoformat(),
                figure=figure,
                threshold=threshold,
                unit=unit,
                summary=f"person {person_id} on {day.isoformat()}: {'; '.join(parts)}",
                evidence={
                    "person_id": person_id,
                    "crossed": crossed,
                    "claim_ids": _listed(claim.voucher_id for claim in claims),
                    "ip_outside": outside[:MAX_LISTED],
                    "impossible_travel": [trip.evidence() for trip in travel[:MAX_LISTED]],
                    "travel_pairs": len(travel),
                    "travel_max_kmh": settings.travel_max_kmh,
                    "travel_min_km": settings.travel_min_km,
                },
                at=claims[-1].at,
            )
        )
    return findings


RULES: tuple[RuleFn, ...] = (
    self_claim_self_redeem,
    threshold_hugging,
    split_orders,
    velocity,
    off_hours,
    refund_soon,
    refund_rate,
    device_farm,
    resale_ring,
    location_spoofing,
)


def evaluate(batch: EventBatch, rules: Sequence[RuleFn] = RULES) -> list[Finding]:
    """Every rule over one batch; a finding per (rule, subject, window)."""
    return [finding for rule in rules for finding in rule(batch)]
