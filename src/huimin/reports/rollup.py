"""`huimin report rollup`: fold the append-only logs into the report tables, incrementally.

Three logs, each read in id order from a stored cursor: `voucher_events` (claims, expiry, recycling,
recovery), `redemption_events` (redemptions, invoice checks, refunds) and `ledger_postings` (every
money movement). Each chunk of events becomes deltas added to the rollup rows (an upsert that adds),
and the cursor moves past the chunk in the same transaction: the job can be killed at any point and
run again, and it never counts an event twice or misses one. Two jobs at once take turns (an advisory
lock on PostgreSQL, the write lock on SQLite).

Why a horizon on PostgreSQL. A row's id is drawn from a sequence when it is inserted, not when its
transaction commits, so a slow transaction can commit id 41 after id 42 is visible; a cursor that
moved past 42 would never see 41. Each run therefore notes the highest id drawn so far (the
sequence's last value, H), then the transactions of this database running at that moment (their
transaction-id locks in `pg_locks`), and reads up to H only once all of those have ended. Every
transaction that drew an id ≤ H was running (or done) when H was read, since the services always
write something before they log an event, which gives a transaction its id. Transactions of other
databases on the same server do not hold it up, and neither does the job's own. An idle database
catches up in one run; under load the rollup trails by the longest transaction.
SQLite has one writer at a time (BEGIN IMMEDIATE), so ids commit in order and the horizon is simply
the largest id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Table, and_, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from huimin.campaigns.models import BatchRow
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.kit.clock import Clock, local_date
from huimin.ledger.models import LedgerPostingRow
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow
from huimin.reports.domain import (
    RedemptionFact,
    RedemptionMeasures,
    VoucherFact,
    VoucherMeasures,
    redemption_delta,
    voucher_delta,
)
from huimin.reports.models import (
    AccountBalanceRow,
    MerchantTotalRow,
    ParticipantRow,
    RedemptionDayRow,
    ReportCursorRow,
    VoucherDayRow,
)

__all__ = ["SOURCES", "RollupOutcome", "rebuild", "rollup"]

SOURCES = ("voucher_events", "redemption_events", "ledger_postings")
CHUNK = 5_000
_LOCK = 0x4855_494D_5250_5452  # "HUIMRPTR": the advisory lock of the one rollup job

VoucherKey = tuple[str, date, str, str, str]  # campaign, day, round, batch, district
RedemptionKey = tuple[str, date, str, str, str, str, str]  # … jurisdiction, category, merchant class
K = TypeVar("K", VoucherKey, RedemptionKey)
LEDGER_SPAN = 100_000  # posting ids aggregated per statement
ALL = "*"  # the value of a dimension in a row that sums over it


@dataclass(frozen=True)
class RollupOutcome:
    source: str
    events: int  # read in this run
    last_id: int
    waiting: bool  # PostgreSQL: events beyond the cursor wait for older transactions to end


async def rollup(session: AsyncSession, *, clock: Clock, max_events: int = 1_000_000) -> list[RollupOutcome]:
    """Fold every log up to its safe horizon (at most `max_events` per log), in the caller's
    transaction. Idempotent: with nothing new it changes nothing."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    outcomes = []
    for source in SOURCES:
        outcomes.append(await _fold(session, source, clock=clock, postgres=postgres, max_events=max_events))
    await session.flush()
    return outcomes


