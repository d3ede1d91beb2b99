"""End-to-end flash claim (领取) over HTTP: signed claims against `huimin serve`, then an over-issue check.

Run:
  .venv/bin/python bench/bench_claims.py --backend sqlite
  .venv/bin/python bench/bench_claims.py --backend postgres --workers 2 [--clients 2] [--json]

PostgreSQL: a fresh database `huimin_bench_<random>` is created on the server of HUIMIN_BENCH_POSTGRES_URL
(an admin URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and dropped at the end.
SQLite: a file in a temporary directory.

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
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from huimin.auth.domain import SignedRequest, sign
from huimin.eligibility.identity import id_check_digit

ROOT = Path(__file__).resolve().parents[1]
HUIMIN = Path(sys.executable).parent / "huimin"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
ZIYANG_CENTRE = {"lng": 104.6276, "lat": 30.1288, "crs": "gcj02"}  # 雁江区, GCJ-02
FACE_VALUE_YUAN = 30
SEED = 20220624
SERVER_ERROR_SAMPLES = 5


# --- the database -----------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, scratch: Path) -> Iterator[str]:
    """A migrated-to-nothing database for one run, removed afterwards; yields its SQLAlchemy URL."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        return
    admin_url = os.environ.get("HUIMIN_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"huimin_bench_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def huimin(env: dict[str, str], *args: str) -> str:
    """Run the operator CLI like an operator would; its stdout, or exit with its stderr."""
    done = subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [str(HUIMIN), *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"huimin {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return done.stdout


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


# --- the signed client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Partner:
    key_id: str
    secret: str

    def headers(self, path: str, body: bytes, **extra: str) -> dict[str, str]:
        timestamp = str(int(time.time()))  # the server checks ±300 s against its system clock
        nonce = secrets.token_hex(16)
        return {
            "X-Huimin-Key": self.key_id,
            "X-Huimin-Timestamp": timestamp,
            "X-Huimin-Nonce": nonce,
            "X-Huimin-Signature": sign(self.secret, SignedRequest("POST", path, timestamp, nonce, body)),
            "Content-Type": "application/json",
            **extra,
        }


def encode(payload: dict[str, Any]) -> bytes:
    # Serialise once: the signature covers these exact bytes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


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


@dataclass
class LoadResult:
    outcomes: list[tuple[int, str, float]] = field(default_factory=list)  # status, code, seconds
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    transport_errors: list[dict[str, Any]] = field(default_factory=list)  # no HTTP answer at all
    cpu_seconds: float = 0.0
    finished_at: float = 0.0


async def fire(plan: LoadPlan) -> LoadResult:
    result = LoadResult()
    path = f"/api/v1/rounds/{plan.round_id}/claims"
    rng = random.Random(SEED + plan.client)
    # One shared iterator: every worker takes the next attempt, so exactly `attempts` are sent and
    # each attempt number (hence Idempotency-Key) is used once.
    attempts = enumerate([rng.randrange(len(plan.resident_ids)) for _ in range(plan.attempts)])
    run_tag = secrets.token_hex(4)
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)

    async def worker(http: httpx.AsyncClient) -> None:
        for attempt, pick in attempts:
            if time.time() >= plan.deadline:
                return
            body = encode(
                {"resident_id": plan.resident_ids[pick], "batch_id": plan.batch_id, "location": ZIYANG_CENTRE}
            )
            headers = plan.partner.headers(
                path, body, **{"Idempotency-Key": f"bench-{run_tag}-{plan.client}-{attempt}"}
            )
            began = time.perf_counter()
            try:
                response = await http.post(path, content=body, headers=headers)
            except httpx.HTTPError as error:
                elapsed = time.perf_counter() - began
                result.outcomes.append((0, type(error).__name__, elapsed))
                if len(result.transport_errors) < SERVER_ERROR_SAMPLES:
                    result.transport_errors.append(
                        {"error": f"{type(error).__name__}: {error!r}", "after_ms": round(elapsed * 1e3)}
                    )
                continue
            elapsed = time.perf_counter() - began
            if response.status_code == 201:
                result.outcomes.append((201, "claimed", elapsed))
                continue
            try:
                code = str(response.json().get("code"))
            except ValueError:
                code = "not_json"
            result.outcomes.append((response.status_code, code, elapsed))
            if response.status_code >= 500 and len(result.server_errors) < SERVER_ERROR_SAMPLES:
                result.server_errors.append({"status": response.status_code, "body": response.text[:500]})

    async with httpx.AsyncClient(base_url=plan.base_url, timeout=60, limits=limits, trust_env=False) as http:
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        cpu_before = _own_cpu()
        await asyncio.gather(*(worker(http) for _ in range(plan.concurrency)))
        result.finished_at = time.time()
        result.cpu_seconds = _own_cpu() - cpu_before
    return result


def _fire_in_process(plan: LoadPlan) -> LoadResult:
    return asyncio.run(fire(plan))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- CPU accounting from /proc --------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """CPU seconds of the server (uvicorn and its workers) and of the PostgreSQL backends serving the
    bench database, read from /proc twice a second: a backend that exits between two samples (the
    connection pool closes connections beyond its size) loses at most half a second of its time."""

    def __init__(self, *, server_pid: int, database: str | None) -> None:
        self.server_pid = server_pid
        self.database = database
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample(first=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()
        self._sample(first=False)

    def seconds(self, role: str) -> float:
        return sum(cpu - self.first.get(pid, 0.0) for pid, (kind, cpu) in self.last.items() if kind == role)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        parents: dict[int, int] = {}
        found: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                raw = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes() if self.database else b""
            except OSError:
                continue  # gone meanwhile
            fields = raw[raw.rindex(")") + 2 :].split()  # after "(comm)": state, ppid, ...
            parents[pid] = int(fields[1])
            cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
            if self.database and command.startswith(b"postgres:") and self.database.encode() in command:
                found[pid] = ("postgres", cpu)
            else:
                found[pid] = ("", cpu)
        for pid, (kind, cpu) in found.items():
            ancestor = pid
            while ancestor > 1 and ancestor != self.server_pid:
                ancestor = parents.get(ancestor, 0)
            role = "server" if ancestor == self.server_pid else kind
            if not role:
                continue
            if first:
                self.first[pid] = cpu
            self.last[pid] = (role, cpu)


def machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine since boot, all cores. Stolen time is
    what the hypervisor gave to other guests: on a shared VM it slows everything without showing as busy."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq
    return busy / _TICK, steal / _TICK, (busy + idle + iowait + steal) / _TICK


def commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607 (git from PATH)
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as stderr:
        # stdout carries uvicorn's access log: one line per request, written (and discarded) as in service.
        process = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
            [str(HUIMIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            _wait_healthy(base_url, process, log)
            yield base_url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"huimin serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    sys.exit(f"huimin serve did not answer /healthz within 60 s:\n{log.read_text(errors='replace')}")


# --- the over-issue check -------------------------------------------------------------------------


async def count_vouchers(url: str, round_id: str, batch_id: str, per_round: int) -> dict[str, int]:
    where = {"round_id": round_id, "batch_id": batch_id}
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
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
    finally:
        await engine.dispose()
    return {
        "vouchers": int(vouchers or 0),
        "stock_left": int(left or 0),
        "persons_with_vouchers": int(persons or 0),
        "persons_over_limit": int(over[0]),
        "vouchers_over_person_limit": int(over[1]),
    }


# --- figures --------------------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(seconds)

    def rank(q: float) -> float:  # nearest rank
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))] * 1e3, 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1] * 1e3, 1)}


