"""Use cases of settlement (结算): prepare and approve daily runs, the clearing file, the bank's
confirmations, clawbacks of expelled merchants, and the recovery at the campaign's end.

Each runs in the caller's one transaction and never commits: a run killed halfway leaves nothing, and
running it again ends exactly like a clean run. A campaign's settlement work is serialised by a lock
on its `settlement_books` row. The clearing file is fixed (its SHA-256) at approval, in the same
transaction as the postings; writing it to disk is a separate, repeatable step (temp file + rename).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.principals import Permission, Principal
from huimin.campaigns.models import CampaignRow, FunderRow
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.db import UtcDateTime
from huimin.errors import HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock, local_date
from huimin.kit.ids import new_id
from huimin.kit.money import Fen
from huimin.kit.sealing import Sealer
from huimin.ledger import domain as ledger
from huimin.ledger import service as ledger_service
from huimin.ledger.domain import AccountKind, FundingSplit, Transaction
from huimin.merchants.domain import MerchantStatus
from huimin.settlement import domain
from huimin.settlement.domain import (
    BankOutcome,
    ClearingLine,
    LineStatus,
    RunStatus,
    SettlementRefused,
)
from huimin.settlement.models import (
    BankConfirmationRow,
    BankImportRow,
    ClawbackRow,
    CollectionRow,
    ReceivableRow,
    RecoveryRow,
    SettlementApprovalRow,
    SettlementBookRow,
    SettlementLineRow,
    SettlementRunRow,
)
from huimin.settlement.repository import SettlementRepository

__all__ = [
    "BankImportReport",
    "Checkpoint",
    "ClearingFile",
    "FunderStatement",
    "RunDetail",
    "Statement",
    "approve",
    "approve_recovery",
    "claw_back",
    "clearing_file",
    "configure",
    "consume_merchant_events",
    "get_run",
    "import_bank_file",
    "list_runs",
    "prepare",
    "render_clearing_file",
    "request_recovery",
    "return_run",
    "statement",
    "write_clearing_file",
]

# Fault injection for tests (a run killed between two steps): called with the name of each step.
Checkpoint = Callable[[str], None]


def _carry_on(_step: str) -> None:
    return None


async def _campaign(session: AsyncSession, campaign_id: str) -> CampaignRow:
    row = await session.get(CampaignRow, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return row


async def configure(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    lag_days: int | None = None,
    dual_approval_above: Fen | None = None,
) -> SettlementBookRow:
    """A campaign's settlement settings: T+lag (1 by default) and the amount above which a run needs
    two approvers. Changing them is the finance bureau's decision."""
    principal.require(Permission.SETTLEMENT_APPROVE)
    await _campaign(session, campaign_id)
    book = await SettlementRepository(session).book_for_update(campaign_id)
    problems = []
    if lag_days is not None and not 0 <= lag_days <= 30:
        problems.append(Problem("lag_days", "from 0 to 30 days"))
    if dual_approval_above is not None and dual_approval_above <= 0:
        problems.append(Problem("dual_approval_above", "a positive amount"))
    if problems:
        raise InvalidInput(problems, code="invalid_settlement_settings")
    if lag_days is not None:
        book.lag_days = lag_days
    if dual_approval_above is not None:
        book.dual_approval_above_fen = int(dual_approval_above)
    await session.flush()
    return book


# Runs


@dataclass(frozen=True)
class RunDetail:
    run: SettlementRunRow
    lines: Sequence[SettlementLineRow]
    approvals: Sequence[SettlementApprovalRow]


