"""Use cases of the campaigns package: load a campaign file, list and show campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns import domain
from huimin.campaigns.models import (
    BatchFundingRow,
    BatchRow,
    CampaignRow,
    FunderRow,
    RoundBatchRow,
    RoundRow,
    StockShardRow,
)
from huimin.campaigns.repository import CampaignRepository
from huimin.campaigns.schemas import parse_campaign_file, source_digest
from huimin.errors import ConflictError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock, to_local
from huimin.kit.ids import new_id

__all__ = [
    "STOCK_SHARDS",
    "LoadOutcome",
    "add_round",
    "as_planned",
    "get_campaign",
    "get_campaign_by_code",
    "list_campaigns",
    "load_campaign",
    "stock_shards",
]

# Stock rows per round and batch on PostgreSQL: enough that two cores' worth of concurrent claims rarely
# wait for each other, few enough that a nearly sold-out batch is found in a handful of probes.
STOCK_SHARDS = 8


@dataclass(frozen=True)
class LoadOutcome:
    campaign_id: str
    code: str
    created: bool  # False: the same file was loaded before, nothing changed


async def load_campaign(session: AsyncSession, *, text: str, clock: Clock) -> LoadOutcome:
    """Validate a campaign file and store it. Loading the same file again changes nothing; loading a
    different file under an existing code is refused (campaigns are not edited by re-loading)."""
    now = clock.now()
    campaign = parse_campaign_file(text, now=now)
    digest = source_digest(text)
    repository = CampaignRepository(session)
    existing = await repository.by_code(campaign.code)
    if existing is not None:
        if existing.source_sha256 == digest:
            return LoadOutcome(campaign_id=existing.id, code=existing.code, created=False)
        raise ConflictError(
            f"campaign {campaign.code!r} is already loaded from a different file; "
            "give the new campaign another code",
            code="campaign_exists",
        )
    shards = 1 if session.get_bind().dialect.name == "sqlite" else STOCK_SHARDS
    campaign_row, rows = _rows(campaign, text=text, digest=digest, now=now, shards=shards)
    repository.add_all(rows)
    await session.flush()
    return LoadOutcome(campaign_id=campaign_row.id, code=campaign.code, created=True)


def _rows(
    campaign: domain.Campaign, *, text: str, digest: str, now: datetime, shards: int
) -> tuple[CampaignRow, list[object]]:
    campaign_row = CampaignRow(
        id=new_id("cmp"),
        code=campaign.code,
        name=campaign.name,
        description=campaign.description,
        starts_on=campaign.starts_on,
        ends_on=campaign.ends_on,
        budget_fen=int(campaign.budget),
        per_person_total=campaign.limits.per_person_total,
        per_person_per_category={str(k): v for k, v in campaign.limits.per_person_per_category.items()},
        source_sha256=digest,
        source_text=text,
        loaded_at=now,
    )
    rows: list[object] = [campaign_row]
    funders = {}
    for position, funder in enumerate(campaign.funders):
        funders[funder.code] = FunderRow(
            id=new_id("fnd"),
            campaign_id=campaign_row.id,
            position=position,
            code=funder.code,
            name=funder.name,
            kind=funder.kind.value,
            budget_fen=int(funder.budget),
        )
    rows += funders.values()
    batches = {}
    for position, batch in enumerate(campaign.batches):
        batches[batch.code] = BatchRow(
            id=new_id("bat"),
            campaign_id=campaign_row.id,
            position=position,
            code=batch.code,
            name=batch.name,
            issuer=batch.issuer.value,
            kind=batch.kind.value,
            face_value_fen=None if batch.face_value is None else int(batch.face_value),
            threshold_fen=int(batch.threshold),
            percent_bp=batch.percent_bp,
            cap_fen=None if batch.cap is None else int(batch.cap),
            max_value_fen=int(batch.max_value),
            tiers=[
                {
                    "min_price_fen": int(tier.min_price),
                    "max_price_fen": None if tier.max_price is None else int(tier.max_price),
                    "face_value_fen": int(tier.face_value),
                }
                for tier in batch.tiers
            ],
            categories=sorted(batch.scope.categories),
            jurisdictions=sorted(batch.scope.jurisdictions),
            merchant_classes=sorted(batch.scope.merchant_classes),
            per_person_per_round=batch.per_person_per_round,
            per_person_total=batch.per_person_total,
            per_merchant_daily=batch.per_merchant_daily,
            validity_kind=batch.validity.kind.value,
            validity_days=batch.validity.days,
            validity_until=batch.validity.until,
            refund_policy=batch.refund_policy.value,
            members_only=batch.members_only,
            big_ticket=batch.big_ticket,
            threshold_after_discount=batch.threshold_after_discount,
        )
    rows += batches.values()
    for batch in campaign.batches:
        rows += [
            BatchFundingRow(
                batch_id=batches[batch.code].id,
                funder_id=funders[share.funder_code].id,
                position=position,
                share_bp=share.share_bp,
            )
            for position, share in enumerate(batch.funding)
        ]
    for round_ in campaign.rounds:
        round_row = RoundRow(
            id=new_id("rnd"),
            campaign_id=campaign_row.id,
            code=round_.code,
            mode=round_.mode.value,
            opens_at=round_.opens_at,
            closes_at=round_.closes_at,
        )
        rows.append(round_row)
        for code, count in round_.stock.items():
            rows.append(RoundBatchRow(round_id=round_row.id, batch_id=batches[code].id, stock=count))
            rows += stock_shards(round_row.id, batches[code].id, count, shards)
    return campaign_row, rows


def stock_shards(round_id: str, batch_id: str, count: int, shards: int) -> list[StockShardRow]:
    """Split a round's stock of one batch evenly over `shards` rows."""
    share, extra = divmod(count, shards)
    return [
        StockShardRow(
            round_id=round_id, batch_id=batch_id, shard=shard, remaining=share + (1 if shard < extra else 0)
        )
        for shard in range(shards)
    ]


