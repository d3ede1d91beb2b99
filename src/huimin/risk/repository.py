"""All queries of risk monitoring: reading the event logs after a cursor, the context the rules need
(history, merchants, identities), alerts, scores and cases."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.eligibility.models import PersonIdentifierRow, ResidentRow
from huimin.kit.clock import local_datetime
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow, RefundRow
from huimin.risk.domain import AlertStatus, SubjectKind
from huimin.risk.ip_regions import IpRegion
from huimin.risk.models import (
    RiskAlertRow,
    RiskCaseReferralRow,
    RiskCaseRow,
    RiskCaseTransitionRow,
    RiskCursorRow,
    RiskEvaluatedEventRow,
    RiskIpRegionRow,
    RiskSettingsRow,
)
from huimin.risk.rules import ClaimFact, MerchantTotals, RedemptionFact, RefundFact

__all__ = ["AlertFilter", "RiskRepository", "ScoreRow"]


@dataclass(frozen=True)
class AlertFilter:
    campaign_id: str | None = None
    rule: str | None = None
    status: str | None = None
    subject_kind: str | None = None
    subject_id: str | None = None
    min_score: int | None = None  # the alert's own score, this one included
    # Asia/Shanghai calendar days, both included, of when the alert was first raised (`raised_at`; a
    # pattern seen again moves `updated_at`, not the day it was raised)
    raised_from: date | None = None
    raised_to: date | None = None
    jurisdiction: str | None = None  # a county reviewer's scope: merchant subjects of it only
    case_ids: Collection[str] | None = None  # a department's scope: alerts of cases referred to it


@dataclass(frozen=True)
class ScoreRow:
    campaign_id: str
    subject_kind: str
    subject_id: str
    jurisdiction: str | None
    score: int
    alerts: int
    rules: list[str]


def _floors(batch: BatchRow) -> tuple[int, ...]:
    if batch.tiers:
        return tuple(int(tier["min_price_fen"]) for tier in batch.tiers)
    return (batch.threshold_fen,) if batch.threshold_fen > 0 else ()


class RiskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # The intake

    async def cursor(self, source: str) -> RiskCursorRow:
        """The cursor of one source, locked for this transaction: two scanners of one source take turns
        (on SQLite every transaction holds the write lock already)."""
        query = select(RiskCursorRow).where(RiskCursorRow.source == source).with_for_update()
        row = await self.session.scalar(query)
        if row is None:  # the migration creates both; a database made otherwise gets them here
            self.session.add(RiskCursorRow(source=source, last_id=0, events=0, updated_at=None))
            await self.session.flush()
            return await self.cursor(source)
        return row

    async def claims_after(self, last_id: int, limit: int) -> list[tuple[int, datetime, ClaimFact | None]]:
        """The next voucher events by id: (id, at, the claim or None for the other kinds and for claims the
        stream path evaluated already)."""
        return await self._claims(VoucherEventRow.id > last_id, limit)

    async def claims_by_ids(self, event_ids: Collection[int]) -> list[tuple[int, datetime, ClaimFact | None]]:
        """These voucher events (the stream path), by id, as `claims_after` reads them."""
        if not event_ids:
            return []
        return await self._claims(VoucherEventRow.id.in_(event_ids), len(event_ids))

    async def _claims(
        self, where: ColumnElement[bool], limit: int
    ) -> list[tuple[int, datetime, ClaimFact | None]]:
        evaluated = and_(
            RiskEvaluatedEventRow.source == "voucher_events",
            RiskEvaluatedEventRow.event_id == VoucherEventRow.id,
        )
        rows = (
            await self.session.execute(
                select(VoucherEventRow, VoucherRow, ResidentRow.device_digest, RiskEvaluatedEventRow.path)
                .join(VoucherRow, VoucherRow.id == VoucherEventRow.voucher_id)
                .join(ResidentRow, ResidentRow.id == VoucherRow.resident_id)
                .outerjoin(RiskEvaluatedEventRow, evaluated)
                .where(where)
                .order_by(VoucherEventRow.id)
                .limit(limit)
            )
        ).all()
        return [
            (
                event.id,
                event.at,
                ClaimFact(
                    event_id=event.id,
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.id,
                    person_id=voucher.person_id,
                    resident_id=voucher.resident_id,
                    device=device,
                    district=voucher.district,
                    at=event.at,
                    lng=voucher.claim_lng,
                    lat=voucher.claim_lat,
                    ip_prefix=voucher.claim_ip_prefix,
                )
                if event.kind == "claimed" and evaluated_by is None
                else None,
            )
            for event, voucher, device, evaluated_by in rows
        ]

    async def claims_of_persons(
        self, person_ids: Collection[str], since: datetime, until: datetime
    ) -> dict[str, list[ClaimFact]]:
        """These persons' claims made in [since, until), by person in time order (location spoofing: the
        other claims of a day, whichever batch evaluated them). Lottery wins have no position or network,
        and carry no signal."""
        if not person_ids:
            return {}
        rows = await self.session.execute(
            select(
                VoucherEventRow.id,
                VoucherRow.campaign_id,
                VoucherRow.id,
                VoucherRow.person_id,
                VoucherRow.resident_id,
                ResidentRow.device_digest,
                VoucherRow.district,
                VoucherRow.claimed_at,
                VoucherRow.claim_lng,
                VoucherRow.claim_lat,
                VoucherRow.claim_ip_prefix,
            )
            .join(VoucherRow, VoucherRow.id == VoucherEventRow.voucher_id)
            .join(ResidentRow, ResidentRow.id == VoucherRow.resident_id)
            .where(
                VoucherRow.person_id.in_(person_ids),
                VoucherRow.claimed_at >= since,
                VoucherRow.claimed_at < until,
                VoucherEventRow.kind == "claimed",
                or_(VoucherRow.claim_lng.is_not(None), VoucherRow.claim_ip_prefix.is_not(None)),
            )
            .order_by(VoucherRow.claimed_at, VoucherEventRow.id)
        )
        found: dict[str, list[ClaimFact]] = defaultdict(list)
        for (
            event_id,
            campaign_id,
            voucher_id,
            person_id,
            resident_id,
            device,
            district,
            at,
            lng,
            lat,
            ip,
        ) in rows:
            found[person_id].append(
                ClaimFact(
                    event_id=event_id,
                    campaign_id=campaign_id,
                    voucher_id=voucher_id,
                    person_id=person_id,
                    resident_id=resident_id,
                    device=device,
                    district=district,
                    at=at,
                    lng=lng,
                    lat=lat,
                    ip_prefix=ip,
                )
            )
        return found

    async def ip_regions(self) -> list[IpRegion]:
        """The whole IP-region table (a few thousand rows), by IP version and network."""
        rows = await self.session.execute(
            select(RiskIpRegionRow.network, RiskIpRegionRow.region, RiskIpRegionRow.in_city)
        )
        regions = [
            IpRegion(network=ipaddress.ip_network(network), region=region, in_city=bool(in_city))
            for network, region, in_city in rows
        ]
        return sorted(regions, key=lambda item: (item.network.version, item.network))

    async def ip_regions_version(self) -> tuple[int, datetime | None]:
        """What tells one import of the table from another (rows, import time): an import replaces every
        row under one timestamp."""
        count, at = (
            await self.session.execute(select(func.count(), func.max(RiskIpRegionRow.imported_at)))
        ).one()
        return int(count), at

    async def replace_ip_regions(self, regions: Collection[IpRegion], *, at: datetime) -> None:
        """The table becomes `regions`, in the caller's transaction: readers see the old table or the new."""
        await self.session.execute(delete(RiskIpRegionRow))
        if regions:
            await self.session.execute(
                insert(RiskIpRegionRow),
                [
                    {
                        "network": str(item.network),
                        "region": item.region,
                        "in_city": item.in_city,
                        "imported_at": at,
                    }
                    for item in regions
                ],
            )

    async def redemption_events_after(self, last_id: int, limit: int) -> Sequence[RedemptionEventRow]:
        return (
            await self.session.scalars(
                select(RedemptionEventRow)
                .where(RedemptionEventRow.id > last_id)
                .order_by(RedemptionEventRow.id)
                .limit(limit)
            )
        ).all()

    async def redemption_events_by_ids(self, event_ids: Collection[int]) -> Sequence[RedemptionEventRow]:
        if not event_ids:
            return []
        return (
            await self.session.scalars(
                select(RedemptionEventRow)
                .where(RedemptionEventRow.id.in_(event_ids))
                .order_by(RedemptionEventRow.id)
            )
        ).all()

    async def evaluated(self, source: str, event_ids: Collection[int]) -> set[int]:
        """Which of these events the stream path evaluated already (`risk_evaluated_events`)."""
        if not event_ids:
            return set()
        return set(
            (
                await self.session.scalars(
                    select(RiskEvaluatedEventRow.event_id).where(
                        RiskEvaluatedEventRow.source == source, RiskEvaluatedEventRow.event_id.in_(event_ids)
                    )
                )
            ).all()
        )

    def mark_evaluated(self, source: str, event_ids: Collection[int], *, path: str, at: datetime) -> None:
        self.session.add_all(
            RiskEvaluatedEventRow(source=source, event_id=event_id, path=path, evaluated_at=at)
            for event_id in event_ids
        )

    async def forget_evaluated(self, source: str, *, up_to: int) -> None:
        """The cursor has passed these: it never reads them again, so their keys are no longer needed."""
        await self.session.execute(
            delete(RiskEvaluatedEventRow).where(
                RiskEvaluatedEventRow.source == source, RiskEvaluatedEventRow.event_id <= up_to
            )
        )

    async def redemption_history(
        self, merchant_ids: Collection[str], since: datetime
    ) -> dict[str, list[RedemptionFact]]:
        """The merchants' redemptions from `since` on, by merchant, in time order.

        The hot query of the intake (a week of every touched merchant's redemptions, each batch): it
        reads the columns the facts need, not whole rows, through the session's connection (Core: no ORM
        result machinery for plain columns), and each batch's floors once."""
        if not merchant_ids:
            return {}
        connection = await self.session.connection()
        rows = (
            await connection.execute(
                select(
                    RedemptionRow.id,
                    RedemptionRow.campaign_id,
                    RedemptionRow.merchant_id,
                    RedemptionRow.person_id,
                    RedemptionRow.voucher_id,
                    RedemptionRow.terminal_id,
                    RedemptionRow.redeemed_at,
                    RedemptionRow.order_fen,
                    RedemptionRow.merchant_discount_fen,
                    RedemptionRow.subsidy_fen,
                    RedemptionRow.batch_id,
                    VoucherRow.district,
                )
                .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
                .where(RedemptionRow.merchant_id.in_(merchant_ids), RedemptionRow.redeemed_at >= since)
                .order_by(RedemptionRow.redeemed_at, RedemptionRow.id)
            )
        ).all()
        batches = {
            batch.id: (_floors(batch), batch.threshold_after_discount)
            for batch in await self.session.scalars(
                select(BatchRow).where(BatchRow.id.in_({row.batch_id for row in rows}))
            )
        }
        history: dict[str, list[RedemptionFact]] = defaultdict(list)
        # unpacked, not read by name: tens of thousands of rows a batch, and a row's attributes cost more
        for (
            redemption_id,
            campaign_id,
            merchant_id,
            person_id,
            voucher_id,
            terminal_id,
            redeemed_at,
            order_fen,
            discount_fen,
            subsidy_fen,
            batch_id,
            district,
        ) in rows:
            floors, after_discount = batches[batch_id]
            payable = order_fen - discount_fen
            history[merchant_id].append(
                RedemptionFact(
                    redemption_id=redemption_id,
                    campaign_id=campaign_id,
                    merchant_id=merchant_id,
                    person_id=person_id,
                    voucher_id=voucher_id,
                    terminal_id=terminal_id,
                    at=redeemed_at,
                    payable_fen=payable,
                    counted_fen=payable if after_discount else order_fen,
                    floors=floors,
                    subsidy_fen=subsidy_fen,
                    claim_district=district,
                )
            )
        return history

    async def refund_history(
        self, merchant_ids: Collection[str], since: datetime
    ) -> dict[str, list[RefundFact]]:
        """The merchants' refunds from `since` on, by merchant, in time order (the columns the facts need)."""
        if not merchant_ids:
            return {}
        connection = await self.session.connection()
        rows = await connection.execute(
            select(
                RedemptionRow.id,
                RedemptionRow.campaign_id,
                RedemptionRow.merchant_id,
                RedemptionRow.person_id,
                RefundRow.amount_fen,
                RefundRow.refunded_at,
                RedemptionRow.redeemed_at,
            )
            .select_from(RefundRow)
            .join(RedemptionRow, RedemptionRow.id == RefundRow.redemption_id)
            .where(RedemptionRow.merchant_id.in_(merchant_ids), RefundRow.refunded_at >= since)
            .order_by(RefundRow.refunded_at, RefundRow.id)
        )
        history: dict[str, list[RefundFact]] = defaultdict(list)
        for redemption_id, campaign_id, merchant_id, person_id, amount_fen, refunded_at, redeemed_at in rows:
            history[merchant_id].append(
                RefundFact(
                    redemption_id=redemption_id,
                    campaign_id=campaign_id,
                    merchant_id=merchant_id,
                    person_id=person_id,
                    amount_fen=amount_fen,
                    at=refunded_at,
                    redeemed_at=redeemed_at,
                )
            )
        return history

    async def redeemed_at(self, redemption_ids: Collection[str]) -> dict[str, datetime]:
        if not redemption_ids:
            return {}
        rows = await self.session.execute(
            select(RedemptionRow.id, RedemptionRow.redeemed_at).where(RedemptionRow.id.in_(redemption_ids))
        )
        return {redemption_id: at for redemption_id, at in rows}

    async def merchants(self, merchant_ids: Collection[str]) -> Sequence[MerchantRow]:
        if not merchant_ids:
            return []
        return (await self.session.scalars(select(MerchantRow).where(MerchantRow.id.in_(merchant_ids)))).all()

    async def totals(self, merchant_ids: Collection[str]) -> dict[str, MerchantTotals]:
        if not merchant_ids:
            return {}
        rows = await self.session.execute(
            select(
                RedemptionRow.merchant_id,
                func.count(),
                func.sum(case((RedemptionRow.refunded_fen > 0, 1), else_=0)),
            )
            .where(RedemptionRow.merchant_id.in_(merchant_ids))
            .group_by(RedemptionRow.merchant_id)
        )
        return {
            merchant_id: MerchantTotals(redemptions=int(count), refunded=int(refunded or 0))
            for merchant_id, count, refunded in rows
        }

    async def devices_of(self, person_ids: Collection[str]) -> dict[str, set[str]]:
        if not person_ids:
            return {}
        rows = await self.session.execute(
            select(ResidentRow.person_id, ResidentRow.device_digest).where(
                ResidentRow.person_id.in_(person_ids)
            )
        )
        found: dict[str, set[str]] = defaultdict(set)
        for person_id, device in rows:
            found[person_id].add(device)
        return found

    async def persons_on(self, devices: Collection[str]) -> dict[str, set[str]]:
        if not devices:
            return {}
        rows = await self.session.execute(
            select(ResidentRow.device_digest, ResidentRow.person_id).where(
                ResidentRow.device_digest.in_(devices)
            )
        )
        found: dict[str, set[str]] = defaultdict(set)
        for device, person_id in rows:
            found[device].add(person_id)
        return found

    async def phones(self, *, persons: Collection[str], digests: Collection[str]) -> list[tuple[str, str]]:
        """(person, phone digest) of these persons and of these phone digests."""
        if not persons and not digests:
            return []
        rows = await self.session.execute(
            select(PersonIdentifierRow.person_id, PersonIdentifierRow.digest).where(
                PersonIdentifierRow.kind == "phone",
                or_(PersonIdentifierRow.person_id.in_(persons), PersonIdentifierRow.digest.in_(digests)),
            )
        )
        return list(rows)

    async def settings(self, campaign_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        if not campaign_ids:
            return {}
        rows = await self.session.scalars(
            select(RiskSettingsRow).where(RiskSettingsRow.campaign_id.in_(campaign_ids))
        )
        return {row.campaign_id: dict(row.settings) for row in rows}

    async def settings_row(self, campaign_id: str) -> RiskSettingsRow | None:
        return await self.session.get(RiskSettingsRow, campaign_id)

    # Alerts

    async def alerts_by_key(self, keys: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], RiskAlertRow]:
        if not keys:
            return {}
        columns = (
            RiskAlertRow.campaign_id,
            RiskAlertRow.rule,
            RiskAlertRow.subject_kind,
            RiskAlertRow.subject_id,
            RiskAlertRow.period,
        )
        rows = await self.session.scalars(
            select(RiskAlertRow).where(
                or_(
                    *(
                        and_(*(column == value for column, value in zip(columns, key, strict=True)))
                        for key in keys
                    )
                )
            )
        )
        return {
            (row.campaign_id, row.rule, row.subject_kind, row.subject_id, row.period): row for row in rows
        }

    def _filtered(self, query: Select[Any], where: AlertFilter) -> Select[Any]:
        if where.campaign_id is not None:
            query = query.where(RiskAlertRow.campaign_id == where.campaign_id)
        if where.rule is not None:
            query = query.where(RiskAlertRow.rule == where.rule)
        if where.status is not None:
            query = query.where(RiskAlertRow.status == where.status)
        if where.subject_kind is not None:
            query = query.where(RiskAlertRow.subject_kind == where.subject_kind)
        if where.subject_id is not None:
            query = query.where(RiskAlertRow.subject_id == where.subject_id)
        if where.min_score is not None:
            query = query.where(RiskAlertRow.score >= where.min_score)
        if where.raised_from is not None:
            query = query.where(RiskAlertRow.raised_at >= local_datetime(where.raised_from, time()))
        if where.raised_to is not None:
            # before the next local midnight, so that the whole last day is in
            next_day = local_datetime(where.raised_to + timedelta(days=1), time())
            query = query.where(RiskAlertRow.raised_at < next_day)
        if where.jurisdiction is not None:
            query = query.where(RiskAlertRow.jurisdiction == where.jurisdiction)
        if where.case_ids is not None:
            query = query.where(RiskAlertRow.case_id.in_(where.case_ids))
        return query

    async def alerts(
        self, where: AlertFilter, *, offset: int, limit: int
    ) -> tuple[int, Sequence[RiskAlertRow]]:
        total = await self.session.scalar(
            self._filtered(select(func.count()).select_from(RiskAlertRow), where)
        )
        rows = await self.session.scalars(
            self._filtered(select(RiskAlertRow), where)
            .order_by(RiskAlertRow.score.desc(), RiskAlertRow.raised_at.desc(), RiskAlertRow.id)
            .offset(offset)
            .limit(limit)
        )
        return int(total or 0), rows.all()

    async def alert(self, alert_id: str, *, for_update: bool = False) -> RiskAlertRow | None:
        query = select(RiskAlertRow).where(RiskAlertRow.id == alert_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def alerts_of_case(self, case_id: str) -> Sequence[RiskAlertRow]:
        return (
            await self.session.scalars(
                select(RiskAlertRow).where(RiskAlertRow.case_id == case_id).order_by(RiskAlertRow.raised_at)
            )
        ).all()

    async def scores(
        self, *, campaign_id: str | None, jurisdiction: str | None, min_score: int, limit: int
    ) -> list[ScoreRow]:
        """Each subject's live alerts (not dismissed) summed; the highest first."""
        total = func.sum(RiskAlertRow.score)
        query = (
            select(
                RiskAlertRow.campaign_id,
                RiskAlertRow.subject_kind,
                RiskAlertRow.subject_id,
                func.max(RiskAlertRow.jurisdiction),
                total,
                func.count(),
            )
            .where(RiskAlertRow.status != AlertStatus.DISMISSED.value)
            .group_by(RiskAlertRow.campaign_id, RiskAlertRow.subject_kind, RiskAlertRow.subject_id)
            .having(total >= min_score)
            .order_by(total.desc(), RiskAlertRow.subject_id)
            .limit(limit)
        )
        if campaign_id is not None:
            query = query.where(RiskAlertRow.campaign_id == campaign_id)
        if jurisdiction is not None:
            query = query.where(RiskAlertRow.jurisdiction == jurisdiction)
        rows = (await self.session.execute(query)).all()
        subjects = {(row[0], row[1], row[2]) for row in rows}
        rules: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        if subjects:
            for campaign, kind, subject, rule in await self.session.execute(
                select(
                    RiskAlertRow.campaign_id,
                    RiskAlertRow.subject_kind,
                    RiskAlertRow.subject_id,
                    RiskAlertRow.rule,
                ).where(
                    RiskAlertRow.subject_id.in_({subject for _, _, subject in subjects}),
                    RiskAlertRow.status != AlertStatus.DISMISSED.value,
                )
            ):
                rules[(campaign, kind, subject)].add(rule)
        return [
            ScoreRow(
                campaign_id=campaign,
                subject_kind=kind,
                subject_id=subject,
                jurisdiction=scope,
                score=int(score),
                alerts=int(count),
                rules=sorted(rules[(campaign, kind, subject)]),
            )
            for campaign, kind, subject, scope, score, count in rows
        ]

    async def merchant_names(self, merchant_ids: Collection[str]) -> dict[str, str]:
        if not merchant_ids:
            return {}
        rows = await self.session.execute(
            select(MerchantRow.id, MerchantRow.legal_name).where(MerchantRow.id.in_(merchant_ids))
        )
        return dict(rows.all())

    # Cases

    async def case(self, case_id: str, *, for_update: bool = False) -> RiskCaseRow | None:
        query = select(RiskCaseRow).where(RiskCaseRow.id == case_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def cases(
        self,
        *,
        campaign_id: str | None,
        status: str | None,
        jurisdiction: str | None,
        department: str | None,
        offset: int,
        limit: int,
    ) -> tuple[int, Sequence[RiskCaseRow]]:
        query = select(RiskCaseRow)
        if campaign_id is not None:
            query = query.where(RiskCaseRow.campaign_id == campaign_id)
        if status is not None:
            query = query.where(RiskCaseRow.status == status)
        if jurisdiction is not None:
            query = query.where(
                RiskCaseRow.jurisdiction == jurisdiction,
                RiskCaseRow.subject_kind == SubjectKind.MERCHANT.value,
            )
        if department is not None:
            query = query.where(
                RiskCaseRow.id.in_(
                    select(RiskCaseReferralRow.case_id).where(RiskCaseReferralRow.department == department)
                )
            )
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.scalars(
            query.order_by(RiskCaseRow.updated_at.desc(), RiskCaseRow.id).offset(offset).limit(limit)
        )
        return int(total or 0), rows.all()

    async def transitions(self, case_id: str) -> Sequence[RiskCaseTransitionRow]:
        return (
            await self.session.scalars(
                select(RiskCaseTransitionRow)
                .where(RiskCaseTransitionRow.case_id == case_id)
                .order_by(RiskCaseTransitionRow.id)
            )
        ).all()

    async def referrals(self, case_id: str) -> Sequence[RiskCaseReferralRow]:
        return (
            await self.session.scalars(
                select(RiskCaseReferralRow)
                .where(RiskCaseReferralRow.case_id == case_id)
                .order_by(RiskCaseReferralRow.referred_at, RiskCaseReferralRow.department)
            )
        ).all()

    async def referred_cases(self, department: str) -> list[str]:
        return list(
            (
                await self.session.scalars(
                    select(RiskCaseReferralRow.case_id).where(RiskCaseReferralRow.department == department)
                )
            ).all()
        )

    def add(self, row: object) -> None:
        self.session.add(row)
