"""All queries of the ledger. Postings are written with Core statements (one executemany per call),
never through ORM objects, so that posting costs the same for one claim or a chunk of expiries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.bulk import BulkInsert
from huimin.campaigns.models import BatchFundingRow, FunderRow
from huimin.kit.ids import new_id
from huimin.ledger.domain import FundingSplit, Transaction
from huimin.ledger.models import DepositRow, LedgerPostingRow, LedgerTransactionRow

__all__ = ["LedgerRepository"]

Key = tuple[str, str]  # (kind, reference)


# Built once, with one SQL text whatever the number of rows (huimin.bulk): a claim or a redemption
# posts one transaction, a batch of express claims or redemptions hundreds, and building, compiling or
# preparing these per call cost more CPU than writing the rows.
_TRANSACTIONS = BulkInsert(
    cast(Table, LedgerTransactionRow.__table__),
    ("id", "campaign_id", "kind", "reference", "at"),
    conflict=("campaign_id", "kind", "reference"),
    returning=("kind", "reference"),
)
_POSTINGS = BulkInsert(
    cast(Table, LedgerPostingRow.__table__), ("transaction_id", "campaign_id", "account", "amount_fen")
)
_FUNDING_SPLITS = (
    select(BatchFundingRow.batch_id, FunderRow.code, BatchFundingRow.share_bp)
    .join(FunderRow, FunderRow.id == BatchFundingRow.funder_id)
    .where(BatchFundingRow.batch_id.in_(bindparam("batch_ids", expanding=True)))
    .order_by(BatchFundingRow.batch_id, BatchFundingRow.position)
)


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def write(
        self, campaign_id: str, transactions: Sequence[Transaction], at: datetime
    ) -> dict[Key, str]:
        """Write the transactions that are new; return the id of every one, new or already written.

        PostgreSQL: the transaction rows first, with ON CONFLICT DO NOTHING deciding between concurrent
        writers of the same event; then the postings of those that were new. Deferred triggers check
        the sums at COMMIT. SQLite: writers are serialised (BEGIN IMMEDIATE), so a lookup finds what is
        already written; the postings go first and each transaction row, written last, seals them.
        """
        rows: dict[Key, dict[str, Any]] = {}
        by_key: dict[Key, Transaction] = {}
        for tx in transactions:
            key = (str(tx.kind), tx.reference)
            if key in rows:
                continue  # the same event twice in one call: the first stands, as across calls
            by_key[key] = tx
            rows[key] = {
                "id": new_id("ltx"),
                "campaign_id": campaign_id,
                "kind": key[0],
                "reference": key[1],
                "at": at,
            }
        if self.dialect == "postgresql":
            inserted = await _TRANSACTIONS.run(await self.session.connection(), list(rows.values()))
            new = {(kind, reference) for kind, reference in inserted}
            await self._insert_postings(
                campaign_id, [(rows[key]["id"], by_key[key]) for key in rows if key in new]
            )
        else:
            existing = await self.existing(campaign_id, list(rows))
            new = set(rows) - set(existing)
            await self._insert_postings(
                campaign_id, [(rows[key]["id"], by_key[key]) for key in rows if key in new]
            )
            if new:
                await self.session.execute(
                    insert(LedgerTransactionRow), [rows[key] for key in rows if key in new]
                )
        ids = {key: str(rows[key]["id"]) for key in new}
        missing = [key for key in rows if key not in ids]
        if missing:
            ids.update(await self.existing(campaign_id, missing))
        return ids

    async def _insert_postings(self, campaign_id: str, written: Sequence[tuple[Any, Transaction]]) -> None:
        postings = [
            {
                "transaction_id": transaction_id,
                "campaign_id": campaign_id,
                "account": posting.account,
                "amount_fen": int(posting.amount),
            }
            for transaction_id, tx in written
            for posting in tx.postings
        ]
        if postings:
            # Core executemany on the session's connection: the ORM's bulk-insert path added about half
            # a millisecond per call and nothing the ledger uses (postings are never loaded as objects here)
            await _POSTINGS.run(await self.session.connection(), postings)

    async def existing(self, campaign_id: str, keys: Sequence[Key]) -> dict[Key, str]:
        found: dict[Key, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = select(
                LedgerTransactionRow.kind, LedgerTransactionRow.reference, LedgerTransactionRow.id
            ).where(
                LedgerTransactionRow.campaign_id == campaign_id,
                tuple_(LedgerTransactionRow.kind, LedgerTransactionRow.reference).in_(chunk),
            )
            found.update(
                {(kind, reference): id_ for kind, reference, id_ in await self.session.execute(query)}
            )
        return found

    async def sums(self, campaign_id: str, account: str | None = None) -> dict[str, int]:
        """The raw sum of the postings of every account of a campaign (debit positive)."""
        query = (
            select(LedgerPostingRow.account, func.sum(LedgerPostingRow.amount_fen))
            .where(LedgerPostingRow.campaign_id == campaign_id)
            .group_by(LedgerPostingRow.account)
        )
        if account is not None:
            query = query.where(LedgerPostingRow.account == account)
        return {key: int(total) for key, total in await self.session.execute(query)}

    async def unbalanced(self, campaign_id: str) -> Sequence[tuple[str, int, int]]:
        """(transaction id, postings, sum) of every transaction that does not balance over two or more
        postings of its own campaign (I2); empty when the database triggers did their job."""
        legs = (
            select(
                LedgerPostingRow.transaction_id.label("transaction_id"),
                func.count().label("legs"),
                func.sum(LedgerPostingRow.amount_fen).label("total"),
            )
            .where(LedgerPostingRow.campaign_id == campaign_id)
            .group_by(LedgerPostingRow.transaction_id)
            .subquery()
        )
        query = (
            select(LedgerTransactionRow.id, func.coalesce(legs.c.legs, 0), func.coalesce(legs.c.total, 0))
            .outerjoin(legs, legs.c.transaction_id == LedgerTransactionRow.id)
            .where(LedgerTransactionRow.campaign_id == campaign_id)
            .where((func.coalesce(legs.c.legs, 0) < 2) | (func.coalesce(legs.c.total, 0) != 0))
        )
        found = [(row[0], int(row[1]), int(row[2])) for row in await self.session.execute(query)]
        # Postings whose transaction is missing or belongs to another campaign.
        strays = (
            select(LedgerPostingRow.transaction_id, func.count(), func.sum(LedgerPostingRow.amount_fen))
            .outerjoin(LedgerTransactionRow, LedgerTransactionRow.id == LedgerPostingRow.transaction_id)
            .where(
                LedgerPostingRow.campaign_id == campaign_id,
                (LedgerTransactionRow.id.is_(None)) | (LedgerTransactionRow.campaign_id != campaign_id),
            )
            .group_by(LedgerPostingRow.transaction_id)
        )
        found += [(row[0], int(row[1]), int(row[2])) for row in await self.session.execute(strays)]
        return found

    async def transaction_count(self, campaign_id: str) -> int:
        query = select(func.count()).where(LedgerTransactionRow.campaign_id == campaign_id)
        return int(await self.session.scalar(query) or 0)

    async def funding_splits(self, batch_ids: Sequence[str]) -> dict[str, FundingSplit]:
        """The funding split of each batch, by funder code, in the batch's order."""
        shares: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for batch_id, code, share in await self.session.execute(
            _FUNDING_SPLITS, {"batch_ids": list(batch_ids)}
        ):
            shares[batch_id].append((code, share))
        return {batch_id: FundingSplit.of(found) for batch_id, found in shares.items()}

    async def funder(self, campaign_id: str, code: str) -> FunderRow | None:
        return await self.session.scalar(
            select(FunderRow).where(FunderRow.campaign_id == campaign_id, FunderRow.code == code)
        )

    async def deposit_for_update(self, deposit_id: str) -> DepositRow | None:
        return await self.session.scalar(
            select(DepositRow).where(DepositRow.id == deposit_id).with_for_update()
        )

    async def deposits(self, campaign_id: str) -> Sequence[tuple[DepositRow, str]]:
        """(deposit, funder code), oldest first."""
        query = (
            select(DepositRow, FunderRow.code)
            .join(FunderRow, FunderRow.id == DepositRow.funder_id)
            .where(DepositRow.campaign_id == campaign_id)
            .order_by(DepositRow.requested_at, DepositRow.id)
        )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def approved_deposits(self, campaign_id: str) -> int:
        query = select(func.coalesce(func.sum(DepositRow.amount_fen), 0)).where(
            DepositRow.campaign_id == campaign_id, DepositRow.status == "approved"
        )
        return int(await self.session.scalar(query) or 0)
