"""The settlement side of the ledger invariants (SPEC §5), run by `huimin ledger check`:

- I2: `clearing` holds exactly the payouts sent to the bank and not yet answered, so it is zero when
  no run awaits the bank;
- I1: `payable:*` is the subsidy of confirmed redemptions not in a live payout, less the frozen
  subsidy set off in clawbacks; `settled:*` is what the bank paid plus set-offs, less what merchants
  owe back (refunds after payment, clawbacks); `receivable:*` is what they owe and was not collected;
- I3: a settled redemption belongs to a paid (or fully set-off) payout.
"""

from __future__ import annotations

from sqlalchemy import text

from huimin.kit.money import Fen
from huimin.ledger.checks import Check, CheckContext, CheckResult, Figure
from huimin.ledger.domain import AccountKind, payable

__all__ = ["CHECKS"]

_SHOWN = 20


async def _scalar(context: CheckContext, sql: str) -> int:
    value = await context.session.scalar(text(sql), {"campaign": context.campaign.id})
    return int(value or 0)


async def clearing_agrees(context: CheckContext) -> list[CheckResult]:
    sent = await _scalar(
        context,
        "SELECT sum(l.amount_fen) FROM settlement_lines l JOIN settlement_runs r ON r.id = l.run_id "
        "WHERE r.campaign_id = :campaign AND l.status = 'sent'",
    )
    awaiting = await _scalar(
        context, "SELECT count(*) FROM settlement_runs WHERE campaign_id = :campaign AND status = 'approved'"
    )
    clearing = context.total(AccountKind.CLEARING)
    return [
        CheckResult(
            "I2",
            "clearing = payouts sent to the bank and not yet answered",
            clearing == sent,
            (Figure("clearing", clearing), Figure("payouts awaiting the bank", sent)),
        ),
        CheckResult(
            "I2",
            "clearing is zero when no settlement run awaits the bank",
            awaiting > 0 or clearing == 0,
            (Figure("clearing", clearing), Figure("runs awaiting the bank", awaiting, money=False)),
        ),
    ]


async def merchant_accounts_agree(context: CheckContext) -> list[CheckResult]:
    session, campaign = context.session, {"campaign": context.campaign.id}
    owed = {
        merchant_id: int(total)
        for merchant_id, total in await session.execute(
            text(
                """
                SELECT r.merchant_id, sum(r.subsidy_fen - r.subsidy_returned_fen) FROM redemptions r
                WHERE r.campaign_id = :campaign AND r.status = 'confirmed' AND NOT EXISTS (
                    SELECT 1 FROM settlement_items i JOIN settlement_lines l
                      ON l.run_id = i.run_id AND l.merchant_id = i.merchant_id
                    WHERE i.redemption_id = r.id AND l.status = 'sent')
                GROUP BY r.merchant_id
                """
            ),
            campaign,
        )
    }
    for merchant_id, total in await session.execute(
        text(
            "SELECT merchant_id, sum(setoff_fen) FROM settlement_clawbacks WHERE campaign_id = :campaign "
            "GROUP BY merchant_id"
        ),
        campaign,
    ):
        owed[merchant_id] = owed.get(merchant_id, 0) - int(total)
    merchants = set(owed) | {
        key.partition(":")[2] for key in context.balances if key.startswith(f"{AccountKind.PAYABLE.value}:")
    }
    problems = []
    for merchant_id in sorted(merchants):
        held = int(context.balances.get(payable(merchant_id), Fen(0)))
        if held != owed.get(merchant_id, 0):
            problems.append(
                f"{payable(merchant_id)} {Fen(held).format()}, redemptions say {Fen(owed.get(merchant_id, 0)).format()}"
            )
    paid = await _scalar(
        context,
        "SELECT sum(l.amount_fen) FROM settlement_lines l JOIN settlement_runs r ON r.id = l.run_id "
        "WHERE r.campaign_id = :campaign AND l.status = 'paid'",
    )
    netted = await _scalar(
        context,
        "SELECT sum(l.netted_fen) FROM settlement_lines l JOIN settlement_runs r ON r.id = l.run_id "
        "WHERE r.campaign_id = :campaign AND l.status IN ('sent', 'paid', 'offset')",
    )
    clawback_setoffs = await _scalar(
        context, "SELECT sum(setoff_fen) FROM settlement_clawbacks WHERE campaign_id = :campaign"
    )
    owed_back = await _scalar(
        context, "SELECT sum(amount_fen) FROM settlement_receivables WHERE campaign_id = :campaign"
    )
    outstanding = await _scalar(
        context,
        "SELECT sum(amount_fen - collected_fen) FROM settlement_receivables WHERE campaign_id = :campaign",
    )
    settled = context.total(AccountKind.SETTLED)
    expected_settled = paid + netted + clawback_setoffs - owed_back
    receivable = context.total(AccountKind.RECEIVABLE)
    shown = problems[:_SHOWN] + ([f"… and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
    return [
        CheckResult(
            "I1",
            "payable:m = confirmed subsidy not in a live payout − frozen subsidy set off",
            not problems,
            (
                Figure("payable:*", context.total(AccountKind.PAYABLE)),
                Figure("merchants differing", len(problems), money=False),
            ),
            tuple(shown),
        ),
        CheckResult(
            "I1",
            "settled = paid payouts + set-offs − owed back (refunds after payment, clawbacks)",
            settled == expected_settled,
            (
                Figure("settled:*", settled),
                Figure("paid by the bank", paid),
                Figure("set off in runs", netted),
                Figure("set off in clawbacks", clawback_setoffs),
                Figure("owed back", owed_back),
            ),
        ),
        CheckResult(
            "I1",
            "receivable = owed back and not collected",
            receivable == outstanding,
            (Figure("receivable:*", receivable), Figure("receivables outstanding", outstanding)),
        ),
    ]


async def settled_redemptions_paid(context: CheckContext) -> list[CheckResult]:
    unpaid = await _scalar(
        context,
        """
        SELECT count(*) FROM redemptions r WHERE r.campaign_id = :campaign AND r.status IN ('settled', 'clawed_back')
          AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.run_id = r.settlement_id
                            AND l.merchant_id = r.merchant_id AND l.status IN ('paid', 'offset'))
        """,
    )
    return [
        CheckResult(
            "I3",
            "every settled redemption is in a paid payout",
            unpaid == 0,
            (Figure("settled redemptions without a paid payout", unpaid, money=False),),
        )
    ]


CHECKS: list[Check] = [clearing_agrees, merchant_accounts_agree, settled_redemptions_paid]
