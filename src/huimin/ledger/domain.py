"""The double-entry ledger (复式记账) of a campaign: accounts, postings, balanced transactions, and the
movement builders that turn each business event into one balanced `Transaction`.

Pure: standard library and `huimin.kit` only. The database enforces the same rules a second time
(see `huimin.ledger.models` and docs/ledger.md).

Amounts are signed integer fen: a debit is positive, a credit negative, and the postings of a
transaction sum to zero. Every account has a normal side; its balance as shown is the sum of its
postings times its normal sign, and must never be negative (SPEC §5, I3).

Chart of accounts (per campaign; an account key is `kind` or `kind:owner`)

| key                  | normal | holds                                                                    |
|----------------------|--------|--------------------------------------------------------------------------|
| `funder:{funder}`    | credit | what the funder (资金来源) has deposited: the external source            |
| `budget:{funder}`    | debit  | the funder's unclaimed budget (the pool the rounds release)              |
| `vouchers:{funder}`  | debit  | voucher liability: value of claimed, unredeemed vouchers                 |
| `expired:{funder}`   | debit  | value of expired vouchers not yet recycled into a later round            |
| `pending:{merchant}` | debit  | big-ticket subsidy awaiting the county's invoice verification            |
| `payable:{merchant}` | debit  | confirmed subsidy owed to the merchant, not yet in a settlement run      |
| `clearing`           | debit  | sent to the bank in a settlement run, awaiting the bank's confirmation   |
| `settled:{merchant}` | debit  | paid to the merchant (bank confirmed), net of what it owes back          |
| `receivable:{merch}` | debit  | paid to the merchant but owed back (a refund after payment, a clawback)  |
| `recovery:{funder}`  | debit  | returned to the funder (finance bureau) at the campaign's end            |

Every account except `funder:*` says where deposited money is now, so conservation (I1) reads:
deposited = budget + vouchers + expired + pending + payable + clearing + settled + receivable + recovery.

Movements

| builder            | postings                                                                          |
|--------------------|-----------------------------------------------------------------------------------|
| `deposit`          | Dr budget:f / Cr funder:f                                                         |
| `claim`            | Dr vouchers:fᵢ / Cr budget:fᵢ (value split by the batch's funding shares)         |
| `expire`           | Dr expired:fᵢ / Cr vouchers:fᵢ                                                    |
| `recycle`          | Dr budget:fᵢ / Cr expired:fᵢ (the value returns to the pool for a later round)    |
| `revoke`           | Dr budget:fᵢ / Cr vouchers:fᵢ (a risk sanction voids an unused voucher: its value |
|                    | returns to the pool at once)                                                      |
| `redeem`           | Cr vouchers:fᵢ value; Dr payable:m (pending:m if big-ticket) subsidy;             |
|                    | Dr budget:fᵢ the unused rest (value − subsidy)                                    |
| `verify`           | Dr payable:m / Cr pending:m                                                       |
| `reject_invoice`   | Dr vouchers:fᵢ value / Cr pending:m subsidy / Cr budget:fᵢ rest (voucher restored) |
| `refund` (partial) | Dr budget:fᵢ / Cr payable:m the returned subsidy                                  |
| `refund` (full)    | Dr vouchers:fᵢ value / Cr payable:m subsidy / Cr budget:fᵢ rest (voucher restored) |

Every voucher movement splits the voucher's value by the batch's funding shares with
`split_by_shares`, which is deterministic: the expiry or redemption of a voucher takes from each
funder exactly the parts its claim put there.

A refund after the merchant was paid. A refund takes the subsidy back from `payable:m` (netting it
against whatever else is still owed to the merchant). If `payable:m` no longer holds enough because
the subsidy has been paid out, the shortfall X is money the merchant holds and owes back: the refund
reclassifies it, Cr settled:m X / Dr receivable:m X, so `settled` stays "paid and earned" and neither
account goes negative. What the refund returns shrinks accordingly:

- a partial refund of R returns only R − X to the budget now (Dr budget:fᵢ R − X / Cr payable:m R − X);
  the other X reaches the budget when the merchant pays it back (Dr budget / Cr receivable:m);
- a full refund must back the restored voucher in full at once, so the budget fronts the shortfall:
  Dr vouchers:fᵢ V / Cr budget:fᵢ (V − S) + X / Cr payable:m S − X, plus the reclassification; the
  budget is repaid when the merchant pays X back.

The caller says how much of `payable:m` is available (its balance, read in the same transaction). The
shortfall comes out of `settled:m`; money still in `clearing` (a run in flight) cannot be refunded
until the bank confirms the run, which the refunding service must refuse.

Settlement (`huimin.settlement`, docs/settlement.md) uses the same accounts:

| builder            | postings                                                                          |
|--------------------|-----------------------------------------------------------------------------------|
| `settle`           | Dr clearing / Cr payable:m: a payout line of an approved run, sent to the bank    |
| `setoff`           | Dr settled:m / Cr payable:m (owed subsidy treated as paid) and Dr budget:fᵢ /     |
|                    | Cr receivable:m (what the merchant owed, back to the funders of its origin)       |
| `payout_paid`      | Dr settled:m / Cr clearing: the bank paid the line                                |
| `payout_failed`    | Dr payable:m / Cr clearing, and the line's set-off undone (Dr payable:m, Dr       |
|                    | receivable:m / Cr settled:m, Cr budget:fᵢ): the next run settles it afresh        |
| `clawback`         | Dr receivable:m / Cr settled:m: an expelled merchant's settled subsidy owed back  |
| `recover`          | Dr recovery:f / Cr budget:f, Cr expired:f: unused money back to the funder        |

A set-off's budget legs are given by the caller: each part of the receivable it collects goes back
to the funders by the funding split of the redemption it came from. After every run the bank has
answered, `clearing` is zero (I2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from huimin.errors import HuiminError
from huimin.kit.money import BASIS_POINTS_WHOLE, Fen, split_by_shares

__all__ = [
    "AccountKind",
    "FundingSplit",
    "LedgerError",
    "Posting",
    "Transaction",
    "TransactionKind",
    "account",
    "account_kind",
    "budget",
    "claim",
    "clawback",
    "deposit",
    "expire",
    "expired",
    "funder",
    "normal_sign",
    "payable",
    "payout_failed",
    "payout_paid",
    "pending",
    "receivable",
    "recover",
    "recovery",
    "recycle",
    "redeem",
    "refund",
    "reject_invoice",
    "revoke",
    "setoff",
    "settle",
    "settled",
    "shown_balance",
    "verify",
    "vouchers",
]


class LedgerError(HuiminError):
    """A movement that breaks the rules of double entry: a bug, never a refusal a client can fix."""

    status = 500
    code = "ledger_error"


class AccountKind(StrEnum):
    FUNDER = "funder"
    BUDGET = "budget"
    VOUCHERS = "vouchers"
    EXPIRED = "expired"
    PENDING = "pending"
    PAYABLE = "payable"
    CLEARING = "clearing"
    SETTLED = "settled"
    RECEIVABLE = "receivable"
    RECOVERY = "recovery"


# Accounts owned by a funder, by a merchant, or by nobody (the campaign's single clearing account).
FUNDER_ACCOUNTS = frozenset(
    {AccountKind.FUNDER, AccountKind.BUDGET, AccountKind.VOUCHERS, AccountKind.EXPIRED, AccountKind.RECOVERY}
)
MERCHANT_ACCOUNTS = frozenset(
    {AccountKind.PENDING, AccountKind.PAYABLE, AccountKind.SETTLED, AccountKind.RECEIVABLE}
)


class TransactionKind(StrEnum):
    """What a transaction records. With its reference (the voucher, redemption, refund or deposit it
    reflects) it is unique per campaign: posting the same event twice is impossible."""

    DEPOSIT = "deposit"
    CLAIM = "claim"
    EXPIRE = "expire"
    RECYCLE = "recycle"
    REVOKE = "revoke"  # an unused voucher voided by a risk sanction (huimin.risk.sanctions)
    REDEEM = "redeem"
    VERIFY = "verify"
    REJECT_INVOICE = "reject_invoice"
    REFUND = "refund"
    # Settlement (huimin.settlement): a payout line of a run, its set-off against what the merchant
    # owes, the bank's answer, a clawback, and the recovery at the campaign's end.
    SETTLE = "settle"
    SETOFF = "setoff"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"
    CLAWBACK = "clawback"
    RECOVER = "recover"


def normal_sign(key: str) -> int:
    """+1 for debit-normal accounts, −1 for the credit-normal funder accounts."""
    return -1 if account_kind(key) is AccountKind.FUNDER else 1


def shown_balance(key: str, total: int) -> Fen:
    """The balance as shown: the sum of the account's postings times its normal sign."""
    return Fen(total * normal_sign(key))


