"""What a merchant owes back (应收), recorded where it arises: a refund after the subsidy was paid (here,
called by the refund in the same transaction) or a clawback (in `huimin.settlement.service`).

Small on purpose: the redemptions package calls it, so it imports nothing of the settlement service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.errors import ConflictError
from huimin.kit.ids import new_id
from huimin.redemptions.models import RedemptionRow
from huimin.settlement.domain import IN_FLIGHT, LineStatus, SettlementRefused
from huimin.settlement.models import ReceivableRow, SettlementBookRow, SettlementItemRow, SettlementLineRow

__all__ = ["record_refund_receivable", "refuse_refund_in_settlement"]


async def refuse_refund_in_settlement(session: AsyncSession, redemption: RedemptionRow) -> None:
    """A redemption whose subsidy is in a run awaiting approval or the bank cannot be refunded until
    the bank has answered (its money is neither in `payable` nor yet `settled`)."""
    if redemption.status != "confirmed":
        return
    # Wait for a run being prepared or approved for this campaign (it holds the books FOR UPDATE):
    # then its items are visible below; and a run waits for this refund, then reads its amounts.
    await session.execute(
        select(SettlementBookRow.campaign_id)
        .where(SettlementBookRow.campaign_id == redemption.campaign_id)
        .with_for_update(read=True)
    )
    statuses = await session.scalars(
        select(SettlementLineRow.status)
        .join(
            SettlementItemRow,
            (SettlementItemRow.run_id == SettlementLineRow.run_id)
            & (SettlementItemRow.merchant_id == SettlementLineRow.merchant_id),
        )
        .where(
            SettlementLineRow.merchant_id == redemption.merchant_id,
            SettlementLineRow.status.in_([status.value for status in IN_FLIGHT]),
            SettlementItemRow.redemption_id == redemption.id,
        )
    )
    if any(LineStatus(status) in IN_FLIGHT for status in statuses):
        raise SettlementRefused.in_progress()


async def record_refund_receivable(
    session: AsyncSession, *, refund_id: str, redemption: RedemptionRow, amount: int, at: datetime
) -> None:
    """The part of a refund's subsidy the merchant had already been paid: owed back, collected from
    later subsidy by a run's set-off."""
    if amount <= 0:
        raise ConflictError("a receivable is a positive amount", code="ledger_error")
    session.add(
        ReceivableRow(
            id=new_id("rcv"),
            campaign_id=redemption.campaign_id,
            merchant_id=redemption.merchant_id,
            origin="refund",
            origin_id=refund_id,
            redemption_id=redemption.id,
            batch_id=redemption.batch_id,
            amount_fen=amount,
            collected_fen=0,
            created_at=at,
        )
    )
    await session.flush()
