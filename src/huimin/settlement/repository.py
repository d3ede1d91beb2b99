"""All queries of settlement. The work over redemptions is set-based (UPDATE … WHERE, INSERT … SELECT,
UPDATE … FROM): a run over a million redemptions is a handful of statements, never a row at a time
in Python. Per-merchant work (a line, its postings, its set-off) is Python: a run has one line per
merchant, not per redemption.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.db import UtcDateTime
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionRow
from huimin.settlement.domain import DEFAULT_DUAL_APPROVAL_ABOVE, DEFAULT_LAG_DAYS, LineStatus, RunStatus
from huimin.settlement.models import (
    ClawbackRow,
    CollectionRow,
    ReceivableRow,
    SettlementBookRow,
    SettlementItemRow,
    SettlementLineRow,
    SettlementRunRow,
)

__all__ = ["SettlementRepository"]

# Lines whose payout was due and did not happen: the next run retries their redemptions and says so
# (`retry_fen`). A `returned` line also frees its redemptions, but its run never went to the bank: the
# day's next run takes them as a first payout, not a retry.
_RETRIED = "('failed', 'frozen')"

# A redemption the run for day :day may take: confirmed, of that day or before, of an active merchant,
# and not in a line awaiting approval or the bank (a paid or offset line made it `settled`): never in a
# run, or only in lines that failed or were frozen.
_CANDIDATE = """
    r.campaign_id = :campaign AND r.status = 'confirmed' AND r.business_day <= :day
    AND r.merchant_id IN (SELECT id FROM merchants WHERE campaign_id = :campaign AND status = 'active')
    AND NOT EXISTS (
        SELECT 1 FROM settlement_items i JOIN settlement_lines l
          ON l.run_id = i.run_id AND l.merchant_id = i.merchant_id
        WHERE i.redemption_id = r.id AND l.status IN ('prepared', 'sent'))
