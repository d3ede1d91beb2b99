"""Revocation (作废) of unused vouchers, when a risk case's sanction blocks a person or a device.

An unused voucher is one in state `claimed`. Revoking it is a conditional write like a redemption's
(`claimed` → `revoked` only if still `claimed`), so a till spending the same voucher at the same moment
either spends it first (the voucher is no longer unused) or finds it revoked (`voucher_revoked`). Each
revoked voucher gets its `revoked` event and its ledger transaction (`revoke`: Dr budget / Cr vouchers,
by the batch's funding split), in the caller's transaction: the value leaves the voucher liability and
returns to the funders' budgets, as an expired voucher's does when it is recycled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.claims.domain import VoucherStatus
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.ledger.domain import Transaction

__all__ = ["Revoked", "revoke_unused"]


@dataclass(frozen=True)
class Revoked:
    vouchers: int
    value_fen: int


async def revoke_unused(
    session: AsyncSession, *, campaign_id: str, person_ids: Collection[str], at: datetime
) -> Revoked:
    """Revoke every unused voucher of these persons in the campaign, with its event and its posting."""
    if not person_ids:
        return Revoked(0, 0)
    taken = (
        await session.execute(
            update(VoucherRow)
            .where(
                VoucherRow.campaign_id == campaign_id,
                VoucherRow.person_id.in_(sorted(person_ids)),
                VoucherRow.status == VoucherStatus.CLAIMED.value,
            )
            .values(status=VoucherStatus.REVOKED.value)
            .returning(VoucherRow.id, VoucherRow.value_fen, VoucherRow.batch_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not taken:
        return Revoked(0, 0)
    taken = sorted(taken)  # the same order of events and postings every time
    await session.execute(
        insert(VoucherEventRow),
        [
            {"voucher_id": voucher_id, "kind": VoucherStatus.REVOKED.value, "value_fen": value, "at": at}
            for voucher_id, value, _ in taken
        ],
    )
    splits = await ledger.funding_splits(session, batch_ids=[batch_id for _, _, batch_id in taken])
    by_batch: dict[str, list[Transaction]] = defaultdict(list)
    for voucher_id, value, batch_id in taken:
        by_batch[batch_id].append(ledger_domain.revoke(voucher_id, value=value, funding=splits[batch_id]))
    await ledger.post_many(
        session,
        campaign_id=campaign_id,
        transactions=[transaction for batch_id in sorted(by_batch) for transaction in by_batch[batch_id]],
        at=at,
    )
    return Revoked(len(taken), sum(int(value) for _, value, _ in taken))
