"""`huimin demo`: a small synthetic city through the whole Ziyang 2022 campaign on the embedded SQLite
database, through the services; every invariant holds and the same seed writes the same summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from huimin.eligibility.geofence import default_geofence
from huimin.eligibility.identity import id_number_problem, phone_problem
from huimin.simulation.city import build_city
from huimin.simulation.run import PENDING, SUMMARY_FILE, run_demo

RESIDENTS = 100  # enough for every kind of record; the walk costs about one claim per resident-week
SEED = 7


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


async def test_a_small_demo_keeps_every_invariant_and_is_reproducible(tmp_path: Path) -> None:
    summary = await run_demo(residents=RESIDENTS, seed=SEED, out=tmp_path / "first", progress=False)

    written = json.loads((tmp_path / "first" / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert written == summary
    assert summary["invariants"], "no invariant was checked"
    assert all(summary["invariants"].values()), summary["invariants"]
    assert set(summary["pending"]) == set(PENDING)
    assert all(summary[key] is None for key in PENDING)

    assert summary["residents"] == RESIDENTS
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
    # nothing can be redeemed yet: every voucher expires, and all but the last ones recycle
    assert summary["vouchers_expired"] == summary["vouchers_claimed"]
    assert 0 < summary["vouchers_recycled"] < summary["vouchers_expired"]
    assert summary["stock_recycled"]["unclaimed"] > 0
    assert summary["stock_recycled"]["expired"] == summary["vouchers_recycled"]

    again = await run_demo(residents=RESIDENTS, seed=SEED, out=tmp_path / "second", progress=False)
    assert again == summary
    assert (tmp_path / "second" / SUMMARY_FILE).read_bytes() == (
        tmp_path / "first" / SUMMARY_FILE
    ).read_bytes()