async def rebuild(session: AsyncSession, *, clock: Clock) -> list[RollupOutcome]:
    """Forget every rollup and fold the logs again from the start (after a fix to the rollup itself)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    for table in (ReportCursorRow, VoucherDayRow, RedemptionDayRow, MerchantTotalRow, ParticipantRow):
        await session.execute(delete(table))
    await session.execute(delete(AccountBalanceRow))
    read: dict[str, int] = dict.fromkeys(SOURCES, 0)
    while True:  # on PostgreSQL the first pass may only note the horizon
        outcomes = await rollup(session, clock=clock, max_events=10**12)
        for outcome in outcomes:
            read[outcome.source] += outcome.events
        if not any(outcome.events for outcome in outcomes):
            return [
                RollupOutcome(outcome.source, read[outcome.source], outcome.last_id, outcome.waiting)
                for outcome in outcomes
            ]


async def _fold(
    session: AsyncSession, source: str, *, clock: Clock, postgres: bool, max_events: int
) -> RollupOutcome:
    cursor = await session.get(ReportCursorRow, source)
    if cursor is None:
        cursor = ReportCursorRow(source=source, last_id=0, events=0, updated_at=clock.now())
        session.add(cursor)
    read = 0
    while read < max_events:
        if postgres:
            safe = await _reached_horizon(session, cursor)
            if safe is None or safe <= cursor.last_id:
                if not await _note_horizon(session, source, cursor):
                    break  # nothing drawn since: caught up
                safe = await _reached_horizon(session, cursor)
                if safe is None or safe <= cursor.last_id:
                    break  # older transactions still running: the next run reads on
        else:
            safe = await _max_id(session, source)
            if safe <= cursor.last_id:
                break
        upto = min(safe, cursor.last_id + LEDGER_SPAN) if source == "ledger_postings" else safe
        count, last = await _FOLDERS[source](session, after=cursor.last_id, upto=upto, limit=CHUNK)
        if count == 0:
            last = upto  # ids up to the horizon that no committed row holds: rolled back, never coming
        cursor.last_id = last
        cursor.events += count
        cursor.updated_at = clock.now()
        read += count
    await session.flush()
    waiting = postgres and cursor.horizon_id is not None and cursor.horizon_id > cursor.last_id
    return RollupOutcome(source=source, events=read, last_id=cursor.last_id, waiting=waiting)


async def _max_id(session: AsyncSession, source: str) -> int:
    table = _TABLES[source]
    return int(await session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0)


_RUNNING = text(
    "SELECT l.transactionid::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted "
    "AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
)


async def _running(session: AsyncSession) -> set[str]:
    """The transaction ids of this database's other transactions that have written something."""
    return set((await session.scalars(_RUNNING)).all())


async def _reached_horizon(session: AsyncSession, cursor: ReportCursorRow) -> int | None:
    """The noted horizon if every transaction running when it was noted has ended, else None."""
    if cursor.horizon_id is None or cursor.horizon_waits is None:
        return None
    waits = {xid for xid in cursor.horizon_waits.split(",") if xid}
    return cursor.horizon_id if not waits & await _running(session) else None


async def _note_horizon(session: AsyncSession, source: str, cursor: ReportCursorRow) -> bool:
    """Note the highest id drawn, then the transactions running (in this order: see the module's
    docstring). False when no id was drawn since the last horizon."""
    drawn = await session.scalar(
        text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:table, 'id')::regclass)"),
        {"table": source},
    )
    highest = int(drawn or 0)
    if highest <= max(cursor.last_id, cursor.horizon_id or 0):
        return False
    cursor.horizon_id = highest
    cursor.horizon_waits = ",".join(sorted(await _running(session)))
    return True


# Voucher events


