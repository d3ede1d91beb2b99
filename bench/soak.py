"""The soak test of the production shape: claims, redemptions and refunds for `--minutes` against
`huimin serve --workers 2` on PostgreSQL + Redis, while one worker process is killed and Redis is
restarted; afterwards nothing acknowledged may be missing and `huimin claims reconcile` and
`huimin ledger check` must pass.

Run:
  .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 32] [--express] [--keep] [--json]

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

`--express` soaks express claims (docs/claims.md, "Express claims"): the server gets
HUIMIN_CLAIMS_ACK=redis, and the private redis-server runs with `--appendonly yes --appendfsync always`
in its scratch directory, so a claim answered 201 exists in Redis's append-only file before its voucher
is in PostgreSQL. What changes:
- the worker is killed, from `--kill-at` on, at the first moment the soak sees one holding claim-stream
  entries it has read and not acknowledged (XPENDING of the group `persist`, polled every millisecond
  for up to `AIM_S`; else the first worker anyway), so that the others must take them over; the kill's
  event says how many it held, and after the load the killed worker's consumer must hold none;
- the Redis fault is a crash that keeps the AOF: the redis-server process gets SIGKILL, stays down
  `--redis-down` seconds and is started again on the same port and directory, where it replays its AOF.
  No `huimin claims reconcile` follows: Redis came back with its data, and claims must resume by
  themselves. The figures say how long 503s went on after Redis was back and when the first claim was
  acknowledged again;
- a 201 claim is persisted by a worker's consumer moments later, so a redemption of a voucher the loop
  saw claimed can arrive first and be refused 404 `unknown_voucher`. Within `PERSIST_GRACE_S` of the
  claim's 201 that refusal is counted as "redeemed before persisted", not as a failure, and the voucher
  is put back to be redeemed again `REDEEM_RETRY_S` later; a 404 `unknown_voucher` later than that is a
  failure (an acknowledged voucher the database still does not hold);
- while the load runs, the acknowledged voucher ids not yet seen in PostgreSQL are looked up every
  `POLL_S`, giving each voucher's time from 201 to PostgreSQL (an upper bound, to within the poll);
  after the load, with the server still running, the soak waits up to 30 s until every acknowledged
  voucher is in PostgreSQL. That is the express check that nothing acknowledged was lost: the entries
  the killed worker's consumer had read must have been taken over by the other worker (after 5 s idle),
  and the claims acknowledged just before the Redis crash must have come back from the AOF. Only then
  does the server stop and the checks above run (whose reconcile would itself persist what was left in
  the streams, hiding a consumer that never took over).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections import Counter, deque
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
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select, text

from huimin.campaigns.models import CampaignRow
from huimin.claims.express import campaign_keys
from huimin.config import Settings

FACE_VALUE_FEN = 3_000
PREFERRED_REDIS_PORT = 6391
KINDS = ("claim", "redemption", "refund")
# --express: a 404 unknown_voucher this soon after the claim's 201 is a voucher not persisted yet
PERSIST_GRACE_S = 30.0
REDEEM_RETRY_S = 0.5  # --express: when a voucher redeemed before it was persisted is tried again
POLL_S = 0.25  # --express: how often the acknowledged vouchers not yet persisted are looked up
PERSIST_WAIT_S = 30.0  # --express: how long after the load every acknowledged voucher may take to persist
AIM_S = 10.0  # --express: how long after --kill-at to wait for a worker holding unacknowledged entries
PERSIST_GROUP = "persist"  # the consumer group of express claims' streams (docs/claims.md)


# --- its own Redis --------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a loopback port, without persistence: a restart loses everything.
    `durable` (--express): with AOF and `appendfsync always` in `directory`, so a restart on the same
    directory replays every write Redis acknowledged."""

    def __init__(self, directory: Path, port: int, *, durable: bool = False) -> None:
        self.directory, self.port, self.durable = directory, port, durable
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
                *(
                    ("--appendonly", "yes", "--appendfsync", "always")
                    if self.durable
                    else ("--appendonly", "no")
                ),
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

    def crash(self) -> None:
        """SIGKILL, as a crash would: no shutdown, the AOF stays as Redis last wrote it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def keys(self) -> int | None:
        """DBSIZE, or None when Redis does not answer."""
        answer = self._command(b"DBSIZE")
        return int(answer[1:].split(b"\r\n", 1)[0]) if answer.startswith(b":") else None

    def pending_by_consumer(self, stream: str) -> dict[str, int]:
        """--express: per consumer of the persisting group, the entries it read and did not acknowledge."""
        try:
            with Redis(host="127.0.0.1", port=self.port, socket_timeout=1, decode_responses=True) as client:
                summary: Any = client.xpending(stream, PERSIST_GROUP)
        except RedisError:
            return {}
        return {consumer["name"]: int(consumer["pending"]) for consumer in summary.get("consumers") or []}

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
    express: bool = False
    # every request: kind, sent and answered (time.time()), status (0: no answer), code
    timeline: list[tuple[str, float, float, int, str]] = field(default_factory=list)
    claimed_at: dict[str, float] = field(default_factory=dict)  # voucher code -> its claim's 201
    acknowledged_at: dict[str, float] = field(default_factory=dict)  # voucher id -> its claim's 201
    # --express: vouchers redeemed before they were persisted, to redeem again: (not before, code)
    redeem_again: deque[tuple[float, str]] = field(default_factory=deque)
    redeemed_before_persisted: int = 0
    redeemed_on_retry: int = 0
    redeemed_again_codes: set[str] = field(default_factory=set)
    unknown_long_after: list[dict[str, Any]] = field(default_factory=list)  # 404s past PERSIST_GRACE_S
    redis_crashed_at: float | None = None
    redis_back_at: float | None = None
    persistence: dict[str, Any] = field(default_factory=dict)  # --express: PersistenceTracker's figures
    ended: float | None = None  # when the load ended (--express then waits for the persistence)
    stream: str | None = None  # --express: the campaign's claim stream
    killed_consumer: str | None = None  # --express: the killed worker's consumer of the stream

    def event(self, what: str, **details: Any) -> None:
        at = round(time.time() - self.started, 1)
        self.events.append({"at_s": at, "event": what, **details})
        print(f"[{at:7.1f} s] {what} {details if details else ''}", file=sys.stderr, flush=True)

    async def send(
        self, http: Connection, kind: str, path: str, payload: dict[str, Any], partner: Partner
    ) -> tuple[dict[str, Any] | None, int, str]:
        """The 201's body (None for anything else), the status (0: no answer) and the answer's code."""
        self.sent += 1
        body = encode(payload)
        headers = partner.headers(path, body, **{"Idempotency-Key": f"soak-{secrets.token_hex(12)}"})
        sent = time.time()
        response = await self.results[kind].post(http, path, body, headers, created=kind)
        # post() appended this request's outcome, with no await since: the last one is ours
        status, code, _ = self.results[kind].outcomes[-1]
        answered = time.time()
        self.timeline.append((kind, sent, answered, status, code))
        ok = response is not None and response.status_code == 201
        self.per_minute[(int((answered - self.started) // 60), kind, ok)] += 1
        return (dict(response.json()) if ok and response is not None else None), status, code

    def next_code(self, rng: random.Random) -> str | None:
        """The voucher to redeem next: one redeemed before it was persisted whose wait is over, else one
        claimed at random; None when there is none."""
        if self.redeem_again and self.redeem_again[0][0] <= time.time():
            return self.redeem_again.popleft()[1]
        if self.spendable:
            return self.spendable.pop(rng.randrange(len(self.spendable)))
        return None

    def redemption_refused(self, code: str, status: int, refusal: str) -> None:
        """--express: a 404 unknown_voucher soon after the claim's 201 means the voucher is not persisted
        yet: counted apart and redeemed again later."""
        if not (self.express and status == 404 and refusal == "unknown_voucher"):
            return
        age = time.time() - self.claimed_at[code]
        if age <= PERSIST_GRACE_S:
            self.redeemed_before_persisted += 1
            self.redeemed_again_codes.add(code)
            self.redeem_again.append((time.time() + REDEEM_RETRY_S, code))
        elif len(self.unknown_long_after) < 100:
            self.unknown_long_after.append({"code": code, "after_s": round(age, 1)})


async def loop(soak: Soak, http: Connection, rng: random.Random, deadline: float) -> None:
    claims_path = f"/api/v1/rounds/{soak.round_id}/claims"
    serial = 0
    while time.time() < deadline:
        serial += 1
        draw = rng.random()
        if soak.refundable and draw < soak.refund_share:
            redemption_id = soak.refundable.pop(rng.randrange(len(soak.refundable)))
            answer, _, _ = await soak.send(
                http,
                "refund",
                f"/api/v1/redemptions/{redemption_id}/refunds",
                {"amount_fen": 2_000},
                soak.terminal,
            )
            if answer is not None:
                soak.acknowledged["refund"].append(answer["refund_id"])
        elif draw < soak.refund_share + soak.redeem_share and (code := soak.next_code(rng)) is not None:
            till = rng.choice(soak.tills)
            answer, status, refusal = await soak.send(
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
                if code in soak.redeemed_again_codes:
                    soak.redeemed_on_retry += 1
                    soak.redeemed_again_codes.discard(code)
            else:
                soak.redemption_refused(code, status, refusal)
        else:
            payload = {
                "resident_id": rng.choice(soak.residents),
                "batch_id": soak.batch_id,
                "location": ZIYANG_CENTRE,
            }
            answer, _, _ = await soak.send(http, "claim", claims_path, payload, soak.app)
            if answer is not None:
                soak.acknowledged["claim"].append(answer["voucher_id"])
                soak.spendable.append(answer["code"])
                soak.claimed_at[answer["code"]] = soak.acknowledged_at[answer["voucher_id"]] = time.time()


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
        if soak.express and soak.stream is not None:
            victim, held = await asyncio.to_thread(kill_while_persisting, redis, soak.stream, before)
            soak.killed_consumer = consumer_name(victim)
            soak.event(
                "SIGKILL to a uvicorn worker", pid=victim, workers=before, entries_read_unacknowledged=held
            )
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
    if soak.express:
        await crash_redis(soak, redis, redis_down=redis_down)
        return
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


def consumer_name(pid: int) -> str:
    """The name a worker's ExpressPersister reads the claim stream under (its default: host and pid)."""
    return f"{socket.gethostname()}:{pid}"