def account_kind(key: str) -> AccountKind:
    kind, _, owner = key.partition(":")
    try:
        parsed = AccountKind(kind)
    except ValueError:
        raise LedgerError(f"unknown ledger account {key!r}") from None
    if (parsed is AccountKind.CLEARING) != (owner == ""):
        raise LedgerError(f"ledger account {key!r}: clearing has no owner, every other account has one")
    return parsed


def account(kind: AccountKind, owner: str | None = None) -> str:
    """The key of an account: `budget:fiscal`, `payable:mch_…`, `clearing`."""
    if kind is AccountKind.CLEARING:
        if owner:
            raise LedgerError("the clearing account has no owner")
        return kind.value
    if not owner or ":" in owner:
        raise LedgerError(f"a {kind.value} account needs an owner code without ':', got {owner!r}")
    return f"{kind.value}:{owner}"


def funder(code: str) -> str:
    return account(AccountKind.FUNDER, code)


def budget(code: str) -> str:
    return account(AccountKind.BUDGET, code)


def vouchers(code: str) -> str:
    return account(AccountKind.VOUCHERS, code)


def expired(code: str) -> str:
    return account(AccountKind.EXPIRED, code)


def pending(merchant_id: str) -> str:
    return account(AccountKind.PENDING, merchant_id)


