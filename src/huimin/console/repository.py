"""The console's read-only queries: the overview's aggregates (counts and sums computed by the
database, never by loading rows), the totals of a redemption search, one redemption with what the
detail pages show, and the names behind ledger accounts. Authorization is the services' business:
these functions take the scope they are given.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Date, Select, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit.models import AuditRecordRow, AuditSealRow
from huimin.auth.models import UserRow
from huimin.campaigns.models import BatchRow, RoundBatchRow, RoundRow, StockShardRow
from huimin.claims.models import StockMovementRow, VoucherRow
from huimin.kit.terms import Jurisdiction
from huimin.merchants.models import MerchantRow
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow, RefundRow
from huimin.settlement.models import BankConfirmationRow, BankImportRow

__all__ = [
    "COUNTED",
    "AuditFilter",
    "AuditRepository",
    "BankFileRepository",
    "ConsoleRepository",
    "OverviewRepository",
    "RedemptionDetail",
    "RedemptionFilter",
    "SearchTotals",
    "StaffUser",
    "StatusTotals",
]

# The redemptions the overview counts: purchases that stand (awaiting the county's invoice check,
# confirmed, or paid out). A full refund, a rejected invoice or a clawback takes one out.
COUNTED: tuple[str, ...] = (
    RedemptionStatus.PENDING_VERIFICATION.value,
    RedemptionStatus.CONFIRMED.value,
    RedemptionStatus.SETTLED.value,
)


@dataclass(frozen=True)
class StatusTotals:
    """Redemptions of one status: how many, the subsidy still granted (net of the subsidy that refunds
    returned), and the consumption they drove (the payable amount net of refunds), in fen."""

    status: str
    count: int
    subsidy: int
    consumption: int


class OverviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def released(self, campaign_id: str, now: datetime) -> int:
        """Vouchers put on offer so far: the planned stock of every round that has opened, plus the
        expired vouchers recycled into those rounds (unclaimed stock carried forward is counted once,
        in the round that first offered it)."""
        planned = await self.session.scalar(
            select(func.coalesce(func.sum(RoundBatchRow.stock), 0))
            .join(RoundRow, RoundRow.id == RoundBatchRow.round_id)
            .where(RoundRow.campaign_id == campaign_id, RoundRow.opens_at <= now)
        )
        recycled = await self.session.scalar(
            select(func.coalesce(func.sum(StockMovementRow.quantity), 0))
            .join(RoundRow, RoundRow.id == StockMovementRow.to_round_id)
            .where(
                RoundRow.campaign_id == campaign_id,
                RoundRow.opens_at <= now,
                StockMovementRow.kind == "expired",
            )
        )
        return int(planned or 0) + int(recycled or 0)

    async def claimed(self, campaign_id: str) -> tuple[int, int]:
        """Vouchers claimed (whatever became of them since) and their value in fen."""
        row = (
            await self.session.execute(
                select(func.count(), func.coalesce(func.sum(VoucherRow.value_fen), 0)).where(
                    VoucherRow.campaign_id == campaign_id
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def stock_left(self, campaign_id: str, now: datetime, *, open_now: bool) -> int:
        """What is left in the rounds open now (`open_now`), or in the rounds still to open."""
        window = (
            (RoundRow.opens_at <= now) & (RoundRow.closes_at > now) if open_now else RoundRow.opens_at > now
        )
        total = await self.session.scalar(
            select(func.coalesce(func.sum(StockShardRow.remaining), 0))
            .join(RoundRow, RoundRow.id == StockShardRow.round_id)
            .where(RoundRow.campaign_id == campaign_id, window)
        )
        return int(total or 0)

    def _local_day(self) -> ColumnElement[object]:
        # Asia/Shanghai has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact.
        if self.dialect == "postgresql":
            return cast(func.timezone("Asia/Shanghai", VoucherRow.claimed_at), Date)
        return func.date(VoucherRow.claimed_at, "+8 hours")  # SQLite stores naive UTC

    async def claims_by_day(self, campaign_id: str) -> list[tuple[date, int]]:
        day = self._local_day().label("day")
        rows = await self.session.execute(
            select(day, func.count()).where(VoucherRow.campaign_id == campaign_id).group_by(day).order_by(day)
        )
        return [(date.fromisoformat(str(value)), int(count)) for value, count in rows]

    async def claims_by_district(self, campaign_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(VoucherRow.district, func.count())
            .where(VoucherRow.campaign_id == campaign_id)
            .group_by(VoucherRow.district)
        )
        return {district: int(count) for district, count in rows}

    async def merchants_by_status(
        self, campaign_id: str, jurisdictions: Collection[Jurisdiction]
    ) -> dict[str, int]:
        query = (
            select(MerchantRow.status, func.count())
            .where(MerchantRow.campaign_id == campaign_id)
            .group_by(MerchantRow.status)
        )
        if jurisdictions:
            query = query.where(MerchantRow.jurisdiction.in_([str(item) for item in jurisdictions]))
        return {status: int(count) for status, count in await self.session.execute(query)}

    async def redemptions_by_status(self, campaign_id: str) -> dict[str, StatusTotals]:
        net_subsidy = RedemptionRow.subsidy_fen - RedemptionRow.subsidy_returned_fen
        net_payable = (
            RedemptionRow.order_fen - RedemptionRow.merchant_discount_fen - RedemptionRow.refunded_fen
        )
        rows = await self.session.execute(
            select(
                RedemptionRow.status,
                func.count(),
                func.coalesce(func.sum(net_subsidy), 0),
                func.coalesce(func.sum(net_payable), 0),
            )
            .where(RedemptionRow.campaign_id == campaign_id)
            .group_by(RedemptionRow.status)
        )
        return {
            status: StatusTotals(status, int(count), int(subsidy), int(consumption))
            for status, count, subsidy, consumption in rows
        }

    async def redemptions_by_day(self, campaign_id: str) -> list[tuple[date, int]]:
        """Counted redemptions per local business day (the day the till redeemed them)."""
        rows = await self.session.execute(
            select(RedemptionRow.business_day, func.count())
            .where(RedemptionRow.campaign_id == campaign_id, RedemptionRow.status.in_(COUNTED))
            .group_by(RedemptionRow.business_day)
            .order_by(RedemptionRow.business_day)
        )
        return [(_as_date(day), int(count)) for day, count in rows]

    async def redemptions_by_jurisdiction(self, campaign_id: str) -> dict[str, int]:
        """Counted redemptions per merchant jurisdiction."""
        rows = await self.session.execute(
            select(RedemptionRow.jurisdiction, func.count())
            .where(RedemptionRow.campaign_id == campaign_id, RedemptionRow.status.in_(COUNTED))
            .group_by(RedemptionRow.jurisdiction)
        )
        return {jurisdiction: int(count) for jurisdiction, count in rows}


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@dataclass(frozen=True)
class RedemptionFilter:
    """The filters of the redemption search, with the caller's scope already applied: `jurisdictions`
    None is the whole city, `merchant_id` is forced to a merchant user's own."""

    campaign_id: str | None = None
    jurisdictions: Sequence[str] | None = None
    merchant_id: str | None = None
    status: str | None = None
    big_ticket: bool | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class SearchTotals:
    count: int
    order: int
    subsidy: int