def kill_while_persisting(redis: RedisServer, stream: str, workers: list[int]) -> tuple[int, int]:
    """--express: SIGKILL the first worker seen holding claim-stream entries it has read and not
    acknowledged (reading, or persisting them), so that the other workers must take them over; after
    AIM_S without such a moment, the first worker anyway. Returns the pid and how many entries it held
    when last looked at (0: the takeover is not exercised)."""
    deadline = time.monotonic() + AIM_S
    while time.monotonic() < deadline:
        held = redis.pending_by_consumer(stream)
        for pid in workers:
            if held.get(consumer_name(pid), 0):
                os.kill(pid, signal.SIGKILL)
                return pid, held[consumer_name(pid)]
        time.sleep(0.001)
    os.kill(workers[0], signal.SIGKILL)
    return workers[0], 0


async def crash_redis(soak: Soak, redis: RedisServer, *, redis_down: float) -> None:
    """--express: SIGKILL redis-server, leave it down `redis_down` seconds, start it again on the same port
    and directory (it replays its AOF). No reconcile: claims must resume by themselves."""
    keys = await asyncio.to_thread(redis.keys)
    soak.redis_crashed_at = time.time()
    await asyncio.to_thread(redis.crash)
    soak.event("Redis crashed (SIGKILL), its AOF kept", keys_before=keys)
    await asyncio.sleep(redis_down)
    began = time.time()
    await asyncio.to_thread(redis.start)  # returns once Redis answers PING, i.e. has loaded its AOF
    soak.redis_back_at = time.time()
    soak.event(
        "Redis started again from its AOF",
        keys=await asyncio.to_thread(redis.keys),
        loaded_in_s=round(soak.redis_back_at - began, 1),
    )