def payable(merchant_id: str) -> str:
    return account(AccountKind.PAYABLE, merchant_id)


def settled(merchant_id: str) -> str:
    return account(AccountKind.SETTLED, merchant_id)


def receivable(merchant_id: str) -> str:
    return account(AccountKind.RECEIVABLE, merchant_id)


def recovery(code: str) -> str:
    return account(AccountKind.RECOVERY, code)


CLEARING = AccountKind.CLEARING.value


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg: a signed amount on one account (debit positive, credit negative)."""

    account: str
    amount: Fen


@dataclass(frozen=True, slots=True)
class Transaction:
    """A balanced set of postings recording one business event. Refuses, at construction, any
    posting of zero or of a non-integer, an unknown account, fewer than two postings, and postings
    that do not sum to zero."""

    kind: TransactionKind
    reference: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if not self.reference or len(self.reference) > 64:
            raise LedgerError(f"a {self.kind} transaction needs a reference of 1 to 64 characters")
        if len(self.postings) < 2:
            raise LedgerError(f"{self.kind} {self.reference}: a transaction has at least two postings")
        for posting in self.postings:
            account_kind(posting.account)
            if isinstance(posting.amount, bool) or not isinstance(posting.amount, int):
                raise LedgerError(f"{self.kind} {self.reference}: amounts are integer fen")
            if posting.amount == 0:
                raise LedgerError(f"{self.kind} {self.reference}: a posting of zero on {posting.account}")
        total = sum(int(posting.amount) for posting in self.postings)
        if total != 0:
            raise LedgerError(
                f"{self.kind} {self.reference} is unbalanced: its postings sum to {total} fen, not 0"
            )

    @classmethod
    def of(cls, kind: TransactionKind, reference: str, legs: Iterable[tuple[str, int]]) -> Transaction:
        """Build from (account, amount) legs: legs on the same account are added up (in first-seen
        order) and legs that come to zero are dropped, so builders can state each rule separately."""
        merged: dict[str, int] = {}
        for key, amount in legs:
            merged[key] = merged.get(key, 0) + int(amount)
        postings = tuple(Posting(key, Fen(amount)) for key, amount in merged.items() if amount != 0)
        return cls(kind, reference, postings)

    def total(self, key: str) -> Fen:
        """The net amount this transaction puts on one account (0 if it does not touch it)."""
        return Fen(sum(int(posting.amount) for posting in self.postings if posting.account == key))


@dataclass(frozen=True, slots=True)
class FundingSplit:
    """A batch's funding split: (funder code, share in basis points), in the batch's order."""

    shares: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        codes = [code for code, _ in self.shares]
        if not codes or len(set(codes)) != len(codes):
            raise LedgerError("a funding split names each funder once, and at least one")
        if sum(share for _, share in self.shares) != BASIS_POINTS_WHOLE or any(
            share <= 0 for _, share in self.shares
        ):
            raise LedgerError(f"funding shares must be positive and sum to 100 %: {self.shares}")

    @classmethod
    def of(cls, shares: Sequence[tuple[str, int]]) -> FundingSplit:
        return cls(tuple((code, int(share)) for code, share in shares))

    def split(self, amount: int) -> list[tuple[str, Fen]]:
        """(funder code, part): the parts add up to `amount` exactly, the same way every time."""
        parts = split_by_shares(Fen(amount), [share for _, share in self.shares])
        return [(code, part) for (code, _), part in zip(self.shares, parts, strict=True)]


def _positive(what: str, amount: int) -> Fen:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise LedgerError(f"{what} must be a positive integer amount of fen, got {amount!r}")
    return Fen(amount)


def _by_funder(
    make: Callable[[str], str], split: FundingSplit, amount: int, sign: int
) -> list[tuple[str, int]]:
    """One leg per funder: `amount` split by the funding shares, on the funder's account `make(code)`."""
    return [(make(code), sign * int(part)) for code, part in split.split(amount)]


