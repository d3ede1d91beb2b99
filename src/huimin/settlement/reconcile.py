"""Reconciliation (对账) of a business day: the redemptions, the ledger, the clearing files and the
bank's confirmations of the day's settlement runs, compared two by two. Every difference is listed;
a clean day has none.

1. each run's totals are the sum of its lines;
2. each live line's subsidy is what its redemptions hold (net of refunds before payment; a refund or
   clawback after payment shows as a receivable of the same redemption, which adds it back);
3. each line's money is in the ledger: `settle` for every line sent, `setoff` for every set-off,
   `payout_paid` / `payout_failed` as the bank answered, each for the line's amount;
4. the clearing file renders to the SHA-256 fixed at approval, and its trailer's control totals are
   the lines sent;
5. every payout sent has the bank's answer, and every row of the bank's files about the day's runs
   was applied (unknown references, amounts that disagree, duplicates and contradictions are listed).

A returned run (退回) is reconciled too: its totals, and no money of it anywhere in the ledger.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow
from huimin.errors import NotFound
from huimin.kit.money import Fen
from huimin.kit.sealing import Sealer
from huimin.ledger.models import LedgerPostingRow, LedgerTransactionRow
from huimin.settlement import domain
from huimin.settlement.domain import LineStatus, RunStatus
from huimin.settlement.models import BankConfirmationRow, SettlementRunRow
from huimin.settlement.repository import SettlementRepository
from huimin.settlement.service import render_clearing_file

__all__ = ["Difference", "Reconciliation", "reconcile"]


@dataclass(frozen=True)
class Difference:
    run_id: str
    what: str  # run_totals, redemptions, ledger, clearing_file, awaiting_bank, bank_file
    detail: str


@dataclass
class Reconciliation:
    day: date
    runs: int = 0
    payouts: int = 0
    total: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences


async def reconcile(
    session: AsyncSession,
    *,
    principal: Principal,
    day: date,
    sealer: Sealer,
    campaign_code: str | None = None,
) -> Reconciliation:
    principal.require(Permission.SETTLEMENT_READ)
    query = select(SettlementRunRow).where(SettlementRunRow.business_day == day).order_by(SettlementRunRow.id)
    if campaign_code is not None:
        campaign = await session.scalar(select(CampaignRow).where(CampaignRow.code == campaign_code))
        if campaign is None:
            raise NotFound(f"no campaign {campaign_code!r}", code="unknown_campaign")
        query = query.where(SettlementRunRow.campaign_id == campaign.id)
    report = Reconciliation(day)
    for run in (await session.scalars(query)).all():
        report.runs += 1
        report.differences += await _reconcile_run(session, run, sealer, report)
    return report


async def _reconcile_run(
    session: AsyncSession, run: SettlementRunRow, sealer: Sealer, report: Reconciliation
) -> list[Difference]:
    repository = SettlementRepository(session)
    found: list[Difference] = []

    def differ(what: str, detail: str) -> None:
        found.append(Difference(run.id, what, detail))

    lines = await repository.lines(run.id)
    # Approved (by the last approver) and so posted, with its clearing file fixed; a prepared or
    # returned run has neither.
    approved = run.status in (RunStatus.APPROVED.value, RunStatus.CLOSED.value)
    # 1. run totals
    sums = (len(lines), sum(line.subsidy_fen for line in lines), sum(line.amount_fen for line in lines))
    if sums != (run.lines, run.subsidy_fen, run.total_fen):
        differ(
            "run_totals",
            f"run says {run.lines} lines, {run.subsidy_fen} / {run.total_fen} fen; lines add up to {sums}",
        )
    # 2. redemptions
    held = {
        merchant_id: (int(count), int(fen))
        for merchant_id, count, fen in await session.execute(
            text(
                """
                SELECT r.merchant_id, count(*), sum(r.subsidy_fen - r.subsidy_returned_fen
                    + coalesce((SELECT sum(v.amount_fen) FROM settlement_receivables v
                                WHERE v.redemption_id = r.id AND v.origin = 'refund'), 0))
                FROM settlement_items i JOIN redemptions r ON r.id = i.redemption_id
                WHERE i.run_id = :run GROUP BY r.merchant_id
                """
            ),
            {"run": run.id},
        )
    }
    for line in lines:
        count, fen = held.pop(line.merchant_id, (0, 0))
        if LineStatus(line.status) in domain.RETURNED:
            continue  # its redemptions went back to payable (refundable, settled by a later run)
        if (count, fen) != (line.redemptions, line.subsidy_fen):
            differ(
                "redemptions",
                f"payout {domain.payout_reference(run.id, line.seq)} ({line.legal_name}): line {line.redemptions} "
                f"redemptions {Fen(line.subsidy_fen).format()}, redemptions hold {count} {Fen(fen).format()}",
            )
    for merchant_id, (count, fen) in held.items():
        differ(
            "redemptions",
            f"{count} redemptions of {merchant_id} ({Fen(fen).format()}) in the run without a line",
        )
    # 3. ledger
    posted: dict[tuple[str, str], int] = defaultdict(int)
    references = [domain.payout_reference(run.id, line.seq) for line in lines]
    for start in range(0, len(references), 500):
        chunk = references[start : start + 500]
        for kind, reference, account, amount in await session.execute(
            select(
                LedgerTransactionRow.kind,
                LedgerTransactionRow.reference,
                LedgerPostingRow.account,
                LedgerPostingRow.amount_fen,
            )
            .join(LedgerPostingRow, LedgerPostingRow.transaction_id == LedgerTransactionRow.id)
            .where(
                LedgerTransactionRow.campaign_id == run.campaign_id, LedgerTransactionRow.reference.in_(chunk)
            )
        ):
            if account == "clearing" or account.startswith("receivable:"):
                posted[(kind, reference)] += (
                    -int(amount) if account.startswith("receivable:") else int(amount)
                )
    for line in lines:
        reference = domain.payout_reference(run.id, line.seq)
        sent = line.status in (LineStatus.SENT.value, LineStatus.PAID.value, LineStatus.FAILED.value)
        expected = {
            ("settle", reference): line.amount_fen if sent else 0,
            ("setoff", reference): line.netted_fen
            if line.status != LineStatus.FROZEN.value and approved
            else 0,
            ("payout_paid", reference): -line.amount_fen if line.status == LineStatus.PAID.value else 0,
            ("payout_failed", reference): -line.amount_fen if line.status == LineStatus.FAILED.value else 0,
        }
        if line.status == LineStatus.FAILED.value:
            # the failed payout also undid the set-off: its receivable legs come back positive
            expected[("payout_failed", reference)] -= line.netted_fen
        for key, amount in expected.items():
            if posted.pop(key, 0) != amount:
                differ("ledger", f"payout {reference}: {key[0]} should move {Fen(abs(amount)).format()}")
    for (kind, reference), amount in posted.items():
        if amount:
            differ("ledger", f"{kind} {reference} moves {Fen(amount).format()} without a matching line")
    # 4. the clearing file
    if approved:
        sent_lines = [
            line
            for line in lines
            if line.status in (LineStatus.SENT.value, LineStatus.PAID.value, LineStatus.FAILED.value)
        ]
        content = render_clearing_file(run, sent_lines, sealer)
        if hashlib.sha256(content).hexdigest() != run.file_sha256:
            differ("clearing_file", "the lines no longer render to the file fixed at approval")
        count, total = domain.clearing_file_totals(content)
        if (count, int(total)) != (run.file_payouts, run.file_total_fen):
            differ(
                "clearing_file",
                f"trailer {count} payouts {total.format()}, run says {run.file_payouts} {run.file_total_fen}",
            )
        report.payouts += count
        report.total += int(total)
    # 5. the bank
    for line in lines:
        if line.status == LineStatus.SENT.value:
            differ(
                "awaiting_bank",
                f"payout {domain.payout_reference(run.id, line.seq)} {Fen(line.amount_fen).format()} has no answer from the bank",
            )
    imports = select(BankConfirmationRow.import_id).where(BankConfirmationRow.run_id == run.id)
    for row in (
        await session.scalars(
            select(BankConfirmationRow)
            .where(
                BankConfirmationRow.outcome.not_in(("applied", "already_applied")),
                (BankConfirmationRow.run_id == run.id)
                | (BankConfirmationRow.run_id.is_(None) & BankConfirmationRow.import_id.in_(imports)),
            )
            .order_by(BankConfirmationRow.import_id, BankConfirmationRow.row)
        )
    ).all():
        differ(
            "bank_file",
            f"import {row.import_id} row {row.row}: {row.outcome} ({row.reference}, {row.status}, {Fen(row.amount_fen).format()})",
        )
    return found
