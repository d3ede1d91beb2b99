"""The fraud rules, each a pure function from one batch of events and its context to findings.

A rule recomputes the whole window (a merchant's local day, a local hour, to-date) that the batch's new
events touch, from the context's history, so that a finding is always complete: the alert it updates
carries every transaction of the window, not only the ones of the last batch. Rules never read a clock;
times come from the events. Money is integer fen, shares integer basis points.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median_low

from huimin.kit.clock import to_local
from huimin.merchants.domain import BusinessHours
from huimin.risk.domain import DEFAULT_SETTINGS, Finding, RiskSettings, Rule, SubjectKind
from huimin.risk.ip_regions import IpRegion

__all__ = [
    "RULES",
    "ClaimFact",
    "EventBatch",
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


@dataclass(frozen=True)
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


RuleFn = Callable[[EventBatch], list[Finding]]


def _day(at: datetime) -> date:
    return to_local(at).date()


def _hour(at: datetime) -> str:
    return to_local(at).strftime("%Y-%m-%dT%H")


def _listed(items: Iterable[str]) -> list[str]:
    return list(items)[:MAX_LISTED]


def _short(digest: str) -> str:
    return digest[:12]  # enough to tell devices apart on screen; the key makes it irreversible


def _touched_days(redemptions: Iterable[RedemptionFact]) -> dict[str, set[date]]:
    days: dict[str, set[date]] = defaultdict(set)
    for item in redemptions:
        days[item.merchant_id].add(_day(item.at))
    return days


def _of_day(batch: EventBatch, merchant_id: str, day: date) -> list[RedemptionFact]:
    return [item for item in batch.history.get(merchant_id, ()) if _day(item.at) == day]


def _jurisdiction(batch: EventBatch, merchant_id: str) -> str | None:
    merchant = batch.merchants.get(merchant_id)
    return None if merchant is None else merchant.jurisdiction


def hugs(item: RedemptionFact, margin_bp: int) -> bool:
    """The amount the threshold is met on lies within `margin_bp` above one of the voucher's floors."""
    return any(floor <= item.counted_fen <= floor + floor * margin_bp // 10_000 for floor in item.floors)


def self_claim_self_redeem(batch: EventBatch) -> list[Finding]:
    """自领自核: vouchers spent at a merchant by persons linked to it: a phone that is the merchant's contact
    phone, or a device shared with the person who holds that phone. Per merchant and local day."""
    findings = []
    for merchant_id, days in _touched_days(batch.redemptions).items():
        merchant = batch.merchants.get(merchant_id)
        if merchant is None or merchant.contact_phone_digest is None:
            continue
        phone = merchant.contact_phone_digest
        owners = batch.identities.persons_with_phone.get(phone, frozenset())
        owner_devices = frozenset().union(*(batch.identities.devices_of.get(p, frozenset()) for p in owners))
        for day in sorted(days):
            linked: list[dict[str, object]] = []
            for item in _of_day(batch, merchant_id, day):
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
                    at=max(item.at for item in _of_day(batch, merchant_id, day)),
                    jurisdiction=merchant.jurisdiction,
                )
            )
    return findings


def threshold_hugging(batch: EventBatch) -> list[Finding]:
    """金额贴近门槛: on one local day, the share of a merchant's redemptions of threshold vouchers whose amount
    sits just above the threshold (a faked order is made to just qualify)."""
    findings = []
    for merchant_id, days in _touched_days(batch.redemptions).items():
        for day in sorted(days):
            eligible = [item for item in _of_day(batch, merchant_id, day) if item.floors]
            if not eligible:
                continue
            settings = batch.settings_for(eligible[0].campaign_id)
            hugging = [item for item in eligible if hugs(item, settings.hug_margin_bp)]
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
    for merchant_id, days in _touched_days(batch.redemptions).items():
        for day in sorted(days):
            by_person: dict[str, list[RedemptionFact]] = defaultdict(list)
            for item in _of_day(batch, merchant_id, day):
                by_person[item.person_id].append(item)
            for person_id, items in sorted(by_person.items()):
                settings = batch.settings_for(items[0].campaign_id)
                run = _longest_run(
                    [item for item in items if hugs(item, settings.hug_margin_bp)],
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
    hours: dict[str, set[str]] = defaultdict(set)
    for item in batch.redemptions:
        hours[item.merchant_id].add(_hour(item.at))
    for merchant_id, touched in hours.items():
        history = batch.history.get(merchant_id, ())
        if not history:
            continue
        settings = batch.settings_for(history[0].campaign_id)
        counts: dict[str, list[RedemptionFact]] = defaultdict(list)
        for item in history:
            counts[_hour(item.at)].append(item)
        for hour in sorted(touched):
            in_hour = counts.get(hour, [])
            if not in_hour:
                continue
            start = in_hour[0].at - timedelta(days=settings.velocity_baseline_days)
            baseline_hours = sorted(
                {_hour(item.at) for item in history if start <= item.at and _hour(item.at) < hour}
            )
            baseline = median_low([len(counts[h]) for h in baseline_hours]) if baseline_hours else 0
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
                        "baseline_hours": len(baseline_hours),
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


def _closed(hours: BusinessHours, at: datetime, grace: int) -> bool:
    local = to_local(at)
    minute = local.hour * 60 + local.minute
    # open within `grace` minutes of any opening hour: a till closing up late is not fraud
    return not any(hours.is_open_at((minute + shift) % 1440) for shift in (-grace, 0, grace))


def off_hours(batch: EventBatch) -> list[Finding]:
    """非营业时间核销: redemptions while the merchant is closed by its own declared business hours (local
    time), beyond a grace at opening and closing; per merchant and local day."""
    findings = []
    for merchant_id, days in _touched_days(batch.redemptions).items():
        merchant = batch.merchants.get(merchant_id)
        if merchant is None or merchant.hours is None:
            continue
        settings = batch.settings_for(merchant.campaign_id)
        for day in sorted(days):
            outside = [
                item
                for item in _of_day(batch, merchant_id, day)
                if _closed(merchant.hours, item.at, settings.off_hours_grace_minutes)
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
        for day in sorted(days):
            quick = [r for r in refunds if _day(r.at) == day and r.at - r.redeemed_at <= limit]
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
        recent = [item for item in history if since <= item.at <= until]
        redeemers = {item.person_id for item in recent}
        if len(redeemers) < max(settings.ring_min_redeemers, 1):
            continue
        device_owners: dict[str, set[str]] = defaultdict(set)
        phone_owners: dict[str, set[str]] = defaultdict(set)
        for person in redeemers:
            for device in ids.devices_of.get(person, frozenset()):
                device_owners[device].add(person)
            for phone in ids.phones_of.get(person, frozenset()):
                phone_owners[phone].add(person)
        shared = {d: owners for d, owners in device_owners.items() if len(owners) > 1}
        linked = set().union(*shared.values(), *(o for o in phone_owners.values() if len(o) > 1))
        far = {item.person_id for item in recent if item.claim_district != merchant.district}
        linked_share = len(linked) * 10_000 // len(redeemers)
        far_share = len(far) * 10_000 // len(redeemers)
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
                        item.redemption_id for item in recent if item.person_id in linked | far
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