async def prepare(
    session: AsyncSession,
    *,
    principal: Principal,
    campaign_id: str,
    day: date,
    clock: Clock,
    checkpoint: Checkpoint = _carry_on,
) -> SettlementRunRow:
    """Prepare the run for business day `day` (maker): the payout lines of every active merchant, its
    confirmed redemptions of `day` and before attached. Idempotent on (campaign, day): preparing a
    day again answers the run already made and changes nothing."""
    principal.require(Permission.SETTLEMENT_PREPARE)
    campaign = await _campaign(session, campaign_id)
    repository = SettlementRepository(session)
    book = await repository.book_for_update(campaign.id)
    existing = await repository.run_of_day(campaign.id, day)
    if existing is not None:
        return existing
    now = clock.now()
    latest = domain.latest_due_day(local_date(now), book.lag_days)
    if day > latest:
        raise SettlementRefused.not_due(day, latest)
    awaiting = await repository.runs(campaign.id, statuses=[RunStatus.PREPARED.value])
    if awaiting:
        raise SettlementRefused.run_open(awaiting[0].id, awaiting[0].business_day)
    # An expulsion not yet acted on must not be paid: act on the outbox first.
    await consume_merchant_events(session, clock=clock)
    run = SettlementRunRow(
        id=new_id("stl"),
        campaign_id=campaign.id,
        business_day=day,
        status=RunStatus.PREPARED.value,
        prepared_by=principal.actor_id,
        prepared_by_name=principal.name or principal.actor_id,
        prepared_at=now,
        approvals_needed=1,
        held={},
    )
    session.add(run)
    await session.flush()
    await repository.mark_retries(campaign.id, run.id)
    retried = await repository.attach(campaign.id, run.id, day)
    checkpoint("attached")
    await repository.insert_lines(campaign.id, run.id)
    await repository.set_retry(run.id, retried)
    lines, redemptions, subsidy, netted, amount = await repository.totals(run.id)
    run.lines, run.redemptions = lines, redemptions
    run.subsidy_fen, run.netted_fen, run.total_fen = subsidy, netted, amount
    run.approvals_needed = domain.approvals_needed(amount, book.dual_approval_above_fen)
    run.held = await repository.held(campaign.id, day)
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="settlement.run_prepared",
        object_type="settlement_run",
        object_id=run.id,
        at=now,
        detail={"business_day": day.isoformat(), "lines": lines, "total_fen": amount, "netted_fen": netted},
    )
    checkpoint("prepared")
    return run


async def approve(
    session: AsyncSession,
    *,
    principal: Principal,
    run_id: str,
    clock: Clock,
    sealer: Sealer,
    checkpoint: Checkpoint = _carry_on,
) -> SettlementRunRow:
    """Approve a run (checker, the finance bureau): never by its preparer; a run above the campaign's
    threshold needs two different approvers. The final approval, in one transaction, freezes the
    lines of merchants no longer active, posts every payout and set-off, and fixes the clearing file."""
    principal.require(Permission.SETTLEMENT_APPROVE)
    repository = SettlementRepository(session)
    run = await _prepared_for_update(repository, run_id)
    approvals = await _approvals(session, run.id)
    domain.check_approver(
        preparer=run.prepared_by, approver=principal.actor_id, approved_by=[row.approver for row in approvals]
    )
    now = clock.now()
    session.add(
        SettlementApprovalRow(
            run_id=run.id,
            approver=principal.actor_id,
            approver_name=principal.name or principal.actor_id,
            approver_role=principal.role.value,
            prepared_by=run.prepared_by,
            at=now,
        )
    )
    await session.flush()
    final = len(approvals) + 1 >= run.approvals_needed
    await audit.record(
        session,
        principal=principal,
        action="settlement.run_approved" if final else "settlement.run_approval_recorded",
        object_type="settlement_run",
        object_id=run.id,
        at=now,
        detail={"total_fen": run.total_fen, "approval": len(approvals) + 1, "needed": run.approvals_needed},
    )
    if not final:
        return run
    await repository.freeze_inactive(run.id)
    await repository.send(run.id)
    lines = await repository.lines(run.id, statuses=[LineStatus.SENT.value, LineStatus.OFFSET.value])
    transactions: list[Transaction] = []
    for line in lines:
        reference = domain.payout_reference(run.id, line.seq)
        if line.amount_fen > 0:
            transactions.append(
                ledger.settle(reference, merchant_id=line.merchant_id, amount=line.amount_fen)
            )
        if line.netted_fen > 0:
            collected = await _collect(
                session,
                merchant_id=line.merchant_id,
                amount=line.netted_fen,
                source="line",
                source_ref=reference,
                at=now,
            )
            transactions.append(ledger.setoff(reference, merchant_id=line.merchant_id, collected=collected))
    await ledger_service.post_many(session, campaign_id=run.campaign_id, transactions=transactions, at=now)
    offset = [line.merchant_id for line in lines if line.status == LineStatus.OFFSET.value]
    await repository.mark_settled(run.id, offset, now)
    checkpoint("posted")
    sent = [line for line in lines if line.status == LineStatus.SENT.value]
    content = render_clearing_file(run, sent, sealer)
    run.file_sha256 = hashlib.sha256(content).hexdigest()
    run.file_payouts = len(sent)
    run.file_total_fen = sum(line.amount_fen for line in sent)
    run.approved_at = now
    run.status = RunStatus.APPROVED.value if sent else RunStatus.CLOSED.value
    if not sent:
        run.closed_at = now
    await session.flush()
    checkpoint("approved")
    return run