"""


class SettlementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def _exec(self, sql: str, **params: Any) -> Any:
        statement = text(sql).bindparams(
            *(
                bindparam(key, type_=UtcDateTime())
                for key, value in params.items()
                if isinstance(value, datetime)
            )
        )
        return await self.session.execute(statement, params)

    # The books: settings and the lock that serialises a campaign's settlement work

    async def book_for_update(self, campaign_id: str) -> SettlementBookRow:
        found = await self.session.scalar(
            select(SettlementBookRow).where(SettlementBookRow.campaign_id == campaign_id).with_for_update()
        )
        if found is not None:
            return found
        row = SettlementBookRow(
            campaign_id=campaign_id,
            lag_days=DEFAULT_LAG_DAYS,
            dual_approval_above_fen=int(DEFAULT_DUAL_APPROVAL_ABOVE),
        )
        self.session.add(row)
        await self.session.flush()
        # Two first preparations at once: the loser's INSERT fails on the primary key and its request
        # is refused with an IntegrityError, to be retried. Read it back locked either way.
        locked = await self.session.scalar(
            select(SettlementBookRow).where(SettlementBookRow.campaign_id == campaign_id).with_for_update()
        )
        if locked is None:  # pragma: no cover - flushed just above
            raise LookupError(campaign_id)
        return locked

    async def book(self, campaign_id: str) -> SettlementBookRow | None:
        return await self.session.get(SettlementBookRow, campaign_id)

    # Runs

    async def run(self, run_id: str, *, lock: bool = False) -> SettlementRunRow | None:
        query = select(SettlementRunRow).where(SettlementRunRow.id == run_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def run_of_day(self, campaign_id: str, day: date) -> SettlementRunRow | None:
        return await self.session.scalar(
            select(SettlementRunRow).where(
                SettlementRunRow.campaign_id == campaign_id,
                SettlementRunRow.business_day == day,
                SettlementRunRow.status != RunStatus.RETURNED.value,
            )
        )

    async def runs(
        self,
        campaign_id: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
        day: date | None = None,
    ) -> Sequence[SettlementRunRow]:
        query = select(SettlementRunRow).order_by(SettlementRunRow.business_day, SettlementRunRow.id)
        if campaign_id is not None:
            query = query.where(SettlementRunRow.campaign_id == campaign_id)
        if statuses is not None:
            query = query.where(SettlementRunRow.status.in_(statuses))
        if day is not None:
            query = query.where(SettlementRunRow.business_day == day)
        return (await self.session.scalars(query)).all()

    async def lines(
        self, run_id: str, *, statuses: Sequence[str] | None = None
    ) -> Sequence[SettlementLineRow]:
        query = (
            select(SettlementLineRow)
            .where(SettlementLineRow.run_id == run_id)
            .order_by(SettlementLineRow.seq)
        )
        if statuses is not None:
            query = query.where(SettlementLineRow.status.in_(statuses))
        return (await self.session.scalars(query)).all()

    async def line(self, run_id: str, seq: int) -> SettlementLineRow | None:
        return await self.session.scalar(
            select(SettlementLineRow).where(SettlementLineRow.run_id == run_id, SettlementLineRow.seq == seq)
        )

    # Preparing a run

    async def mark_retries(self, campaign_id: str, run_id: str) -> None:
        """Failed and frozen lines of merchants active again are retried by this run."""
        await self._exec(
            f"""
            UPDATE settlement_lines SET retried_in_run_id = :run
            WHERE status IN {_RETRIED} AND retried_in_run_id IS NULL
              AND run_id IN (SELECT id FROM settlement_runs WHERE campaign_id = :campaign)
              AND merchant_id IN (SELECT id FROM merchants WHERE campaign_id = :campaign AND status = 'active')
            """,  # noqa: S608 - constant fragments only, values are bound
            run=run_id,
            campaign=campaign_id,
        )

    async def attach(self, campaign_id: str, run_id: str, day: date) -> dict[str, int]:
        """Put every candidate redemption in the run (one INSERT … SELECT); returns, per merchant, the
        subsidy of those that come back from a failed or frozen payout."""
        await self._exec(
            f"""
            INSERT INTO settlement_items (run_id, merchant_id, redemption_id)
            SELECT :run, r.merchant_id, r.id FROM redemptions r WHERE {_CANDIDATE}
            """,  # noqa: S608 - constant fragments only, values are bound
            run=run_id,
            campaign=campaign_id,
            day=day,
        )
        rows = await self._exec(
            """
            SELECT i.merchant_id, sum(r.subsidy_fen - r.subsidy_returned_fen)
            FROM settlement_lines l
            JOIN settlement_items i ON i.run_id = l.run_id AND i.merchant_id = l.merchant_id
            JOIN redemptions r ON r.id = i.redemption_id
            WHERE l.retried_in_run_id = :run AND EXISTS (
                SELECT 1 FROM settlement_items n
                WHERE n.run_id = :run AND n.merchant_id = i.merchant_id AND n.redemption_id = i.redemption_id)
            GROUP BY i.merchant_id
            """,
            run=run_id,
        )
        return {merchant_id: int(total) for merchant_id, total in rows}

    async def insert_lines(self, campaign_id: str, run_id: str) -> None:
        """One line per merchant with attached redemptions: their subsidy, the set-off against what the
        merchant owes (at most the subsidy), the rest to pay; the merchant's name and sealed account
        copied; numbered in the order of the credit codes."""
        least = "least" if self.dialect == "postgresql" else "min"
        await self._exec(
            f"""
            INSERT INTO settlement_lines (
                run_id, merchant_id, seq, status, redemptions, subsidy_fen, retry_fen, netted_fen,
                amount_fen, credit_code, legal_name, bank_name, account_masked, account_sealed)
            SELECT :run, due.merchant_id,
                   row_number() OVER (ORDER BY m.credit_code, m.id), 'prepared', due.n, due.fen, 0,
                   {least}(coalesce(owed.fen, 0), due.fen),
                   due.fen - {least}(coalesce(owed.fen, 0), due.fen),
                   m.credit_code, m.legal_name, m.bank_name, m.bank_account_masked, m.bank_account_sealed
            FROM (SELECT i.merchant_id, count(*) AS n, sum(r.subsidy_fen - r.subsidy_returned_fen) AS fen
                  FROM settlement_items i JOIN redemptions r ON r.id = i.redemption_id
                  WHERE i.run_id = :run GROUP BY i.merchant_id) due
            JOIN merchants m ON m.id = due.merchant_id
            LEFT JOIN (SELECT merchant_id, sum(amount_fen - collected_fen) AS fen
                       FROM settlement_receivables WHERE campaign_id = :campaign
                       GROUP BY merchant_id) owed ON owed.merchant_id = due.merchant_id
            """,  # noqa: S608 - constant fragments only, values are bound
            run=run_id,
            campaign=campaign_id,
        )

    async def set_retry(self, run_id: str, retried: dict[str, int]) -> None:
        if retried:
            await self.session.execute(
                text("UPDATE settlement_lines SET retry_fen = :fen WHERE run_id = :run AND merchant_id = :m"),
                [{"run": run_id, "m": merchant_id, "fen": fen} for merchant_id, fen in retried.items()],
            )

    async def totals(
        self, run_id: str, statuses: Sequence[str] | None = None
    ) -> tuple[int, int, int, int, int]:
        """(lines, redemptions, subsidy, netted, amount) of a run's lines."""
        query = select(
            func.count(),
            func.coalesce(func.sum(SettlementLineRow.redemptions), 0),
            func.coalesce(func.sum(SettlementLineRow.subsidy_fen), 0),
            func.coalesce(func.sum(SettlementLineRow.netted_fen), 0),
            func.coalesce(func.sum(SettlementLineRow.amount_fen), 0),
        ).where(SettlementLineRow.run_id == run_id)
        if statuses is not None:
            query = query.where(SettlementLineRow.status.in_(statuses))
        row = (await self.session.execute(query)).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])

    async def held(self, campaign_id: str, day: date) -> dict[str, Any]:
        """What a run for `day` leaves out: confirmed subsidy of merchants not active (frozen) and
        big-ticket subsidy awaiting verification."""
        frozen = await self._exec(
            """
            SELECT r.merchant_id, m.status, count(*), sum(r.subsidy_fen - r.subsidy_returned_fen)
            FROM redemptions r JOIN merchants m ON m.id = r.merchant_id
            WHERE r.campaign_id = :campaign AND r.status = 'confirmed' AND r.business_day <= :day
              AND m.status <> 'active'
              AND NOT EXISTS (
                  SELECT 1 FROM settlement_items i JOIN settlement_lines l
                    ON l.run_id = i.run_id AND l.merchant_id = i.merchant_id
                  WHERE i.redemption_id = r.id AND l.status IN ('prepared', 'sent'))
            GROUP BY r.merchant_id, m.status ORDER BY r.merchant_id
            """,
            campaign=campaign_id,
            day=day,
        )
        pending = (
            await self._exec(
                """
                SELECT count(*), coalesce(sum(subsidy_fen), 0) FROM redemptions
                WHERE campaign_id = :campaign AND status = 'pending_verification' AND business_day <= :day
                """,
                campaign=campaign_id,
                day=day,
            )
        ).one()
        return {
            "frozen": [
                {"merchant_id": merchant_id, "status": status, "redemptions": int(n), "fen": int(fen)}
                for merchant_id, status, n, fen in frozen
            ],
            "pending_verification": {"redemptions": int(pending[0]), "fen": int(pending[1])},
        }

    # Approval and the bank's answer

    async def freeze_inactive(self, run_id: str) -> None:
        await self._exec(
            """
            UPDATE settlement_lines SET status = 'frozen'
            WHERE run_id = :run AND status = 'prepared'
              AND merchant_id IN (SELECT id FROM merchants WHERE status <> 'active')
            """,
            run=run_id,
        )

    async def return_lines(self, run_id: str) -> None:
        """A returned run's lines become `returned`: their items stay (what the run held, for the
        record) but no longer keep the redemptions in settlement. The failed or frozen lines it was
        retrying are let go, so that the day's next run retries them (and reports it)."""
        await self._exec(
            "UPDATE settlement_lines SET status = 'returned' WHERE run_id = :run AND status = 'prepared'",
            run=run_id,
        )
        await self._exec(
            f"""
            UPDATE settlement_lines SET retried_in_run_id = NULL
            WHERE retried_in_run_id = :run AND status IN {_RETRIED}
            """,  # noqa: S608 - constant fragments only, values are bound
            run=run_id,
        )

    async def send(self, run_id: str) -> None:
        await self._exec(
            """
            UPDATE settlement_lines SET status = CASE WHEN amount_fen > 0 THEN 'sent' ELSE 'offset' END
            WHERE run_id = :run AND status = 'prepared'
            """,
            run=run_id,
        )

    async def mark_settled(self, run_id: str, merchant_ids: Sequence[str], at: datetime) -> None:
        """The redemptions of paid lines become settled (their `settlement_id` the run that paid them),
        and so do their vouchers (with an event)."""
        for start in range(0, len(merchant_ids), 500):
            chunk = list(merchant_ids[start : start + 500])
            items = select(SettlementItemRow.redemption_id).where(
                SettlementItemRow.run_id == run_id, SettlementItemRow.merchant_id.in_(chunk)
            )
            await self.session.execute(
                update(RedemptionRow)
                .where(RedemptionRow.id.in_(items.scalar_subquery()), RedemptionRow.status == "confirmed")
                .values(status="settled", settlement_id=run_id)
                .execution_options(synchronize_session=False)
            )
            settled_vouchers = (
                select(RedemptionRow.voucher_id)
                .where(RedemptionRow.id.in_(items.scalar_subquery()), RedemptionRow.status == "settled")
                .scalar_subquery()
            )
            await self.session.execute(
                insert(VoucherEventRow).from_select(
                    ["voucher_id", "kind", "value_fen", "at"],
                    select(
                        VoucherRow.id, literal("settled"), VoucherRow.value_fen, literal(at, UtcDateTime())
                    ).where(VoucherRow.id.in_(settled_vouchers), VoucherRow.status == "redeemed"),
                )
            )
            await self.session.execute(
                update(VoucherRow)
                .where(VoucherRow.id.in_(settled_vouchers), VoucherRow.status == "redeemed")
                .values(status="settled")
                .execution_options(synchronize_session=False)
            )

    async def line_for_update(self, run_id: str, seq: int) -> SettlementLineRow | None:
        return await self.session.scalar(
            select(SettlementLineRow)
            .where(SettlementLineRow.run_id == run_id, SettlementLineRow.seq == seq)
            .with_for_update()
        )

    async def open_lines(self, run_id: str) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    SettlementLineRow.run_id == run_id,
                    SettlementLineRow.status.in_((LineStatus.PREPARED.value, LineStatus.SENT.value)),
                )
            )
            or 0
        )

    # Receivables

    async def outstanding(self, merchant_id: str) -> Sequence[ReceivableRow]:
        """What the merchant still owes, oldest first (the order set-offs collect it in)."""
        query = (
            select(ReceivableRow)
            .where(
                ReceivableRow.merchant_id == merchant_id,
                ReceivableRow.amount_fen > ReceivableRow.collected_fen,
            )
            .order_by(ReceivableRow.created_at, ReceivableRow.id)
            .with_for_update()
        )
        return (await self.session.scalars(query)).all()

    async def collections(
        self, source: str, source_ref: str
    ) -> Sequence[tuple[CollectionRow, ReceivableRow]]:
        query = (
            select(CollectionRow, ReceivableRow)
            .join(ReceivableRow, ReceivableRow.id == CollectionRow.receivable_id)
            .where(
                CollectionRow.source == source,
                CollectionRow.source_ref == source_ref,
                CollectionRow.reversed.is_(False),
            )
            .order_by(CollectionRow.id)
        )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def claw_back_redemptions(self, merchant_id: str, at: datetime) -> tuple[int, int]:
        """Settled redemptions of the merchant: each becomes a receivable and `clawed_back`. Returns
        (redemptions, fen)."""
        await self._exec(
            """
            INSERT INTO settlement_receivables (
                id, campaign_id, merchant_id, origin, origin_id, redemption_id, batch_id, amount_fen,
                collected_fen, created_at)
            SELECT 'rcv_' || substr(r.id, 5), r.campaign_id, r.merchant_id, 'clawback', r.id, r.id, r.batch_id,
                   r.subsidy_fen - r.subsidy_returned_fen, 0, :at
            FROM redemptions r
            WHERE r.merchant_id = :merchant AND r.status = 'settled'
              AND r.subsidy_fen > r.subsidy_returned_fen
            """,
            merchant=merchant_id,
            at=at,
        )
        row = (
            await self._exec(
                """
                SELECT count(*), coalesce(sum(subsidy_fen - subsidy_returned_fen), 0) FROM redemptions
                WHERE merchant_id = :merchant AND status = 'settled'
                """,
                merchant=merchant_id,
            )
        ).one()
        await self._exec(
            "UPDATE redemptions SET status = 'clawed_back' WHERE merchant_id = :merchant AND status = 'settled'",
            merchant=merchant_id,
        )
        return int(row[0]), int(row[1])

    async def expelled_events(self) -> Sequence[Any]:
        from huimin.merchants.models import MerchantEventRow

        query = (
            select(MerchantEventRow)
            .where(MerchantEventRow.kind == "merchant.expelled", MerchantEventRow.consumed_at.is_(None))
            .order_by(MerchantEventRow.id)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def merchant(self, merchant_id: str) -> MerchantRow | None:
        return await self.session.get(MerchantRow, merchant_id)

    async def clawbacks(self, campaign_id: str) -> Sequence[ClawbackRow]:
        return (
            await self.session.scalars(
                select(ClawbackRow)
                .where(ClawbackRow.campaign_id == campaign_id)
                .order_by(ClawbackRow.at, ClawbackRow.id)
            )
        ).all()