def deposit(reference: str, *, funder_code: str, amount: int) -> Transaction:
    """A funder's approved deposit into the campaign budget (资金拨付)."""
    value = _positive("a deposit", amount)
    return Transaction.of(
        TransactionKind.DEPOSIT, reference, [(budget(funder_code), value), (funder(funder_code), -value)]
    )


def claim(reference: str, *, value: int, funding: FundingSplit) -> Transaction:
    """领取: the voucher's value moves from the funders' budgets to the voucher liability."""
    _positive("a voucher's value", value)
    return Transaction.of(
        TransactionKind.CLAIM,
        reference,
        _by_funder(vouchers, funding, value, 1) + _by_funder(budget, funding, value, -1),
    )


def expire(reference: str, *, value: int, funding: FundingSplit) -> Transaction:
    """过期: an unredeemed voucher's value leaves the liability and waits to be recycled or recovered."""
    _positive("a voucher's value", value)
    return Transaction.of(
        TransactionKind.EXPIRE,
        reference,
        _by_funder(expired, funding, value, 1) + _by_funder(vouchers, funding, value, -1),
    )


def recycle(reference: str, *, value: int, funding: FundingSplit) -> Transaction:
    """回收再投放: an expired voucher's value returns to the budget for a later round's stock."""
    _positive("a voucher's value", value)
    return Transaction.of(
        TransactionKind.RECYCLE,
        reference,
        _by_funder(budget, funding, value, 1) + _by_funder(expired, funding, value, -1),
    )


def revoke(reference: str, *, value: int, funding: FundingSplit) -> Transaction:
    """作废: an unused voucher revoked by a risk sanction; its value leaves the liability and returns to
    the funders' budgets, as an expired voucher's does when it is recycled."""
    _positive("a voucher's value", value)
    return Transaction.of(
        TransactionKind.REVOKE,
        reference,
        _by_funder(budget, funding, value, 1) + _by_funder(vouchers, funding, value, -1),
    )


def _value_and_subsidy(value: int, subsidy: int) -> tuple[Fen, Fen]:
    whole = _positive("a voucher's value", value)
    part = _positive("a subsidy", subsidy)
    if part > whole:
        raise LedgerError(f"a subsidy of {part} fen exceeds the voucher's value of {whole} fen")
    return whole, part


def redeem(
    reference: str, *, value: int, subsidy: int, funding: FundingSplit, merchant_id: str, big_ticket: bool
) -> Transaction:
    """核销: the voucher leaves the liability; the subsidy becomes owed to the merchant (awaiting the
    county's invoice verification when big-ticket) and the unused rest returns to the budget."""
    whole, part = _value_and_subsidy(value, subsidy)
    owed = pending(merchant_id) if big_ticket else payable(merchant_id)
    return Transaction.of(
        TransactionKind.REDEEM,
        reference,
        [
            *_by_funder(vouchers, funding, whole, -1),
            (owed, part),
            *_by_funder(budget, funding, whole - part, 1),
        ],
    )


def verify(reference: str, *, subsidy: int, merchant_id: str) -> Transaction:
    """发票核验通过: the county verified a big-ticket invoice; the subsidy becomes payable."""
    part = _positive("a subsidy", subsidy)
    return Transaction.of(
        TransactionKind.VERIFY, reference, [(payable(merchant_id), part), (pending(merchant_id), -part)]
    )


def reject_invoice(
    reference: str, *, value: int, subsidy: int, funding: FundingSplit, merchant_id: str
) -> Transaction:
    """发票核验不通过: the redemption is undone and the voucher restored to claimed."""
    whole, part = _value_and_subsidy(value, subsidy)
    return Transaction.of(
        TransactionKind.REJECT_INVOICE,
        reference,
        [
            *_by_funder(vouchers, funding, whole, 1),
            (pending(merchant_id), -part),
            *_by_funder(budget, funding, whole - part, -1),
        ],
    )