async def return_run(
    session: AsyncSession, *, principal: Principal, run_id: str, reason: str, clock: Clock
) -> SettlementRunRow:
    """Return a run (退回, the checker's refusal): finance sends a prepared run back to the operator
    with a reason. Only a run still awaiting approval, also one with the first of two approvals (that
    approval stays on record, without effect); never by its preparer, as for approval. Nothing was
    posted at preparation, so nothing is reversed: the run and its lines become `returned`, which
    frees their redemptions, and the operator may prepare the day again. Returning it again, or
    returning an approved run, is refused (`run_not_prepared`)."""
    principal.require(Permission.SETTLEMENT_APPROVE)
    why = domain.check_return_reason(reason)
    repository = SettlementRepository(session)
    run = await _prepared_for_update(repository, run_id)
    if principal.actor_id == run.prepared_by:
        raise SettlementRefused.maker_checker()
    now = clock.now()
    await repository.return_lines(run.id)
    run.status = RunStatus.RETURNED.value
    run.returned_at = now
    run.returned_by = principal.actor_id
    run.returned_by_name = principal.name or principal.actor_id
    run.return_reason = why
    await session.flush()
    approvals = await _approvals(session, run.id)
    await audit.record(
        session,
        principal=principal,
        action="settlement.run_returned",
        object_type="settlement_run",
        object_id=run.id,
        at=now,
        detail={
            "business_day": run.business_day.isoformat(),
            "total_fen": run.total_fen,
            "approvals": len(approvals),
            "reason": why,
        },
    )
    return run


async def _prepared_for_update(repository: SettlementRepository, run_id: str) -> SettlementRunRow:
    """A run awaiting approval, locked after its campaign's settlement book (the order in which every
    writer takes them), for its approval or its return; refused when unknown or no longer prepared."""
    found = await repository.run(run_id)
    if found is None:
        raise SettlementRefused.unknown_run(run_id)
    await repository.book_for_update(found.campaign_id)
    run = await repository.run(run_id, lock=True)
    if run is None:  # pragma: no cover - read just above
        raise SettlementRefused.unknown_run(run_id)
    if run.status != RunStatus.PREPARED.value:
        raise SettlementRefused.not_prepared(run.status)
    return run


async def _approvals(session: AsyncSession, run_id: str) -> Sequence[SettlementApprovalRow]:
    return (
        await session.scalars(
            select(SettlementApprovalRow)
            .where(SettlementApprovalRow.run_id == run_id)
            .order_by(SettlementApprovalRow.at, SettlementApprovalRow.approver)
        )
    ).all()


async def _collect(
    session: AsyncSession, *, merchant_id: str, amount: int, source: str, source_ref: str, at: Any
) -> list[tuple[FundingSplit, int]]:
    """Collect `amount` of what the merchant owes, oldest receivable first; (funding split, part) of
    each part for the set-off's budget legs."""
    owed = await SettlementRepository(session).outstanding(merchant_id)
    parts = domain.allocate(amount, [(row.id, row.amount_fen - row.collected_fen) for row in owed])
    by_id = {row.id: row for row in owed}
    splits = await ledger_service.funding_splits(session, batch_ids=[by_id[key].batch_id for key, _ in parts])
    collected = []
    for key, part in parts:
        receivable = by_id[key]
        receivable.collected_fen += part
        session.add(
            CollectionRow(receivable_id=key, source=source, source_ref=source_ref, amount_fen=part, at=at)
        )
        collected.append((splits[receivable.batch_id], part))
    await session.flush()
    return collected


def _open(sealer: Sealer, sealed: bytes) -> str:
    try:
        return sealer.open(sealed)
    except Exception:
        raise HuiminError(
            "a bank account cannot be unsealed with this server's key (HUIMIN_SECRET_KEY changed?)",
            code="bank_account_unreadable",
            status=500,
        ) from None