class PersistenceTracker:
    """--express: looks up the acknowledged vouchers not yet seen in PostgreSQL every POLL_S, so that each
    one's time from its claim's 201 to PostgreSQL is known (an upper bound, to within the poll); after the
    load, waits until every one is in, or PERSIST_WAIT_S."""

    QUERY = text("SELECT id FROM vouchers WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))

    def __init__(self, url: str, soak: Soak) -> None:
        self.url, self.soak = url, soak
        self.pending: dict[str, float] = {}  # voucher id -> its claim's 201
        self.taken = 0  # how many of soak.acknowledged["claim"] are in `pending` or persisted
        self.lags: list[float] = []
        self.load_ended = asyncio.Event()

    async def run(self) -> None:
        async with database(self.url) as connection:
            while not self.load_ended.is_set():
                await self._poll(connection)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.load_ended.wait(), timeout=POLL_S)
            ended = time.time()
            await self._poll(connection)
            at_load_end = len(self.pending)
            while self.pending and time.time() - ended < PERSIST_WAIT_S:
                await asyncio.sleep(POLL_S)
                await self._poll(connection)
            self.soak.persistence = {
                "acknowledged": self.taken,
                "persisted": self.taken - len(self.pending),
                "not_persisted": len(self.pending),
                "not_persisted_samples": sorted(self.pending)[:5],
                "pending_at_load_end": at_load_end,
                "all_in_after_load_s": round(time.time() - ended, 1) if not self.pending else None,
                "lag_s": {
                    name: None if value is None else round(value / 1e3, 2)
                    for name, value in percentiles(self.lags).items()
                },
            }

    async def _poll(self, connection: Any) -> None:
        acknowledged = self.soak.acknowledged["claim"]
        for voucher_id in acknowledged[self.taken :]:
            self.pending[voucher_id] = self.soak.acknowledged_at[voucher_id]
        self.taken = len(acknowledged)
        ids = list(self.pending)
        looked = time.time()  # each voucher found below was in PostgreSQL by now
        for start in range(0, len(ids), 1_000):
            found = (await connection.execute(self.QUERY, {"ids": ids[start : start + 1_000]})).scalars()
            for voucher_id in found:
                self.lags.append(max(0.0, looked - self.pending.pop(voucher_id)))
        await connection.commit()  # end the snapshot's transaction


