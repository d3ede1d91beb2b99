"""`huimin risk ip-regions import/list` as an operator runs them, on SQLite and on PostgreSQL: an import
replaces the whole table, a file with a bad row changes nothing and names every bad row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from huimin.errors import InvalidInput
from huimin.risk.cli import risk_app

root = typer.Typer()
root.add_typer(risk_app, name="risk")


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HUIMIN_DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(root, ["risk", "ip-regions", *args])

    return invoke


def test_import_replaces_the_table_and_a_bad_file_changes_nothing(run: Any, tmp_path: Path) -> None:
    first = tmp_path / "ip-regions.csv"
    first.write_text(
        "network,region,in_city\n222.209.80.0/20,雁江区,true\n175.152.0.0/16,成都市,false\n2408:8456::/32,outside,false\n",
        encoding="utf-8",
    )
    imported = run("import", str(first))
    assert imported.exit_code == 0, imported.output
    assert "3 networks imported (1 inside the city, 2 outside); the table was replaced" in imported.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("network,region,in_city\n10.0.0.0/8,内网,true\n10.0.0.0/33,x,true\n1.2.3.0/24,,nope\n")
    refused = run("import", str(bad))
    assert isinstance(refused.exception, InvalidInput), refused.output
    assert refused.exception.code == "invalid_ip_regions"
    assert [problem.field for problem in refused.exception.problems] == [
        "row 3, network",
        "row 4, region",
        "row 4, in_city",
    ]
    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert "3 networks" in listed.stdout
    assert "175.152.0.0/16" in listed.stdout
    assert "成都市" in listed.stdout
    assert "10.0.0.0/8" not in listed.stdout

    second = tmp_path / "ip-regions-2.csv"
    second.write_text("network,region,in_city\n10.0.0.0/8,内网,true\n", encoding="utf-8")
    assert run("import", str(second)).exit_code == 0
    listed = run("list")
    assert "1 network\n" in listed.stdout
    assert "10.0.0.0/8" in listed.stdout
    assert "175.152.0.0/16" not in listed.stdout