def render_clearing_file(run: SettlementRunRow, sent: Sequence[SettlementLineRow], sealer: Sealer) -> bytes:
    """The bytes of a run's clearing file from its payout lines, their accounts unsealed for the bank."""
    lines = []
    for line in sent:
        if line.account_sealed is None:
            raise HuiminError(
                f"merchant {line.merchant_id} has no bank account on file", code="no_bank_account", status=409
            )
        lines.append(
            ClearingLine(
                reference=domain.payout_reference(run.id, line.seq),
                credit_code=line.credit_code,
                merchant_name=line.legal_name,
                bank_name=line.bank_name,
                account=_open(sealer, line.account_sealed),
                amount=Fen(line.amount_fen),
            )
        )
    return domain.render_clearing_file(lines)


@dataclass(frozen=True)
class ClearingFile:
    name: str
    content: bytes
    sha256: str


async def clearing_file(
    session: AsyncSession, *, principal: Principal, run_id: str, sealer: Sealer, clock: Clock
) -> ClearingFile:
    """The clearing file of an approved run, byte for byte the one fixed at approval (checked against
    its SHA-256). It carries the merchants' clear bank accounts: for the bank only (docs/settlement.md)."""
    principal.require(Permission.SETTLEMENT_EXPORT)
    repository = SettlementRepository(session)
    run = await repository.run(run_id)
    if run is None:
        raise SettlementRefused.unknown_run(run_id)
    if run.status == RunStatus.PREPARED.value or run.file_sha256 is None:
        raise HuiminError(
            "the clearing file exists once the run is approved", code="run_not_approved", status=409
        )
    sent = [
        line
        for line in await repository.lines(run.id)
        if line.status in (LineStatus.SENT.value, LineStatus.PAID.value, LineStatus.FAILED.value)
        and line.amount_fen > 0
    ]
    content = render_clearing_file(run, sent, sealer)
    digest = hashlib.sha256(content).hexdigest()
    if digest != run.file_sha256:
        raise SettlementRefused.file_tampered()
    campaign = await _campaign(session, run.campaign_id)
    # An export of clear bank accounts (SPEC §11.7): who took the file, when.
    await audit.record(
        session,
        principal=principal,
        action="settlement.clearing_file_exported",
        object_type="settlement_run",
        object_id=run.id,
        at=clock.now(),
        detail={"sha256": digest, "payouts": run.file_payouts, "total_fen": run.file_total_fen},
    )
    return ClearingFile(f"clearing-{campaign.code}-{run.business_day:%Y%m%d}-{run.id}.csv", content, digest)