def print_table(report: dict[str, Any]) -> None:
    def row(label: str, value: object) -> None:
        print(f"  {label:<30} {value}")

    def ms(figures: dict[str, float | None]) -> str:
        return "  ".join(f"{name} {value if value is not None else '-'}" for name, value in figures.items())

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
    row("attempts", f"{report['attempts']:,} of {run['attempts']:,} in {report['wall_s']:.1f} s")
    row("attempts/s", f"{report['attempts_per_s']:,.0f}")
    row("successes/s", f"{report['successes_per_s']:,.0f}  ({report['successes']:,} vouchers)")
    row("latency ms, all", ms(report["latency_ms"]["all"]))
    row("latency ms, successes", ms(report["latency_ms"]["successes"]))
    for outcome, count in report["outcomes"].items():
        row(f"  {outcome}", f"{count:,}")
    cpu = report["cpu"]
    row(
        "CPU, client", f"{cpu['client_s']:.1f} s ({cpu['client_busy_per_process']:.0%} of a core per process)"
    )
    row("CPU, server", f"{cpu['server_s']:.1f} s ({cpu['server_cores']:.2f} cores)")
    if cpu["postgres_s"] is not None:
        row("CPU, PostgreSQL backends", f"{cpu['postgres_s']:.1f} s")
    row("CPU, everything else", f"{cpu['other_s']:.1f} s")
    row(
        "CPU, machine",
        f"{cpu['machine_busy']:.0%} of {cpu['cores']} cores busy, {cpu['machine_stolen']:.0%} stolen; "
        f"load average {run['load_average_before']} before",
    )
    check = report["check"]
    row(
        "vouchers in the database",
        f"{check['vouchers']:,} (expected min(stock, successes) = {check['expected']:,})",
    )
    row("stock left", f"{check['stock_left']:,}")
    row("persons over the limit", f"{check['persons_over_limit']:,}")
    print(f"over-issue: {check['over_issue']}")
    if not check["ok"]:
        print(f"CHECK FAILED: {check['problems']}")
    for sample in report["server_errors"]:
        print(f"  5xx sample: {sample['status']} {sample['body']}")
    for sample in report["transport_errors"]:
        print(f"  no answer: {sample['error']} after {sample['after_ms']} ms")
    if report.get("server_log"):
        print(f"  server stderr kept at {report['server_log']}")


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
                "HUIMIN_REDIS_URL": os.environ.get("HUIMIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                "HUIMIN_ENV": "development",
            }
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
            if options.backend == "redis":
                huimin(env, "claims", "reconcile")  # open the Redis gate of the new round
            lines = huimin(env, "partner", "create", "--name", "压测 app", "--kind", "app").splitlines()
            fields = dict(line.split(":", 1) for line in lines if ":" in line)
            partner = Partner(key_id=fields["key id"].strip(), secret=fields["secret"].strip())
            return _with_server(options, env, url, partner, scratch, say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _with_server(
    options: argparse.Namespace,
    env: dict[str, str],
    url: str,
    partner: Partner,
    scratch: Path,
    say: Any,
) -> dict[str, Any]:
    log = scratch / "server.stderr"
    postgres = options.backend in ("postgres", "redis")
    with server(env, options.workers, log) as (base_url, process):
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
        load_before = round(os.getloadavg()[0], 2)  # other work on the machine skews the figures
        machine_before = machine_cpu()
        with CpuSampler(server_pid=process.pid, database=make_url(url).database if postgres else None) as cpu:
            if options.clients == 1:
                results = [_fire_in_process(plans[0])]
            else:
                # fork: the children inherit the imports; each runs its own event loop.
                with multiprocessing.get_context("fork").Pool(options.clients) as pool:
                    results = pool.map(_fire_in_process, plans)
        machine_after = machine_cpu()
        server_stderr = log.read_text(errors="replace")

    check = asyncio.run(count_vouchers(url, round_["round_id"], batch_id, options.per_round_limit))
    return _report(
        options,
        results=results,
        start_at=start_at,
        registration_s=registration_s,
        server_cpu=cpu.seconds("server"),
        postgres_cpu=cpu.seconds("postgres") if postgres else None,
        machine=tuple(after - before for after, before in zip(machine_after, machine_before, strict=True)),
        check=check,
        server_stderr=server_stderr,
        load_before=load_before,
    )


def _report(
    options: argparse.Namespace,
    *,
    results: list[LoadResult],
    start_at: float,
    registration_s: float,
    server_cpu: float,
    postgres_cpu: float | None,
    machine: tuple[float, ...],
    check: dict[str, int],
    server_stderr: str,
    load_before: float,
) -> dict[str, Any]:
    outcomes = [outcome for result in results for outcome in result.outcomes]
    wall = max(result.finished_at for result in results) - start_at
    successes = [seconds for status, _, seconds in outcomes if status == 201]
    counts = Counter(f"{status} {code}" for status, code, _ in outcomes)
    cores = os.cpu_count() or 1

    expected = min(options.stock, len(successes))
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

    server_errors = [sample for result in results for sample in result.server_errors]
    server_log = None
    if server_errors or any(status == 0 or status >= 500 for status, _, _ in outcomes):
        kept = Path(tempfile.gettempdir()) / f"bench_claims_server_{secrets.token_hex(4)}.log"
        kept.write_text(server_stderr)
        server_log = str(kept)

    client_cpu = sum(result.cpu_seconds for result in results)
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
            "load_average_before": load_before,
        },
        "registration_s": round(registration_s, 2),
        "attempts": len(outcomes),
        "wall_s": round(wall, 2),
        "attempts_per_s": round(len(outcomes) / wall, 1),
        "successes": len(successes),
        "successes_per_s": round(len(successes) / wall, 1),
        "latency_ms": {
            "all": percentiles([seconds for _, _, seconds in outcomes]),
            "successes": percentiles(successes),
        },
        "outcomes": dict(counts.most_common()),
        "cpu": {
            "cores": cores,
            "client_s": round(client_cpu, 1),
            "client_busy_per_process": round(client_cpu / wall / len(results), 2),
            "server_s": round(server_cpu, 1),
            "server_cores": round(server_cpu / wall, 2),
            "postgres_s": None if postgres_cpu is None else round(postgres_cpu, 1),
            # what the machine did besides the client, the server and the bench database's backends:
            # other programs, PostgreSQL's own background processes, the kernel
            "other_s": round(machine[0] - client_cpu - server_cpu - (postgres_cpu or 0.0), 1),
            "machine_busy": round(machine[0] / machine[2], 2) if machine[2] else None,
            "machine_stolen": round(machine[1] / machine[2], 2) if machine[2] else None,
        },
        "check": {
            **check,
            "expected": expected,
            "over_issue": over_issue,
            "ok": not problems,
            "problems": problems,
        },
        "server_errors": server_errors,
        "transport_errors": [sample for result in results for sample in result.transport_errors],
        "server_log": server_log,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "redis"],
        required=True,
        help="redis: Redis gate + PostgreSQL",
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
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
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
