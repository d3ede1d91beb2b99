"""Use cases of precision allocation: propose the next round's split, decide on it, rank offers.

The figures come from the campaign's own data: claims and redemptions per batch from the report
rollups (`reports.service.figures`, so they agree with the dashboard), how fast each round's stock
went from the vouchers, how long vouchers waited before they were spent from a sample of recent
redemptions, and complaints about merchants of each batch's categories. The rules are in `domain`.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from huimin.allocation import domain
from huimin.allocation.models import AllocationPlanRow
from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.domain import planned_by_funder
from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.campaigns.service import STOCK_SHARDS, as_planned, get_campaign, stock_shards
from huimin.claims.express import ExpressGate
from huimin.claims.gate import ClaimGate, RedisGate
from huimin.claims.models import VoucherRow
from huimin.complaints.domain import Category as ComplaintCategory
from huimin.complaints.models import ComplaintRow
from huimin.db import unit_of_work
from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.money import Fen
from huimin.kit.terms import District, Jurisdiction
from huimin.merchants.models import MerchantRow
from huimin.redemptions.domain import HOLDS_VOUCHER
from huimin.redemptions.models import RedemptionRow
from huimin.reports import service as reports
from huimin.reports.domain import Dimension
from huimin.reports.models import RedemptionDayRow

__all__ = ["OfferLine", "decide", "get_plan", "list_plans", "offers_for", "propose", "push_round_stock"]

log = logging.getLogger("huimin.allocation")

# How many recent redemptions of a batch give its median days from claim to redemption.
DAYS_SAMPLE = 2_000
# Complaint categories that concern how merchants treat vouchers (not "cannot claim").
MERCHANT_COMPLAINTS = tuple(
    category.value
    for category in (
        ComplaintCategory.MERCHANT_REFUSED_VOUCHER,
        ComplaintCategory.DISGUISED_PRICE_INCREASE,
        ComplaintCategory.PRODUCT_QUALITY,
        ComplaintCategory.SUSPECTED_CASH_OUT,
    )
)


async def propose(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    limits: domain.Limits,
    clock: Clock,
    round_id: str | None = None,
) -> AllocationPlanRow:
    """The planner's proposal for the next round that has not opened (or `round_id`), recorded and
    audited. An earlier open proposal for that round is superseded."""
    principal.require(Permission.ALLOCATION_PLAN)
    campaign = await get_campaign(session, campaign_id=campaign_id)
    round_ = await _round_to_plan(session, campaign=campaign, round_id=round_id, now=clock.now())
    records, figures = await _records(
        session, principal=principal, campaign=campaign, round_=round_, clock=clock
    )
    if not records:
        raise ConflictError(f"round {round_.code} releases no stock to plan", code="nothing_to_plan")
    plan = domain.plan(records, limits, _headroom(campaign))
    now = clock.now()
    await session.execute(
        update(AllocationPlanRow)
        .where(AllocationPlanRow.round_id == round_.id, AllocationPlanRow.status == "proposed")
        .values(status="superseded", decided_at=now, decided_by=principal.actor_id)
    )
    row = AllocationPlanRow(
        id=new_id("alp", at=now),
        campaign_id=campaign.id,
        round_id=round_.id,
        status="proposed",
        limits=_limits_json(limits),
        lines=[
            {
                **_record_json(record),
                "proposed": line.proposed,
                "ratio": line.ratio,
                "figures": figures[record.code],
            }
            for record, line in zip(records, plan.lines, strict=True)
        ],
        average_merit=plan.average_merit,
        fallback=plan.fallback,
        proposed_at=now,
        proposed_by=principal.actor_id,
    )
    session.add(row)
    await audit.record(
        session,
        principal=principal,
        action="allocation.proposed",
        object_type="allocation_plan",
        object_id=row.id,
        at=now,
        detail={"round": round_.code, "stock": plan.stock(), "limits": row.limits, "fallback": plan.fallback},
    )
    await session.flush()
    return row


async def decide(
    session: AsyncSession,
    *,
    principal: Principal,
    plan_id: str,
    accept: bool,
    clock: Clock,
    stock: Mapping[str, int] | None = None,
    note: str = "",
    gate: ClaimGate | None = None,
) -> AllocationPlanRow:
    """Accept the proposal (as proposed, or with the admin's own `stock`, checked against the same
    limits) and set the round's stock; or reject it, with a reason. Only before the round opens.

    With the Redis claim gate, the round's gate is provisioned again with the new stock (nobody has
    claimed from it yet). PostgreSQL keeps the last word on every claim, so should this transaction
    fail to commit after that, the gate only admits claims the database then refuses, until the next
    `huimin claims reconcile`. Express claims, where Redis has the last word, get the new stock only
    once this has committed: the caller then calls `push_round_stock`."""
    principal.require(Permission.ALLOCATION_PLAN)
    row = await get_plan(session, principal=principal, plan_id=plan_id)
    if row.status != "proposed":
        raise ConflictError(f"allocation plan {plan_id} is already {row.status}", code="plan_decided")
    round_ = await session.get(RoundRow, row.round_id, with_for_update=True)
    if round_ is None:  # a foreign key: only a broken database gets here
        raise NotFound(f"no round {row.round_id!r}", code="unknown_round")
    now = clock.now()
    if round_.opens_at <= now:
        raise ConflictError(
            f"round {round_.code} has opened: its stock can no longer change", code="round_open"
        )
    if not accept and not note.strip():
        raise InvalidInput([Problem("note", "a rejection needs a reason")], code="invalid_decision")
    decided = dict(stock) if stock is not None else {line["batch"]: line["proposed"] for line in row.lines}
    if accept:
        records = [_record_of(line) for line in row.lines]
        campaign = await get_campaign(session, campaign_id=row.campaign_id)
        if problems := domain.check(records, decided, _limits_of(row.limits), _headroom(campaign)):
            raise InvalidInput(problems, code="invalid_allocation", summary="the allocation breaks a limit")
        await _apply(session, round_=round_, stock=decided, records=records)
        if isinstance(gate, RedisGate):
            await gate.provision(round_.id, await _stock_left(session, round_id=round_.id), {})
    row.status = "accepted" if accept else "rejected"
    row.decided_at = now
    row.decided_by = principal.actor_id
    row.decision_note = note.strip() or None
    row.applied_stock = decided if accept else None
    edited = (
        accept and stock is not None and decided != {line["batch"]: line["proposed"] for line in row.lines}
    )
    await audit.record(
        session,
        principal=principal,
        action="allocation.accepted" if accept else "allocation.rejected",
        object_type="allocation_plan",
        object_id=row.id,
        at=now,
        detail={"round": round_.code, "stock": decided if accept else None, "edited": edited, "note": note},
    )
    await session.flush()
    return row


async def get_plan(session: AsyncSession, *, principal: Principal, plan_id: str) -> AllocationPlanRow:
    principal.require(Permission.ALLOCATION_PLAN)
    row = await session.get(AllocationPlanRow, plan_id)
    if row is None:
        raise NotFound(f"no allocation plan {plan_id!r}", code="unknown_plan")
    return row


async def list_plans(
    session: AsyncSession, *, principal: Principal, campaign_id: str, limit: int = 50
) -> Sequence[AllocationPlanRow]:
    principal.require(Permission.ALLOCATION_PLAN)
    query = (
        select(AllocationPlanRow)
        .where(AllocationPlanRow.campaign_id == campaign_id)
        .order_by(AllocationPlanRow.proposed_at.desc(), AllocationPlanRow.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def _round_to_plan(
    session: AsyncSession, *, campaign: CampaignRow, round_id: str | None, now: datetime
) -> RoundRow:
    if round_id is not None:
        round_ = await session.get(RoundRow, round_id)
        if round_ is None or round_.campaign_id != campaign.id:
            raise NotFound(f"no round {round_id!r} in campaign {campaign.code}", code="unknown_round")
        if round_.opens_at <= now:
            raise ConflictError(f"round {round_.code} has opened: plan a later one", code="round_open")
        return round_
    query = (
        select(RoundRow)
        .where(RoundRow.campaign_id == campaign.id, RoundRow.opens_at > now)
        .order_by(RoundRow.opens_at, RoundRow.code)
        .limit(1)
    )
    found = await session.scalar(query)
    if found is None:
        raise ConflictError(f"campaign {campaign.code} has no round left to plan", code="nothing_to_plan")
    return found


async def _records(
    session: AsyncSession, *, principal: Principal, campaign: CampaignRow, round_: RoundRow, clock: Clock
) -> tuple[list[domain.BatchRecord], dict[str, dict[str, Any]]]:
    """Each batch of the round with what earlier rounds showed for it, and the figures shown with it."""
    batches = (
        await session.scalars(
            select(BatchRow)
            .where(BatchRow.campaign_id == campaign.id)
            .options(selectinload(BatchRow.funding))
            .order_by(BatchRow.position)
        )
    ).all()
    planned = {
        row.batch_id: row.stock
        for row in await session.scalars(select(RoundBatchRow).where(RoundBatchRow.round_id == round_.id))
    }
    report = await reports.figures(
        session,
        principal=principal,
        campaign_id=campaign.id,
        query=reports.Query(until=None, by=Dimension.BATCH),
        clock=clock,
    )
    by_batch = {line.key: line.figures for line in report.lines}
    sold_out = await _sold_out_shares(session, campaign_id=campaign.id, now=clock.now())
    days = await _days_to_redeem(session, batch_ids=[batch.id for batch in batches if batch.id in planned])
    complaints = await _merchant_complaints(session, campaign_id=campaign.id)
    funder_codes = await _funder_codes(session, campaign_id=campaign.id)
    records, figures = [], {}
    for batch in batches:
        if batch.id not in planned:
            continue
        seen = by_batch.get(batch.id)
        scope_jurisdictions = frozenset(batch.jurisdictions)
        record = domain.BatchRecord(
            code=batch.code,
            categories=frozenset(batch.categories),
            jurisdictions=scope_jurisdictions,
            unit_value=Fen(batch.max_value_fen),
            funding=tuple((funder_codes[share.funder_id], share.share_bp) for share in batch.funding),
            planned=planned[batch.id],
            released=(seen.released or 0) if seen else 0,
            claimed=(seen.claimed or 0) if seen else 0,
            redeemed=seen.redeemed if seen else 0,
            subsidy=Fen(seen.subsidy_fen if seen else 0),
            consumption=Fen(seen.consumption_fen if seen else 0),
            sold_out_share=_median(sold_out.get(batch.id, [])),
            days_to_redeem=days.get(batch.id),
            complaints=sum(
                count
                for (category, jurisdiction), count in complaints.items()
                if category in batch.categories
                and (not scope_jurisdictions or jurisdiction in scope_jurisdictions)
            ),
        )
        records.append(record)
        figures[record.code] = {
            "released": record.released,
            "claimed": record.claimed,
            "claim_through": round(record.claim_through, 4),
            "sold_out_share": None if record.sold_out_share is None else round(record.sold_out_share, 4),
            "redeemed": record.redeemed,
            "redemption_rate": round(record.redemption_rate, 4),
            "subsidy_fen": int(record.subsidy),
            "consumption_fen": int(record.consumption),
            "leverage": round(record.leverage, 2),
            "days_to_redeem": None if record.days_to_redeem is None else round(record.days_to_redeem, 1),
            "complaints": record.complaints,
            "merit": round(record.merit, 4) if record.has_history else None,
        }
    return records, figures


async def _sold_out_shares(
    session: AsyncSession, *, campaign_id: str, now: datetime
) -> dict[str, list[float]]:
    """For each batch, the share of each past round's window gone when its stock ran out (rounds that
    sold out only)."""
    claimed = (
        select(
            VoucherRow.round_id,
            VoucherRow.batch_id,
            func.count().label("claimed"),
            func.max(VoucherRow.claimed_at).label("last"),
        )
        .where(VoucherRow.campaign_id == campaign_id)
        .group_by(VoucherRow.round_id, VoucherRow.batch_id)
        .subquery()
    )
    query = (
        select(RoundRow.opens_at, RoundRow.closes_at, RoundBatchRow, claimed.c.claimed, claimed.c.last)
        .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
        .join(
            claimed,
            (claimed.c.round_id == RoundBatchRow.round_id) & (claimed.c.batch_id == RoundBatchRow.batch_id),
        )
        .where(RoundRow.campaign_id == campaign_id, RoundRow.opens_at <= now, RoundRow.mode == "first_come")
    )
    shares: dict[str, list[float]] = defaultdict(list)
    for opens_at, closes_at, stock, count, last in await session.execute(query):
        released = stock.stock + stock.recycled_in
        if released <= 0 or count < released or last is None:
            continue
        last = last if last.tzinfo else last.replace(tzinfo=opens_at.tzinfo)
        window = (closes_at - opens_at).total_seconds()
        shares[stock.batch_id].append(max(0.0, (last - opens_at).total_seconds()) / window if window else 0.0)
    return shares


async def _days_to_redeem(session: AsyncSession, *, batch_ids: Sequence[str]) -> dict[str, float]:
    found = {}
    for batch_id in batch_ids:
        query = (
            select(RedemptionRow.redeemed_at, VoucherRow.claimed_at)
            .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
            .where(RedemptionRow.batch_id == batch_id)
            .order_by(RedemptionRow.redeemed_at.desc())
            .limit(DAYS_SAMPLE)
        )
        waits = [
            (redeemed - claimed).total_seconds() / 86_400
            for redeemed, claimed in await session.execute(query)
        ]
        if waits:
            found[batch_id] = statistics.median(waits)
    return found


async def _merchant_complaints(session: AsyncSession, *, campaign_id: str) -> dict[tuple[str, str], int]:
    query = (
        select(MerchantRow.category, MerchantRow.jurisdiction, func.count())
        .select_from(ComplaintRow)
        .join(MerchantRow, MerchantRow.id == ComplaintRow.merchant_id)
        .where(ComplaintRow.campaign_id == campaign_id, ComplaintRow.category.in_(MERCHANT_COMPLAINTS))
        .group_by(MerchantRow.category, MerchantRow.jurisdiction)
    )
    return {(category, jurisdiction): count for category, jurisdiction, count in await session.execute(query)}


async def _funder_codes(session: AsyncSession, *, campaign_id: str) -> dict[str, str]:
    from huimin.campaigns.models import FunderRow

    rows = await session.execute(
        select(FunderRow.id, FunderRow.code).where(FunderRow.campaign_id == campaign_id)
    )
    return {funder_id: code for funder_id, code in rows}


async def _apply(
    session: AsyncSession,
    *,
    round_: RoundRow,
    stock: Mapping[str, int],
    records: Sequence[domain.BatchRecord],
) -> None:
    """Set the round's stock per batch. The round has not opened, so nothing has been claimed from it
    and its shards are laid out again from the new stock (plus any stock recycled into it)."""
    ids = dict(
        (
            await session.execute(
                select(BatchRow.code, BatchRow.id).where(BatchRow.campaign_id == round_.campaign_id)
            )
        ).all()
    )
    shards = 1 if session.get_bind().dialect.name == "sqlite" else STOCK_SHARDS
    for record in records:
        batch_id = ids[record.code]
        row = await session.get(RoundBatchRow, (round_.id, batch_id), with_for_update=True)
        if row is None:
            continue
        row.stock = stock[record.code]
        await session.execute(
            delete(StockShardRow).where(
                StockShardRow.round_id == round_.id, StockShardRow.batch_id == batch_id
            )
        )
        session.add_all(stock_shards(round_.id, batch_id, row.stock + row.recycled_in, shards))
    await session.flush()


def _headroom(campaign: CampaignRow) -> dict[str, int]:
    """Each funder's budget not yet promised to any round (the reserve for extra rounds)."""
    planned = as_planned(campaign)
    _, promised = planned_by_funder(planned)
    return {funder.code: int(funder.budget - promised.get(funder.code, Fen(0))) for funder in planned.funders}