def refund(
    reference: str,
    *,
    value: int,
    subsidy: int,
    returned: int,
    restore: bool,
    funding: FundingSplit,
    merchant_id: str,
    payable_available: int,
) -> Transaction:
    """退款 of a confirmed redemption (see the module docstring for the shortfall rule).

    `subsidy` is the redemption's subsidy; `returned` the subsidy this refund gives back (all of it
    when `restore`, a proportion for a partial refund); `payable_available` the merchant's `payable`
    balance now. With `restore` the voucher goes back to claimed with its full `value`.
    """
    whole, part = _value_and_subsidy(value, subsidy)
    back = _positive("a refunded subsidy", returned)
    if back > part:
        raise LedgerError(f"a refund of {back} fen exceeds the redemption's subsidy of {part} fen")
    if restore and back != part:
        raise LedgerError("a refund that restores the voucher returns the whole subsidy")
    if payable_available < 0:
        raise LedgerError("the merchant's payable balance is never negative")
    from_payable = min(back, Fen(payable_available))
    shortfall = back - from_payable  # paid out already: the merchant owes it back
    legs: list[tuple[str, int]] = [
        (payable(merchant_id), -from_payable),
        (settled(merchant_id), -shortfall),
        (receivable(merchant_id), shortfall),
    ]
    if restore:
        legs += _by_funder(vouchers, funding, whole, 1)
        legs += _by_funder(budget, funding, whole - part + shortfall, -1)
    else:
        legs += _by_funder(budget, funding, from_payable, 1)
    return Transaction.of(TransactionKind.REFUND, reference, legs)


def _merchant_pair(
    kind: TransactionKind, reference: str, debit: str, credit: str, amount: int
) -> Transaction:
    value = _positive(f"a {kind.value} amount", amount)
    return Transaction.of(kind, reference, [(debit, value), (credit, -value)])


def settle(reference: str, *, merchant_id: str, amount: int) -> Transaction:
    """结算: a payout line of an approved settlement run leaves the merchant's payable for the bank."""
    return _merchant_pair(TransactionKind.SETTLE, reference, CLEARING, payable(merchant_id), amount)


def setoff(reference: str, *, merchant_id: str, collected: Sequence[tuple[FundingSplit, int]]) -> Transaction:
    """抵扣: subsidy owed to the merchant pays what it owes back. Each collected part (with the funding
    split of the redemption that made it owed) returns to those funders' budgets."""
    total = sum(int(_positive("a set-off part", part)) for _, part in collected)
    _positive("a set-off", total)
    legs: list[tuple[str, int]] = [(settled(merchant_id), total), (payable(merchant_id), -total)]
    for split, part in collected:
        legs += _by_funder(budget, split, part, 1)
    legs.append((receivable(merchant_id), -total))
    return Transaction.of(TransactionKind.SETOFF, reference, legs)


def payout_paid(reference: str, *, merchant_id: str, amount: int) -> Transaction:
    """The bank confirms a payout: the money has reached the merchant."""
    return _merchant_pair(TransactionKind.PAYOUT_PAID, reference, settled(merchant_id), CLEARING, amount)


def payout_failed(
    reference: str, *, merchant_id: str, amount: int, undone: Sequence[tuple[FundingSplit, int]] = ()
) -> Transaction:
    """The bank could not pay: the line's amount returns to payable, and its set-off (`undone`, the
    parts it collected) is reversed, so the next run settles the redemptions from scratch."""
    legs: list[tuple[str, int]] = []
    if amount:
        value = _positive("a failed payout", amount)
        legs += [(payable(merchant_id), value), (CLEARING, -value)]
    netted = sum(int(_positive("a set-off part", part)) for _, part in undone)
    if netted:
        legs += [(payable(merchant_id), netted), (settled(merchant_id), -netted)]
        for split, part in undone:
            legs += _by_funder(budget, split, part, -1)
        legs.append((receivable(merchant_id), netted))
    return Transaction.of(TransactionKind.PAYOUT_FAILED, reference, legs)


def clawback(reference: str, *, merchant_id: str, amount: int) -> Transaction:
    """追回: an expelled merchant's settled subsidy becomes money it owes back."""
    return _merchant_pair(
        TransactionKind.CLAWBACK, reference, receivable(merchant_id), settled(merchant_id), amount
    )


def recover(
    reference: str, *, unused_budget: Sequence[tuple[str, int]], expired_value: Sequence[tuple[str, int]]
) -> Transaction:
    """回收: at the campaign's end the unused budget and the expired, unrecycled voucher value go back
    to each funder (the finance bureau's account)."""
    legs: list[tuple[str, int]] = []
    for code, amount in unused_budget:
        if amount < 0:
            raise LedgerError(f"budget:{code} is negative: nothing can be recovered from it")
        legs += [(recovery(code), amount), (budget(code), -amount)]
    for code, amount in expired_value:
        if amount < 0:
            raise LedgerError(f"expired:{code} is negative")
        legs += [(recovery(code), amount), (expired(code), -amount)]
    return Transaction.of(TransactionKind.RECOVER, reference, legs)
