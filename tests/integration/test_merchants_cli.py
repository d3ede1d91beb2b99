"""`huimin merchant ...` as an operator runs it, on SQLite and on PostgreSQL.

The commands are mounted under a root Typer the way the `huimin` command mounts them
(`app.add_typer(merchant_app, name="merchant")`); a refusal surfaces as the `HuiminError` that the
`huimin` command prints with its code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from openpyxl import load_workbook
from typer.testing import CliRunner, Result

from huimin.cli import app as huimin_app
from huimin.errors import HuiminError
from huimin.merchants.cli import merchant_app
from tests.integration.merchant_helpers import credit_code
from tests.support import small_campaign

root = typer.Typer()
root.add_typer(merchant_app, name="merchant")

CITY = ["--actor", "王芳", "--role", "city_admin"]
OPERATOR = ["--actor", "李强", "--role", "operator"]
ANYUE_REVIEWER = ["--actor", "张伟", "--role", "county_reviewer", "--jurisdiction", "安岳县"]


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("HUIMIN_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(root, ["merchant", *args])

    return invoke


def load_campaign(tmp_path: Path, code: str) -> None:
    path = tmp_path / f"{code}.toml"
    path.write_text(small_campaign(code=code), encoding="utf-8")
    loaded = CliRunner().invoke(huimin_app, ["campaign", "load", str(path)])
    assert loaded.exit_code == 0, loaded.output


def flat(output: str) -> str:
    """Typer's error box wraps messages at the terminal's width: read them as one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def refusal(result: Result) -> str:
    assert isinstance(result.exception, HuiminError), result.output
    return result.exception.code


