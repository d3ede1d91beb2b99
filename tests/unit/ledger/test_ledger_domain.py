"""The ledger's domain: balanced transactions, deterministic funding splits, and worked examples of
every movement (in the style of django-hordak's tests: balances asserted to the fen after each step)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from huimin.kit.money import Fen
from huimin.ledger import domain
from huimin.ledger.domain import FundingSplit, LedgerError, Posting, Transaction, TransactionKind

FISCAL_ONLY = FundingSplit.of([("fiscal", 10_000)])
SHARED = FundingSplit.of([("fiscal", 6_667), ("union", 3_333)])


class Books:
    """Balances as shown (normal side positive), applied transaction by transaction."""

    def __init__(self) -> None:
        self.sums: dict[str, int] = defaultdict(int)

    def apply(self, tx: Transaction) -> None:
        for posting in tx.postings:
            self.sums[posting.account] += int(posting.amount)

    def __getitem__(self, key: str) -> Fen:
        return domain.shown_balance(key, self.sums.get(key, 0))

    def nonzero(self) -> dict[str, int]:
        return {key: int(self[key]) for key, total in sorted(self.sums.items()) if total}


def test_a_transaction_refuses_an_unbalanced_set_of_postings() -> None:
    with pytest.raises(LedgerError, match="sum to 1 fen"):
        Transaction(
            TransactionKind.CLAIM,
            "vch_1",
            (Posting("vouchers:fiscal", Fen(3001)), Posting("budget:fiscal", Fen(-3000))),
        )


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        ((Posting("budget:fiscal", Fen(0)), Posting("funder:fiscal", Fen(0))), "zero"),
        ((Posting("budget:fiscal", Fen(5)),), "at least two"),
        ((Posting("cash:fiscal", Fen(5)), Posting("funder:fiscal", Fen(-5))), "unknown ledger account"),
        ((Posting("clearing:mch_1", Fen(5)), Posting("payable:mch_1", Fen(-5))), "clearing has no owner"),
        ((Posting("budget:fiscal", 5.0), Posting("funder:fiscal", Fen(-5))), "integer fen"),  # type: ignore[arg-type]
    ],
)
def test_a_transaction_refuses_malformed_postings(postings: tuple[Posting, ...], message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        Transaction(TransactionKind.DEPOSIT, "dep_1", postings)


def test_a_transaction_needs_a_reference() -> None:
    with pytest.raises(LedgerError, match="reference"):
        domain.deposit("", funder_code="fiscal", amount=100)


def test_legs_on_one_account_are_merged_and_zero_legs_dropped() -> None:
    tx = Transaction.of(
        TransactionKind.REFUND,
        "ref_1",
        [("budget:fiscal", 5), ("budget:fiscal", -2), ("payable:m", -3), ("settled:m", 0)],
    )
    assert tx.postings == (Posting("budget:fiscal", Fen(3)), Posting("payable:m", Fen(-3)))


def test_funding_shares_must_cover_the_whole() -> None:
    with pytest.raises(LedgerError):
        FundingSplit.of([("fiscal", 6_000), ("union", 3_000)])
    with pytest.raises(LedgerError):
        FundingSplit.of([("fiscal", 5_000), ("fiscal", 5_000)])


def test_a_split_is_exact_and_deterministic() -> None:
    assert SHARED.split(3001) == [("fiscal", Fen(2001)), ("union", Fen(1000))]
    assert SHARED.split(3001) == SHARED.split(3001)
    assert sum(part for _, part in SHARED.split(1)) == 1


def test_amounts_must_be_positive_and_subsidy_within_value() -> None:
    with pytest.raises(LedgerError):
        domain.claim("vch_1", value=0, funding=FISCAL_ONLY)
    with pytest.raises(LedgerError):
        domain.deposit("dep_1", funder_code="fiscal", amount=-100)
    with pytest.raises(LedgerError, match="exceeds"):
        domain.redeem(
            "rdm_1", value=3000, subsidy=3001, funding=FISCAL_ONLY, merchant_id="m", big_ticket=False
        )


def test_a_voucher_from_deposit_to_expiry_and_recycling() -> None:
    """¥100 deposited by two funders 2:1; a ¥30.01 voucher claimed, expired, recycled."""
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=6_667))
    books.apply(domain.deposit("dep_2", funder_code="union", amount=3_333))
    assert books.nonzero() == {
        "budget:fiscal": 6_667,
        "budget:union": 3_333,
        "funder:fiscal": 6_667,
        "funder:union": 3_333,
    }

    books.apply(domain.claim("vch_1", value=3_001, funding=SHARED))
    assert books.nonzero() == {
        "budget:fiscal": 4_666,
        "budget:union": 2_333,
        "funder:fiscal": 6_667,
        "funder:union": 3_333,
        "vouchers:fiscal": 2_001,
        "vouchers:union": 1_000,
    }
    books.apply(domain.expire("vch_1", value=3_001, funding=SHARED))
    assert (books["vouchers:fiscal"], books["expired:fiscal"], books["expired:union"]) == (0, 2_001, 1_000)
    books.apply(domain.recycle("vch_1", value=3_001, funding=SHARED))
    assert books.nonzero() == {
        "budget:fiscal": 6_667,
        "budget:union": 3_333,
        "funder:fiscal": 6_667,
        "funder:union": 3_333,
    }


def test_a_redemption_pays_the_subsidy_and_returns_the_rest() -> None:
    """A percentage voucher worth up to ¥50 used for a subsidy of ¥12.34."""
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=10_000))
    books.apply(domain.claim("vch_1", value=5_000, funding=FISCAL_ONLY))
    tx = domain.redeem(
        "rdm_1", value=5_000, subsidy=1_234, funding=FISCAL_ONLY, merchant_id="mch_a", big_ticket=False
    )
    assert tx.total("payable:mch_a") == 1_234
    books.apply(tx)
    assert books.nonzero() == {"budget:fiscal": 8_766, "funder:fiscal": 10_000, "payable:mch_a": 1_234}


def test_a_big_ticket_redemption_waits_for_the_invoice() -> None:
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=200_000))
    books.apply(domain.claim("vch_car", value=100_000, funding=FISCAL_ONLY))
    books.apply(
        domain.redeem(
            "rdm_car",
            value=100_000,
            subsidy=100_000,
            funding=FISCAL_ONLY,
            merchant_id="mch_car",
            big_ticket=True,
        )
    )
    assert books["pending:mch_car"] == 100_000
    assert books["payable:mch_car"] == 0
    books.apply(domain.verify("rdm_car", subsidy=100_000, merchant_id="mch_car"))
    assert (books["pending:mch_car"], books["payable:mch_car"]) == (0, 100_000)


def test_a_rejected_invoice_restores_the_voucher() -> None:
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=200_000))
    books.apply(domain.claim("vch_tv", value=50_000, funding=FISCAL_ONLY))
    before = books.nonzero()
    books.apply(
        domain.redeem(
            "rdm_tv", value=50_000, subsidy=30_000, funding=FISCAL_ONLY, merchant_id="mch_tv", big_ticket=True
        )
    )
    books.apply(
        domain.reject_invoice(
            "rdm_tv", value=50_000, subsidy=30_000, funding=FISCAL_ONLY, merchant_id="mch_tv"
        )
    )
    assert books.nonzero() == before


def test_a_partial_refund_returns_the_proportional_subsidy_to_the_budget() -> None:
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=10_000))
    books.apply(domain.claim("vch_1", value=3_000, funding=FISCAL_ONLY))
    books.apply(
        domain.redeem(
            "rdm_1", value=3_000, subsidy=3_000, funding=FISCAL_ONLY, merchant_id="m", big_ticket=False
        )
    )
    books.apply(
        domain.refund(
            "rfd_1",
            value=3_000,
            subsidy=3_000,
            returned=900,
            restore=False,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=3_000,
        )
    )
    assert books.nonzero() == {"budget:fiscal": 7_900, "funder:fiscal": 10_000, "payable:m": 2_100}


def test_a_full_refund_restores_the_voucher() -> None:
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=10_000))
    books.apply(domain.claim("vch_1", value=3_000, funding=FISCAL_ONLY))
    before = books.nonzero()
    books.apply(
        domain.redeem(
            "rdm_1", value=3_000, subsidy=2_000, funding=FISCAL_ONLY, merchant_id="m", big_ticket=False
        )
    )
    books.apply(
        domain.refund(
            "rfd_1",
            value=3_000,
            subsidy=2_000,
            returned=2_000,
            restore=True,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=2_000,
        )
    )
    assert books.nonzero() == before


def _settle(books: Books, merchant: str, amount: int) -> None:
    """What the settlement package will post: a run, then the bank's confirmation."""
    books.apply(
        Transaction.of(
            TransactionKind.DEPOSIT, "run", [("clearing", amount), (f"payable:{merchant}", -amount)]
        )
    )
    books.apply(
        Transaction.of(
            TransactionKind.DEPOSIT, "paid", [(f"settled:{merchant}", amount), ("clearing", -amount)]
        )
    )


