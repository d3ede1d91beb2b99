"""The pure rules of settlement: the clearing file, the bank's file, references, maker-checker, the
arithmetic of set-offs and statements, and the ledger movements of settlement, to the fen."""

from __future__ import annotations

from datetime import date

import pytest

from huimin.errors import HuiminError, InvalidInput
from huimin.kit.money import Fen
from huimin.ledger import domain as ledger
from huimin.ledger.domain import FundingSplit, LedgerError
from huimin.settlement import domain
from huimin.settlement.domain import BankOutcome, ClearingLine

RUN = "stl_01J9ZQ4V8K3M2N7P5R6S8T0VWX"
SPLIT = FundingSplit.of([("fiscal", 7_000), ("social", 3_000)])


def line(seq: int, amount: int, name: str = "资阳市测试商贸有限公司") -> ClearingLine:
    return ClearingLine(
        reference=domain.payout_reference(RUN, seq),
        credit_code="92512002000000001X",
        merchant_name=name,
        bank_name="中国工商银行资阳分行",
        account="6222021234567890123",
        amount=Fen(amount),
    )


def test_the_clearing_file_is_the_same_bytes_for_the_same_lines_in_any_order() -> None:
    one = domain.render_clearing_file([line(1, 5_250), line(2, 3_000, '王记, "老"店')])
    two = domain.render_clearing_file([line(2, 3_000, '王记, "老"店'), line(1, 5_250)])
    assert one == two
    text = one.decode("utf-8")
    assert (
        text.splitlines()[0]
        == "payout_reference,credit_code,merchant_name,bank_name,account_no,amount_fen,amount_yuan"
    )
    assert text.splitlines()[1].endswith(",5250,52.50")
    assert text.splitlines()[-1].startswith("TRAILER,2,8250,82.50,")
    assert domain.clearing_file_totals(one) == (2, Fen(8_250))


def test_a_tampered_clearing_file_fails_its_trailer() -> None:
    content = domain.render_clearing_file([line(1, 5_250)])
    with pytest.raises(ValueError, match="SHA-256"):
        domain.clearing_file_totals(content.replace(b"5250,52.50", b"9250,92.50"))


def test_an_empty_run_has_a_header_and_a_trailer() -> None:
    content = domain.render_clearing_file([])
    assert domain.clearing_file_totals(content) == (0, Fen(0))
    with pytest.raises(ValueError, match="positive"):
        domain.render_clearing_file([line(1, 0)])


def test_payout_references_round_trip_and_refuse_strangers() -> None:
    reference = domain.payout_reference(RUN, 7)
    assert len(reference) == 31
    assert reference.isalnum()
    assert domain.parse_reference(reference) == (RUN, 7)
    assert domain.parse_reference(reference.lower()) == (RUN, 7)
    assert domain.parse_reference("HM0001") is None
    assert domain.parse_reference(reference[:-5] + "00000") is None


def test_the_bank_file_is_read_strictly() -> None:
    content = (
        "\ufeffpayout_reference,amount_fen,status,bank_transaction_id,reason\n"
        f"{domain.payout_reference(RUN, 1)},5250,PAID,BK1,\n"
        f"{domain.payout_reference(RUN, 2)},3000,failed,,账户已销户\n"
    ).encode()
    rows = domain.parse_bank_file(content)
    assert [(row.row, row.amount, row.outcome) for row in rows] == [
        (1, 5_250, BankOutcome.PAID),
        (2, 3_000, BankOutcome.FAILED),
    ]
    bad = b"payout_reference,amount_fen,status,bank_transaction_id,reason\nX,12.5,paid,,\nY,1,maybe,,\nZ,1,paid,,\n"
    with pytest.raises(InvalidInput) as refused:
        domain.parse_bank_file(bad)
    assert [problem.field for problem in refused.value.problems] == ["row 1", "row 2", "row 3"]
    with pytest.raises(InvalidInput):
        domain.parse_bank_file(b"reference,amount\n")


