"""Jobs of claiming that run on the campaign's clock: the lottery draw and its verification, expiry
and recycling (SPEC §4.6: expired or unclaimed value rolls into the next round's stock)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.domain import ClaimMode
from huimin.campaigns.models import RoundRow
from huimin.claims import lottery
from huimin.claims.domain import ClaimRefused, VoucherStatus
from huimin.claims.models import LotteryDrawRow, StockMovementRow, VoucherEventRow, VoucherRow
from huimin.claims.repository import ClaimsRepository
from huimin.claims.service import commit_seed, issue_voucher, round_batch_or_refuse
from huimin.eligibility import blocks
from huimin.eligibility.models import ResidentRow
from huimin.errors import HuiminError, NotFound
from huimin.kit.clock import Clock
from huimin.kit.sealing import Sealer
from huimin.kit.terms import District
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.ledger.domain import FundingSplit, Transaction

__all__ = [
    "DrawReport",
    "RecycleReport",
    "VerifyReport",
    "draw_lottery",
    "expire_and_recycle",
    "verify_lottery",
]

_CHUNK = 500


@dataclass(frozen=True)
class DrawReport:
    round_code: str
    seed: str
    seed_sha256: str
    entries: int
    winners: int
    vouchers: int  # winners who got their voucher (a winner who used up a limit elsewhere forfeits)


async def draw_lottery(session: AsyncSession, *, round_id: str, sealer: Sealer, clock: Clock) -> DrawReport:
    """摇号: after registration closes, reveal the seed, rank the entries and issue the winners' vouchers.
    Drawing a drawn round again changes nothing and reports the same result."""
    round_ = await session.get(RoundRow, round_id)
    if round_ is None:
        raise ClaimRefused.unknown_round(round_id)
    if round_.mode != ClaimMode.LOTTERY:
        raise HuiminError("this is a first-come round, not a lottery", code="not_a_lottery", status=409)
    now = clock.now()
    if now < round_.closes_at:
        raise HuiminError(
            f"registration is open until {round_.closes_at.isoformat()}",
            code="lottery_not_closed",
            status=409,
        )
    draw = await commit_seed(session, round_id=round_id, sealer=sealer, clock=clock)
    repository = ClaimsRepository(session)
    entries = await repository.entries(round_id)
    if draw.drawn_at is None:
        seed = sealer.open(draw.seed_sealed)
        remaining = await repository.remaining([round_id])
        by_batch = defaultdict(list)
        for entry in entries:
            by_batch[entry.batch_id].append(entry)
        for batch_id, batch_entries in sorted(by_batch.items()):
            _, batch, campaign = await round_batch_or_refuse(session, round_id, batch_id)
            stock = remaining.get((round_id, batch_id), 0)
            by_id = {entry.id: entry for entry in batch_entries}
            for rank, entry_id in enumerate(
                lottery.rank_entries(seed, round_id, batch_id, list(by_id)), start=1
            ):
                entry = by_id[entry_id]
                entry.rank, entry.won = rank, rank <= stock
                if not entry.won:
                    continue
                resident = await session.get(ResidentRow, entry.resident_id)
                if resident is None:  # pragma: no cover - a foreign key guarantees it
                    raise NotFound(f"no resident {entry.resident_id!r}")
                if await blocks.active_block(
                    session,
                    campaign_id=campaign.id,
                    person_id=resident.person_id,
                    device_digest=resident.device_digest,
                ):
                    continue  # blocked by a risk case since entering: forfeits, the voucher stays in stock
                try:
                    async with session.begin_nested():
                        voucher = await issue_voucher(
                            session,
                            round_=round_,
                            batch=batch,
                            campaign=campaign,
                            resident=resident,
                            district=District(entry.district),
                            now=now,
                            idempotency_key=None,
                        )
                    entry.voucher_id = voucher.id
                except HuiminError as refusal:
                    if refusal.code != "limit_reached":
                        raise
                    # used up a limit elsewhere since entering: the voucher stays in stock and rolls over
        draw.seed = seed
        draw.entries_sha256 = lottery.entries_digest([entry.id for entry in entries])
        draw.drawn_at = now
        await session.flush()
    return DrawReport(
        round_code=round_.code,
        seed=draw.seed or "",
        seed_sha256=draw.seed_sha256,
        entries=len(entries),
        winners=sum(1 for entry in entries if entry.won),
        vouchers=sum(1 for entry in entries if entry.voucher_id),
    )


@dataclass(frozen=True)
class VerifyReport:
    round_code: str
    matches: bool
    problems: list[str] = field(default_factory=list)


async def verify_lottery(session: AsyncSession, *, round_id: str) -> VerifyReport:
    """Recompute a drawn lottery from its revealed seed and its entries; list every disagreement."""
    round_ = await session.get(RoundRow, round_id)
    if round_ is None:
        raise ClaimRefused.unknown_round(round_id)
    draw = await session.get(LotteryDrawRow, round_id)
    if draw is None or draw.seed is None:
        raise HuiminError("this lottery has not been drawn yet", code="lottery_not_drawn", status=409)
    problems = []
    if lottery.seed_commitment(draw.seed) != draw.seed_sha256:
        problems.append("the revealed seed does not match the published SHA-256 commitment")
    entries = await ClaimsRepository(session).entries(round_id)
    if lottery.entries_digest([entry.id for entry in entries]) != draw.entries_sha256:
        problems.append("the entry list differs from the one fingerprinted at the draw")
    by_batch = defaultdict(list)
    for entry in entries:
        by_batch[entry.batch_id].append(entry)
    for batch_id, batch_entries in sorted(by_batch.items()):
        by_id = {entry.id: entry for entry in batch_entries}
        winners = sum(1 for entry in batch_entries if entry.won)
        expected = lottery.rank_entries(draw.seed, round_id, batch_id, list(by_id))
        for rank, entry_id in enumerate(expected, start=1):
            entry = by_id[entry_id]
            if entry.rank != rank or bool(entry.won) != (rank <= winners):
                problems.append(
                    f"entry {entry_id} is recorded at rank {entry.rank}, the draw gives rank {rank}"
                )
    return VerifyReport(round_code=round_.code, matches=not problems, problems=problems)


@dataclass
class RecycleReport:
    expired: int = 0
    expired_recycled: int = 0
    unclaimed_recycled: int = 0
    left_for_recovery: int = (
        0  # expired vouchers of batches with no later round: recovered at the campaign's end
    )


async def expire_and_recycle(session: AsyncSession, *, clock: Clock) -> RecycleReport:
    """Expire vouchers past their validity and roll expired and unclaimed stock into the next round
    of the same batch that has not opened yet. Safe to run at any time and any number of times.
    Each expiry and each recycling posts its ledger transaction (keyed by the voucher) with it."""
    now = clock.now()
    repository = ClaimsRepository(session)
    report = RecycleReport()
    # Funding splits are fixed once a campaign is loaded: read each batch's once per run.
    splits: dict[str, FundingSplit] = {}

    async def split_of(batch_id: str) -> FundingSplit:
        if batch_id not in splits:
            splits[batch_id] = await ledger.funding_split(session, batch_id=batch_id)
        return splits[batch_id]

    while due := await repository.due_to_expire(now, _CHUNK):
        ids = [voucher_id for voucher_id, _, _, _ in due]
        result = await session.execute(
            update(VoucherRow)
            .where(VoucherRow.id.in_(ids), VoucherRow.status == VoucherStatus.CLAIMED.value)
            .values(status=VoucherStatus.EXPIRED.value)
        )
        report.expired += result.rowcount  # type: ignore[attr-defined]
        await session.execute(
            insert(VoucherEventRow),
            [
                {"voucher_id": voucher_id, "kind": "expired", "value_fen": value, "at": now}
                for voucher_id, value, _, _ in due
            ],
        )
        by_campaign: dict[str, list[Transaction]] = defaultdict(list)
        for voucher_id, value, batch_id, campaign_id in due:
            by_campaign[campaign_id].append(
                ledger_domain.expire(voucher_id, value=value, funding=await split_of(batch_id))
            )
        for campaign_id, transactions in sorted(by_campaign.items()):
            await ledger.post_many(session, campaign_id=campaign_id, transactions=transactions, at=now)
    for batch_id in await repository.expired_batches():
        expired = await repository.expired_unrecycled(batch_id)
        target = await repository.next_round_for(batch_id, now)
        if target is None:
            report.left_for_recovery += len(expired)
            continue
        funding = await split_of(batch_id)
        for start in range(0, len(expired), _CHUNK):
            chunk = expired[start : start + _CHUNK]
            await session.execute(
                update(VoucherRow)
                .where(VoucherRow.id.in_([voucher_id for voucher_id, _, _ in chunk]))
                .values(status=VoucherStatus.RECYCLED.value, recycled_to_round_id=target.id)
            )
            await session.execute(
                insert(VoucherEventRow),
                [
                    {"voucher_id": voucher_id, "kind": "recycled", "value_fen": value, "at": now}
                    for voucher_id, _, value in chunk
                ],
            )
            # The expired value returns to the budget, which funds the stock it is recycled into.
            await ledger.post_many(
                session,
                campaign_id=target.campaign_id,
                transactions=[
                    ledger_domain.recycle(voucher_id, value=value, funding=funding)
                    for voucher_id, _, value in chunk
                ],
                at=now,
            )
        by_round: dict[str, list[int]] = defaultdict(list)
        for _, round_id, value in expired:
            by_round[round_id].append(value)
        for round_id, values in sorted(by_round.items()):
            session.add(
                StockMovementRow(
                    kind="expired",
                    batch_id=batch_id,
                    from_round_id=round_id,
                    to_round_id=target.id,
                    quantity=len(values),
                    value_fen=sum(values),
                    at=now,
                )
            )
        await repository.add_stock(target.id, batch_id, len(expired))
        report.expired_recycled += len(expired)
    for round_, batch_id in await repository.closed_with_stock(now):
        target = await repository.next_round_for(batch_id, now)
        if target is None:
            continue  # the last round of its batch: the rest is recovered at the campaign's end
        left = await repository.take_all(round_.id, batch_id)
        if left == 0:
            continue
        _, batch, _ = await round_batch_or_refuse(session, round_.id, batch_id)
        session.add(
            StockMovementRow(
                kind="unclaimed",
                batch_id=batch_id,
                from_round_id=round_.id,
                to_round_id=target.id,
                quantity=left,
                value_fen=left * batch.max_value_fen,
                at=now,
            )
        )
        await repository.add_stock(target.id, batch_id, left)
        report.unclaimed_recycled += left
    await session.flush()
    return report