def test_the_whole_workflow_from_the_shell(run: Any, tmp_path: Path) -> None:
    load_campaign(tmp_path, "test-2022")
    listing = tmp_path / "邀约名单.csv"
    listing.write_text(
        "企业名称,统一社会信用代码,所属区县,行业类别,商家类型\n"
        f"一号店,{credit_code(1)},安岳县,餐饮,限上\n"
        f"二号店,{credit_code(2)},雁江区,零售,重点培育\n"
        f"三号店,{credit_code(3)[:17]}0,雁江区,零售,重点培育\n",
        encoding="utf-8",
    )
    imported = run("import", str(listing), "--campaign", "test-2022", *CITY)
    assert imported.exit_code == 0, imported.output
    assert "3 rows: 2 merchants invited, 0 already invited, 1 rows rejected" in imported.stdout
    assert "row 4: 统一社会信用代码: check character does not match (GB 32100)" in imported.stderr
    invited = run(
        "invite",
        "--campaign",
        "test-2022",
        "--credit-code",
        credit_code(4),
        "--name",
        "四号店",
        "--merchant-jurisdiction",
        "高新区",
        "--category",
        "家电",
        "--class",
        "限上",
        *CITY,
    )
    assert invited.exit_code == 0, invited.output
    assert "invited" in invited.stdout

    code = credit_code(1)
    on = ["--campaign", "test-2022"]
    applied = run(
        "apply",
        code,
        *on,
        "--address",
        "资阳市安岳县岳阳镇测试路1号",
        "--hours",
        "09:00-21:00",
        "--terminal",
        "T0000001",
        "--terminal",
        "T0000002",
        "--bank-name",
        "四川农信",
        "--bank-account",
        "6214001234567890",
        "--contact-name",
        "陈静",
        "--contact-phone",
        "13812345678",
        *OPERATOR,
    )
    assert applied.exit_code == 0, applied.output
    assert run("submit", code, *on, *OPERATOR).exit_code == 0

    # a county review needs the reviewer's jurisdiction, and it must be the merchant's
    missing = run("review", code, "approve", *on, "--actor", "张伟", "--role", "county_reviewer")
    assert missing.exit_code == 2
    assert "give --jurisdiction" in flat(missing.output)
    elsewhere = run(
        "review",
        code,
        "approve",
        *on,
        "--actor",
        "张伟",
        "--role",
        "county_reviewer",
        "--jurisdiction",
        "乐至县",
    )
    assert refusal(elsewhere) == "unknown_merchant"
    assert refusal(run("review", code, "approve", *on, *OPERATOR)) == "forbidden"
    assert run("review", code, "approve", *on, *ANYUE_REVIEWER, "--reason", "材料齐全").exit_code == 0

    published = run("publish", "--campaign", "test-2022", *CITY)
    assert "1 merchants put on the final list" in published.stdout
    committed = run("commit", code, *on, "--signatory", "陈静", "--actor", "陈静", "--role", "merchant")
    assert committed.exit_code == 0, committed.output
    assert "active" in committed.stdout
    assert refusal(run("suspend", code, *on, "--reason", "x", *OPERATOR)) == "forbidden"
    for action in ("suspend", "reinstate", "expel"):
        result = run(action, code, *on, "--reason", "虚假交易套现", *CITY)
        assert result.exit_code == 0, result.output
    assert refusal(run("reinstate", code, *on, "--reason", "x", *CITY)) == "invalid_transition"

    shown = json.loads(run("show", code, *on, "--json").stdout)
    assert [(step["action"], step["actor_name"], step["actor_role"]) for step in shown["history"]] == [
        ("invite", "王芳", "city_admin"),
        ("apply", "李强", "operator"),
        ("submit", "李强", "operator"),
        ("approve", "张伟", "county_reviewer"),
        ("publish", "王芳", "city_admin"),
        ("commit", "陈静", "merchant"),
        ("suspend", "王芳", "city_admin"),
        ("reinstate", "王芳", "city_admin"),
        ("expel", "王芳", "city_admin"),
    ]
    assert shown["history"][3]["actor_jurisdiction"] == "anyue"
    assert shown["bank_account_masked"] == "621*********7890"
    assert shown["terminals"] == ["T0000001", "T0000002"]

    merchants = json.loads(run("list", "--campaign", "test-2022", "--json").stdout)
    assert sorted(item["status"] for item in merchants) == ["expelled", "invited", "invited"]
    events = json.loads(run("events").stdout)
    assert [event["kind"] for event in events] == [
        "merchant.activated",
        "merchant.suspended",
        "merchant.reinstated",
        "merchant.expelled",
    ]
    assert events[-1]["payload"]["claw_back_settled_subsidy"] is True

    exported = run("export", "--campaign", "test-2022", "--out", str(tmp_path / "名单.xlsx"))
    assert exported.exit_code == 0, exported.output
    assert load_workbook(tmp_path / "名单.xlsx").sheetnames == [
        "汇总",
        "雁江区",
        "安岳县",
        "乐至县",
        "高新区",
        "临空经济区",
    ]

    assert code in run("dishonest", "list").stdout
    load_campaign(tmp_path, "test-2023")
    again = run("import", str(listing), "--campaign", "test-2023", *CITY)
    assert "row 2: 统一社会信用代码: on the dishonest list (失信名单)" in again.stderr
    assert (
        refusal(run("apply", code, "--campaign", "test-2023", *OPERATOR, *application_options()))
        == "unknown_merchant"
    )

    delisted = run("dishonest", "delist", code, "--reason", "复议撤销", *CITY)
    assert delisted.exit_code == 0, delisted.output
    assert "taken off the dishonest list" in delisted.stdout
    assert code not in run("dishonest", "list").stdout
    assert code in run("dishonest", "list", "--all").stdout


def application_options() -> list[str]:
    return [
        "--address",
        "x",
        "--hours",
        "09:00-21:00",
        "--terminal",
        "T1",
        "--bank-name",
        "x",
        "--bank-account",
        "62140012345678",
        "--contact-name",
        "x",
        "--contact-phone",
        "13812345678",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--actor", "王芳", "--role", "system"], "--role"),
        (["--actor", "王芳", "--role", "mayor"], "--role"),
        (["--actor", " ", "--role", "city_admin"], "name the person who acts"),
        (["--actor", "王芳", "--role", "city_admin", "--jurisdiction", "雁江区"], "only a county reviewer"),
        (["--actor", "张伟", "--role", "county_reviewer", "--jurisdiction", "成都"], "unknown jurisdiction"),
    ],
)
def test_the_person_acting_is_checked(options: list[str], message: str) -> None:
    result = CliRunner().invoke(root, ["merchant", "publish", "--campaign", "test-2022", *options])
    assert result.exit_code == 2
    assert message in flat(result.output)


def test_the_commitment_text_is_printed_with_its_hash() -> None:
    result = CliRunner().invoke(root, ["merchant", "commitment"])
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("version v1, sha256 ")
    assert "诚信经营承诺书" in result.stdout
