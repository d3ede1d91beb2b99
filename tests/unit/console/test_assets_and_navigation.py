"""Vendored front-end packages are checked at start-up; the navigation follows the permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from huimin.auth.principals import Principal, Role
from huimin.config import Settings
from huimin.console.assets import VENDOR_FILES, VendorAssets
from huimin.console.figures import _share, leverage_text
from huimin.console.web import home_of, navigation
from huimin.errors import ConfigurationError
from huimin.kit.terms import Jurisdiction


def test_missing_packages_stop_the_app_with_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        VendorAssets.locate(Settings(assets_dir=tmp_path))
    assert "npm ci" in caught.value.message
    assert str(tmp_path) in caught.value.message


def test_only_named_files_are_served(tmp_path: Path) -> None:
    for relative in VENDOR_FILES.values():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    assets = VendorAssets.locate(Settings(assets_dir=tmp_path))
    assert assets.path("echarts.min.js") == tmp_path / "echarts/dist/echarts.min.js"
    assert assets.path("../package.json") is None
    assert assets.path("echarts/package.json") is None


def _principal(role: Role) -> Principal:
    return Principal(
        actor_id="usr_1",
        role=role,
        jurisdiction=Jurisdiction.ANYUE if role is Role.COUNTY_REVIEWER else None,
        merchant_id="mch_1" if role is Role.MERCHANT else None,
    )


@pytest.mark.parametrize(
    ("role", "pages"),
    [
        (
            Role.CITY_ADMIN,
            [
                *("overview", "campaigns", "merchants", "merchants/final-list", "redemptions", "money"),
                *(
                    "settlement",
                    "reports",
                    "risk",
                    "complaints",
                    "inspections",
                    "allocation",
                    "users",
                    "audit",
                ),
            ],
        ),
        (
            Role.COUNTY_REVIEWER,
            [
                *("overview", "campaigns", "merchants/review", "invoices", "merchants", "redemptions"),
                *("reports", "risk", "complaints", "inspections"),
            ],
        ),
        (
            Role.OPERATOR,
            [
                "overview",
                "campaigns",
                "merchants",
                "redemptions",
                "money",
                "settlement",
                "reports",
                "risk",
                "complaints",
            ],
        ),
        (Role.FINANCE, ["overview", "campaigns", "redemptions", "money", "settlement", "reports"]),
        (Role.UNION_ADMIN, ["overview", "campaigns", "reports"]),
        (
            Role.MARKET_REGULATOR,
            ["overview", "merchants", "redemptions", "reports", "risk/cases", "complaints", "inspections"],
        ),
        (Role.POLICE, ["overview", "reports", "risk/cases"]),
        (Role.PBOC, ["overview", "reports", "complaints"]),
        (Role.HOTLINE, ["overview", "reports", "complaints"]),
        (Role.PUBLICITY, ["overview", "reports", "complaints", "announcements"]),
        (Role.MERCHANT, ["till", "merchants/mch_1", "redemptions"]),
    ],
)
def test_the_navigation_of_each_role(role: Role, pages: list[str]) -> None:
    principal = _principal(role)
    assert [item.href for item in navigation(principal)] == [f"/console/{page}" for page in pages]
    assert home_of(principal) == f"/console/{pages[0]}"


def test_shares_are_computed_in_integers() -> None:
    assert _share(0, 0) == "—"
    assert _share(1, 3) == "33.3%"
    assert _share(2, 3) == "66.7%"
    assert _share(28, 300) == "9.3%"
    assert _share(5, 5) == "100.0%"


def test_leverage_is_written_in_integers() -> None:
    assert leverage_text(0, 0) == "—"
    assert leverage_text(10_500, 3_000) == "1 : 3.50"
    assert leverage_text(12_345, 1_000) == "1 : 12.35"  # half up
    assert leverage_text(1, 3) == "1 : 0.33"
    assert leverage_text(2, 3) == "1 : 0.67"
