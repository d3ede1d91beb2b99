"""All queries of claims. The two that guard against over-issue are conditional writes, so the
database, not Python, decides who gets the last voucher and who hits a limit."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.claims.domain import round_scope
from huimin.claims.models import ClaimCounterRow, LotteryDrawRow, LotteryEntryRow, VoucherRow
from huimin.eligibility import blocks
from huimin.eligibility.models import ResidentRow, UnionMemberRow

__all__ = ["ClaimContext", "ClaimsRepository"]


@dataclass(frozen=True)
class ClaimContext:
    """Everything a claim or a lottery entry reads before it writes, in one round trip."""

    round: RoundRow
    batch: BatchRow
    campaign: CampaignRow
    resident: ResidentRow | None  # None: no such resident of the calling app
    blocked: bool  # a risk sanction blocks the person or the device in the campaign
    union_member: bool  # the person's ID number is on the trade union's list
    earlier_voucher_id: str | None  # the voucher this resident took in this round and batch with this key


_TAKE_UNLOCKED_SHARD = text(
    """
    UPDATE stock_shards SET remaining = remaining - 1
    WHERE round_id = :round_id AND batch_id = :batch_id AND shard = (
        SELECT shard FROM stock_shards
        WHERE round_id = :round_id AND batch_id = :batch_id AND remaining > 0
        ORDER BY (shard + :offset) % 64
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING shard
    """
)


# The statements of the claim's hot path are built once (building one cost about as much CPU as running
# it); values travel as bound parameters.
_ROUND_BATCH = (
    select(RoundRow, BatchRow, CampaignRow)
    .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
    .join(BatchRow, BatchRow.id == RoundBatchRow.batch_id)
    .join(CampaignRow, CampaignRow.id == RoundRow.campaign_id)
    .where(RoundRow.id == bindparam("round_id"), BatchRow.id == bindparam("batch_id"))
)
# The round and batch (404 when the batch is not released in the round), the campaign, the calling
# app's resident if it exists, and the three facts about that resident the checks need.
_CLAIM_CONTEXT = (
    select(
        RoundRow,
        BatchRow,
        CampaignRow,
        ResidentRow,
        blocks.blocked(RoundRow.campaign_id, ResidentRow.person_id, ResidentRow.device_digest),
        exists().where(UnionMemberRow.id_number_digest == ResidentRow.id_number_digest),
        select(VoucherRow.id)
        .where(
            VoucherRow.resident_id == ResidentRow.id,
            VoucherRow.round_id == RoundRow.id,
            VoucherRow.batch_id == BatchRow.id,
            VoucherRow.idempotency_key == bindparam("key"),
        )
        .limit(1)
        .scalar_subquery(),
    )
    .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
    .join(BatchRow, BatchRow.id == RoundBatchRow.batch_id)
    .join(CampaignRow, CampaignRow.id == RoundRow.campaign_id)
    .outerjoin(
        ResidentRow,
        and_(ResidentRow.id == bindparam("resident_id"), ResidentRow.partner_id == bindparam("partner_id")),
    )
    .where(RoundRow.id == bindparam("round_id"), BatchRow.id == bindparam("batch_id"))
)
_SHARDS_WITH_STOCK = select(StockShardRow.shard).where(
    StockShardRow.round_id == bindparam("round_id"),
    StockShardRow.batch_id == bindparam("batch_id"),
    StockShardRow.remaining > 0,
)
_TAKE_FROM_SHARD = (  # (DML parameters may not be named after columns)
    update(StockShardRow)
    .where(
        StockShardRow.round_id == bindparam("in_round"),
        StockShardRow.batch_id == bindparam("in_batch"),
        StockShardRow.shard == bindparam("in_shard"),
        StockShardRow.remaining > 0,
    )
    .values(remaining=StockShardRow.remaining - 1)
    # no shard rows are loaded in a claim's session; the ORM must not try to match its parameters to any
    .execution_options(synchronize_session=False)
)
_INSERT_VOUCHER = insert(cast(Table, VoucherRow.__table__))
_COUNT_UP: dict[str, Executable] = {}  # by dialect name


def _count_up(dialect: str) -> Executable:
    if dialect not in _COUNT_UP:
        insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        _COUNT_UP[dialect] = (
            insert(ClaimCounterRow)
            .values(person_id=bindparam("in_person"), scope=bindparam("in_scope"), claimed=1)
            .on_conflict_do_update(
                index_elements=["person_id", "scope"],
                set_={"claimed": ClaimCounterRow.claimed + 1},
                where=ClaimCounterRow.claimed < bindparam("in_limit"),
            )
            .returning(ClaimCounterRow.claimed)
        )
    return _COUNT_UP[dialect]


class ClaimsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def round_batch(
        self, round_id: str, batch_id: str
    ) -> tuple[RoundRow, BatchRow, CampaignRow] | None:
        found = (
            await self.session.execute(_ROUND_BATCH, {"round_id": round_id, "batch_id": batch_id})
        ).one_or_none()
        return None if found is None else (found[0], found[1], found[2])

    async def claim_context(
        self, *, round_id: str, batch_id: str, partner_id: str, resident_id: str, key: str | None
    ) -> ClaimContext | None:
        """None when the batch is not released in the round (or either does not exist)."""
        found = (
            await self.session.execute(
                _CLAIM_CONTEXT,
                {
                    "round_id": round_id,
                    "batch_id": batch_id,
                    "partner_id": partner_id,
                    "resident_id": resident_id,
                    "key": key,
                },
            )
        ).one_or_none()
        if found is None:
            return None
        round_, batch, campaign, resident, blocked, member, earlier = found
        return ClaimContext(round_, batch, campaign, resident, bool(blocked), bool(member), earlier)

    async def insert_voucher(self, values: dict[str, Any]) -> None:
        connection = await self.session.connection()
        await connection.execute(_INSERT_VOUCHER, values)

    async def count_up(self, person_id: str, scope: str, limit: int) -> bool:
        """Add one to a person's count in a scope unless it has reached `limit`; True if counted."""
        counted = await self.session.execute(
            _count_up(self.dialect), {"in_person": person_id, "in_scope": scope, "in_limit": limit}
        )
        return counted.scalar_one_or_none() is not None

    async def take_one(self, round_id: str, batch_id: str) -> bool:
        """Take one voucher of stock; False when none is left. Never goes below zero."""
        if self.dialect == "postgresql":
            # First try a shard nobody else is writing, so concurrent claims spread over the shards.
            taken = await self.session.execute(
                _TAKE_UNLOCKED_SHARD,
                {"round_id": round_id, "batch_id": batch_id, "offset": secrets.randbelow(64)},
            )
            if taken.scalar_one_or_none() is not None:
                return True
        # Every shard with stock is busy (or this is SQLite, where writers are serialised): wait for
        # each in turn. The conditional UPDATE re-checks `remaining > 0` after any wait.
        shards = (
            await self.session.scalars(_SHARDS_WITH_STOCK, {"round_id": round_id, "batch_id": batch_id})
        ).all()
        for shard in shards:
            result = await self.session.execute(
                _TAKE_FROM_SHARD, {"in_round": round_id, "in_batch": batch_id, "in_shard": shard}
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return True
        return False

    async def remaining(self, round_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        query = (
            select(StockShardRow.round_id, StockShardRow.batch_id, func.sum(StockShardRow.remaining))
            .where(StockShardRow.round_id.in_(round_ids))
            .group_by(StockShardRow.round_id, StockShardRow.batch_id)
        )
        return {
            (round_id, batch_id): int(total)
            for round_id, batch_id, total in await self.session.execute(query)
        }

    async def rounds(self, campaign_id: str | None) -> Sequence[RoundRow]:
        query = select(RoundRow).order_by(RoundRow.opens_at, RoundRow.code)
        if campaign_id is not None:
            query = query.where(RoundRow.campaign_id == campaign_id)
        return (await self.session.scalars(query)).all()

    async def round_stock(self, round_ids: Sequence[str]) -> Sequence[tuple[RoundBatchRow, BatchRow]]:
        query = (
            select(RoundBatchRow, BatchRow)
            .join(BatchRow, BatchRow.id == RoundBatchRow.batch_id)
            .where(RoundBatchRow.round_id.in_(round_ids))
            .order_by(BatchRow.position)
        )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def wallet(self, resident_id: str, limit: int) -> Sequence[tuple[VoucherRow, BatchRow]]:
        query = (
            select(VoucherRow, BatchRow)
            .join(BatchRow, BatchRow.id == VoucherRow.batch_id)
            .where(VoucherRow.resident_id == resident_id)
            .order_by(VoucherRow.claimed_at.desc(), VoucherRow.id.desc())
            .limit(limit)
        )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def next_round_for(self, batch_id: str, after: datetime) -> RoundRow | None:
        """The earliest round that releases this batch and has not opened yet: where recycled stock goes."""
        query = (
            select(RoundRow)
            .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
            .where(RoundBatchRow.batch_id == batch_id, RoundRow.opens_at > after)
            .order_by(RoundRow.opens_at, RoundRow.code)
            .limit(1)
        )
        return await self.session.scalar(query)

    async def add_stock(self, round_id: str, batch_id: str, quantity: int) -> None:
        await self.session.execute(
            update(RoundBatchRow)
            .where(RoundBatchRow.round_id == round_id, RoundBatchRow.batch_id == batch_id)
            .values(recycled_in=RoundBatchRow.recycled_in + quantity)
        )
        await self.session.execute(
            update(StockShardRow)
            .where(
                StockShardRow.round_id == round_id,
                StockShardRow.batch_id == batch_id,
                StockShardRow.shard == 0,
            )
            .values(remaining=StockShardRow.remaining + quantity)
        )

    async def take_all(self, round_id: str, batch_id: str) -> int:
        """Empty a closed round's stock of one batch; returns how much was left."""
        shards = (
            await self.session.scalars(
                select(StockShardRow)
                .where(
                    StockShardRow.round_id == round_id,
                    StockShardRow.batch_id == batch_id,
                    StockShardRow.remaining > 0,
                )
                .with_for_update()
            )
        ).all()
        left = sum(shard.remaining for shard in shards)
        for shard in shards:
            shard.remaining = 0
        await self.session.flush()
        return left

    async def closed_with_stock(self, now: datetime) -> Sequence[tuple[RoundRow, str]]:
        """(round, batch id) of closed rounds that still hold stock (drawn lotteries only)."""
        query = (
            select(RoundRow, StockShardRow.batch_id)
            .join(StockShardRow, StockShardRow.round_id == RoundRow.id)
            .outerjoin(LotteryDrawRow, LotteryDrawRow.round_id == RoundRow.id)
            .where(
                RoundRow.closes_at <= now,
                StockShardRow.remaining > 0,
                (RoundRow.mode == "first_come") | LotteryDrawRow.drawn_at.is_not(None),
            )
            .distinct()
            .order_by(RoundRow.opens_at)
        )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def due_to_expire(self, now: datetime, limit: int) -> Sequence[tuple[str, int, str, str]]:
        """(voucher id, value, batch id, campaign id) of claimed vouchers past their validity."""
        query = (
            select(VoucherRow.id, VoucherRow.value_fen, VoucherRow.batch_id, VoucherRow.campaign_id)
            .where(VoucherRow.status == "claimed", VoucherRow.valid_until <= now)
            .order_by(VoucherRow.valid_until, VoucherRow.id)
            .limit(limit)
        )
        return [(row[0], row[1], row[2], row[3]) for row in await self.session.execute(query)]

    async def expired_batches(self) -> Sequence[str]:
        query = (
            select(VoucherRow.batch_id)
            .where(VoucherRow.status == "expired", VoucherRow.recycled_to_round_id.is_(None))
            .distinct()
        )
        return (await self.session.scalars(query)).all()

    async def expired_unrecycled(self, batch_id: str) -> Sequence[tuple[str, str, int]]:
        """(voucher id, round id, value) of expired vouchers of a batch whose value is still to recycle."""
        query = (
            select(VoucherRow.id, VoucherRow.round_id, VoucherRow.value_fen)
            .where(
                VoucherRow.batch_id == batch_id,
                VoucherRow.status == "expired",
                VoucherRow.recycled_to_round_id.is_(None),
            )
            .order_by(VoucherRow.id)
            .with_for_update()
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]

    async def entries(self, round_id: str) -> Sequence[LotteryEntryRow]:
        query = (
            select(LotteryEntryRow).where(LotteryEntryRow.round_id == round_id).order_by(LotteryEntryRow.id)
        )
        return (await self.session.scalars(query)).all()

    async def round_counters(self, round_id: str) -> Sequence[tuple[str, str, int]]:
        """(person id, scope, claimed) of the per-round counters of a round: scope `r:<round>:b:<batch>`."""
        query = select(ClaimCounterRow.person_id, ClaimCounterRow.scope, ClaimCounterRow.claimed).where(
            ClaimCounterRow.scope.like(round_scope(round_id, "%"))
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]