async def _fold_voucher_events(
    session: AsyncSession, *, after: int, upto: int, limit: int
) -> tuple[int, int]:
    event = aliased(VoucherEventRow)
    before = aliased(VoucherEventRow)
    previous = (
        select(before.kind)
        .where(before.voucher_id == event.voucher_id, before.id < event.id)
        .order_by(before.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(
                event.id,
                event.kind,
                event.value_fen,
                event.at,
                VoucherRow.campaign_id,
                VoucherRow.round_id,
                VoucherRow.batch_id,
                VoucherRow.district,
                VoucherRow.person_id,
                previous,
            )
            .join(VoucherRow, VoucherRow.id == event.voucher_id)
            .where(event.id > after, event.id <= upto)
            .order_by(event.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0, after
    deltas: dict[VoucherKey, VoucherMeasures] = defaultdict(VoucherMeasures)
    claimers: dict[tuple[str, str], VoucherKey] = {}
    for _, kind, value, at, campaign_id, round_id, batch_id, district, person_id, before_kind in rows:
        key = (campaign_id, local_date(at), round_id, batch_id, district)
        deltas[key] += voucher_delta(VoucherFact(kind=kind, value_fen=value, previous=before_kind))
        if kind == "claimed" and before_kind is None:
            claimers.setdefault((campaign_id, person_id), key)
    for key in (await _new_participants(session, "claimer", claimers)).values():
        deltas[key] += VoucherMeasures(new_claimers=1)
    for (campaign_id, day, round_id, batch_id, _), delta in list(deltas.items()):
        deltas[(campaign_id, day, round_id, batch_id, ALL)] += delta
    await _add(
        session,
        VoucherDayRow.__table__,  # type: ignore[arg-type]
        ("campaign_id", "day", "round_id", "batch_id", "district"),
        [(key, delta.values()) for key, delta in deltas.items()],
    )
    return len(rows), int(rows[-1][0])


# Redemption events


async def _fold_redemption_events(
    session: AsyncSession, *, after: int, upto: int, limit: int
) -> tuple[int, int]:
    event = aliased(RedemptionEventRow)
    earlier = aliased(RedemptionEventRow)
    refunded_through = (
        select(func.coalesce(func.sum(earlier.amount_fen), 0))
        .where(
            earlier.redemption_id == event.redemption_id, earlier.kind == "refunded", earlier.id <= event.id
        )
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(
                event.id,
                event.kind,
                event.at,
                event.amount_fen,
                event.subsidy_fen,
                event.campaign_id,
                event.merchant_id,
                event.person_id,
                RedemptionRow.batch_id,
                RedemptionRow.jurisdiction,
                RedemptionRow.category,
                RedemptionRow.order_fen,
                RedemptionRow.merchant_discount_fen,
                VoucherRow.round_id,
                MerchantRow.merchant_class,
                BatchRow.big_ticket,
                refunded_through,
            )
            .join(RedemptionRow, RedemptionRow.id == event.redemption_id)
            .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
            .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
            .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
            .where(event.id > after, event.id <= upto)
            .order_by(event.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0, after
    deltas: dict[RedemptionKey, RedemptionMeasures] = defaultdict(RedemptionMeasures)
    by_merchant: dict[tuple[str, str], RedemptionMeasures] = defaultdict(RedemptionMeasures)
    merchant_days: dict[tuple[str, str], tuple[str, date, date]] = {}
    spenders: dict[tuple[str, str], RedemptionKey] = {}
    first_sale: dict[tuple[str, str], RedemptionKey] = {}
    for row in rows:
        (_, kind, at, amount, subsidy, campaign_id, merchant_id, person_id, batch_id, jurisdiction) = row[:10]
        category, order, discount, round_id, merchant_class, big_ticket, through = row[10:]
        day = local_date(at)
        key = (campaign_id, day, round_id, batch_id, jurisdiction, category, merchant_class)
        delta = redemption_delta(
            RedemptionFact(
                kind=kind,
                amount_fen=amount,
                subsidy_fen=subsidy,
                order_fen=order,
                discount_fen=discount,
                big_ticket=bool(big_ticket),
                refunded_through_fen=int(through),
            )
        )
        deltas[key] += delta
        by_merchant[(campaign_id, merchant_id)] += delta
        first = merchant_days.get((campaign_id, merchant_id), (jurisdiction, day, day))[1]
        merchant_days[(campaign_id, merchant_id)] = (jurisdiction, first if first < day else day, day)
        if kind == "redeemed":
            spenders.setdefault((campaign_id, person_id), key)
            first_sale.setdefault((campaign_id, merchant_id), key)
    for key in (await _new_participants(session, "spender", spenders)).values():
        deltas[key] += RedemptionMeasures(new_spenders=1)
    known = await _known_merchants(session, first_sale)
    for merchant_key, key in first_sale.items():
        if merchant_key not in known:
            deltas[key] += RedemptionMeasures(new_merchants=1)
            by_merchant[merchant_key] += RedemptionMeasures(new_merchants=1)
    for key, delta in list(deltas.items()):
        for sliced in _slices(key):
            deltas[sliced] += delta
    await _add(
        session,
        RedemptionDayRow.__table__,  # type: ignore[arg-type]
        ("campaign_id", "day", "round_id", "batch_id", "jurisdiction", "category", "merchant_class"),
        [(key, delta.values()) for key, delta in deltas.items()],
    )
    await _add(
        session,
        MerchantTotalRow.__table__,  # type: ignore[arg-type]
        ("campaign_id", "merchant_id"),
        [(key, delta.values() | _days(merchant_days[key])) for key, delta in by_merchant.items()],
        keep={"jurisdiction", "first_day"},
        latest={"last_day"},
    )
    return len(rows), int(rows[-1][0])


def _slices(key: RedemptionKey) -> list[RedemptionKey]:
    """The coarser rows an event also counts in: by jurisdiction only, by category only, by merchant
    class only, and by none of them (ALL in the others), so that the dashboard's usual questions sum a
    few thousand rows, not every combination (see docs/reports.md)."""
    campaign_id, day, round_id, batch_id, jurisdiction, category, merchant_class = key
    return [
        (campaign_id, day, round_id, batch_id, jurisdiction, ALL, ALL),
        (campaign_id, day, round_id, batch_id, ALL, category, ALL),
        (campaign_id, day, round_id, batch_id, ALL, ALL, merchant_class),
        (campaign_id, day, round_id, batch_id, ALL, ALL, ALL),
    ]


def _days(found: tuple[str, date, date]) -> dict[str, Any]:
    jurisdiction, first, last = found
    return {"jurisdiction": jurisdiction, "first_day": first, "last_day": last}


async def _known_merchants(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    wanted = list(keys)
    known: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await session.execute(
            select(MerchantTotalRow.campaign_id, MerchantTotalRow.merchant_id).where(
                tuple_(MerchantTotalRow.campaign_id, MerchantTotalRow.merchant_id).in_(chunk)
            )
        )
        known |= {(campaign, merchant) for campaign, merchant in rows}
    return known


async def _new_participants(
    session: AsyncSession, role: str, first_seen: dict[tuple[str, str], K]
) -> dict[tuple[str, str], K]:
    """Record the (campaign, person) pairs not seen before in `role`; return them with their bucket."""
    wanted = list(first_seen)
    known: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await session.execute(
            select(ParticipantRow.campaign_id, ParticipantRow.person_id).where(
                tuple_(ParticipantRow.campaign_id, ParticipantRow.role, ParticipantRow.person_id).in_(
                    [(campaign, role, person) for campaign, person in chunk]
                )
            )
        )
        known |= {(campaign, person) for campaign, person in rows}
    new = {pair: key for pair, key in first_seen.items() if pair not in known}
    if new:
        await session.execute(
            ParticipantRow.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"campaign_id": campaign, "role": role, "person_id": person, "first_day": _day_of(key)}
                for (campaign, person), key in new.items()
            ],
        )
    return new


def _day_of(key: VoucherKey | RedemptionKey) -> date:
    return key[1]


# Ledger postings


async def _fold_ledger_postings(
    session: AsyncSession, *, after: int, upto: int, limit: int
) -> tuple[int, int]:
    # Aggregated by the database over an id range: ledger postings are the longest log by far.
    del limit
    end = upto
    window = and_(LedgerPostingRow.id > after, LedgerPostingRow.id <= end)
    rows = (
        await session.execute(
            select(
                LedgerPostingRow.campaign_id,
                LedgerPostingRow.account,
                func.sum(LedgerPostingRow.amount_fen),
                func.count(),
            )
            .where(window)
            .group_by(LedgerPostingRow.campaign_id, LedgerPostingRow.account)
        )
    ).all()
    if not rows:
        return 0, after
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for campaign, account, total, count in rows:
        keys = [(campaign, account)]
        if ":" in account:  # an owned account also counts in its kind's total, `kind:*`
            keys.append((campaign, f"{account.partition(':')[0]}:{ALL}"))
        for key in keys:
            before = totals.get(key, (0, 0))
            totals[key] = (before[0] + int(total), before[1] + int(count))
    await _add(
        session,
        AccountBalanceRow.__table__,  # type: ignore[arg-type]
        ("campaign_id", "account"),
        [(key, {"total_fen": total, "postings": count}) for key, (total, count) in totals.items()],
    )
    return sum(int(count) for _, _, _, count in rows), end


async def _add(
    session: AsyncSession,
    table: Table,
    key_columns: Sequence[str],
    rows: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    keep: frozenset[str] | set[str] = frozenset(),
    latest: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Upsert that adds: a new key is inserted, an existing one gets every measure added to it. Columns
    in `keep` keep their first value, those in `latest` take the larger one."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    records = [dict(zip(key_columns, key, strict=True)) | values for key, values in rows]
    statement = insert(table)
    columns = [name for name in records[0] if name not in key_columns and name not in keep]
    statement = statement.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={
            name: (
                func.max(table.c[name], statement.excluded[name])
                if session.get_bind().dialect.name == "sqlite"
                else func.greatest(table.c[name], statement.excluded[name])
            )
            if name in latest
            else table.c[name] + statement.excluded[name]
            for name in columns
        },
    )
    for start in range(0, len(records), 1_000):
        await session.execute(statement, records[start : start + 1_000])


_FOLDERS = {
    "voucher_events": _fold_voucher_events,
    "redemption_events": _fold_redemption_events,
    "ledger_postings": _fold_ledger_postings,
}
_TABLES: dict[str, Table] = {
    "voucher_events": VoucherEventRow.__table__,  # type: ignore[dict-item]
    "redemption_events": RedemptionEventRow.__table__,  # type: ignore[dict-item]
    "ledger_postings": LedgerPostingRow.__table__,  # type: ignore[dict-item]
}