def test_a_full_refund_after_payment_makes_a_receivable_and_the_budget_fronts_it() -> None:
    """¥30 voucher, ¥30 subsidy paid to the merchant, then the purchase is refunded in full: the
    voucher is restored at once; the merchant owes ¥30 back."""
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=10_000))
    books.apply(domain.claim("vch_1", value=3_000, funding=FISCAL_ONLY))
    books.apply(
        domain.redeem(
            "rdm_1", value=3_000, subsidy=3_000, funding=FISCAL_ONLY, merchant_id="m", big_ticket=False
        )
    )
    _settle(books, "m", 3_000)
    assert books.nonzero() == {"budget:fiscal": 7_000, "funder:fiscal": 10_000, "settled:m": 3_000}
    books.apply(
        domain.refund(
            "rfd_1",
            value=3_000,
            subsidy=3_000,
            returned=3_000,
            restore=True,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=0,
        )
    )
    assert books.nonzero() == {
        "budget:fiscal": 4_000,
        "funder:fiscal": 10_000,
        "receivable:m": 3_000,
        "vouchers:fiscal": 3_000,
    }
    # the merchant pays it back: the budget is whole again
    books.apply(
        Transaction.of(
            TransactionKind.DEPOSIT, "collect", [("budget:fiscal", 3_000), ("receivable:m", -3_000)]
        )
    )
    assert books.nonzero() == {"budget:fiscal": 7_000, "funder:fiscal": 10_000, "vouchers:fiscal": 3_000}


