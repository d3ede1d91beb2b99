"""`huimin settlement …` and `huimin reconcile` as an operator runs them: a run prepared and approved by
two different people (the preparer refused as approver), a clean reconciliation (exit 0), a bank file
with differences (exit 1), the statement, a run returned by finance and the day prepared again."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_cli import huimin
from tests.support import small_campaign

OPERATOR = ("--actor", "李强", "--role", "operator")
FINANCE = ("--actor", "刘洋", "--role", "finance")


def test_prepare_approve_reconcile_from_the_shell(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'huimin.db'}"
    assert huimin("db", "upgrade", database_url=url).returncode == 0
    campaign_file = tmp_path / "campaign.toml"
    campaign_file.write_text(small_campaign(), encoding="utf-8")
    assert huimin("campaign", "load", str(campaign_file), database_url=url).returncode == 0

    prepared = huimin(
        "settlement", "prepare", "--campaign", "test-2022", "--day", "2022-06-24", *OPERATOR, database_url=url
    )
    assert prepared.returncode == 0, prepared.stderr
    run_id = re.search(r"run (stl_\w+)", prepared.stdout)
    assert run_id is not None, prepared.stdout
    again = huimin(
        "settlement", "prepare", "--campaign", "test-2022", "--day", "2022-06-24", *OPERATOR, database_url=url
    )
    assert run_id.group(1) in again.stdout  # the same day, the same run

    own = huimin(
        "settlement", "approve", run_id.group(1), "--actor", "李强", "--role", "finance", database_url=url
    )
    assert own.returncode == 1
    assert "maker_checker" in own.stderr
    approved = huimin("settlement", "approve", run_id.group(1), *FINANCE, database_url=url)
    assert approved.returncode == 0, approved.stderr
    assert "closed" in approved.stdout  # nothing was due: closed at once

    clean = huimin("reconcile", "--day", "2022-06-24", database_url=url)
    assert clean.returncode == 0, clean.stderr
    assert "0 differences" in clean.stdout

    bank = tmp_path / "bank.csv"
    bank.write_text(
        "payout_reference,amount_fen,status,bank_transaction_id,reason\nNOSUCHREFERENCE,100,paid,BK1,\n"
    )
    imported = huimin(
        "settlement", "import-bank", "--campaign", "test-2022", str(bank), *OPERATOR, database_url=url
    )
    assert imported.returncode == 1
    assert "unknown_reference" in imported.stderr

    statement = huimin("settlement", "statement", "--campaign", "test-2022", database_url=url)
    assert statement.returncode == 0, statement.stderr
    assert "fiscal" in statement.stdout

    # finance returns (退回) a prepared run; the day is prepared again as a new run
    day = ("--campaign", "test-2022", "--day", "2022-06-25")
    first = re.search(
        r"run (stl_\w+)", huimin("settlement", "prepare", *day, *OPERATOR, database_url=url).stdout
    )
    assert first is not None
    blank = huimin("settlement", "return", first.group(1), "--reason", " ", *FINANCE, database_url=url)
    assert blank.returncode == 2  # bad input, as every command answers it
    assert "invalid_return_reason" in blank.stderr
    returned = huimin(
        "settlement", "return", first.group(1), "--reason", "商户数据待核", *FINANCE, database_url=url
    )
    assert returned.returncode == 0, returned.stderr
    assert "returned: 商户数据待核" in returned.stdout
    second = re.search(
        r"run (stl_\w+)", huimin("settlement", "prepare", *day, *OPERATOR, database_url=url).stdout
    )
    assert second is not None
    assert second.group(1) != first.group(1)