async def run_load(
    soak: Soak,
    options: argparse.Namespace,
    supervisor: int,
    redis: RedisServer,
    env: dict[str, str],
    url: str,
) -> None:
    duration = options.minutes * 60
    deadline = soak.started + duration
    address = httpx.URL(soak.base_url)
    connections = [
        Connection(address.host, address.port or 80, timeout=30) for _ in range(options.concurrency)
    ]
    tracker = PersistenceTracker(url, soak) if soak.express else None
    tracking = asyncio.create_task(tracker.run()) if tracker is not None else None
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
        soak.ended = time.time()
        soak.event("load ends")
        if tracker is not None and tracking is not None:
            tracker.load_ended.set()
            await tracking
            figures = soak.persistence
            if soak.killed_consumer is not None and soak.stream is not None:
                held = await asyncio.to_thread(redis.pending_by_consumer, soak.stream)
                figures["killed_consumer_still_holds"] = held.get(soak.killed_consumer, 0)
            soak.event(
                "express: acknowledged vouchers in PostgreSQL",
                persisted=figures["persisted"],
                of=figures["acknowledged"],
                all_in_after_load_s=figures["all_in_after_load_s"],
            )
    finally:
        if tracking is not None and not tracking.done():
            tracking.cancel()
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
    redis = RedisServer(scratch / "redis", redis_port(), durable=options.express)
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
            if options.express:
                env["HUIMIN_CLAIMS_ACK"] = "redis"
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
            campaign_id = asyncio.run(campaign_id_of(url, code))
            tills = asyncio.run(
                active_merchants(url, Settings(database_url=url), campaign_id, options.merchants)
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
                    express=options.express,
                    stream=campaign_keys(campaign_id).stream if options.express else None,
                )
                say(
                    f"soaking for {options.minutes} min, concurrency {options.concurrency}, {options.workers} workers"
                )
                soak.event("load starts", workers=worker_pids(process.pid))
                asyncio.run(run_load(soak, options, process.pid, redis, env, url))
                wall = (soak.ended or time.time()) - soak.started
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


def redis_crash_figures(soak: Soak) -> dict[str, Any] | None:
    """--express: the answers around the Redis crash. A request answered after the crash and sent before
    Redis was back counts as "while down"; one sent after, as "after". A 503 other than `busy` (a claim
    slot) is taken as Redis's: `claims_paused`, `nonce_check_unavailable`."""
    crashed, back = soak.redis_crashed_at, soak.redis_back_at
    if crashed is None or back is None:
        return None
    while_down = [item for item in soak.timeline if item[2] >= crashed and item[1] < back]
    after = [item for item in soak.timeline if item[1] >= back]
    redis_503s = [item for item in after if item[3] == 503 and item[4] != "busy"]
    claims_ok = [answered for kind, _, answered, status, _ in after if kind == "claim" and status == 201]
    return {
        "down_s": round(back - crashed, 1),
        "while_down": dict(Counter(f"{kind} {status} {code}" for kind, _, _, status, code in while_down)),
        "redis_503s_after_back": dict(Counter(f"{kind} {code}" for kind, _, _, _, code in redis_503s)),
        # how long 503s went on once Redis answered again: the last one's answer
        "last_redis_503_after_back_s": round(max(item[2] for item in redis_503s) - back, 2)
        if redis_503s
        else None,
        "first_claim_201_after_back_s": round(min(claims_ok) - back, 2) if claims_ok else None,
    }


