"""The `huimin` command as an operator runs it: a real process against a real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ZIYANG_FILE


def huimin(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own command, fixed arguments)
        [sys.executable, "-m", "huimin", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HUIMIN_DATABASE_URL": database_url, "COLUMNS": "200", **env},
        timeout=120,
        check=False,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'huimin.db'}"


def test_upgrade_load_and_show(sqlite_url: str) -> None:
    assert huimin("db", "upgrade", database_url=sqlite_url).returncode == 0
    loaded = huimin("campaign", "load", str(ZIYANG_FILE), database_url=sqlite_url)
    assert loaded.returncode == 0, loaded.stderr
    assert "campaign loaded ziyang-2022" in loaded.stdout
    again = huimin("campaign", "load", str(ZIYANG_FILE), database_url=sqlite_url)
    assert "already loaded, unchanged" in again.stdout
    shown = huimin("campaign", "show", "--json", database_url=sqlite_url)
    assert shown.returncode == 0, shown.stderr
    [campaign] = json.loads(shown.stdout)
    assert campaign["budget_fen"] == 8_000_000_000
    assert len(campaign["rounds"]) == 56
    table = huimin("campaign", "show", "ziyang-2022", database_url=sqlite_url)
    assert "¥80,000,000.00" in table.stdout
    assert "满100减30" in table.stdout


def test_a_bad_file_is_refused_naming_each_field_and_nothing_is_stored(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert huimin("db", "upgrade", database_url=sqlite_url).returncode == 0
    text = ZIYANG_FILE.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace('threshold = "100"', 'threshold = "10"').replace(
            'funding = { fiscal = "100%" }', 'funding = { fiscal = "90%" }'
        ),
        encoding="utf-8",
    )
    refused = huimin("campaign", "load", str(bad), database_url=sqlite_url)
    assert refused.returncode == 2
    assert "invalid_campaign" in refused.stderr
    assert "batches[0].threshold: threshold ¥10.00 is below the face value ¥30.00" in refused.stderr
    assert "batches[4].funding: shares add up to 90%, they must add up to 100%" in refused.stderr
    shown = huimin("campaign", "show", "--json", database_url=sqlite_url)
    assert json.loads(shown.stdout) == []


def test_production_refuses_default_secrets(sqlite_url: str) -> None:
    refused = huimin("db", "upgrade", database_url=sqlite_url, HUIMIN_ENV="production")
    assert refused.returncode == 1
    assert "HUIMIN_SECRET_KEY" in refused.stderr
    assert "HUIMIN_HASH_KEY" in refused.stderr
