"""Pure rules of settlement (结算): run and payout states, maker-checker, the clearing file for the bank,
the bank's confirmation file, and the arithmetic of set-offs and statements.

Standard library and `huimin.kit` only. A settlement run (结算批次) pays each active merchant the
subsidy of its confirmed redemptions of a business day and before (T+1 by default), net of refunds
and of what the merchant owes back; the money moves in the ledger (see `huimin.ledger.domain`).

Run:  `prepared` (lines fixed, redemptions attached) → `approved` (finance approved: postings made,
      clearing file fixed, awaiting the bank) → `closed` (the bank answered every payout);
      `prepared` → `returned` (退回: finance refused it with a reason; nothing was posted, its
      redemptions are free again and the day may be prepared anew).
Line: `prepared` → `sent` (in the clearing file) → `paid` | `failed` (returned to payable, retried by
      the next run); `prepared` → `offset` (nothing left to pay after the set-off: settled at
      approval) | `frozen` (the merchant was suspended or expelled before approval: not paid, its
      redemptions wait for a later run) | `returned` (its run was returned).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.money import Fen

__all__ = [
    "DEFAULT_DUAL_APPROVAL_ABOVE",
    "DEFAULT_LAG_DAYS",
    "BankRow",
    "ClearingLine",
    "LineStatus",
    "RunStatus",
    "SettlementRefused",
    "allocate",
    "apportion",
    "approvals_needed",
    "check_return_reason",
    "latest_due_day",
    "parse_bank_file",
    "parse_reference",
    "payout_reference",
    "render_clearing_file",
]

DEFAULT_LAG_DAYS = 1  # T+1: a business day is settled from the next day on
DEFAULT_DUAL_APPROVAL_ABOVE = Fen.yuan(1_000_000)  # runs above this need two different approvers


class RunStatus(StrEnum):
    PREPARED = "prepared"
    APPROVED = "approved"
    CLOSED = "closed"
    RETURNED = "returned"


class LineStatus(StrEnum):
    PREPARED = "prepared"
    SENT = "sent"
    OFFSET = "offset"
    PAID = "paid"
    FAILED = "failed"
    FROZEN = "frozen"
    RETURNED = "returned"


# A redemption attached to a line in one of these is in settlement: it cannot be refunded meanwhile.
IN_FLIGHT = frozenset({LineStatus.PREPARED, LineStatus.SENT})
# A line in one of these has given its redemptions back to the pool: the next run may take them.
RETURNED = frozenset({LineStatus.FAILED, LineStatus.FROZEN, LineStatus.RETURNED})
# The bank has nothing more to say about a line in one of these.
FINAL = frozenset(
    {LineStatus.OFFSET, LineStatus.PAID, LineStatus.FAILED, LineStatus.FROZEN, LineStatus.RETURNED}
)
# A reason for returning a run is required, and short enough to read in a list (the column's width).
RETURN_REASON_MAX = 500


class SettlementRefused:
    """Every refusal of settlement, each with its stable code."""

    @staticmethod
    def unknown_run(run_id: str) -> HuiminError:
        return NotFound(f"no settlement run {run_id!r}", code="unknown_run")

    @staticmethod
    def not_due(day: date, latest: date) -> HuiminError:
        return HuiminError(
            f"business day {day} is not due yet: the latest day that may be settled now is {latest}",
            code="day_not_due",
            status=409,
        )

    @staticmethod
    def run_open(run_id: str, day: date) -> HuiminError:
        return ConflictError(
            f"run {run_id} for {day} is still awaiting approval: approve it before preparing another",
            code="run_open",
        )

    @staticmethod
    def not_prepared(status: str) -> HuiminError:
        return ConflictError(f"the run is {status}, not awaiting approval", code="run_not_prepared")

    @staticmethod
    def return_reason(message: str) -> HuiminError:
        return InvalidInput([Problem("reason", message)], code="invalid_return_reason")

    @staticmethod
    def maker_checker() -> HuiminError:
        return HuiminError(
            "whoever prepared a run (or requested a recovery) cannot approve it",
            code="maker_checker",
            status=403,
        )

    @staticmethod
    def already_approved() -> HuiminError:
        return ConflictError(
            "you have approved this already: a second approval must come from someone else",
            code="already_approved",
        )

    @staticmethod
    def in_progress() -> HuiminError:
        return ConflictError(
            "the redemption's subsidy is in a settlement run awaiting approval or the bank: refund it "
            "after the bank has answered",
            code="settlement_in_progress",
        )

    @staticmethod
    def merchant_expelled() -> HuiminError:
        return ConflictError(
            "the merchant is expelled: its subsidy is frozen and clawed back, refunds go through the city",
            code="merchant_expelled",
        )

    @staticmethod
    def not_recoverable(reasons: Sequence[str]) -> HuiminError:
        return ConflictError(
            "the campaign cannot be recovered yet: " + "; ".join(reasons), code="recovery_not_ready"
        )

    @staticmethod
    def recovery_stale() -> HuiminError:
        return ConflictError(
            "the balances changed since the recovery was requested: request it again",
            code="recovery_stale",
        )

    @staticmethod
    def file_tampered() -> HuiminError:
        return HuiminError(
            "the clearing file no longer renders to the SHA-256 fixed at approval",
            code="clearing_file_changed",
            status=500,
        )


def latest_due_day(today: date, lag_days: int) -> date:
    """The last business day a run may settle today: T+lag (T+1 by default)."""
    if lag_days < 0:
        raise ValueError("a settlement lag is zero or more days")
    return today - timedelta(days=lag_days)


def approvals_needed(total: int, dual_approval_above: int) -> int:
    """SPEC §11.3: one approver, or two different ones for a run above the configured amount."""
    return 2 if total > dual_approval_above else 1


def check_approver(*, preparer: str, approver: str, approved_by: Sequence[str]) -> None:
    if approver == preparer:
        raise SettlementRefused.maker_checker()
    if approver in approved_by:
        raise SettlementRefused.already_approved()


def check_return_reason(reason: str) -> str:
    """The reason finance gives for returning a run (退回原因), trimmed: required, at most 500
    characters. The operator reads it before preparing the day again."""
    text = reason.strip()
    if not text:
        raise SettlementRefused.return_reason("required: say what is wrong with the run")
    if len(text) > RETURN_REASON_MAX:
        raise SettlementRefused.return_reason(f"at most {RETURN_REASON_MAX} characters")
    return text


# Payout references: the run's id without its prefix, then the line's number. 31 characters of
# Crockford base32 and digits, unique across campaigns, and the same every time the file is made.
_RUN_PREFIX = "stl_"
_SEQ_DIGITS = 5


def payout_reference(run_id: str, seq: int) -> str:
    if not run_id.startswith(_RUN_PREFIX) or not 0 < seq < 10**_SEQ_DIGITS:
        raise ValueError(f"not a run id and line number: {run_id!r}, {seq}")
    return f"{run_id.removeprefix(_RUN_PREFIX)}{seq:0{_SEQ_DIGITS}d}"


def parse_reference(reference: str) -> tuple[str, int] | None:
    """(run id, line number) of a payout reference, or None if it cannot be one of ours."""
    text = reference.strip().upper()
    body, seq = text[:-_SEQ_DIGITS], text[-_SEQ_DIGITS:]
    if len(body) != 26 or not seq.isdigit() or int(seq) == 0:
        return None
    return f"{_RUN_PREFIX}{body}", int(seq)


@dataclass(frozen=True)
class ClearingLine:
    """One payout instruction for the bank."""

    reference: str
    credit_code: str
    merchant_name: str
    bank_name: str
    account: str  # the clear account number: written only into the bank's file
    amount: Fen


CLEARING_HEADER = (
    "payout_reference",
    "credit_code",
    "merchant_name",
    "bank_name",
    "account_no",
    "amount_fen",
    "amount_yuan",
)


def render_clearing_file(lines: Sequence[ClearingLine]) -> bytes:
    """The clearing file (清算文件) for the bank: UTF-8 CSV, a header, one row per payout in reference
    order, then a trailer `TRAILER,<count>,<total fen>,<total yuan>,<SHA-256 of the bytes above>`.
    The same lines give the same bytes, always."""
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(CLEARING_HEADER)
    for line in sorted(lines, key=lambda item: item.reference):
        if line.amount <= 0:
            raise ValueError(f"payout {line.reference}: a payout is a positive amount")
        writer.writerow(
            (
                line.reference,
                line.credit_code,
                line.merchant_name,
                line.bank_name,
                line.account,
                int(line.amount),
                Fen(line.amount).to_yuan_text(),
            )
        )
    above = body.getvalue().encode("utf-8")
    total = Fen(sum(int(line.amount) for line in lines))
    trailer = io.StringIO()
    csv.writer(trailer, lineterminator="\n").writerow(
        ("TRAILER", len(lines), int(total), total.to_yuan_text(), hashlib.sha256(above).hexdigest())
    )
    return above + trailer.getvalue().encode("utf-8")


def clearing_file_totals(content: bytes) -> tuple[int, Fen]:
    """(count, total) from a clearing file's trailer, after checking it against the lines above."""
    head, _, last = content.rstrip(b"\n").rpartition(b"\n")
    fields = next(csv.reader([last.decode("utf-8")]))
    if len(fields) != 5 or fields[0] != "TRAILER":
        raise ValueError("no trailer line")
    above = head + b"\n"
    if hashlib.sha256(above).hexdigest() != fields[4]:
        raise ValueError("the trailer's SHA-256 does not match the lines above it")
    rows = list(csv.reader(io.StringIO(above.decode("utf-8"))))[1:]
    count, total = int(fields[1]), Fen(int(fields[2]))
    if len(rows) != count or sum(int(row[5]) for row in rows) != total:
        raise ValueError("the trailer's control totals do not match the lines above it")
    return count, total


