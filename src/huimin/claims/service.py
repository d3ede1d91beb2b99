"""Use cases of claiming: the flash claim, the rounds board, the wallet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.domain import ClaimMode, ValidityKind
from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow
from huimin.claims import lottery
from huimin.claims.domain import (
    ClaimRefused,
    RoundStatus,
    VoucherStatus,
    batch_scope,
    campaign_scope,
    category_scope,
    new_voucher_code,
    round_scope,
    round_status,
    valid_until,
)
from huimin.claims.gate import ClaimGate, RedisGate, SqlGate, claims_paused
from huimin.claims.models import ClaimCounterRow, LotteryDrawRow, LotteryEntryRow, VoucherEventRow, VoucherRow
from huimin.claims.repository import ClaimContext, ClaimsRepository
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Geofence, Location
from huimin.eligibility.models import ResidentRow
from huimin.errors import ConflictError, HuiminError, NotFound
from huimin.kit.clock import Clock, local_datetime
from huimin.kit.ids import new_id
from huimin.kit.network import network_prefix
from huimin.kit.sealing import Sealer
from huimin.kit.terms import District
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger

__all__ = [
    "ClaimPlace",
    "Claimed",
    "Entered",
    "RoundBoard",
    "claim_limits",
    "claim_voucher",
    "commit_seed",
    "enter_lottery",
    "list_rounds",
    "lottery_record",
    "reconcile_gate",
    "unknown_round_or_batch",
    "wallet",
]


_SQL_GATE = SqlGate()


@dataclass(frozen=True)
class Claimed:
    voucher: VoucherRow
    batch: BatchRow


@dataclass(frozen=True)
class ClaimPlace:
    """Where a claim was made, as the voucher records it for the location-spoofing rule, minimised
    (个人信息保护法): the reported position in GCJ-02 rounded to 3 decimals (about 100 m), and the client's
    network (/24 IPv4, /48 IPv6), never its address."""

    lng: float
    lat: float
    ip_prefix: str | None

    @classmethod
    def of(cls, location: Location, client_ip: str | None) -> ClaimPlace:
        point = location.to_gcj02()
        return cls(round(point.lng, 3), round(point.lat, 3), network_prefix(client_ip))


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
    gate: ClaimGate = _SQL_GATE,
    idempotency_key: str | None = None,
    client_ip: str | None = None,
) -> Claimed:
    """领取: one voucher of a batch in an open first-come round, within every limit, or a refusal
    with its code. Counters and stock are conditional writes in this transaction: if any step
    refuses, the transaction rolls back and nothing was taken.

    The voucher records where it was claimed (`ClaimPlace`: the position to ~100 m, the network of
    `client_ip`, the request's address; None: unknown) for the fraud rules."""
    context = await _claim_context(
        session,
        round_id=round_id,
        batch_id=batch_id,
        partner_id=partner_id,
        resident_id=resident_id,
        key=idempotency_key,
    )
    round_, batch, campaign = context.round, context.batch, context.campaign
    if round_.mode != ClaimMode.FIRST_COME:
        raise ClaimRefused.wrong_mode()
    resident = _resident_of(context, resident_id)
    if not resident.real_name_verified:
        raise ClaimRefused.identity_unverified()
    now = clock.now()
    if not round_.opens_at <= now < round_.closes_at:
        raise ClaimRefused.round_not_open(round_.opens_at, round_.closes_at, now)
    district = _check_eligibility(context, location=location, geofence=geofence)
    verdict = await gate.admit(round_.id, batch.id, resident.person_id, batch.per_person_per_round)
    if context.earlier_voucher_id and isinstance(gate, RedisGate) and verdict in ("ok", "limit_reached"):
        # Redis keeps idempotency answers without persistence: a retry whose answer Redis lost finds the
        # voucher its first attempt committed (read with the context above: the key's reservation keeps
        # a second attempt with it out meanwhile), and gets it again instead of a second one.
        earlier = await session.get(VoucherRow, context.earlier_voucher_id)
        if earlier is not None:
            if verdict == "ok":
                await gate.release(round_.id, batch.id, resident.person_id)
            return Claimed(earlier, batch)
    if verdict == "sold_out":
        raise ClaimRefused.sold_out()
    if verdict == "limit_reached":
        raise ClaimRefused.limit_reached(f"{batch.per_person_per_round} per person in this round")
    if verdict != "ok":
        raise claims_paused()
    try:
        voucher = await issue_voucher(
            session,
            round_=round_,
            batch=batch,
            campaign=campaign,
            resident=resident,
            district=district,
            now=now,
            idempotency_key=idempotency_key,
            place=ClaimPlace.of(location, client_ip),
        )
    except HuiminError:
        await gate.release(
            round_.id, batch.id, resident.person_id
        )  # the database refused: give the seat back
        raise
    return Claimed(voucher, batch)


async def round_batch_or_refuse(
    session: AsyncSession, round_id: str, batch_id: str
) -> tuple[RoundRow, BatchRow, CampaignRow]:
    found = await ClaimsRepository(session).round_batch(round_id, batch_id)
    if found is None:
        raise await unknown_round_or_batch(session, round_id, batch_id)
    return found


async def unknown_round_or_batch(session: AsyncSession, round_id: str, batch_id: str) -> HuiminError:
    """The refusal when a batch is not released in a round: the round itself may be the unknown one."""
    if await session.get(RoundRow, round_id) is None:
        return ClaimRefused.unknown_round(round_id)
    return ClaimRefused.unknown_batch(batch_id)


async def _claim_context(
    session: AsyncSession, *, round_id: str, batch_id: str, partner_id: str, resident_id: str, key: str | None
) -> ClaimContext:
    context = await ClaimsRepository(session).claim_context(
        round_id=round_id, batch_id=batch_id, partner_id=partner_id, resident_id=resident_id, key=key
    )
    if context is None:
        raise await unknown_round_or_batch(session, round_id, batch_id)
    return context


def _resident_of(context: ClaimContext, resident_id: str) -> ResidentRow:
    """The calling app's resident; another app's is as unknown as a missing one."""
    if context.resident is None:
        raise eligibility.unknown_resident(resident_id)
    return context.resident


def _check_eligibility(context: ClaimContext, *, location: Location, geofence: Geofence) -> District:
    """Where the resident is (inside the city), whether a risk sanction blocks the person or the device
    in the campaign, and whether the batch is open to them (union batches). Checked before the claim
    gate, so a blocked claim never takes a reservation."""
    district = geofence.district_of(location)
    if district is None:
        raise ClaimRefused.not_eligible_location()
    if context.blocked:
        raise ClaimRefused.blocked()
    if context.batch.members_only and not context.union_member:
        raise ClaimRefused.not_union_member()
    return district


def claim_limits(round_: RoundRow, batch: BatchRow, campaign: CampaignRow) -> list[tuple[str, int, str]]:
    """(counter scope, limit, description) of every per-person limit a voucher of this batch counts against,
    sorted so that two claims of one person take the counter rows in the same order and never deadlock."""
    limits = [(round_scope(round_.id, batch.id), batch.per_person_per_round, "per person in this round")]
    if batch.per_person_total is not None:
        limits.append((batch_scope(batch.id), batch.per_person_total, "per person for this batch"))
    if campaign.per_person_total is not None:
        limits.append((campaign_scope(campaign.id), campaign.per_person_total, "per person in this campaign"))
    for category in batch.categories:
        if category in campaign.per_person_per_category:
            limit = campaign.per_person_per_category[category]
            limits.append(
                (category_scope(campaign.id, category), limit, f"per person for category {category}")
            )
    return sorted(limits)


async def issue_voucher(
    session: AsyncSession,
    *,
    round_: RoundRow,
    batch: BatchRow,
    campaign: CampaignRow,
    resident: ResidentRow,
    district: District,
    now: datetime,
    idempotency_key: str | None,
    place: ClaimPlace | None = None,
) -> VoucherRow:
    """Count the voucher against every limit, take it from stock and write it, or refuse. `place`: where
    it was claimed (None for a lottery win: the entry, not the draw, was made somewhere)."""
    repository = ClaimsRepository(session)
    for scope, limit, what in claim_limits(round_, batch, campaign):
        if not await repository.count_up(resident.person_id, scope, limit):
            raise ClaimRefused.limit_reached(f"{limit} {what}")
    # Stock last: the hottest rows are locked for the shortest time.
    if not await repository.take_one(round_.id, batch.id):
        raise ClaimRefused.sold_out()
    values = {
        "id": new_id("vch"),
        "code": new_voucher_code(),
        "campaign_id": campaign.id,
        "batch_id": batch.id,
        "round_id": round_.id,
        "resident_id": resident.id,
        "person_id": resident.person_id,
        "status": VoucherStatus.CLAIMED.value,
        "value_fen": batch.max_value_fen,
        "claimed_at": now,
        "valid_until": valid_until(
            now,
            kind=ValidityKind(batch.validity_kind),
            days=batch.validity_days,
            until=batch.validity_until,
            campaign_closes_at=local_datetime(campaign.ends_on + timedelta(days=1), time(0)),
        ),
        "district": district.value,
        "idempotency_key": idempotency_key,
        "claim_lng": place.lng if place else None,
        "claim_lat": place.lat if place else None,
        "claim_ip_prefix": place.ip_prefix if place else None,
    }
    # The voucher row goes in as a Core insert (the claim only reads the object it answers with); its
    # `claimed` event through the session, whose flush the risk stream's publisher watches.
    await repository.insert_voucher(values)
    voucher = VoucherRow(**values)
    session.add(VoucherEventRow(voucher_id=voucher.id, kind="claimed", value_fen=batch.max_value_fen, at=now))
    await session.flush()
    # The voucher's value moves from the funders' budgets to the voucher liability in this same
    # transaction: a claim that rolls back leaves no posting, and no posting exists without its claim.
    funding = await ledger.funding_split(session, batch_id=batch.id)
    await ledger.post(
        session,
        campaign_id=campaign.id,
        transaction=ledger_domain.claim(voucher.id, value=voucher.value_fen, funding=funding),
        at=now,
    )
    return voucher


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


@dataclass(frozen=True)
class Entered:
    entry: LotteryEntryRow
    created: bool
    seed_sha256: str


async def commit_seed(
    session: AsyncSession, *, round_id: str, sealer: Sealer, clock: Clock
) -> LotteryDrawRow:
    """Fix a lottery round's seed and publish its SHA-256 (once; later calls return the same commitment)."""
    draw = await session.get(LotteryDrawRow, round_id)
    if draw is not None:
        return draw
    round_ = await session.get(RoundRow, round_id)
    if round_ is None:
        raise ClaimRefused.unknown_round(round_id)
    if round_.mode != ClaimMode.LOTTERY:
        raise HuiminError("this is a first-come round, not a lottery", code="not_a_lottery", status=409)
    seed = lottery.new_seed()
    # The first entries of a round may arrive together: the first commitment wins, the others read it.
    insert = postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(LotteryDrawRow)
        .values(
            round_id=round_id,
            seed_sha256=lottery.seed_commitment(seed),
            seed_sealed=sealer.seal(seed),
            committed_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["round_id"])
    )
    draw = await session.get(LotteryDrawRow, round_id, populate_existing=True)
    if draw is None:  # pragma: no cover - the insert or the concurrent one committed a row
        raise ConflictError("the lottery seed is being committed; retry", code="entry_conflict")
    return draw


