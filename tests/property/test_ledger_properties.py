"""Random sequences of ledger movements keep the books balanced: every transaction sums to zero,
no account goes below zero on its normal side, and the voucher accounts equal the value of the
vouchers in each state (the ledger-side half of I1-I3)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from huimin.kit.money import BASIS_POINTS_WHOLE
from huimin.ledger import domain
from huimin.ledger.domain import FundingSplit, Transaction

FUNDERS = ("fiscal", "union", "social")


@st.composite
def splits(draw: st.DrawFn) -> FundingSplit:
    count = draw(st.integers(1, len(FUNDERS)))
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, BASIS_POINTS_WHOLE - 1), min_size=count - 1, max_size=count - 1, unique=True
            )
        )
    )
    bounds = [0, *cuts, BASIS_POINTS_WHOLE]
    return FundingSplit.of([(FUNDERS[i], bounds[i + 1] - bounds[i]) for i in range(count)])


class Books(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sums: dict[str, int] = defaultdict(int)
        self.vouchers: dict[str, tuple[int, FundingSplit, str]] = {}  # id -> value, split, state
        self.serial = 0

    def _apply(self, tx: Transaction) -> None:
        assert sum(int(p.amount) for p in tx.postings) == 0
        assert all(p.amount != 0 for p in tx.postings)
        for posting in tx.postings:
            self.sums[posting.account] += int(posting.amount)

    def _balance(self, key: str) -> int:
        return int(domain.shown_balance(key, self.sums.get(key, 0)))

    def _ids(self, state: str) -> list[str]:
        return sorted(key for key, (_, _, now) in self.vouchers.items() if now == state)

    @rule(funder=st.sampled_from(FUNDERS), amount=st.integers(1, 10_000_000))
    def deposit(self, funder: str, amount: int) -> None:
        self.serial += 1
        self._apply(domain.deposit(f"dep_{self.serial}", funder_code=funder, amount=amount))

    @rule(value=st.integers(1, 500_000), split=splits())
    def claim(self, value: int, split: FundingSplit) -> None:
        # Claims never wait for deposits in the product; here a claim is made only when every
        # funder's budget covers its part, so "no negative balance" must then hold everywhere.
        if any(self._balance(domain.budget(code)) < part for code, part in split.split(value)):
            return
        self.serial += 1
        voucher = f"vch_{self.serial}"
        self._apply(domain.claim(voucher, value=value, funding=split))
        self.vouchers[voucher] = (value, split, "claimed")

    @precondition(lambda self: bool(self._ids("claimed")))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        voucher = data.draw(st.sampled_from(self._ids("claimed")))
        value, split, _ = self.vouchers[voucher]
        self._apply(domain.expire(voucher, value=value, funding=split))
        self.vouchers[voucher] = (value, split, "expired")

    @precondition(lambda self: bool(self._ids("expired")))
    @rule(data=st.data())
    def recycle(self, data: st.DataObject) -> None:
        voucher = data.draw(st.sampled_from(self._ids("expired")))
        value, split, _ = self.vouchers[voucher]
        self._apply(domain.recycle(voucher, value=value, funding=split))
        self.vouchers[voucher] = (value, split, "recycled")

    @precondition(lambda self: bool(self._ids("claimed")))
    @rule(data=st.data(), permille=st.integers(1, 1000))
    def redeem_and_maybe_refund(self, data: st.DataObject, permille: int) -> None:
        voucher = data.draw(st.sampled_from(self._ids("claimed")))
        value, split, _ = self.vouchers[voucher]
        subsidy = max(1, value * permille // 1000)
        self._apply(
            domain.redeem(
                f"rdm_{voucher}",
                value=value,
                subsidy=subsidy,
                funding=split,
                merchant_id="m",
                big_ticket=False,
            )
        )
        self.vouchers[voucher] = (value, split, "redeemed")
        if data.draw(st.booleans()):  # refunded in full: the voucher is restored
            self._apply(
                domain.refund(
                    f"rfd_{voucher}",
                    value=value,
                    subsidy=subsidy,
                    returned=subsidy,
                    restore=True,
                    funding=split,
                    merchant_id="m",
                    payable_available=self._balance("payable:m"),
                )
            )
            self.vouchers[voucher] = (value, split, "claimed")

    @invariant()
    def books_balance(self) -> None:
        assert sum(self.sums.values()) == 0

    @invariant()
    def no_negative_balance(self) -> None:
        assert all(self._balance(key) >= 0 for key in self.sums), dict(self.sums)

    @invariant()
    def voucher_accounts_match_the_vouchers(self) -> None:
        for state, kind in (("claimed", "vouchers"), ("expired", "expired")):
            held = sum(value for value, _, now in self.vouchers.values() if now == state)
            assert sum(self._balance(f"{kind}:{code}") for code in FUNDERS) == held

    @invariant()
    def conservation(self) -> None:
        deposited = sum(self._balance(domain.funder(code)) for code in FUNDERS)
        held = sum(self._balance(key) for key in self.sums if not key.startswith("funder:"))
        assert deposited == held


Books.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerBooks = Books.TestCase