async def push_round_stock(
    sessions: async_sessionmaker[AsyncSession], *, express: ExpressGate | None, plan: AllocationPlanRow
) -> None:
    """After an accepted plan has committed, give express claims (which Redis decides alone) the round's
    stock as the database now holds it. Should Redis fail here, the round keeps its old express stock
    until `huimin claims reconcile`: logged as an error, since the round opens on it."""
    if express is None or plan.status != "accepted":
        return
    async with unit_of_work(sessions) as session:
        left = await _stock_left(session, round_id=plan.round_id)
    try:
        await express.set_round_stock(plan.campaign_id, plan.round_id, left)
    except RedisError as error:
        log.error(
            "allocation %s committed but its stock did not reach express claims (%r): run `huimin claims "
            "reconcile` before round %s opens",
            plan.id,
            error,
            plan.round_id,
        )
        raise HuiminError(
            "the plan is accepted, but Redis did not take the new stock: run `huimin claims reconcile` "
            "before the round opens",
            code="stock_not_pushed",
            status=503,
        ) from None


async def _stock_left(session: AsyncSession, *, round_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(StockShardRow.batch_id, func.sum(StockShardRow.remaining))
        .where(StockShardRow.round_id == round_id)
        .group_by(StockShardRow.batch_id)
    )
    return {batch_id: int(left or 0) for batch_id, left in rows}


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _limits_json(limits: domain.Limits) -> dict[str, Any]:
    return {
        "max_change_bp": limits.max_change_bp,
        "min_category_share_bp": dict(limits.min_category_share_bp),
        "min_jurisdiction_share_bp": dict(limits.min_jurisdiction_share_bp),
    }


