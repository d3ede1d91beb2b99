"""`huimin demo`: a small synthetic city through the whole Ziyang 2022 campaign on the embedded SQLite
database, through the services; every invariant holds and the same seed writes the same summary.json."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from huimin.db import create_engine
from huimin.eligibility.geofence import default_geofence
from huimin.eligibility.identity import id_number_problem, phone_problem
from huimin.kit.clock import to_local
from huimin.kit.terms import Category, Jurisdiction
from huimin.merchants.domain import credit_code_problem, parse_business_hours
from huimin.merchants.domain import phone_problem as contact_phone_problem
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.simulation import fraud
from huimin.simulation.city import build_city, build_merchants
from huimin.simulation.run import DATABASE_FILE, SIGN_INS_FILE, SUMMARY_FILE, run_demo
from tests.integration.conftest import DEMO_FRAUD_SETS as FRAUD_SETS
from tests.integration.conftest import DEMO_MERCHANTS as MERCHANTS
from tests.integration.conftest import DEMO_RESIDENTS as RESIDENTS
from tests.integration.conftest import DEMO_SEED as SEED
from tests.integration.conftest import SmallDemo

# The city and merchants tests draw with their own seed (the small demo's is in conftest.py)


def test_the_city_is_valid_and_reproducible() -> None:
    city = build_city(residents=2_000, seed=SEED)
    assert city == build_city(residents=2_000, seed=SEED)
    assert city != build_city(residents=2_000, seed=SEED + 1)
    residents = city.residents
    assert len(residents) == 2_000
    assert all(id_number_problem(resident.id_number) is None for resident in residents)
    assert all(phone_problem(resident.phone) is None for resident in residents)
    assert len({resident.id_number for resident in residents}) == len(residents)
    assert len({resident.phone for resident in residents}) == len(residents)
    assert len({resident.device_id for resident in residents}) < len(residents)  # families share phones
    geofence = default_geofence()
    # every home is where the platform will place it, whichever CRS the phone reports
    assert all(geofence.district_of(resident.location) is resident.home for resident in residents)
    assert {resident.location.crs.value for resident in residents} == {"wgs84", "gcj02"}
    counts = city.by_district()
    assert counts["yanjiang"] > counts["anyue"] > counts["lezhi"] > counts["outside"] > 0
    assert 100 < sum(resident.union_member for resident in residents) < 300


def test_the_merchants_are_valid_reproducible_and_spread_like_a_city() -> None:
    merchants = build_merchants(count=800, seed=SEED)
    assert merchants == build_merchants(count=800, seed=SEED)
    assert merchants != build_merchants(count=800, seed=SEED + 1)
    # residents draw from their own stream: merchants never change who they are
    assert (
        build_city(residents=50, seed=SEED).residents
        == build_city(residents=50, merchants=9, seed=SEED).residents
    )
    assert all(credit_code_problem(merchant.credit_code) is None for merchant in merchants)
    assert all(contact_phone_problem(merchant.contact_phone) is None for merchant in merchants)
    assert len({merchant.credit_code for merchant in merchants}) == 800
    terminals = [terminal for merchant in merchants for terminal in merchant.terminals]
    assert len(set(terminals)) == len(terminals)
    assert {len(merchant.terminals) for merchant in merchants} == {1, 2}
    where = Counter(merchant.jurisdiction for merchant in merchants)
    assert where[Jurisdiction.YANJIANG] > where[Jurisdiction.ANYUE] > where[Jurisdiction.LEZHI]
    assert where[Jurisdiction.LEZHI] > where[Jurisdiction.GAOXIN] > 0
    assert where[Jurisdiction.LINKONG] > 0
    what = Counter(merchant.category for merchant in merchants)
    assert what[Category.CATERING] > what[Category.RETAIL] > what[Category.SERVICES] > what[Category.CARS]
    assert 10 < what[Category.CARS] < 50
    assert 20 < what[Category.APPLIANCES] < 70
    assert 20 < sum(merchant.review_problem is not None for merchant in merchants) < 70
    # even a handful of merchants covers every category
    assert {merchant.category for merchant in build_merchants(count=len(Category), seed=SEED)} == set(
        Category
    )


async def test_a_small_demo_keeps_every_invariant_and_is_reproducible(
    small_demo: SmallDemo, tmp_path: Path
) -> None:
    summary, first = small_demo.summary, small_demo.out
    written = json.loads((first / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert written == summary
    assert summary["invariants"], "no invariant was checked"
    assert all(summary["invariants"].values()), summary["invariants"]
    assert summary["invariants"].keys() >= {
        "settlement_reconciled",
        "bank_files_applied",
        "campaign_closed_and_recovered",
        "nothing_unused_after_recovery",
        "ledger_checks",
    }
    _the_back_office_worked(summary)
    reports = {path.suffix for path in (first / "reports").iterdir()}
    assert reports == {".html", ".pdf", ".xlsx"}
    sign_ins = json.loads((first / SIGN_INS_FILE).read_text(encoding="utf-8"))
    assert {account["role"] for account in sign_ins} >= {
        "city_admin",
        "operator",
        "finance",
        "county_reviewer",
    }

    assert summary["residents"] == RESIDENTS
    assert summary["fraud_recruits"] > 0
    assert (summary["rounds"], summary["lottery_rounds"]) == (56, 28)
    assert summary["lotteries_drawn"] == summary["lotteries_verified"] == 28
    assert summary["lottery_entry_outcomes"]["ok"] > 0
    assert summary["lottery_winners"] > 0
    outcomes = summary["claim_outcomes"]
    assert summary["claims_attempted"] == sum(outcomes.values())
    assert outcomes["ok"] > 0
    assert outcomes.keys() >= {"ok", "identity_unverified", "round_not_open"}  # refusals happen too
    assert summary["vouchers_claimed"] == outcomes["ok"] + summary["lottery_winners"]
    assert sum(summary["claimed_by_district"].values()) == summary["vouchers_claimed"]
    # vouchers left unspent expire, and all but the last ones recycle
    assert 0 < summary["vouchers_expired"] < summary["vouchers_claimed"]
    assert 0 < summary["vouchers_recycled"] <= summary["vouchers_expired"]
    assert summary["stock_recycled"]["unclaimed"] > 0
    assert summary["stock_recycled"]["expired"] == summary["vouchers_recycled"]

    # merchants: invited, a few rejected by their county, the rest listed, committed and active
    assert summary["merchants_invited"] == MERCHANTS
    assert 0 < summary["merchants_rejected"] < MERCHANTS // 4
    listed = summary["merchants_active"] + summary["merchants_suspended"] + summary["merchants_expelled"]
    assert listed == MERCHANTS - summary["merchants_rejected"]
    assert summary["merchants_expelled"] > 0  # the risk desk's sanctions (below)
    assert sum(summary["merchants_active_by_category"].values()) == summary["merchants_active"]

    # redemptions: most vouchers are spent, some baskets are short and topped up, late tries refused
    redemptions = summary["redemption_outcomes"]
    assert summary["redemptions_attempted"] == sum(redemptions.values())
    assert redemptions.keys() >= {"ok", "below_threshold", "voucher_expired"}
    assert summary["redemptions_topped_up"].get("ok", 0) > 0
    # a late try is refused as expired (or first because the shop was sanctioned meanwhile)
    assert "voucher_expired" in summary["redemptions_after_expiry"]
    assert set(summary["redemptions_after_expiry"]) <= {"voucher_expired", "merchant_not_active"}
    assert 0 < summary["vouchers_redeemed"] < summary["vouchers_claimed"]
    assert summary["vouchers_redeemed"] == sum(summary["vouchers_redeemed_by_batch"].values())
    assert summary["vouchers_redeemed"] == sum(
        figures["redeemed"] for figures in summary["redemptions_by_category"].values()
    )
    rate = Decimal(summary["vouchers_redeemed"]) / Decimal(summary["vouchers_claimed"])
    assert abs(Decimal(summary["redemption_rate"]) - rate) <= Decimal("0.00005")
    # money is integer fen; the subsidy never exceeds what the vouchers are worth, and drives more spending
    assert all(isinstance(summary[key], int) for key in ("consumption_driven_fen", "subsidy_fen"))
    assert summary["subsidy_fen"] == summary["subsidy_confirmed_fen"] + summary["subsidy_pending_fen"]
    assert 0 < summary["subsidy_fen"] < summary["vouchers_claimed_value_fen"]
    assert summary["consumption_driven_fen"] > summary["subsidy_fen"]
    assert Decimal(summary["leverage"]) > 1
    assert summary["merchant_discounts_fen"] > 0  # vouchers stacked with merchants' own promotions
    # big-ticket invoices verified by the county; some purchases refunded
    assert summary["invoices"]["verified"] > 0
    assert summary["invoices"]["pending"] == summary["subsidy_pending_fen"] == 0
    refund_outcomes = summary["refunds"]["outcomes"]
    assert summary["refunds"]["count"] == refund_outcomes["full"] + refund_outcomes.get("partial", 0) > 0
    assert summary["ledger_checks"], "the ledger's checks did not run"
    assert all(summary["ledger_checks"].values()), summary["ledger_checks"]

    await _every_sale_in_business_hours(first / DATABASE_FILE, _off_hours_merchants())

    again = await run_demo(
        residents=RESIDENTS,
        merchants=MERCHANTS,
        seed=SEED,
        out=tmp_path / "second",
        progress=False,
        fraud_sets=FRAUD_SETS,
    )
    assert again == summary
    assert (tmp_path / "second" / SUMMARY_FILE).read_bytes() == (first / SUMMARY_FILE).read_bytes()


def _the_back_office_worked(summary: dict[str, Any]) -> None:
    """Every phase after the tills left its records: settlement with the bank's answers, the close with
    the recovery, alerts on the planted fraud, cases and sanctions, complaints handled."""
    money = summary["settlement"]
    assert money["runs"] > 100  # every working day from the first round to the close
    assert money["payouts"]["paid"] > 0
    assert money["close_problems"] == []
    assert money["unused_after_recovery_fen"] == 0
    assert summary["subsidy_settled_fen"] > 0
    assert summary["recovered_fen"] > 0
    deposited = sum(funder["deposited_fen"] for funder in money["by_funder"].values())
    assert deposited == sum(
        funder["to_merchants_fen"] + funder["recovered_fen"] for funder in money["by_funder"].values()
    )
    assert money["clawed_back_fen"] > 0  # expelled merchants' settled subsidy was claimed back
    assert summary["alerts"] > 0
    assert summary["cases_confirmed"] > 0
    cases = summary["cases"]
    assert cases.get("sanctioned_expel", 0) > 0
    detection = summary["fraud_detection"]
    for pattern, found in detection["by_pattern"].items():
        assert found["planted"] > 0, pattern
    # the rules must find most of what was planted and spare the innocent (docs/risk.md has the figures
    # of the default demo; this small city is a smoke test of the same measurement)
    detected = sum(found["detected"] for found in detection["by_pattern"].values())
    planted = sum(found["planted"] for found in detection["by_pattern"].values())
    assert detected >= 0.8 * planted, detection
    complaints = summary["complaints"]
    assert complaints["registered"] == complaints["closed"] > 0


def _off_hours_merchants() -> set[str]:
    """The credit codes of the merchants planted with night-time sales (the off_hours scheme)."""
    city, plants = fraud.plant(
        build_city(residents=RESIDENTS, merchants=MERCHANTS, seed=SEED), seed=SEED, sets=FRAUD_SETS
    )
    serials = {plant.merchant for plant in plants if plant.pattern == "off_hours"}
    return {merchant.credit_code for merchant in city.merchants if merchant.serial in serials}


async def _every_sale_in_business_hours(database: Path, exempt: set[str]) -> None:
    """Residents shop while the shop is open: every redemption and refund at the merchant's hours (but at
    the merchants planted with night-time sales)."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as connection:
            sales = (
                await connection.execute(
                    select(RedemptionRow.redeemed_at, MerchantRow.business_hours)
                    .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
                    .where(MerchantRow.credit_code.not_in(exempt))
                )
            ).all()
            refunds = (
                await connection.execute(
                    select(RefundRow.refunded_at, MerchantRow.business_hours)
                    .join(RedemptionRow, RedemptionRow.id == RefundRow.redemption_id)
                    .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
                    .where(MerchantRow.credit_code.not_in(exempt))
                )
            ).all()
    finally:
        await engine.dispose()
    assert sales
    assert refunds
    for at, hours in [*sales, *refunds]:
        local = to_local(at)
        assert parse_business_hours(hours).is_open_at(local.hour * 60 + local.minute), (local, hours)