def write_clearing_file(directory: Path, file: ClearingFile, *, checkpoint: Checkpoint = _carry_on) -> Path:
    """Write the file atomically: a temporary file in the same directory, flushed to disk, then renamed
    over the target, so a reader (or a crash) sees the whole file or none. Owner-only permissions: it
    holds clear bank accounts. Writing it again writes the same bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file.name
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(file.content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        checkpoint("written")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


async def list_runs(
    session: AsyncSession, *, principal: Principal, campaign_id: str | None = None, day: date | None = None
) -> Sequence[SettlementRunRow]:
    principal.require(Permission.SETTLEMENT_READ)
    return await SettlementRepository(session).runs(campaign_id, day=day)


async def get_run(session: AsyncSession, *, principal: Principal, run_id: str) -> RunDetail:
    principal.require(Permission.SETTLEMENT_READ)
    repository = SettlementRepository(session)
    run = await repository.run(run_id)
    if run is None:
        raise SettlementRefused.unknown_run(run_id)
    return RunDetail(run, await repository.lines(run.id), await _approvals(session, run.id))


# The bank's answer


@dataclass
class BankImportReport:
    import_id: str
    rows: int
    applied: int = 0
    already_applied: int = 0
    differences: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reference, outcome)


async def import_bank_file(
    session: AsyncSession, *, principal: Principal, campaign_id: str, content: bytes, clock: Clock
) -> BankImportReport:
    """Apply the bank's confirmation file: each payout paid (its redemptions and vouchers settled) or
    failed (back to payable, retried by the next run). Unknown references, amounts that disagree,
    duplicates and contradictions are reported, not applied. Importing a file again applies nothing."""
    principal.require(Permission.SETTLEMENT_PREPARE)
    await _campaign(session, campaign_id)
    rows = domain.parse_bank_file(content)
    repository = SettlementRepository(session)
    await repository.book_for_update(campaign_id)
    now = clock.now()
    record = BankImportRow(
        id=new_id("bnk"),
        campaign_id=campaign_id,
        file_sha256=hashlib.sha256(content).hexdigest(),
        rows=len(rows),
        applied=0,
        reported=0,
        imported_by=principal.actor_id,
        at=now,
    )
    session.add(record)
    await session.flush()
    report = BankImportReport(record.id, len(rows))
    seen: set[str] = set()
    transactions: list[Transaction] = []
    paid: dict[str, list[str]] = {}
    touched: set[str] = set()
    runs: dict[str, SettlementRunRow | None] = {}
    for row in rows:
        reference = row.reference.strip().upper()
        parsed = domain.parse_reference(reference)
        line = None
        if parsed is not None:
            run_id, seq = parsed
            if run_id not in runs:
                found = await repository.run(run_id)
                runs[run_id] = found if found is not None and found.campaign_id == campaign_id else None
            line = await repository.line_for_update(run_id, seq) if runs[run_id] is not None else None
        if line is None:
            outcome = "unknown_reference"
        elif reference in seen:
            outcome = "duplicate"
        elif row.amount != line.amount_fen:
            outcome = "amount_mismatch"
        elif line.status == LineStatus.SENT.value:
            outcome = "applied"
            transactions.append(await _answer(session, line, reference, row.outcome, row, now))
            touched.add(line.merchant_id)
            if row.outcome is BankOutcome.PAID:
                paid.setdefault(line.run_id, []).append(line.merchant_id)
        elif line.status == row.outcome.value and (
            row.outcome is BankOutcome.FAILED or line.bank_transaction_id == row.bank_transaction_id
        ):
            outcome = "already_applied"
        else:
            outcome = "conflict"
        seen.add(reference)
        session.add(
            BankConfirmationRow(
                import_id=record.id,
                row=row.row,
                reference=reference[:64],
                amount_fen=int(row.amount),
                status=row.outcome.value,
                bank_transaction_id=row.bank_transaction_id[:64],
                reason=row.reason[:200],
                outcome=outcome,
                run_id=line.run_id if line is not None else None,
            )
        )
        if outcome == "applied":
            report.applied += 1
        elif outcome == "already_applied":
            report.already_applied += 1
        else:
            report.differences.append((row.row, reference, outcome))
    await session.flush()
    await ledger_service.post_many(session, campaign_id=campaign_id, transactions=transactions, at=now)
    for run_id, merchants in paid.items():
        await repository.mark_settled(run_id, merchants, now)
    for run_id in {run_id for run_id, found in runs.items() if found is not None}:
        run = await repository.run(run_id, lock=True)
        if (
            run is not None
            and run.status == RunStatus.APPROVED.value
            and not await repository.open_lines(run.id)
        ):
            run.status, run.closed_at = RunStatus.CLOSED.value, now
    for merchant_id in sorted(touched):
        merchant = await repository.merchant(merchant_id)
        if merchant is not None and merchant.status == MerchantStatus.EXPELLED.value:
            await claw_back(session, campaign_id=campaign_id, merchant_id=merchant_id, clock=clock)
    record.applied, record.reported = report.applied, len(report.differences)
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="settlement.bank_file_imported",
        object_type="settlement_bank_import",
        object_id=record.id,
        at=now,
        detail={
            "sha256": record.file_sha256,
            "rows": record.rows,
            "applied": report.applied,
            "reported": record.reported,
        },
    )
    return report


async def _answer(
    session: AsyncSession,
    line: SettlementLineRow,
    reference: str,
    outcome: BankOutcome,
    row: domain.BankRow,
    now: Any,
) -> Transaction:
    line.status = outcome.value
    line.bank_transaction_id = row.bank_transaction_id[:64] or None
    line.bank_reason = row.reason[:200] or None
    line.answered_at = now
    if outcome is BankOutcome.PAID:
        return ledger.payout_paid(reference, merchant_id=line.merchant_id, amount=line.amount_fen)
    # Failed: the set-off made with this payout is undone, so the next run settles the redemptions
    # from scratch (and nets what the merchant owes then).
    undone: list[tuple[FundingSplit, int]] = []
    collections = await SettlementRepository(session).collections("line", reference)
    splits = (
        await ledger_service.funding_splits(
            session, batch_ids=[receivable.batch_id for _, receivable in collections]
        )
        if collections
        else {}
    )
    for collection, receivable in collections:
        collection.reversed = True
        receivable.collected_fen -= collection.amount_fen
        undone.append((splits[receivable.batch_id], collection.amount_fen))
    return ledger.payout_failed(
        reference, merchant_id=line.merchant_id, amount=line.amount_fen, undone=undone
    )


# Clawback (追回)


async def consume_merchant_events(session: AsyncSession, *, clock: Clock) -> list[ClawbackRow]:
    """Act on `merchant.expelled` events of the merchants outbox, in order, each once: claw back the
    merchant's settled subsidy and set it off against what is still owed to it."""
    done = []
    repository = SettlementRepository(session)
    for event in await repository.expelled_events():
        await repository.book_for_update(event.campaign_id)  # no run is prepared or approved meanwhile
        row = await claw_back(
            session,
            campaign_id=event.campaign_id,
            merchant_id=event.merchant_id,
            clock=clock,
            event_id=event.id,
        )
        event.consumed_at = clock.now()
        if row is not None:
            done.append(row)
    await session.flush()
    return done