def _limits_of(data: Mapping[str, Any]) -> domain.Limits:
    return domain.Limits(
        max_change_bp=int(data["max_change_bp"]),
        min_category_share_bp=dict(data["min_category_share_bp"]),
        min_jurisdiction_share_bp=dict(data["min_jurisdiction_share_bp"]),
    )


def _record_json(record: domain.BatchRecord) -> dict[str, Any]:
    return {
        "batch": record.code,
        "categories": sorted(record.categories),
        "jurisdictions": sorted(record.jurisdictions),
        "unit_value_fen": int(record.unit_value),
        "funding": [list(share) for share in record.funding],
        "planned": record.planned,
    }


def _record_of(line: Mapping[str, Any]) -> domain.BatchRecord:
    """What `check` needs of a batch, from a stored line."""
    return domain.BatchRecord(
        code=line["batch"],
        categories=frozenset(line["categories"]),
        jurisdictions=frozenset(line["jurisdictions"]),
        unit_value=Fen(line["unit_value_fen"]),
        funding=tuple((funder, int(share)) for funder, share in line["funding"]),
        planned=int(line["planned"]),
    )


# -- personalised offers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferLine:
    round_id: str
    round_code: str
    batch_id: str
    batch_code: str
    batch_name: str
    rank: int
    affinity: float
    own_purchases: int
    district_share: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def offers_for(
    session: AsyncSession, *, partner_id: str, resident_id: str, clock: Clock
) -> list[OfferLine]:
    """The batches of the rounds open now, likeliest to be spent by this resident first. Every batch
    stays on the list (claiming still checks eligibility as always); the order uses the resident's own
    redeemed vouchers by category and what merchants in the resident's district redeemed, and nothing
    about the person. Each line says why it is where it is."""
    from huimin.eligibility import service as eligibility

    resident = await eligibility.get_resident(session, partner_id=partner_id, resident_id=resident_id)
    now = clock.now()
    open_stock = (
        await session.execute(
            select(RoundRow, BatchRow)
            .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
            .join(BatchRow, BatchRow.id == RoundBatchRow.batch_id)
            .where(RoundRow.opens_at <= now, RoundRow.closes_at > now)
            .order_by(RoundRow.opens_at, BatchRow.position)
        )
    ).all()
    own = dict(
        (
            await session.execute(
                select(RedemptionRow.category, func.count())
                .where(
                    RedemptionRow.person_id == resident.person_id,
                    RedemptionRow.status.in_([status.value for status in HOLDS_VOUCHER]),
                )
                .group_by(RedemptionRow.category)
            )
        ).all()
    )
    district = await _district_of(session, person_id=resident.person_id)
    nearby = await _district_purchases(session, district=district)
    ranked = domain.rank_offers(
        [
            domain.OfferBatch(
                code=f"{round_.id}/{batch.id}", categories=frozenset(batch.categories), position=index
            )
            for index, (round_, batch) in enumerate(open_stock)
        ],
        own=own,
        district=nearby,
    )
    by_key = {f"{round_.id}/{batch.id}": (round_, batch) for round_, batch in open_stock}
    lines = []
    for rank, offer in enumerate(ranked, start=1):
        round_, batch = by_key[offer.code]
        lines.append(
            OfferLine(
                round_id=round_.id,
                round_code=round_.code,
                batch_id=batch.id,
                batch_code=batch.code,
                batch_name=batch.name,
                rank=rank,
                affinity=round(offer.affinity, 4),
                own_purchases=offer.own_purchases,
                district_share=round(offer.district_share, 4),
                reason=_reason(offer, district),
            )
        )
    return lines