def test_a_partial_refund_nets_against_what_is_still_owed_then_makes_a_receivable() -> None:
    books = Books()
    books.apply(domain.deposit("dep_1", funder_code="fiscal", amount=10_000))
    books.apply(domain.claim("vch_1", value=3_000, funding=FISCAL_ONLY))
    books.apply(
        domain.redeem(
            "rdm_1", value=3_000, subsidy=3_000, funding=FISCAL_ONLY, merchant_id="m", big_ticket=False
        )
    )
    _settle(books, "m", 2_500)  # ¥25 paid, ¥5 still owed
    books.apply(
        domain.refund(
            "rfd_1",
            value=3_000,
            subsidy=3_000,
            returned=1_200,
            restore=False,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=500,
        )
    )
    assert books.nonzero() == {
        "budget:fiscal": 7_500,
        "funder:fiscal": 10_000,
        "receivable:m": 700,
        "settled:m": 1_800,
    }


def test_refund_rules() -> None:
    with pytest.raises(LedgerError, match="whole subsidy"):
        domain.refund(
            "r",
            value=3_000,
            subsidy=3_000,
            returned=100,
            restore=True,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=3_000,
        )
    with pytest.raises(LedgerError, match="exceeds"):
        domain.refund(
            "r",
            value=3_000,
            subsidy=1_000,
            returned=1_001,
            restore=False,
            funding=FISCAL_ONLY,
            merchant_id="m",
            payable_available=3_000,
        )


def test_account_keys() -> None:
    assert domain.budget("fiscal") == "budget:fiscal"
    assert domain.account(domain.AccountKind.CLEARING) == "clearing"
    assert domain.normal_sign("funder:fiscal") == -1
    assert domain.normal_sign("payable:mch_1") == 1
    with pytest.raises(LedgerError):
        domain.payable("")
    with pytest.raises(LedgerError):
        domain.budget("a:b")