async def claw_back(
    session: AsyncSession, *, campaign_id: str, merchant_id: str, clock: Clock, event_id: int | None = None
) -> ClawbackRow | None:
    """An expelled merchant's settled redemptions become `clawed_back` and what they paid is owed back
    (Dr receivable / Cr settled); what is still owed to the merchant (its frozen payable) is set off
    against it; the rest is outstanding. Repeatable: a later payout that the bank confirms for the
    merchant is clawed back the same way."""
    repository = SettlementRepository(session)
    now = clock.now()
    clawback_id = new_id("clb")
    count, clawed = await repository.claw_back_redemptions(merchant_id, now)
    transactions: list[Transaction] = []
    if clawed:
        transactions.append(ledger.clawback(clawback_id, merchant_id=merchant_id, amount=clawed))
    frozen = int(
        await ledger_service.balance(session, campaign_id=campaign_id, account=ledger.payable(merchant_id))
    )
    owed = sum(row.amount_fen - row.collected_fen for row in await repository.outstanding(merchant_id))
    setoff = min(owed, frozen)
    if setoff > 0:
        collected = await _collect(
            session, merchant_id=merchant_id, amount=setoff, source="clawback", source_ref=clawback_id, at=now
        )
        transactions.append(ledger.setoff(clawback_id, merchant_id=merchant_id, collected=collected))
    if not transactions and event_id is None:
        return None
    await ledger_service.post_many(session, campaign_id=campaign_id, transactions=transactions, at=now)
    row = ClawbackRow(
        id=clawback_id,
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        event_id=event_id,
        redemptions=count,
        clawed_back_fen=clawed,
        setoff_fen=setoff,
        outstanding_fen=owed - setoff,
        frozen_fen=frozen - setoff,
        at=now,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        principal=Principal.system("settlement"),
        action="settlement.clawback",
        object_type="merchant",
        object_id=merchant_id,
        at=now,
        detail={
            "clawback_id": row.id,
            "clawed_back_fen": clawed,
            "setoff_fen": setoff,
            "outstanding_fen": owed - setoff,
        },
    )
    return row


# Recovery (回收) at the campaign's end


async def _recovery_amounts(session: AsyncSession, campaign_id: str) -> dict[str, list[int]]:
    balances = await ledger_service.balances(session, campaign_id=campaign_id)
    codes = (
        await session.scalars(
            select(FunderRow.code).where(FunderRow.campaign_id == campaign_id).order_by(FunderRow.position)
        )
    ).all()
    return {
        code: [int(balances.get(ledger.budget(code), 0)), int(balances.get(ledger.expired(code), 0))]
        for code in codes
    }


async def _recovery_blockers(session: AsyncSession, campaign: CampaignRow, clock: Clock) -> list[str]:
    reasons = []
    today = local_date(clock.now())
    if today <= campaign.ends_on:
        reasons.append(f"the campaign runs until {campaign.ends_on}")
    open_runs = await SettlementRepository(session).runs(
        campaign.id, statuses=[RunStatus.PREPARED.value, RunStatus.APPROVED.value]
    )
    if open_runs:
        reasons.append(f"{len(open_runs)} settlement run(s) await approval or the bank")
    pending, unsettled = (
        await session.execute(
            text(
                """
                SELECT
                  coalesce(sum(CASE WHEN r.status = 'pending_verification' THEN 1 ELSE 0 END), 0),
                  coalesce(sum(CASE WHEN r.status = 'confirmed' AND m.status = 'active' AND NOT EXISTS (
                      SELECT 1 FROM settlement_items i JOIN settlement_lines l
                        ON l.run_id = i.run_id AND l.merchant_id = i.merchant_id
                      WHERE i.redemption_id = r.id AND l.status IN ('prepared', 'sent'))
                    THEN 1 ELSE 0 END), 0)
                FROM redemptions r JOIN merchants m ON m.id = r.merchant_id
                WHERE r.campaign_id = :campaign
                """
            ),
            {"campaign": campaign.id},
        )
    ).one()
    if pending:
        reasons.append(f"{pending} big-ticket redemption(s) await the county's verification")
    if unsettled:
        reasons.append(f"{unsettled} confirmed redemption(s) of active merchants are not settled yet")
    balances = await ledger_service.balances(session, campaign_id=campaign.id)
    if any(value for key, value in balances.items() if ledger.account_kind(key) is AccountKind.VOUCHERS):
        reasons.append("claimed vouchers are still valid or not yet expired (run the expiry first)")
    negative = [
        key for key, value in balances.items() if ledger.account_kind(key) is AccountKind.BUDGET and value < 0
    ]
    if negative:
        reasons.append(f"negative budget (deposits missing?): {', '.join(negative)}")
    return reasons


