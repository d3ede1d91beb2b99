"""End-to-end flash claim (领取) over HTTP: signed claims against `huimin serve`, then an over-issue check.

Run:
  .venv/bin/python bench/bench_claims.py --backend sqlite
  .venv/bin/python bench/bench_claims.py --backend postgres --workers 2 [--clients 2] [--json]

PostgreSQL: a fresh database `huimin_bench_<random>` is created on the server of HUIMIN_BENCH_POSTGRES_URL
(an admin URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and dropped at the end.
SQLite: a file in a temporary directory. `--backend redis` adds the Redis gate on HUIMIN_BENCH_REDIS_URL
(default redis://127.0.0.1:6379/0); sqlite and postgres run without Redis (nonces in the database).

Steps: migrate with `huimin db upgrade`; load a one-batch campaign whose first-come round opened a minute
ago (the server runs on the system clock); create an app partner key; start `huimin serve` on a free
loopback port; register the residents through the signed API (not timed); then fire `--attempts`
signed claims, each with its own Idempotency-Key and a GCJ-02 location in Ziyang, from `--concurrency`
concurrent requests, stopping after `--duration-limit` seconds if the attempts are not all done.
Each attempt claims for a resident drawn at random, so residents press 领取 several times: with the
defaults, 5,000 residents × 5 per person (`--per-round-limit`) ask for more than the 20,000 vouchers,
so the run sees successes, `sold_out` and `limit_reached`. A claim costs the server about 20
milliseconds of CPU, so on a small machine the defaults run into `--duration-limit` (and registering
5,000 residents takes minutes): docs/benchmarks.md gives the sizes used there.

Afterwards the database is read directly: the vouchers of the round must number exactly
min(stock, successes), stock left + vouchers must equal the stock, and no person may hold more than
the per-round limit. The script exits 1 when any check fails.

The load generator shares the machine with the server: its CPU time is reported next to the server's,
the bench database's PostgreSQL backends' and everything else's, so that a client-bound figure (client
busy near 100 % of a core: try `--clients 2`) or a run disturbed by other work is recognisable. The
client connects to 127.0.0.1 only and ignores proxy settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import (
    DEFAULT_REDIS_URL,
    LOCAL_TZ,
    UNLIMITED,
    LoadResult,
    Measurement,
    Partner,
    commit,
    cpu_figures,
    create_partner,
    database,
    drive,
    encode,
    free_port,
    fresh_database,
    huimin,
    keep_server_log,
    measuring,
    print_cpu,
    print_errors,
    print_load,
    profiled,
    row,
    server,
    throughput,
)
from loadgen import Connection
from sqlalchemy import text
from sqlalchemy.engine import make_url

from huimin.eligibility.identity import id_check_digit

ZIYANG_CENTRE = {"lng": 104.6276, "lat": 30.1288, "crs": "gcj02"}  # 雁江区, GCJ-02
FACE_VALUE_YUAN = 30
SEED = 20220624


# --- the campaign ---------------------------------------------------------------------------------


def campaign_toml(*, code: str, stock: int, per_round: int, opens: datetime) -> str:
    """One first-come round of one 满100减30 batch, open from `opens` (local time) for three hours.

    Adapted from tests/support.py `small_campaign`; the period spans the round's days, and the budget is
    exactly what the stock reserves (stock × ¥30)."""
    budget = stock * FACE_VALUE_YUAN
    starts_on: date = opens.date() - timedelta(days=1)
    ends_on: date = opens.date() + timedelta(days=1)  # the round may run past midnight
    return f"""
[campaign]
code = "{code}"
name = "压测活动"
starts_on = {starts_on.isoformat()}
ends_on = {ends_on.isoformat()}
budget = "{budget}"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "{budget}"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "{FACE_VALUE_YUAN}"
threshold = "100"
validity = {{ days_after_claim = 7 }}
funding = {{ fiscal = "100%" }}
scope = {{ categories = ["餐饮", "零售"] }}
limits = {{ per_person_per_round = {per_round} }}