def express_figures(soak: Soak) -> dict[str, Any]:
    return {
        "claims_acknowledged": len(soak.acknowledged["claim"]),
        "persistence": soak.persistence,
        "redeemed_before_persisted": soak.redeemed_before_persisted,
        "redeemed_on_retry": soak.redeemed_on_retry,
        "still_to_redeem_again": len(soak.redeem_again),
        "unknown_long_after_claim": soak.unknown_long_after,
        "redis_crash": redis_crash_figures(soak),
    }


def express_problems(express: dict[str, Any]) -> list[str]:
    problems = []
    persistence = express["persistence"]
    if not persistence:
        problems.append("the acknowledged vouchers were not looked up after the load")
    elif persistence["not_persisted"]:
        problems.append(
            f"{persistence['not_persisted']} acknowledged vouchers not in PostgreSQL {PERSIST_WAIT_S:.0f} s "
            f"after the load, with the server running: {persistence['not_persisted_samples']}"
        )
    if persistence.get("killed_consumer_still_holds"):
        problems.append(
            f"the killed worker's consumer still holds {persistence['killed_consumer_still_holds']} entries "
            "after the load: not taken over"
        )
    if express["unknown_long_after_claim"]:
        problems.append(
            f"404 unknown_voucher more than {PERSIST_GRACE_S:.0f} s after the claim's 201: "
            f"{express['unknown_long_after_claim'][:5]}"
        )
    crash = express["redis_crash"]
    if crash is None:
        problems.append("Redis was not crashed and started again")
    elif crash["first_claim_201_after_back_s"] is None:
        problems.append("no claim was acknowledged after Redis came back from its AOF")
    return problems


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
    express = express_figures(soak) if soak.express else None
    if express is not None:
        problems += express_problems(express)
    else:
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
            "express": options.express,
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
        "express": express,
        "ok": not problems,
        "problems": problems,
        "server_log": kept_log,
    }


def print_table(figures: dict[str, Any]) -> None:
    run = figures["run"]
    shape = "express claims (Redis AOF, appendfsync always)" if run["express"] else "PostgreSQL + Redis gate"
    print(
        f"soak: {run['minutes']} min, {run['workers']} workers, {shape}, concurrency "
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
    if figures["express"] is not None:
        print_express(figures["express"])
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


def print_express(express: dict[str, Any]) -> None:
    persistence = express["persistence"]
    print("  express claims")
    row("  claims acknowledged", f"{express['claims_acknowledged']:,}")
    if persistence:
        all_in = persistence["all_in_after_load_s"]
        row(
            "  persisted (server running)",
            f"{persistence['persisted']:,} of {persistence['acknowledged']:,}, "
            f"{persistence['pending_at_load_end']:,} still pending when the load ended, "
            + (
                f"all in {all_in} s after it"
                if all_in is not None
                else f"NOT all in after {PERSIST_WAIT_S:.0f} s"
            ),
        )
        row("  201 -> in PostgreSQL, s", ms(persistence["lag_s"]))
        if "killed_consumer_still_holds" in persistence:
            row(
                "  killed worker's consumer holds",
                f"{persistence['killed_consumer_still_holds']} entries after the load",
            )
    row(
        "  redeemed before persisted",
        f"{express['redeemed_before_persisted']:,} × 404 unknown_voucher (tried again after {REDEEM_RETRY_S} s: "
        f"{express['redeemed_on_retry']:,} redeemed on a retry, {express['still_to_redeem_again']:,} left)",
    )
    if express["unknown_long_after_claim"]:
        row("  unknown long after the claim", express["unknown_long_after_claim"][:5])
    crash = express["redis_crash"]
    if crash:
        row("  Redis down (SIGKILL)", f"{crash['down_s']} s; answers meanwhile: {crash['while_down']}")
        row("  Redis's 503s after it was back", crash["redis_503s_after_back"] or "none")
        row(
            "  503s lasted after it was back",
            "-"
            if crash["last_redis_503_after_back_s"] is None
            else f"{crash['last_redis_503_after_back_s']} s",
        )
        row("  first claim 201 after it was back", f"{crash['first_claim_201_after_back_s']} s")


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
    parser.add_argument(
        "--express",
        action="store_true",
        help="express claims (HUIMIN_CLAIMS_ACK=redis) on a Redis with appendfsync always; Redis crashes "
        "(SIGKILL) and restarts from its AOF, without reconcile",
    )
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