async def request_recovery(
    session: AsyncSession, *, principal: Principal, campaign_id: str, clock: Clock
) -> RecoveryRow:
    """Request the recovery (maker): once the last settlement is done, the unused budget and the expired
    vouchers' value of each funder, as the ledger holds them now, to go back to the funder."""
    principal.require(Permission.SETTLEMENT_PREPARE)
    campaign = await _campaign(session, campaign_id)
    await SettlementRepository(session).book_for_update(campaign.id)
    existing = await session.scalar(select(RecoveryRow).where(RecoveryRow.campaign_id == campaign.id))
    if existing is not None:
        return existing
    reasons = await _recovery_blockers(session, campaign, clock)
    if reasons:
        raise SettlementRefused.not_recoverable(reasons)
    amounts = await _recovery_amounts(session, campaign.id)
    row = RecoveryRow(
        id=new_id("rec"),
        campaign_id=campaign.id,
        status="requested",
        amounts=amounts,
        total_fen=sum(sum(parts) for parts in amounts.values()),
        requested_by=principal.actor_id,
        requested_by_name=principal.name or principal.actor_id,
        requested_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="settlement.recovery_requested",
        object_type="settlement_recovery",
        object_id=row.id,
        at=row.requested_at,
        detail={"total_fen": row.total_fen},
    )
    return row


async def approve_recovery(
    session: AsyncSession, *, principal: Principal, recovery_id: str, clock: Clock
) -> RecoveryRow:
    """Approve a recovery (checker, never its requester): posted in the same transaction; the expired
    vouchers leave the expired pool (status `recycled`, event `recovered`)."""
    principal.require(Permission.SETTLEMENT_APPROVE)
    row = await session.scalar(select(RecoveryRow).where(RecoveryRow.id == recovery_id).with_for_update())
    if row is None:
        raise NotFound(f"no recovery {recovery_id!r}", code="unknown_recovery")
    await SettlementRepository(session).book_for_update(row.campaign_id)
    if row.status != "requested":
        raise HuiminError("the recovery is approved already", code="recovery_not_requested", status=409)
    if row.requested_by == principal.actor_id:
        raise SettlementRefused.maker_checker()
    campaign = await _campaign(session, row.campaign_id)
    if (
        await _recovery_blockers(session, campaign, clock)
        or await _recovery_amounts(session, campaign.id) != row.amounts
    ):
        raise SettlementRefused.recovery_stale()
    now = clock.now()
    if row.total_fen:
        row.transaction_id = await ledger_service.post(
            session,
            campaign_id=campaign.id,
            transaction=ledger.recover(
                row.id,
                unused_budget=[(code, parts[0]) for code, parts in row.amounts.items() if parts[0]],
                expired_value=[(code, parts[1]) for code, parts in row.amounts.items() if parts[1]],
            ),
            at=now,
        )
    expired = select(VoucherRow.id).where(
        VoucherRow.campaign_id == campaign.id, VoucherRow.status == "expired"
    )
    await session.execute(
        insert(VoucherEventRow).from_select(
            ["voucher_id", "kind", "value_fen", "at"],
            select(
                VoucherRow.id, literal("recovered"), VoucherRow.value_fen, literal(now, UtcDateTime())
            ).where(VoucherRow.id.in_(expired.scalar_subquery())),
        )
    )
    await session.execute(
        update(VoucherRow)
        .where(VoucherRow.campaign_id == campaign.id, VoucherRow.status == "expired")
        .values(status="recycled")
        .execution_options(synchronize_session=False)
    )
    row.status = "approved"
    row.approved_by = principal.actor_id
    row.approved_by_name = principal.name or principal.actor_id
    row.approved_at = now
    await session.flush()
    await audit.record(
        session,
        principal=principal,
        action="settlement.recovery_approved",
        object_type="settlement_recovery",
        object_id=row.id,
        at=now,
        detail={"total_fen": row.total_fen, "transaction_id": row.transaction_id},
    )
    return row


