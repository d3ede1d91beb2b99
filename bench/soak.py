"""The soak test of the production shape: claims, redemptions and refunds for `--minutes` against
`huimin serve --workers 2` on PostgreSQL + Redis, while one worker process is killed and Redis is
restarted; afterwards nothing acknowledged may be missing and `huimin claims reconcile` and
`huimin ledger check` must pass.

Run:
  .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 32] [--keep] [--json]

Everything runs on 127.0.0.1 and stops by itself:
- a fresh PostgreSQL database `huimin_soak_<random>` on the server of HUIMIN_BENCH_POSTGRES_URL (an admin
  URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test), dropped at the end unless `--keep`;
- its own `redis-server` on a free loopback port (6391 when free), no persistence, stopped at the end;
  the machine's shared Redis is never touched;
- `huimin serve --workers N` (uvicorn's supervisor) with HUIMIN_CLAIMS_BACKEND=redis.

Setup, not timed (bench/harness.py and the other benchmarks' setup, reused): `huimin db upgrade`; a campaign
with one 满100减30 batch and a first-come round open now (bench_claims.campaign_toml); the funder's
deposit of the whole budget, recorded and approved by two people (`huimin ledger deposit`,
`approve-deposit`), so the ledger balances; an app and a terminal partner (`huimin partner create`);
`--merchants` active merchants with a till each (bench_redemptions.active_merchants); `huimin claims
reconcile` to open the round's Redis gate; residents registered through the signed API.

The load: `--concurrency` loops, each on its own keep-alive connection (bench/loadgen.py) and each
picking its next request: a refund of a redemption it saw acknowledged (`--refund-share`), a redemption of a voucher it saw claimed
(`--redeem-share`), else a claim for a resident drawn at random. Every 201's id is recorded. At
`--kill-at` of the run one uvicorn worker (a child of the serve process) gets SIGKILL, and the
supervisor must start a replacement. At `--redis-at` Redis is shut down (SHUTDOWN NOSAVE), left down for
`--redis-down` seconds, started again empty, and `huimin claims reconcile` rebuilds the gate; claims
answer 503 `claims_paused` (and signed requests 503 `nonce_check_unavailable`) meanwhile.

At the end, with the server stopped: `huimin claims reconcile` and `huimin ledger check` as
subprocesses, and every acknowledged voucher, redemption and refund id looked up in the database. It
prints the figures and exits 1 on any loss or failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_claims import ZIYANG_CENTRE, campaign_toml, register_residents
from bench_redemptions import Till, active_merchants
from harness import (
    HUIMIN,
    LOCAL_TZ,
    ROOT,
    UNLIMITED,
    LoadResult,
    Partner,
    commit,
    create_partner,
    database,
    encode,
    free_port,
    fresh_database,
    huimin,
    ms,
    percentiles,
    row,
    server,
)
from loadgen import Connection
from sqlalchemy import bindparam, select, text

from huimin.campaigns.models import CampaignRow
from huimin.config import Settings

FACE_VALUE_FEN = 3_000
PREFERRED_REDIS_PORT = 6391
KINDS = ("claim", "redemption", "refund")


# --- its own Redis --------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a loopback port, without persistence: a restart loses everything."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 (a fixed local binary)
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._command(b"PING").startswith(b"+PONG"):
                return
            time.sleep(0.05)
        sys.exit(f"redis-server on port {self.port} did not start")

    def shutdown_nosave(self) -> None:
        self._command(b"SHUTDOWN NOSAVE")
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def _command(self, command: bytes) -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(command + b"\r\n")
                return connection.recv(64)
        except OSError:
            return b""


def redis_port() -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", PREFERRED_REDIS_PORT))
        except OSError:
            return free_port()
    return PREFERRED_REDIS_PORT


# --- uvicorn's workers ----------------------------------------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    """The uvicorn worker processes: children of the serve process started by multiprocessing's spawn
    (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == supervisor and b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return sorted(found)


def serve_command(workers: int) -> list[str]:
    """`python -m huimin serve` rather than the `huimin` script: uvicorn starts its workers with
    multiprocessing's spawn, which re-imports a script as the child's main module (the whole CLI) before
    the child can answer the supervisor's 5-second health check. On a busy machine that import takes
    longer, and the supervisor kills every new worker as hung. Run as `-m huimin`, the child imports
    nothing but the app. (harness.server appends the port.)"""
    return [
        sys.executable,
        "-m",
        "huimin",
        "serve",
        "--host",
        "127.0.0.1",
        "--workers",
        str(workers),
        "--port",
    ]


# --- the load -------------------------------------------------------------------------------------


@dataclass
class Soak:
    base_url: str
    app: Partner
    terminal: Partner
    round_id: str
    batch_id: str
    residents: list[str]
    tills: list[Till]
    started: float
    redeem_share: float
    refund_share: float
    results: dict[str, LoadResult] = field(default_factory=lambda: {kind: LoadResult() for kind in KINDS})
    acknowledged: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    per_minute: Counter[tuple[int, str, bool]] = field(default_factory=Counter)
    spendable: list[str] = field(default_factory=list)  # voucher codes claimed and not yet spent
    refundable: list[str] = field(default_factory=list)  # redemption ids acknowledged, not yet refunded
    events: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0

    def event(self, what: str, **details: Any) -> None:
        at = round(time.time() - self.started, 1)
        self.events.append({"at_s": at, "event": what, **details})
        print(f"[{at:7.1f} s] {what} {details if details else ''}", file=sys.stderr, flush=True)

    async def send(
        self, http: Connection, kind: str, path: str, payload: dict[str, Any], partner: Partner
    ) -> dict[str, Any] | None:
        self.sent += 1
        body = encode(payload)
        headers = partner.headers(path, body, **{"Idempotency-Key": f"soak-{secrets.token_hex(12)}"})
        response = await self.results[kind].post(http, path, body, headers, created=kind)
        ok = response is not None and response.status_code == 201
        self.per_minute[(int((time.time() - self.started) // 60), kind, ok)] += 1
        return dict(response.json()) if ok and response is not None else None


async def loop(soak: Soak, http: Connection, rng: random.Random, deadline: float) -> None:
    claims_path = f"/api/v1/rounds/{soak.round_id}/claims"
    serial = 0
    while time.time() < deadline:
        serial += 1
        draw = rng.random()
        if soak.refundable and draw < soak.refund_share:
            redemption_id = soak.refundable.pop(rng.randrange(len(soak.refundable)))
            answer = await soak.send(
                http,
                "refund",
                f"/api/v1/redemptions/{redemption_id}/refunds",
                {"amount_fen": 2_000},
                soak.terminal,
            )
            if answer is not None:
                soak.acknowledged["refund"].append(answer["refund_id"])
        elif soak.spendable and draw < soak.refund_share + soak.redeem_share:
            code = soak.spendable.pop(rng.randrange(len(soak.spendable)))
            till = rng.choice(soak.tills)
            answer = await soak.send(
                http,
                "redemption",
                "/api/v1/redemptions",
                {
                    "voucher_code": code,
                    "merchant_id": till.merchant_id,
                    "terminal_id": till.terminal_id,
                    "order_amount_fen": rng.randrange(10_000, 20_000, 100),
                    "merchant_discount_fen": 0,
                    "category": till.category,
                    "order_ref": f"soak-{secrets.token_hex(6)}",
                },
                soak.terminal,
            )
            if answer is not None:
                soak.acknowledged["redemption"].append(answer["redemption_id"])
                soak.refundable.append(answer["redemption_id"])
        else:
            payload = {
                "resident_id": rng.choice(soak.residents),
                "batch_id": soak.batch_id,
                "location": ZIYANG_CENTRE,
            }
            answer = await soak.send(http, "claim", claims_path, payload, soak.app)
            if answer is not None:
                soak.acknowledged["claim"].append(answer["voucher_id"])
                soak.spendable.append(answer["code"])


async def faults(
    soak: Soak,
    supervisor: int,
    redis: RedisServer,
    env: dict[str, str],
    *,
    kill_at: float,
    redis_at: float,
    redis_down: float,
) -> None:
    """Kill one uvicorn worker at `kill_at`, restart Redis at `redis_at` (seconds into the run)."""
    await asyncio.sleep(max(0.0, soak.started + kill_at - time.time()))
    before = worker_pids(supervisor)
    if not before:
        soak.event("no uvicorn worker found to kill", supervisor=supervisor)
    else:
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        soak.event("SIGKILL to a uvicorn worker", pid=victim, workers=before)
        began = time.time()
        while time.time() - began < 60:
            now = worker_pids(supervisor)
            if len(now) == len(before) and victim not in now:
                soak.event(
                    "the supervisor started a replacement",
                    pid=sorted(set(now) - set(before)),
                    after_s=round(time.time() - began, 1),
                )
                break
            await asyncio.sleep(0.2)
        else:
            soak.event("no replacement worker within 60 s", workers=worker_pids(supervisor))

    await asyncio.sleep(max(0.0, soak.started + redis_at - time.time()))
    await asyncio.to_thread(redis.shutdown_nosave)
    soak.event("Redis shut down (SHUTDOWN NOSAVE)")
    await asyncio.sleep(redis_down)
    await asyncio.to_thread(redis.start)
    soak.event("Redis started again, empty")
    began = time.time()
    done = await asyncio.to_thread(_run, env, "claims", "reconcile")
    soak.event(
        "huimin claims reconcile",
        exit=done.returncode,
        took_s=round(time.time() - began, 1),
        output=done.stdout.strip()[-200:],
    )


async def run_load(
    soak: Soak, options: argparse.Namespace, supervisor: int, redis: RedisServer, env: dict[str, str]
) -> None:
    duration = options.minutes * 60
    deadline = soak.started + duration
    address = httpx.URL(soak.base_url)
    connections = [
        Connection(address.host, address.port or 80, timeout=30) for _ in range(options.concurrency)
    ]
    try:
        fault_task = asyncio.create_task(
            faults(
                soak,
                supervisor,
                redis,
                env,
                kill_at=duration * options.kill_at,
                redis_at=duration * options.redis_at,
                redis_down=options.redis_down,
            )
        )
        await asyncio.gather(
            *(
                loop(soak, http, random.Random(options.seed + number), deadline)
                for number, http in enumerate(connections)
            )
        )
        await fault_task
    finally:
        for http in connections:
            http.close()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [str(HUIMIN), *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )


# --- the checks -----------------------------------------------------------------------------------


async def missing(url: str, acknowledged: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per kind: how many acknowledged ids are in the database, how many are not, and how many rows
    the database holds in all (some committed answers never reached the client: a killed worker)."""
    tables = {"claim": "vouchers", "redemption": "redemptions", "refund": "refunds"}
    found: dict[str, dict[str, int]] = {}
    async with database(url) as connection:
        for kind, table in tables.items():
            ids = sorted(set(acknowledged[kind]))
            present = 0
            for start in range(0, len(ids), 1_000):
                present += int(
                    await connection.scalar(
                        text(f"SELECT count(*) FROM {table} WHERE id IN :ids").bindparams(  # noqa: S608 (fixed names)
                            bindparam("ids", expanding=True)
                        ),
                        {"ids": ids[start : start + 1_000]},
                    )
                    or 0
                )
            rows = int(await connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608
            found[kind] = {
                "acknowledged": len(ids),
                "found": present,
                "missing": len(ids) - present,
                "rows": rows,
            }
    return found


# --- setup ----------------------------------------------------------------------------------------


def deposit_budget(env: dict[str, str], campaign: str, yuan: int) -> None:
    recorded = huimin(
        env, "ledger", "deposit", "--campaign", campaign, "--funder", "fiscal", "--amount", str(yuan),
        "--actor", "压测 运营", "--role", "operator",
    )  # fmt: skip
    [deposit_id] = re.findall(r"dep_\w+", recorded)
    huimin(env, "ledger", "approve-deposit", deposit_id, "--actor", "压测 财政", "--role", "finance")


async def campaign_id_of(url: str, code: str) -> str:
    async with database(url) as connection:
        return str(await connection.scalar(select(CampaignRow.id).where(CampaignRow.code == code)))


def run(options: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="huimin-soak-"))
    redis = RedisServer(scratch / "redis", redis_port())
    try:
        with fresh_database("postgres", scratch, prefix="huimin_soak", keep=options.keep) as url:
            redis.start()
            say(f"database {url.rsplit('/', 1)[1]}, Redis on 127.0.0.1:{redis.port}")
            env = {
                **os.environ,
                "HUIMIN_DATABASE_URL": url,
                "HUIMIN_REDIS_URL": redis.url,
                "HUIMIN_CLAIMS_BACKEND": "redis",
                "HUIMIN_ENV": "development",
                **UNLIMITED,
            }
            huimin(env, "db", "upgrade")
            opens = datetime.now(LOCAL_TZ).replace(microsecond=0) - timedelta(minutes=1)
            code = f"soak-{secrets.token_hex(4)}"
            campaign_file = scratch / "campaign.toml"
            campaign_file.write_text(
                campaign_toml(code=code, stock=options.stock, per_round=options.per_round_limit, opens=opens),
                encoding="utf-8",
            )
            huimin(env, "campaign", "load", str(campaign_file))
            deposit_budget(env, code, options.stock * FACE_VALUE_FEN // 100)
            app = create_partner(env, "压测 app", "app")
            terminal = create_partner(env, "压测收银台", "terminal")
            say(f"making {options.merchants} active merchants")
            tills = asyncio.run(
                active_merchants(
                    url, Settings(database_url=url), asyncio.run(campaign_id_of(url, code)), options.merchants
                )
            )
            huimin(env, "claims", "reconcile")  # open the new round's Redis gate
            log = scratch / "server.stderr"
            with server(env, options.workers, log, command=serve_command(options.workers)) as (
                base_url,
                process,
            ):
                [round_] = httpx.get(f"{base_url}/api/v1/rounds", timeout=10, trust_env=False).json()
                say(f"registering {options.residents:,} residents")
                residents = asyncio.run(register_residents(base_url, app, options.residents))
                soak = Soak(
                    base_url=base_url,
                    app=app,
                    terminal=terminal,
                    round_id=round_["round_id"],
                    batch_id=round_["batches"][0]["batch_id"],
                    residents=residents,
                    tills=tills,
                    started=time.time(),
                    redeem_share=options.redeem_share,
                    refund_share=options.refund_share,
                )
                say(
                    f"soaking for {options.minutes} min, concurrency {options.concurrency}, {options.workers} workers"
                )
                soak.event("load starts", workers=worker_pids(process.pid))
                asyncio.run(run_load(soak, options, process.pid, redis, env))
                soak.event("load ends")
                wall = time.time() - soak.started
                server_log = log.read_text(errors="replace")
            say("server stopped; checking")
            reconcile = _run(env, "claims", "reconcile")
            ledger = _run(env, "ledger", "check")
            found = asyncio.run(missing(url, soak.acknowledged))
            return report(options, soak, wall, reconcile, ledger, found, server_log, scratch)
    finally:
        redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)


# --- figures --------------------------------------------------------------------------------------


def report(
    options: argparse.Namespace,
    soak: Soak,
    wall: float,
    reconcile: subprocess.CompletedProcess[str],
    ledger: subprocess.CompletedProcess[str],
    found: dict[str, dict[str, int]],
    server_log: str,
    scratch: Path,
) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind, result in soak.results.items():
        outcomes = Counter(f"{status} {code}" for status, code, _ in result.outcomes)
        statuses = Counter(status for status, _, _ in result.outcomes)
        kinds[kind] = {
            "requests": len(result.outcomes),
            "successes": outcomes.get(f"201 {kind}", 0),
            # 503: a refusal to retry with the same key (claims paused, Redis unreachable, busy)
            "retry_later": statuses[503],
            "no_answer": statuses[0],  # the connection closed under the request: a killed worker
            "server_errors": sum(
                count for status, count in statuses.items() if status >= 500 and status != 503
            ),
            "latency_ms": percentiles([seconds for _, _, seconds in result.outcomes]),
            "outcomes": dict(outcomes.most_common()),
            "server_error_samples": result.server_errors,
            "transport_error_samples": result.transport_errors,
        }
    minutes = sorted({minute for minute, _, _ in soak.per_minute})
    per_minute = [
        {
            "minute": minute + 1,
            "requests": sum(count for (m, _, _), count in soak.per_minute.items() if m == minute),
            **{kind: soak.per_minute[(minute, kind, True)] for kind in KINDS},
        }
        for minute in minutes
    ]
    lost = sum(item["missing"] for item in found.values())
    problems = []
    if lost:
        problems.append(f"{lost} acknowledged ids missing from the database: {found}")
    if reconcile.returncode != 0:
        problems.append(f"huimin claims reconcile exited {reconcile.returncode}")
    if ledger.returncode != 0:
        problems.append(f"huimin ledger check exited {ledger.returncode}")
    if not any(event["event"] == "the supervisor started a replacement" for event in soak.events):
        problems.append("no replacement uvicorn worker was seen after the kill")
    reconciled = [event for event in soak.events if event["event"] == "huimin claims reconcile"]
    if not reconciled or reconciled[0]["exit"] != 0:
        problems.append("the gate was not rebuilt after the Redis restart")
    kept_log = None
    if any(kind["server_errors"] or kind["no_answer"] for kind in kinds.values()) or problems:
        kept_log = str(Path(tempfile.gettempdir()) / f"soak_server_{secrets.token_hex(4)}.log")
        Path(kept_log).write_text(server_log)
    del scratch
    return {
        "run": {
            "minutes": options.minutes,
            "workers": options.workers,
            "concurrency": options.concurrency,
            "residents": options.residents,
            "stock": options.stock,
            "per_round_limit": options.per_round_limit,
            "merchants": options.merchants,
            "started_at": datetime.fromtimestamp(soak.started, UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "commit": commit(),
        },
        "wall_s": round(wall, 1),
        "requests": sum(kind["requests"] for kind in kinds.values()),
        "kinds": kinds,
        "per_minute": per_minute,
        "events": soak.events,
        "reconcile": {
            "exit": reconcile.returncode,
            "output": (reconcile.stdout + reconcile.stderr).strip()[-300:],
        },
        "ledger_check": {
            "exit": ledger.returncode,
            "failed": re.findall(r"invariants FAILED for .*", ledger.stderr),
            "checks_ok": ledger.stdout.count(" ok "),
        },
        "database": found,
        "ok": not problems,
        "problems": problems,
        "server_log": kept_log,
    }


def print_table(figures: dict[str, Any]) -> None:
    run = figures["run"]
    print(
        f"soak: {run['minutes']} min, {run['workers']} workers, PostgreSQL + Redis gate, concurrency "
        f"{run['concurrency']}, {run['cores']} cores, started {run['started_at']} ({run['commit']})"
    )
    row(
        "residents / stock / limit",
        f"{run['residents']:,} / {run['stock']:,} / {run['per_round_limit']} per person",
    )
    row(
        "requests",
        f"{figures['requests']:,} in {figures['wall_s']:.0f} s ({figures['requests'] / figures['wall_s']:.1f}/s)",
    )
    for kind, item in figures["kinds"].items():
        row(
            f"{kind}s",
            f"{item['requests']:,} sent, {item['successes']:,} acknowledged, {item['retry_later']:,} × 503, "
            f"{item['no_answer']:,} no answer, {item['server_errors']:,} other 5xx",
        )
        row("  latency ms", ms(item["latency_ms"]))
        for outcome, count in item["outcomes"].items():
            row(f"    {outcome}", f"{count:,}")
    print("  per minute                     requests  claims  redemptions  refunds (acknowledged)")
    for minute in figures["per_minute"]:
        print(
            f"    {minute['minute']:>3}                        {minute['requests']:>8,}  {minute['claim']:>6,}"
            f"  {minute['redemption']:>11,}  {minute['refund']:>7,}"
        )
    for event in figures["events"]:
        details = {key: value for key, value in event.items() if key not in ("at_s", "event")}
        row(f"  event at {event['at_s']:.0f} s", f"{event['event']} {details if details else ''}")
    for kind, item in figures["database"].items():
        row(
            f"{kind}s in the database",
            f"{item['found']:,} of {item['acknowledged']:,} acknowledged ({item['missing']} missing; {item['rows']:,} rows)",
        )
    row("huimin claims reconcile", f"exit {figures['reconcile']['exit']}: {figures['reconcile']['output']}")
    ledger = figures["ledger_check"]
    row("huimin ledger check", f"exit {ledger['exit']} {'; '.join(ledger['failed'])}")
    for kind, item in figures["kinds"].items():
        for sample in item["server_error_samples"]:
            if sample["status"] != 503:
                print(f"  {kind} 5xx sample: {sample['status']} {sample['body'][:200]}")
        for sample in item["transport_error_samples"][:2]:
            print(f"  {kind} no answer: {sample['error']} after {sample['after_ms']} ms")
    if figures["server_log"]:
        print(f"  server stderr kept at {figures['server_log']}")
    print(
        "SOAK PASSED: nothing acknowledged lost, reconcile and ledger check pass"
        if figures["ok"]
        else f"SOAK FAILED: {figures['problems']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--residents", type=int, default=2_000)
    parser.add_argument("--stock", type=int, default=15_000, help="vouchers in the round")
    parser.add_argument("--per-round-limit", type=int, default=10, help="vouchers per person in the round")
    parser.add_argument("--merchants", type=int, default=10)
    parser.add_argument("--redeem-share", type=float, default=0.35, help="share of requests that redeem")
    parser.add_argument("--refund-share", type=float, default=0.10, help="share of requests that refund")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction of the run: SIGKILL one worker")
    parser.add_argument("--redis-at", type=float, default=0.6, help="fraction of the run: restart Redis")
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down")
    parser.add_argument("--seed", type=int, default=20220624)
    parser.add_argument("--keep", action="store_true", help="keep the soak database afterwards")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    if options.workers < 2:
        parser.error("killing a worker needs at least 2")
    if not 0 < options.kill_at < options.redis_at < 1:
        parser.error("give 0 < --kill-at < --redis-at < 1")
    figures = run(options)
    if options.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        print_table(figures)
    if not figures["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
