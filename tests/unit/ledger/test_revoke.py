"""The `revoke` movement (issue 7): a voucher revoked by a risk sanction leaves the liability and its value
goes back to the funders' budgets, split exactly as its claim put it there."""

from __future__ import annotations

import pytest

from huimin.ledger import domain
from huimin.ledger.domain import FundingSplit, LedgerError, TransactionKind

SHARED = FundingSplit.of([("fiscal", 6_667), ("union", 3_333)])


def test_a_revocation_undoes_the_claim_leg_by_leg() -> None:
    claim = domain.claim("vch_1", value=3_000, funding=SHARED)
    revoke = domain.revoke("vch_1", value=3_000, funding=SHARED)
    assert (revoke.kind, revoke.reference) == (TransactionKind.REVOKE, "vch_1")
    for account in ("budget:fiscal", "budget:union", "vouchers:fiscal", "vouchers:union"):
        assert revoke.total(account) == -claim.total(account)
    assert revoke.total("vouchers:fiscal") + revoke.total("vouchers:union") == -3_000


def test_a_revocation_needs_a_positive_value() -> None:
    with pytest.raises(LedgerError, match="positive"):
        domain.revoke("vch_1", value=0, funding=SHARED)