@dataclass(frozen=True)
class RedemptionDetail:
    redemption: RedemptionRow
    batch: BatchRow
    merchant: MerchantRow
    voucher_code: str
    refunds: Sequence[RefundRow]
    events: Sequence[RedemptionEventRow]


@dataclass(frozen=True)
class StaffUser:
    """A console account as a choice in a form (a complaint's assignee): never its secrets."""

    id: str
    name: str
    role: str
    jurisdiction: str | None


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def search_totals(self, where: RedemptionFilter) -> SearchTotals:
        """How many redemptions match the search, and their order amounts and subsidy (the same filters
        as `RedemptionRepository.search`, so the pager and the totals agree with the rows)."""
        query: Select[int, int, int] = (
            select(
                func.count(),
                func.coalesce(func.sum(RedemptionRow.order_fen), 0),
                func.coalesce(func.sum(RedemptionRow.subsidy_fen - RedemptionRow.subsidy_returned_fen), 0),
            )
            .select_from(RedemptionRow)
            .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
        )
        if where.campaign_id is not None:
            query = query.where(RedemptionRow.campaign_id == where.campaign_id)
        if where.jurisdictions is not None:
            query = query.where(RedemptionRow.jurisdiction.in_(where.jurisdictions))
        if where.merchant_id is not None:
            query = query.where(RedemptionRow.merchant_id == where.merchant_id)
        if where.status is not None:
            query = query.where(RedemptionRow.status == where.status)
        if where.big_ticket is not None:
            query = query.where(BatchRow.big_ticket.is_(where.big_ticket))
        if where.since is not None:
            query = query.where(RedemptionRow.business_day >= where.since)
        if where.until is not None:
            query = query.where(RedemptionRow.business_day <= where.until)
        count, order, subsidy = (await self.session.execute(query)).one()
        return SearchTotals(int(count), int(order), int(subsidy))

    async def redemption(self, redemption_id: str) -> RedemptionDetail | None:
        row = (
            await self.session.execute(
                select(RedemptionRow, BatchRow, MerchantRow, VoucherRow.code)
                .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
                .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
                .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
                .where(RedemptionRow.id == redemption_id)
            )
        ).one_or_none()
        if row is None:
            return None
        refunds = await self.session.scalars(
            select(RefundRow).where(RefundRow.redemption_id == redemption_id).order_by(RefundRow.refunded_at)
        )
        events = await self.session.scalars(
            select(RedemptionEventRow)
            .where(RedemptionEventRow.redemption_id == redemption_id)
            .order_by(RedemptionEventRow.id)
        )
        return RedemptionDetail(row[0], row[1], row[2], row[3], refunds.all(), events.all())

    async def redemption_by_form(
        self, *, merchant_id: str, partner_id: str, key: str, day: date
    ) -> tuple[RedemptionRow, str] | None:
        """The redemption a till form already made (its one-time key) and its voucher's code, looked up
        through the (merchant, business day) index: a form is resubmitted on the day it was sent, or
        just after midnight."""
        row = (
            await self.session.execute(
                select(RedemptionRow, VoucherRow.code)
                .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
                .where(
                    RedemptionRow.merchant_id == merchant_id,
                    RedemptionRow.business_day.in_([day, date.fromordinal(day.toordinal() - 1)]),
                    RedemptionRow.partner_id == partner_id,
                    RedemptionRow.idempotency_key == key,
                )
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def merchant_names(self, merchant_ids: Collection[str]) -> dict[str, str]:
        if not merchant_ids:
            return {}
        rows = await self.session.execute(
            select(MerchantRow.id, MerchantRow.legal_name).where(MerchantRow.id.in_(sorted(merchant_ids)))
        )
        return {merchant_id: name for merchant_id, name in rows}

    async def staff_users(self, roles: Collection[str], jurisdiction: str | None) -> list[StaffUser]:
        """Enabled accounts of `roles` without a jurisdiction (city-wide), and those of `jurisdiction`."""
        scope: ColumnElement[bool] = UserRow.jurisdiction.is_(None)
        if jurisdiction is not None:
            scope = or_(scope, UserRow.jurisdiction == jurisdiction)
        rows = await self.session.execute(
            select(UserRow.id, UserRow.display_name, UserRow.username, UserRow.role, UserRow.jurisdiction)
            .where(UserRow.role.in_(sorted(roles)), UserRow.disabled_at.is_(None), scope)
            .order_by(UserRow.role, UserRow.username)
        )
        return [
            StaffUser(user_id, display or username, role, where)
            for user_id, display, username, role, where in rows
        ]

    async def lock_redemption(self, redemption_id: str) -> RedemptionRow | None:
        """The redemption, locked for this transaction: refunds of one purchase take turns."""
        return await self.session.scalar(
            select(RedemptionRow).where(RedemptionRow.id == redemption_id).with_for_update()
        )

    async def refund_by_key(self, redemption_id: str, key: str) -> RefundRow | None:
        """The refund a till refund form already made (its one-time key)."""
        return await self.session.scalar(
            select(RefundRow).where(
                RefundRow.redemption_id == redemption_id, RefundRow.idempotency_key == key
            )
        )

    async def till_redemptions(
        self, *, merchant_id: str, partner_id: str, since: date, statuses: Collection[str], limit: int
    ) -> Sequence[RedemptionRow]:
        """A till user's own redemptions at its shop since a business day, newest first (those its
        refund form may refund: the redemption service refunds a sender's own redemptions only)."""
        rows = await self.session.scalars(
            select(RedemptionRow)
            .where(
                RedemptionRow.merchant_id == merchant_id,
                RedemptionRow.business_day >= since,
                RedemptionRow.partner_id == partner_id,
                RedemptionRow.status.in_(sorted(statuses)),
            )
            .order_by(RedemptionRow.redeemed_at.desc(), RedemptionRow.id)
            .limit(limit)
        )
        return rows.all()


# The audit log viewer (审计日志) and the settlement pages' bank files


@dataclass(frozen=True)
class AuditFilter:
    """The audit log viewer's filters; None does not narrow. Instants are UTC: `since` inclusive,
    `until` exclusive."""

    actor: str | None = None  # an actor's id, or part of its name
    action: str | None = None  # an action, or a prefix ending in "." (`settlement.`)
    object_type: str | None = None
    object_id: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    """Reads of the audit trail (SELECT only: the trail is append-only for the application)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _where(where: AuditFilter) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if where.actor:
            found.append(
                or_(
                    AuditRecordRow.actor_id == where.actor,
                    AuditRecordRow.actor_name.contains(where.actor, autoescape=True),
                )
            )
        if where.action:
            found.append(
                AuditRecordRow.action.startswith(where.action, autoescape=True)
                if where.action.endswith(".")
                else AuditRecordRow.action == where.action
            )
        if where.object_type:
            found.append(AuditRecordRow.object_type == where.object_type)
        if where.object_id:
            found.append(AuditRecordRow.object_id == where.object_id)
        if where.result:
            found.append(AuditRecordRow.result == where.result)
        if where.since is not None:
            found.append(AuditRecordRow.at >= where.since)
        if where.until is not None:
            found.append(AuditRecordRow.at < where.until)
        return found

    async def search(
        self, where: AuditFilter, *, offset: int, limit: int
    ) -> tuple[Sequence[tuple[AuditRecordRow, int | None]], int]:
        """One page of matching records, newest first, each with its seal's sequence number (None:
        not sealed yet), and how many match in all."""
        conditions = self._where(where)
        total = await self.session.scalar(select(func.count()).select_from(AuditRecordRow).where(*conditions))
        rows = await self.session.execute(
            select(AuditRecordRow, AuditSealRow.seq)
            .outerjoin(AuditSealRow, AuditSealRow.record_id == AuditRecordRow.id)
            .where(*conditions)
            .order_by(AuditRecordRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows], int(total or 0)

    async def actions(self) -> list[str]:
        """Every action recorded so far, for the filter's suggestions."""
        found = await self.session.scalars(
            select(AuditRecordRow.action).distinct().order_by(AuditRecordRow.action)
        )
        return list(found)

    async def last_seal(self) -> AuditSealRow | None:
        return await self.session.scalar(select(AuditSealRow).order_by(AuditSealRow.seq.desc()).limit(1))

    async def unsealed(self) -> int:
        """Records not sealed yet (the sealer runs every few seconds; `audit verify` reports any left
        unsealed past its grace period)."""
        count = await self.session.scalar(
            select(func.count())
            .select_from(AuditRecordRow)
            .outerjoin(AuditSealRow, AuditSealRow.record_id == AuditRecordRow.id)
            .where(AuditSealRow.seq.is_(None))
        )
        return int(count or 0)


class BankFileRepository:
    """The bank's confirmation files of a campaign, as imported, and what became of each row."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def imports(self, campaign_id: str, *, limit: int) -> Sequence[BankImportRow]:
        rows = await self.session.scalars(
            select(BankImportRow)
            .where(BankImportRow.campaign_id == campaign_id)
            .order_by(BankImportRow.at.desc(), BankImportRow.id.desc())
            .limit(limit)
        )
        return rows.all()

    async def bank_import(self, import_id: str) -> BankImportRow | None:
        return await self.session.get(BankImportRow, import_id)

    async def confirmations(
        self, *, import_id: str | None = None, run_id: str | None = None
    ) -> Sequence[BankConfirmationRow]:
        query = select(BankConfirmationRow).order_by(BankConfirmationRow.import_id, BankConfirmationRow.row)
        if import_id is not None:
            query = query.where(BankConfirmationRow.import_id == import_id)
        if run_id is not None:
            query = query.where(BankConfirmationRow.run_id == run_id)
        return (await self.session.scalars(query)).all()