def _reason(offer: domain.Offer, district: str | None) -> str:
    parts = []
    if offer.own_purchases:
        parts.append(f"you spent {offer.own_purchases} earlier voucher(s) in these categories")
    if district and offer.district_share:
        parts.append(f"{offer.district_share:.0%} of vouchers spent in {district} were in these categories")
    return "; ".join(parts) or "campaign order (no purchase history yet)"


async def _district_of(session: AsyncSession, *, person_id: str) -> str | None:
    """Where the resident last claimed a voucher (the district the geofence placed them in)."""
    return await session.scalar(
        select(VoucherRow.district)
        .where(VoucherRow.person_id == person_id)
        .order_by(VoucherRow.claimed_at.desc())
        .limit(1)
    )


async def _district_purchases(session: AsyncSession, *, district: str | None) -> dict[str, int]:
    """Redeemed vouchers by category at merchants in the district, from the report rollup."""
    if district is None:
        return {}
    jurisdictions = [j.value for j in Jurisdiction if j.district.value == district]
    if district not in {d.value for d in District} or not jurisdictions:
        return {}
    rows = await session.execute(
        select(RedemptionDayRow.category, func.sum(RedemptionDayRow.redeemed))
        .where(
            RedemptionDayRow.jurisdiction.in_(jurisdictions),
            RedemptionDayRow.category != "*",  # the rows of every combination, not the sums over some
            RedemptionDayRow.merchant_class != "*",
        )
        .group_by(RedemptionDayRow.category)
    )
    return {category: int(count or 0) for category, count in rows}
