"""How long a claim-time geofence check takes: `Geofence.district_of` on a mix of reported locations.

Run: .venv/bin/python bench/bench_geofence.py

The mix is what a flash claim sees: GCJ-02 points inside the city (map SDKs), WGS-84 points inside it
(raw GPS, shifted before the check), points near the city but in no district (inside its bounding box)
and points far away (refused by the bounding box). Locations are built before the clock starts: the API
builds them while parsing the request either way.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from importlib import resources

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from huimin.eligibility.geofence import (
    BOUNDARY_FILE,
    Crs,
    Geofence,
    Location,
    default_geofence,
    wgs84_to_gcj02,
)

CHECKS = 200_000
BATCH = 1_000
SEED = 20220624  # the first round of the Ziyang campaign


def _city() -> BaseGeometry:
    text = (resources.files("huimin.eligibility") / "data" / BOUNDARY_FILE).read_text(encoding="utf-8")
    city = shapely.union_all([shape(feature["geometry"]) for feature in json.loads(text)["features"]])
    shapely.prepare(city)
    return city


def _sample(rng: random.Random, city: BaseGeometry, *, inside: bool) -> tuple[float, float]:
    west, south, east, north = city.bounds
    while True:
        lng, lat = rng.uniform(west, east), rng.uniform(south, north)
        if bool(shapely.intersects_xy(city, lng, lat)) is inside:
            return lng, lat


def _gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    """Invert the transform by fixed-point iteration (it converges by several digits a step)."""
    wgs_lng, wgs_lat = lng, lat
    for _ in range(5):
        gcj_lng, gcj_lat = wgs84_to_gcj02(wgs_lng, wgs_lat)
        wgs_lng, wgs_lat = wgs_lng - (gcj_lng - lng), wgs_lat - (gcj_lat - lat)
    return wgs_lng, wgs_lat


def _kinds(rng: random.Random, city: BaseGeometry) -> dict[str, Callable[[], Location]]:
    return {
        "inside, GCJ-02": lambda: Location(*_sample(rng, city, inside=True), Crs.GCJ02),
        "inside, WGS-84": lambda: Location(*_gcj02_to_wgs84(*_sample(rng, city, inside=True)), Crs.WGS84),
        "near outside, GCJ-02": lambda: Location(*_sample(rng, city, inside=False), Crs.GCJ02),
        "far outside, WGS-84": lambda: Location(rng.uniform(73.0, 135.0), rng.uniform(18.0, 53.0), Crs.WGS84),
    }


def _time(fence: Geofence, locations: list[Location]) -> list[float]:
    """Microseconds per check, one figure per batch."""
    district_of = fence.district_of
    figures = []
    for start in range(0, len(locations), BATCH):
        batch = locations[start : start + BATCH]
        began = time.perf_counter()
        for location in batch:
            district_of(location)
        figures.append((time.perf_counter() - began) / len(batch) * 1e6)
    return figures


def _report(label: str, figures: list[float]) -> None:
    mean = statistics.fmean(figures)
    p99 = statistics.quantiles(figures, n=100)[98]
    print(f"  {label:<22} mean {mean:6.2f} µs  p99 {p99:6.2f} µs  {1e6 / mean:>10,.0f} checks/s")


def main() -> None:
    began = time.perf_counter()
    fence = default_geofence()
    print(
        f"geofence built (file parsed, polygons validated and prepared) in {(time.perf_counter() - began) * 1e3:.0f} ms"
    )

    rng = random.Random(SEED)
    kinds = _kinds(rng, _city())
    by_kind = {label: [make() for _ in range(CHECKS // len(kinds))] for label, make in kinds.items()}
    mixed = [location for locations in by_kind.values() for location in locations]
    rng.shuffle(mixed)
    inside = sum(fence.district_of(location) is not None for location in mixed)

    _time(fence, mixed[:20_000])  # warm up
    figures = _time(fence, mixed)
    print(f"{len(mixed):,} district_of checks, {inside:,} inside the city, batches of {BATCH:,}; one thread")
    _report("mixed", figures)
    print(f"  {len(mixed) / (sum(figures) * BATCH / 1e6):,.0f} checks/s over the whole run")
    for label, locations in by_kind.items():
        _report(label, _time(fence, locations))


if __name__ == "__main__":
    main()