async def enter_lottery(
    session: AsyncSession,
    *,
    partner_id: str,
    resident_id: str,
    round_id: str,
    batch_id: str,
    location: Location,
    geofence: Geofence,
    sealer: Sealer,
    clock: Clock,
) -> Entered:
    """报名: register a resident's entry for a batch of a lottery round while registration is open.
    One entry per natural person and batch; entering again returns the first entry."""
    context = await _claim_context(
        session,
        round_id=round_id,
        batch_id=batch_id,
        partner_id=partner_id,
        resident_id=resident_id,
        key=None,
    )
    round_, batch, campaign = context.round, context.batch, context.campaign
    if round_.mode != ClaimMode.LOTTERY:
        raise HuiminError("this is a first-come round: claim instead", code="not_a_lottery", status=409)
    resident = _resident_of(context, resident_id)
    if not resident.real_name_verified:
        raise ClaimRefused.identity_unverified()
    now = clock.now()
    if not round_.opens_at <= now < round_.closes_at:
        raise ClaimRefused.round_not_open(round_.opens_at, round_.closes_at, now)
    district = _check_eligibility(context, location=location, geofence=geofence)
    draw = await commit_seed(session, round_id=round_id, sealer=sealer, clock=clock)
    existing = await session.scalar(
        select(LotteryEntryRow).where(
            LotteryEntryRow.round_id == round_id,
            LotteryEntryRow.batch_id == batch_id,
            LotteryEntryRow.person_id == resident.person_id,
        )
    )
    if existing is not None:
        return Entered(existing, created=False, seed_sha256=draw.seed_sha256)
    # A person who has already used up a limit cannot win: refuse now rather than forfeit later.
    for scope, limit, what in claim_limits(round_, batch, campaign):
        counted = await session.get(ClaimCounterRow, (resident.person_id, scope))
        if counted is not None and counted.claimed >= limit:
            raise ClaimRefused.limit_reached(f"{limit} {what}")
    entry = LotteryEntryRow(
        id=new_id("ent"),
        round_id=round_id,
        batch_id=batch_id,
        person_id=resident.person_id,
        resident_id=resident.id,
        district=district.value,
        entered_at=now,
    )
    session.add(entry)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise ConflictError(
            "a concurrent entry of the same person won; retry", code="entry_conflict"
        ) from None
    return Entered(entry, created=True, seed_sha256=draw.seed_sha256)


