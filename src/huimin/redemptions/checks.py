"""The redemption side of the ledger invariants (SPEC §5), run by `huimin ledger check`:

- I1: the subsidy awaiting verification equals `pending:*`; the subsidy earned by merchants and not
  given back by refunds equals what the ledger holds for them (`payable:*` + `clearing` + `settled:*`);
- I3: at most one holding redemption per voucher, and a redeemed voucher has exactly one.
"""

from __future__ import annotations

from sqlalchemy import func, select

from huimin.claims.models import VoucherRow
from huimin.ledger.checks import Check, CheckContext, CheckResult, Figure
from huimin.ledger.domain import AccountKind
from huimin.redemptions.domain import HOLDS_VOUCHER, RedemptionStatus
from huimin.redemptions.models import RedemptionRow

__all__ = ["CHECKS"]

_EARNED = (RedemptionStatus.CONFIRMED, RedemptionStatus.SETTLED, RedemptionStatus.REFUNDED)


async def subsidy_agrees(context: CheckContext) -> list[CheckResult]:
    by_status = {
        status: int(total)
        for status, total in await context.session.execute(
            select(
                RedemptionRow.status,
                func.coalesce(func.sum(RedemptionRow.subsidy_fen - RedemptionRow.subsidy_returned_fen), 0),
            )
            .where(RedemptionRow.campaign_id == context.campaign.id)
            .group_by(RedemptionRow.status)
        )
    }
    pending = by_status.get(RedemptionStatus.PENDING_VERIFICATION.value, 0)
    earned = sum(by_status.get(status.value, 0) for status in _EARNED)
    held = (
        context.total(AccountKind.PAYABLE)
        + context.total(AccountKind.CLEARING)
        + context.total(AccountKind.SETTLED)
    )
    return [
        CheckResult(
            "I1",
            "pending:* = subsidy awaiting invoice verification",
            context.total(AccountKind.PENDING) == pending,
            (Figure("pending:*", context.total(AccountKind.PENDING)), Figure("pending redemptions", pending)),
        ),
        CheckResult(
            "I1",
            "payable + clearing + settled = subsidy earned, net of refunds",
            held == earned,
            (Figure("payable:* + clearing + settled:*", held), Figure("redemptions, net of refunds", earned)),
        ),
    ]


async def one_redemption_per_voucher(context: CheckContext) -> list[CheckResult]:
    holding = [status.value for status in HOLDS_VOUCHER]
    doubled = (
        await context.session.execute(
            select(RedemptionRow.voucher_id, func.count())
            .where(RedemptionRow.campaign_id == context.campaign.id, RedemptionRow.status.in_(holding))
            .group_by(RedemptionRow.voucher_id)
            .having(func.count() > 1)
        )
    ).all()
    redeemed = await context.session.scalar(
        select(func.count())
        .select_from(VoucherRow)
        .where(VoucherRow.campaign_id == context.campaign.id, VoucherRow.status.in_(("redeemed", "settled")))
    )
    held = await context.session.scalar(
        select(func.count())
        .select_from(RedemptionRow)
        .where(RedemptionRow.campaign_id == context.campaign.id, RedemptionRow.status.in_(holding))
    )
    return [
        CheckResult(
            "I3",
            "at most one redemption per voucher",
            not doubled,
            (Figure("vouchers redeemed twice", len(doubled), money=False),),
            tuple(f"voucher {voucher_id}: {count} redemptions" for voucher_id, count in doubled[:20]),
        ),
        CheckResult(
            "I3",
            "redeemed vouchers = holding redemptions",
            redeemed == held,
            (
                Figure("vouchers redeemed", redeemed or 0, money=False),
                Figure("holding redemptions", held or 0, money=False),
            ),
        ),
    ]


CHECKS: list[Check] = [subsidy_agrees, one_redemption_per_voucher]