def test_maker_checker_and_two_approvers() -> None:
    assert domain.approvals_needed(100_000_000, 100_000_000) == 1
    assert domain.approvals_needed(100_000_001, 100_000_000) == 2
    with pytest.raises(HuiminError, match="cannot approve"):
        domain.check_approver(preparer="usr_a", approver="usr_a", approved_by=[])
    with pytest.raises(HuiminError, match="already"):
        domain.check_approver(preparer="usr_a", approver="usr_b", approved_by=["usr_b"])
    domain.check_approver(preparer="usr_a", approver="usr_c", approved_by=["usr_b"])


def test_a_return_needs_a_reason_of_at_most_500_characters() -> None:
    assert domain.check_return_reason("  商户应冻结\n") == "商户应冻结"
    assert domain.check_return_reason("因" * 500) == "因" * 500
    for reason in ("", " \t\n", "因" * 501):
        with pytest.raises(InvalidInput) as refused:
            domain.check_return_reason(reason)
        assert (refused.value.code, refused.value.status) == ("invalid_return_reason", 422)
    # A returned line frees its redemptions and the bank will never answer it.
    assert domain.LineStatus.RETURNED in domain.RETURNED
    assert domain.LineStatus.RETURNED not in domain.IN_FLIGHT


def test_t_plus_one() -> None:
    assert domain.latest_due_day(date(2022, 6, 25), 1) == date(2022, 6, 24)
    assert domain.latest_due_day(date(2022, 6, 25), 0) == date(2022, 6, 25)


def test_allocation_is_oldest_first_and_exact() -> None:
    assert domain.allocate(4_000, [("a", 3_000), ("b", 2_250), ("c", 10)]) == [("a", 3_000), ("b", 1_000)]
    assert domain.allocate(0, [("a", 1)]) == []
    with pytest.raises(ValueError, match="cannot allocate"):
        domain.allocate(5, [("a", 4)])


def test_apportion_by_largest_remainder_adds_up() -> None:
    assert domain.apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert domain.apportion(6_000, [7_875, 3_375]) == [4_200, 1_800]
    assert domain.apportion(7, [0, 0]) == [7, 0]
    assert sum(domain.apportion(99_999, [3, 5, 11])) == 99_999


def test_the_ledger_movements_of_settlement() -> None:
    settle = ledger.settle("P1", merchant_id="mch_a", amount=5_250)
    assert settle.total("clearing") == 5_250
    assert settle.total("payable:mch_a") == -5_250
    setoff = ledger.setoff("P1", merchant_id="mch_a", collected=[(SPLIT, 3_000), (SPLIT, 1)])
    assert {p.account: int(p.amount) for p in setoff.postings} == {
        "settled:mch_a": 3_001,
        "payable:mch_a": -3_001,
        "budget:fiscal": 2_101,
        "budget:social": 900,
        "receivable:mch_a": -3_001,
    }
    failed = ledger.payout_failed(
        "P1", merchant_id="mch_a", amount=2_249, undone=[(SPLIT, 3_000), (SPLIT, 1)]
    )
    assert {p.account: int(p.amount) for p in failed.postings} == {
        "payable:mch_a": 2_249 + 3_001,
        "clearing": -2_249,
        "settled:mch_a": -3_001,
        "budget:fiscal": -2_101,
        "budget:social": -900,
        "receivable:mch_a": 3_001,
    }
    clawback = ledger.clawback("C1", merchant_id="mch_a", amount=5_250)
    assert clawback.total("receivable:mch_a") == 5_250
    assert clawback.total("settled:mch_a") == -5_250
    recover = ledger.recover(
        "R1", unused_budget=[("fiscal", 100), ("social", 0)], expired_value=[("fiscal", 5)]
    )
    assert recover.total("recovery:fiscal") == 105
    assert recover.total("expired:fiscal") == -5
    with pytest.raises(LedgerError):
        ledger.settle("P2", merchant_id="mch_a", amount=0)
    with pytest.raises(LedgerError):
        ledger.recover("R2", unused_budget=[("fiscal", -1)], expired_value=[])