class BankOutcome(StrEnum):
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True)
class BankRow:
    """One line of the bank's confirmation file (回单): what the bank did with one payout."""

    row: int  # 1-based, after the header
    reference: str
    amount: Fen
    outcome: BankOutcome
    bank_transaction_id: str
    reason: str


BANK_HEADER = ("payout_reference", "amount_fen", "status", "bank_transaction_id", "reason")


def parse_bank_file(content: bytes) -> list[BankRow]:
    """Read the bank's confirmation CSV (UTF-8, optional BOM, header `payout_reference,amount_fen,
    status,bank_transaction_id,reason`). Every malformed row is reported at once (nothing applied)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput([Problem("file", "not UTF-8 text")], code="invalid_bank_file") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(cell.strip() for cell in header) != BANK_HEADER:
        raise InvalidInput([Problem("header", f"expected {','.join(BANK_HEADER)}")], code="invalid_bank_file")
    rows: list[BankRow] = []
    problems: list[Problem] = []
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(BANK_HEADER):
            problems.append(Problem(f"row {number}", f"{len(cells)} fields, expected {len(BANK_HEADER)}"))
            continue
        reference, amount, status, transaction_id, reason = (cell.strip() for cell in cells)
        if not amount.isdigit():
            problems.append(Problem(f"row {number}", f"amount_fen {amount!r} is not a whole number of fen"))
            continue
        try:
            outcome = BankOutcome(status.lower())
        except ValueError:
            problems.append(Problem(f"row {number}", f"status {status!r}: paid or failed"))
            continue
        if outcome is BankOutcome.PAID and not transaction_id:
            problems.append(Problem(f"row {number}", "a paid row carries the bank's transaction id"))
            continue
        rows.append(BankRow(number, reference, Fen(int(amount)), outcome, transaction_id, reason))
    if problems:
        raise InvalidInput(problems, code="invalid_bank_file")
    return rows


def allocate(amount: int, available: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Take `amount` from the items in order (oldest first), each at most what it has available:
    (item, part) for every item that gives something. Deterministic, exact."""
    if amount < 0 or amount > sum(max(0, have) for _, have in available):
        raise ValueError(f"cannot allocate {amount} fen over {sum(have for _, have in available)}")
    parts: list[tuple[str, int]] = []
    left = amount
    for key, have in available:
        if left == 0:
            break
        take = min(left, have)
        if take > 0:
            parts.append((key, take))
            left -= take
    return parts


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to non-negative weights, by largest remainder (earlier wins ties):
    the parts add up to `total` exactly. All weights zero: all to the first."""
    if not weights:
        return []
    whole = sum(weights)
    if whole <= 0:
        return [total] + [0] * (len(weights) - 1)
    floors = [total * weight // whole for weight in weights]
    remainders = [(-(total * weight % whole), index) for index, weight in enumerate(weights)]
    for _, index in sorted(remainders)[: total - sum(floors)]:
        floors[index] += 1
    return floors
