"""Use cases of claiming: the flash claim, the rounds board, the wallet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.domain import ClaimMode, ValidityKind
from huimin.campaigns.models import BatchRow, RoundBatchRow, RoundRow
from huimin.claims.domain import (
    ClaimRefused,
    RoundStatus,
    VoucherStatus,
    new_voucher_code,
    round_status,
    valid_until,
)
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.claims.repository import ClaimsRepository
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Geofence, Location
from huimin.errors import NotFound
from huimin.kit.clock import Clock, local_datetime
from huimin.kit.ids import new_id

__all__ = ["Claimed", "RoundBoard", "claim_voucher", "list_rounds", "wallet"]


@dataclass(frozen=True)
class Claimed:
    voucher: VoucherRow
    batch: BatchRow


async def claim_voucher(
    session: AsyncSession,
    *,
    partner_id: str,
    resident_id: str,
    round_id: str,
    batch_id: str,
    location: Location,
    geofence: Geofence,
    clock: Clock,
    idempotency_key: str | None = None,
) -> Claimed:
    """领取: one voucher of a batch in an open first-come round, within every limit, or a refusal
    with its code. Counters and stock are conditional writes in this transaction: if any step
    refuses, the transaction rolls back and nothing was taken."""
    repository = ClaimsRepository(session)
    found = await repository.round_batch(round_id, batch_id)
    if found is None:
        if await session.get(RoundRow, round_id) is None:
            raise ClaimRefused.unknown_round(round_id)
        raise ClaimRefused.unknown_batch(batch_id)
    round_, batch, campaign = found
    resident = await eligibility.get_resident(session, partner_id=partner_id, resident_id=resident_id)
    if not resident.real_name_verified:
        raise ClaimRefused.identity_unverified()
    if round_.mode != ClaimMode.FIRST_COME:
        raise ClaimRefused.wrong_mode()
    now = clock.now()
    if not round_.opens_at <= now < round_.closes_at:
        raise ClaimRefused.round_not_open(round_.opens_at, round_.closes_at, now)
    district = geofence.district_of(location)
    if district is None:
        raise ClaimRefused.not_eligible_location()
    if batch.members_only and not await eligibility.is_union_member(
        session, id_number_digest=resident.id_number_digest
    ):
        raise ClaimRefused.not_union_member()

    # Per-person limits, in a fixed order so that two claims of one person never deadlock.
    limits = [(f"r:{round_.id}:b:{batch.id}", batch.per_person_per_round, "per person in this round")]
    if batch.per_person_total is not None:
        limits.append((f"b:{batch.id}", batch.per_person_total, "per person for this batch"))
    if campaign.per_person_total is not None:
        limits.append((f"c:{campaign.id}", campaign.per_person_total, "per person in this campaign"))
    for category in batch.categories:
        if category in campaign.per_person_per_category:
            limit = campaign.per_person_per_category[category]
            limits.append((f"c:{campaign.id}:cat:{category}", limit, f"per person for category {category}"))
    for scope, limit, what in sorted(limits):
        if not await repository.count_up(resident.person_id, scope, limit):
            raise ClaimRefused.limit_reached(f"{limit} {what}")

    # Stock last: the hottest rows are locked for the shortest time.
    if not await repository.take_one(round_.id, batch.id):
        raise ClaimRefused.sold_out()

    voucher = VoucherRow(
        id=new_id("vch"),
        code=new_voucher_code(),
        campaign_id=campaign.id,
        batch_id=batch.id,
        round_id=round_.id,
        resident_id=resident.id,
        person_id=resident.person_id,
        status=VoucherStatus.CLAIMED.value,
        value_fen=batch.max_value_fen,
        claimed_at=now,
        valid_until=valid_until(
            now,
            kind=ValidityKind(batch.validity_kind),
            days=batch.validity_days,
            until=batch.validity_until,
            campaign_closes_at=local_datetime(campaign.ends_on + timedelta(days=1), time(0)),
        ),
        district=district.value,
        idempotency_key=idempotency_key,
    )
    session.add(voucher)
    session.add(VoucherEventRow(voucher_id=voucher.id, kind="claimed", value_fen=batch.max_value_fen, at=now))
    await session.flush()
    return Claimed(voucher, batch)


@dataclass(frozen=True)
class RoundBoard:
    """A round as residents see it: status and remaining stock per batch."""

    round: RoundRow
    status: RoundStatus
    stock: list[tuple[RoundBatchRow, BatchRow, int]]  # released, batch, remaining


async def list_rounds(
    session: AsyncSession, *, clock: Clock, campaign_id: str | None = None, round_id: str | None = None
) -> Sequence[RoundBoard]:
    repository = ClaimsRepository(session)
    if round_id is not None:
        row = await session.get(RoundRow, round_id)
        if row is None:
            raise NotFound(f"no round {round_id!r}", code="unknown_round")
        rounds: Sequence[RoundRow] = [row]
    else:
        rounds = await repository.rounds(campaign_id)
    ids = [round_.id for round_ in rounds]
    remaining = await repository.remaining(ids)
    stock: dict[str, list[tuple[RoundBatchRow, BatchRow, int]]] = {round_id: [] for round_id in ids}
    for released, batch in await repository.round_stock(ids):
        stock[released.round_id].append((released, batch, remaining.get((released.round_id, batch.id), 0)))
    now = clock.now()
    return [
        RoundBoard(
            round=round_,
            status=round_status(
                round_.opens_at, round_.closes_at, sum(item[2] for item in stock[round_.id]), now
            ),
            stock=stock[round_.id],
        )
        for round_ in rounds
    ]


async def wallet(
    session: AsyncSession, *, partner_id: str, resident_id: str, limit: int = 200
) -> Sequence[tuple[VoucherRow, BatchRow]]:
    """卡包: the resident's vouchers, newest first."""
    await eligibility.get_resident(session, partner_id=partner_id, resident_id=resident_id)
    return await ClaimsRepository(session).wallet(resident_id, limit)