[[schedules]]
code = "bench"
every = "once"
at = {opens:%H:%M:%S}
first = {opens.date().isoformat()}
window_hours = 3
stock = {{ "general" = {stock} }}
"""


# --- residents ------------------------------------------------------------------------------------


def id_number(serial: int) -> str:
    """A well-formed ID number (GB 11643 check digit) of a Yanjiang resident, distinct per serial."""
    born = date(1960, 1, 1) + timedelta(days=serial // 1000)
    body = f"512002{born:%Y%m%d}{serial % 1000:03d}"
    return body + id_check_digit(body)


def resident_body(serial: int) -> dict[str, Any]:
    return {
        "app_user_id": f"bench-user-{serial}",
        "real_name_verified": True,
        "id_number": id_number(serial),
        "phone": f"139{serial:08d}",
        "device_id": f"bench-device-{serial}",
    }


# --- the load ------------------------------------------------------------------------------------


async def register_residents(base_url: str, partner: Partner, count: int) -> list[str]:
    path = "/api/v1/residents"
    ids: list[str] = [""] * count
    serials = iter(range(count))

    async def worker(http: httpx.AsyncClient) -> None:
        for serial in serials:
            body = encode(resident_body(serial))
            response = await http.post(path, content=body, headers=partner.headers(path, body))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"registering resident {serial}: {response.status_code} {response.text}")
            ids[serial] = response.json()["resident_id"]

    async with httpx.AsyncClient(base_url=base_url, timeout=60, trust_env=False) as http:
        await asyncio.gather(*(worker(http) for _ in range(50)))
    return ids


@dataclass(frozen=True)
class LoadPlan:
    base_url: str
    partner: Partner
    round_id: str
    batch_id: str
    resident_ids: list[str]
    attempts: int  # for this client process
    concurrency: int  # for this client process
    start_at: float  # time.time() at which every client process starts firing
    deadline: float  # time.time() after which no new attempt is sent
    client: int


async def fire(plan: LoadPlan) -> LoadResult:
    path = f"/api/v1/rounds/{plan.round_id}/claims"
    rng = random.Random(SEED + plan.client)
    # Each attempt number (hence Idempotency-Key) is used once.
    picks = [rng.randrange(len(plan.resident_ids)) for _ in range(plan.attempts)]
    run_tag = secrets.token_hex(4)

    async def attempt(http: Connection, item: tuple[int, int], result: LoadResult) -> None:
        number, pick = item
        body = encode(
            {"resident_id": plan.resident_ids[pick], "batch_id": plan.batch_id, "location": ZIYANG_CENTRE}
        )
        headers = plan.partner.headers(
            path, body, **{"Idempotency-Key": f"bench-{run_tag}-{plan.client}-{number}"}
        )
        if await result.post(http, path, body, headers, created="claimed") is not None and (
            result.outcomes[-1][0] == 201
        ):
            result.notes.setdefault("acknowledged_at", []).append(time.time())

    return await drive(
        base_url=plan.base_url,
        concurrency=plan.concurrency,
        start_at=plan.start_at,
        deadline=plan.deadline,
        attempts=enumerate(picks),
        attempt=attempt,
    )


def _fire_in_process(plan: LoadPlan) -> LoadResult:
    return asyncio.run(fire(plan))


# --- the over-issue check -------------------------------------------------------------------------


async def count_vouchers(url: str, round_id: str, batch_id: str, per_round: int) -> dict[str, int]:
    where = {"round_id": round_id, "batch_id": batch_id}
    async with database(url) as connection:
        vouchers = await connection.scalar(
            text("SELECT count(*) FROM vouchers WHERE round_id = :round_id AND batch_id = :batch_id"),
            where,
        )
        left = await connection.scalar(
            text(
                "SELECT coalesce(sum(remaining), 0) FROM stock_shards"
                " WHERE round_id = :round_id AND batch_id = :batch_id"
            ),
            where,
        )
        over = (
            await connection.execute(
                text(
                    "SELECT count(*), coalesce(sum(held - :limit), 0) FROM ("
                    " SELECT person_id, count(*) AS held FROM vouchers"
                    " WHERE round_id = :round_id AND batch_id = :batch_id"
                    " GROUP BY person_id HAVING count(*) > :limit) AS over_limit"
                ),
                {**where, "limit": per_round},
            )
        ).one()
        persons = await connection.scalar(
            text(
                "SELECT count(DISTINCT person_id) FROM vouchers"
                " WHERE round_id = :round_id AND batch_id = :batch_id"
            ),
            where,
        )
    return {
        "vouchers": int(vouchers or 0),
        "stock_left": int(left or 0),
        "persons_with_vouchers": int(persons or 0),
        "persons_over_limit": int(over[0]),
        "vouchers_over_person_limit": int(over[1]),
    }


# --- figures --------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    run = report["run"]
    print(
        f"claims over HTTP: {run['backend']}, {run['workers']} worker(s), {run['clients']} client process(es), "
        f"concurrency {run['concurrency']}"
    )
    row(
        "residents / stock / limit",
        f"{run['residents']:,} / {run['stock']:,} / {run['per_round_limit']} per person",
    )
    row("registration (not timed)", f"{run['residents']:,} in {report['registration_s']:.1f} s")
    print_load(report, success_label="vouchers")
    print_cpu(report)
    check = report["check"]
    row(
        "vouchers in the database",
        f"{check['vouchers']:,} (expected min(stock, successes) = {check['expected']:,})",
    )
    row("stock left", f"{check['stock_left']:,}")
    row("persons over the limit", f"{check['persons_over_limit']:,}")
    lag = report.get("persistence_lag")
    if lag:
        row(
            "acknowledged -> in PostgreSQL",
            f"p50 {lag['p50_s']} s, p99 {lag['p99_s']} s, max {lag['max_s']} s, not persisted {lag['unpersisted']}",
        )
    print(f"over-issue: {check['over_issue']}")
    if not check["ok"]:
        print(f"CHECK FAILED: {check['problems']}")
    print_errors(report)


# --- the run --------------------------------------------------------------------------------------


def run(options: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="huimin-bench-"))
    try:
        with fresh_database(options.backend, scratch) as url:
            env = {
                **os.environ,
                "HUIMIN_DATABASE_URL": url,
                "HUIMIN_CLAIMS_BACKEND": "redis" if options.backend == "redis" else "sql",
                "HUIMIN_ENV": "development",
                **UNLIMITED,
            }
            env.pop("HUIMIN_REDIS_URL", None)  # sqlite, postgres: no Redis at all (nonces in the database)
            if options.backend == "redis":
                env["HUIMIN_REDIS_URL"] = os.environ.get("HUIMIN_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
            if options.backend == "express":
                # Express claims are acknowledged from Redis: a Redis of the bench's own that writes every
                # acknowledged claim to its append-only file before answering (appendfsync always).
                redis_url = durable_redis(scratch / "redis")
                env.update(
                    HUIMIN_CLAIMS_BACKEND="redis", HUIMIN_CLAIMS_ACK="redis", HUIMIN_REDIS_URL=redis_url
                )
            say(f"migrating a fresh {options.backend} database")
            huimin(env, "db", "upgrade")
            opens = datetime.now(LOCAL_TZ).replace(microsecond=0) - timedelta(minutes=1)
            campaign = scratch / "campaign.toml"
            campaign.write_text(
                campaign_toml(
                    code=f"bench-{secrets.token_hex(4)}",
                    stock=options.stock,
                    per_round=options.per_round_limit,
                    opens=opens,
                ),
                encoding="utf-8",
            )
            huimin(env, "campaign", "load", str(campaign))
            if options.backend in ("redis", "express"):
                huimin(env, "claims", "reconcile")  # open the Redis gate of the new round
            partner = create_partner(env, "压测 app", "app")
            return _with_server(options, env, url, partner, scratch, say)
    finally:
        for redis in DURABLE_REDIS:
            redis.kill()
            redis.wait()
        shutil.rmtree(scratch, ignore_errors=True)


DURABLE_REDIS: list[subprocess.Popen[bytes]] = []


def durable_redis(directory: Path) -> str:
    """redis-server on a free loopback port with AOF and `appendfsync always`, until the run ends."""
    directory.mkdir(parents=True)
    port = free_port()
    DURABLE_REDIS.append(
        subprocess.Popen(  # noqa: S603 (a fixed local binary)
            [
                shutil.which("redis-server") or "redis-server",
                *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return url
        except OSError:
            time.sleep(0.05)
    sys.exit(f"redis-server on port {port} did not start")


class PersistenceWatch:
    """Reads the number of the round's vouchers in PostgreSQL every 50 ms in a thread, so that the time
    from a claim's acknowledgement to its voucher being in the database can be estimated afterwards."""

    def __init__(self, url: str, round_id: str) -> None:
        self.url, self.round_id = url, round_id
        self.samples: list[tuple[float, int]] = []
        self.until: int | None = None  # stop once this many are in (set after the load)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def __enter__(self) -> PersistenceWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=60)

    async def _watch(self) -> None:
        query = text("SELECT count(*) FROM vouchers WHERE round_id = :round_id")
        stop_at = None
        async with database(self.url) as connection:
            while True:
                count = int(await connection.scalar(query, {"round_id": self.round_id}) or 0)
                await connection.commit()
                self.samples.append((time.time(), count))
                if self.until is not None:
                    stop_at = stop_at or time.time() + 30
                    if count >= self.until or time.time() > stop_at:
                        return
                await asyncio.sleep(0.05)

    def lag(self, acknowledged_at: list[float]) -> dict[str, float | None]:
        """Acknowledgement to persistence, per voucher: the k-th acknowledged voucher counted as persisted
        at the first sample holding k vouchers (the consumers persist in stream order, per campaign)."""
        lags: list[float] = []
        samples = iter(self.samples)
        at: float | None
        at, count = next(samples, (None, 0))
        for k, acked in enumerate(sorted(acknowledged_at), start=1):
            while at is not None and count < k:
                at, count = next(samples, (None, 0))
            if at is None:
                return {
                    "p50_s": None,
                    "p99_s": None,
                    "max_s": None,
                    "unpersisted": len(acknowledged_at) - k + 1,
                }
            lags.append(max(0.0, at - acked))
        lags.sort()

        def pick(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None

        return {
            "p50_s": pick(0.5),
            "p99_s": pick(0.99),
            "max_s": round(lags[-1], 3) if lags else None,
            "unpersisted": 0,
        }


def _with_server(
    options: argparse.Namespace,
    env: dict[str, str],
    url: str,
    partner: Partner,
    scratch: Path,
    say: Any,
) -> dict[str, Any]:
    log = scratch / "server.stderr"
    postgres = options.backend in ("postgres", "redis", "express")
    with server(env, options.workers, log, command=profiled(options.profile)) as (base_url, process):
        [round_] = httpx.get(f"{base_url}/api/v1/rounds", timeout=10, trust_env=False).json()
        if round_["status"] != "open":
            sys.exit(f"the bench round is {round_['status']}, not open: {round_}")
        batch_id = round_["batches"][0]["batch_id"]

        say(f"registering {options.residents:,} residents on {base_url}")
        began = time.perf_counter()
        resident_ids = asyncio.run(register_residents(base_url, partner, options.residents))
        registration_s = time.perf_counter() - began

        say(
            f"firing {options.attempts:,} claims, concurrency {options.concurrency}, {options.clients} client(s)"
        )
        start_at = time.time() + 1.0
        plans = [
            LoadPlan(
                base_url=base_url,
                partner=partner,
                round_id=round_["round_id"],
                batch_id=batch_id,
                resident_ids=resident_ids,
                attempts=options.attempts // options.clients
                + (1 if client < options.attempts % options.clients else 0),
                concurrency=options.concurrency // options.clients,
                start_at=start_at,
                deadline=start_at + options.duration_limit,
                client=client,
            )
            for client in range(options.clients)
        ]
        watch = PersistenceWatch(url, round_["round_id"]) if options.backend == "express" else None
        with (
            measuring(
                server_pid=process.pid, database=make_url(url).database if postgres else None
            ) as measurement,
            watch or nullcontext(),
        ):
            if options.clients == 1:
                results = [_fire_in_process(plans[0])]
            else:
                # fork: the children inherit the imports; each runs its own event loop.
                with multiprocessing.get_context("fork").Pool(options.clients) as pool:
                    results = pool.map(_fire_in_process, plans)
            if watch is not None:  # the server keeps persisting until the database has every voucher
                watch.until = sum(len(result.notes.get("acknowledged_at", [])) for result in results)
        server_stderr = log.read_text(errors="replace")
        if watch is not None:
            acknowledged = [at for result in results for at in result.notes.get("acknowledged_at", [])]
            for result in results:
                result.notes["persistence_lag"] = watch.lag(acknowledged)

    check = asyncio.run(count_vouchers(url, round_["round_id"], batch_id, options.per_round_limit))
    return _report(
        options,
        results=results,
        start_at=start_at,
        registration_s=registration_s,
        measurement=measurement,
        check=check,
        server_stderr=server_stderr,
    )


def _report(
    options: argparse.Namespace,
    *,
    results: list[LoadResult],
    start_at: float,
    registration_s: float,
    measurement: Measurement,
    check: dict[str, int],
    server_stderr: str,
) -> dict[str, Any]:
    load = throughput(results, start_at)
    expected = min(options.stock, load["successes"])
    over_issue = max(0, check["vouchers"] - options.stock) + check["vouchers_over_person_limit"]
    problems = []
    if check["vouchers"] != expected:
        problems.append(f"{check['vouchers']} vouchers in the database, expected {expected}")
    if check["vouchers"] + check["stock_left"] != options.stock:
        problems.append(
            f"vouchers + stock left = {check['vouchers'] + check['stock_left']}, not {options.stock}"
        )
    if over_issue:
        problems.append(f"over-issue of {over_issue}")

    return {
        "run": {
            "backend": options.backend,
            "workers": options.workers,
            "clients": options.clients,
            "residents": options.residents,
            "stock": options.stock,
            "per_round_limit": options.per_round_limit,
            "attempts": options.attempts,
            "concurrency": options.concurrency,
            "duration_limit_s": options.duration_limit,
            "started_at": datetime.fromtimestamp(start_at, UTC).isoformat(timespec="seconds"),
            "commit": commit(),
            "load_average_before": measurement.load_average_before,
        },
        "registration_s": round(registration_s, 2),
        **load,
        "cpu": cpu_figures(
            measurement,
            client_s=sum(result.cpu_seconds for result in results),
            wall=load["wall_s"],
            processes=len(results),
        ),
        "check": {
            **check,
            "expected": expected,
            "over_issue": over_issue,
            "ok": not problems,
            "problems": problems,
        },
        "persistence_lag": results[0].notes.get("persistence_lag"),  # express: acknowledged -> in PostgreSQL
        "server_errors": [sample for result in results for sample in result.server_errors],
        "transport_errors": [sample for result in results for sample in result.transport_errors],
        "server_log": keep_server_log(results, server_stderr, "bench_claims"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "redis", "express"],
        required=True,
        help="redis: Redis gate + PostgreSQL, answered after PostgreSQL's commit; express: answered once a "
        "Redis with appendfsync always (started by the bench) has decided, persisted by the workers",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (sqlite: 1)")
    parser.add_argument("--clients", type=int, default=1, help="load-generating processes")
    parser.add_argument("--residents", type=int, default=5_000)
    parser.add_argument("--stock", type=int, default=20_000)
    parser.add_argument("--per-round-limit", type=int, default=5, help="vouchers per person in the round")
    parser.add_argument("--attempts", type=int, default=40_000)
    parser.add_argument(
        "--concurrency", type=int, default=200, help="requests in flight, all clients together"
    )
    parser.add_argument("--duration-limit", type=float, default=120, help="seconds; stop sending after this")
    parser.add_argument(
        "--profile", metavar="FILE", help="serve one worker under cProfile (CPU time), stats to FILE"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    if options.profile and options.workers != 1:
        parser.error("--profile runs one worker")
    if options.backend == "sqlite" and options.workers != 1:
        parser.error("the embedded SQLite database serves one worker")
    if options.concurrency < options.clients or min(options.residents, options.attempts, options.stock) < 1:
        parser.error("give at least one resident, attempt and voucher, and one request in flight per client")

    report = run(options)
    if options.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_table(report)
    if not report["check"]["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