@dataclass(frozen=True)
class LotteryRecord:
    round: RoundRow
    draw: LotteryDrawRow | None
    entries: int
    winners: list[tuple[str, int, str]]  # batch code, rank, masked phone


async def lottery_record(session: AsyncSession, *, round_id: str) -> LotteryRecord:
    """摇号公示: the commitment, and after the draw the seed and the masked winners."""
    round_ = await session.get(RoundRow, round_id)
    if round_ is None or round_.mode != ClaimMode.LOTTERY:
        raise ClaimRefused.unknown_round(round_id)
    draw = await session.get(LotteryDrawRow, round_id)
    entries = await ClaimsRepository(session).entries(round_id)
    winners: list[tuple[str, int, str]] = []
    if draw is not None and draw.drawn_at is not None:
        query = (
            select(BatchRow.code, LotteryEntryRow.rank, ResidentRow.phone_masked)
            .join(BatchRow, BatchRow.id == LotteryEntryRow.batch_id)
            .join(ResidentRow, ResidentRow.id == LotteryEntryRow.resident_id)
            .where(LotteryEntryRow.round_id == round_id, LotteryEntryRow.won.is_(True))
            .order_by(BatchRow.position, LotteryEntryRow.rank)
        )
        winners = [(row[0], row[1] or 0, row[2]) for row in await session.execute(query)]
    return LotteryRecord(round_, draw, len(entries), winners)


async def reconcile_gate(session: AsyncSession, *, gate: RedisGate, clock: Clock) -> int:
    """Rebuild the Redis claim gate of every round not yet closed from PostgreSQL (stock left and each
    person's claims in the round); returns how many rounds were provisioned. Claims of a round are
    paused while it is rebuilt."""
    repository = ClaimsRepository(session)
    rounds = [round_ for round_ in await repository.rounds(None) if round_.closes_at > clock.now()]
    ids = [round_.id for round_ in rounds]
    remaining = await repository.remaining(ids)
    for round_ in rounds:
        stock = {batch_id: left for (round_id, batch_id), left in remaining.items() if round_id == round_.id}
        held: dict[str, dict[str, int]] = {}
        for person_id, scope, claimed in await repository.round_counters(round_.id):
            held.setdefault(scope.rsplit(":", 1)[1], {})[person_id] = claimed
        await gate.provision(round_.id, stock, held)
    return len(rounds)