async def list_campaigns(session: AsyncSession) -> Sequence[CampaignRow]:
    return await CampaignRepository(session).list()


async def get_campaign(session: AsyncSession, *, campaign_id: str) -> CampaignRow:
    row = await CampaignRepository(session).detail(campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return row


async def get_campaign_by_code(session: AsyncSession, *, code: str) -> CampaignRow:
    row = await CampaignRepository(session).by_code(code)
    if row is None:
        raise NotFound(f"no campaign with code {code!r}", code="unknown_campaign")
    return await get_campaign(session, campaign_id=row.id)


def as_planned(row: CampaignRow) -> domain.Campaign:
    """The campaign as its file was loaded, with the rounds and stock as they stand now (extra rounds
    added, stock re-planned): what a change to the schedule is checked against. `row` comes from
    `get_campaign` (batches and rounds loaded)."""
    campaign = parse_campaign_file(row.source_text, now=row.loaded_at)
    batch_codes = {batch.id: batch.code for batch in row.batches}
    rounds = tuple(
        domain.Round(
            code=round_.code,
            mode=domain.ClaimMode(round_.mode),
            opens_at=round_.opens_at,
            closes_at=round_.closes_at,
            stock={batch_codes[item.batch_id]: item.stock for item in round_.stock},
        )
        for round_ in row.rounds
    )
    return replace(campaign, rounds=rounds)


async def add_round(
    session: AsyncSession,
    *,
    campaign_code: str,
    opens_at: datetime,
    hours: int,
    stock: dict[str, int],
    mode: domain.ClaimMode,
    clock: Clock,
) -> RoundRow:
    """加场: an extra round, checked by the same rules as the campaign file (inside the period, no
    overlap for a batch, stock payable from the budget and each funder's share)."""
    row = await get_campaign_by_code(session, code=campaign_code)
    if opens_at <= clock.now():
        raise InvalidInput([Problem("at", "an extra round must open in the future")], code="invalid_round")
    campaign = as_planned(row)
    batch_codes = {batch.id: batch.code for batch in row.batches}
    new = domain.Round(
        code=f"extra-{to_local(opens_at):%Y%m%d-%H%M}",
        mode=mode,
        opens_at=opens_at,
        closes_at=opens_at + timedelta(hours=hours),
        stock=dict(stock),
        schedule_index=0,
    )
    problems = [
        Problem(problem.field.replace("schedules[0]", "round").replace("schedules", "round"), problem.message)
        for problem in domain.validate(replace(campaign, rounds=(*campaign.rounds, new)))
    ]
    if hours < 1:
        problems.append(Problem("hours", "must be at least 1"))
    if problems:
        raise InvalidInput(problems, code="invalid_round", summary="the extra round is refused")
    round_row = RoundRow(
        id=new_id("rnd"),
        campaign_id=row.id,
        code=new.code,
        mode=mode.value,
        opens_at=new.opens_at,
        closes_at=new.closes_at,
    )
    session.add(round_row)
    batch_ids = {code: batch_id for batch_id, code in batch_codes.items()}
    shards = 1 if session.get_bind().dialect.name == "sqlite" else STOCK_SHARDS
    for code, count in stock.items():
        session.add(RoundBatchRow(round_id=round_row.id, batch_id=batch_ids[code], stock=count))
        session.add_all(stock_shards(round_row.id, batch_ids[code], count, shards))
    await session.flush()
    return round_row