# The final statement per funder


@dataclass(frozen=True)
class FunderStatement:
    funder: str
    deposited: Fen
    recovered: Fen
    unused: Fen  # budget + vouchers + expired still held (zero after the recovery)
    to_merchants: Fen  # deposited − recovered − unused: exact, from the ledger
    # Apportioned from the campaign's merchant-side totals by `to_merchants` (largest remainder):
    subsidy_paid: Fen
    outstanding: Fen  # owed back by merchants, not collected
    frozen: Fen  # owed to suspended or expelled merchants, not paid
    in_transit: Fen  # awaiting verification or the bank
    clawed_back: Fen


@dataclass(frozen=True)
class Statement:
    campaign_id: str
    funders: list[FunderStatement]
    subsidy_paid: Fen
    clawed_back: Fen
    clawed_back_collected: Fen
    outstanding: Fen
    frozen: Fen
    in_transit: Fen
    recovery: RecoveryRow | None


async def statement(session: AsyncSession, *, principal: Principal, campaign_id: str) -> Statement:
    """The final statement (决算): per funder what it deposited, what reached merchants, what came back
    (clawed back, recovered) and what is still outstanding."""
    principal.require(Permission.SETTLEMENT_READ)
    await _campaign(session, campaign_id)
    balances = await ledger_service.balances(session, campaign_id=campaign_id)

    def total(kind: AccountKind) -> int:
        return sum(int(value) for key, value in balances.items() if ledger.account_kind(key) is kind)

    codes = (
        await session.scalars(
            select(FunderRow.code).where(FunderRow.campaign_id == campaign_id).order_by(FunderRow.position)
        )
    ).all()
    clawed, collected = (
        await session.execute(
            select(
                func.coalesce(func.sum(ReceivableRow.amount_fen), 0),
                func.coalesce(func.sum(ReceivableRow.collected_fen), 0),
            ).where(ReceivableRow.campaign_id == campaign_id, ReceivableRow.origin == "clawback")
        )
    ).one()
    paid, outstanding = total(AccountKind.SETTLED), total(AccountKind.RECEIVABLE)
    frozen, transit = total(AccountKind.PAYABLE), total(AccountKind.PENDING) + total(AccountKind.CLEARING)
    per: dict[str, tuple[int, int, int]] = {}
    for code in codes:
        deposited = int(balances.get(ledger.funder(code), 0))
        recovered = int(balances.get(ledger.recovery(code), 0))
        unused = sum(
            int(balances.get(make(code), 0)) for make in (ledger.budget, ledger.vouchers, ledger.expired)
        )
        per[code] = (deposited, recovered, unused)
    weights = [max(0, d - r - u) for d, r, u in per.values()]
    shares = [
        domain.apportion(max(0, amount), weights) for amount in (paid, outstanding, frozen, int(clawed))
    ]
    funders = []
    for index, (code, (deposited, recovered, unused)) in enumerate(per.items()):
        to_merchants = deposited - recovered - unused
        paid_f, outstanding_f, frozen_f, clawed_f = (share[index] for share in shares)
        funders.append(
            FunderStatement(
                funder=code,
                deposited=Fen(deposited),
                recovered=Fen(recovered),
                unused=Fen(unused),
                to_merchants=Fen(to_merchants),
                subsidy_paid=Fen(paid_f),
                outstanding=Fen(outstanding_f),
                frozen=Fen(frozen_f),
                in_transit=Fen(to_merchants - paid_f - outstanding_f - frozen_f),
                clawed_back=Fen(clawed_f),
            )
        )
    recovery = await session.scalar(select(RecoveryRow).where(RecoveryRow.campaign_id == campaign_id))
    return Statement(
        campaign_id=campaign_id,
        funders=funders,
        subsidy_paid=Fen(paid),
        clawed_back=Fen(int(clawed)),
        clawed_back_collected=Fen(int(collected)),
        outstanding=Fen(outstanding),
        frozen=Fen(frozen),
        in_transit=Fen(transit),
        recovery=recovery,
    )
