"""What the HTTP benchmarks share: a fresh database, the operator CLI, `huimin serve` on a free port,
signed requests, a load loop with latency samples, CPU accounting from /proc, and the figures.

Each benchmark script (bench_claims.py, bench_redemptions.py, bench_bare_asgi.py) sets up its own data
and decides what one attempt is; this module times the attempts and says where the CPU went. The
client connects to 127.0.0.1 only and ignores proxy settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from loadgen import Connection, ConnectionLost, Response
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from huimin.auth.domain import SignedRequest, sign

ROOT = Path(__file__).resolve().parents[1]
HUIMIN = Path(sys.executable).parent / "huimin"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
SERVER_ERROR_SAMPLES = 5

T = TypeVar("T")


# --- the database -----------------------------------------------------------------------------------


@contextmanager
def fresh_database(
    backend: str, scratch: Path, *, prefix: str = "huimin_bench", keep: bool = False
) -> Iterator[str]:
    """A migrated-to-nothing database for one run, removed afterwards unless `keep`; yields its
    SQLAlchemy URL. PostgreSQL: `<prefix>_<random>` on the server of HUIMIN_BENCH_POSTGRES_URL."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        return
    admin_url = os.environ.get("HUIMIN_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept the database {name}", file=sys.stderr)
        else:
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


def create_partner(env: dict[str, str], name: str, kind: str) -> Partner:
    """A partner key made with `huimin partner create`, as an operator would."""
    lines = huimin(env, "partner", "create", "--name", name, "--kind", kind).splitlines()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return Partner(key_id=fields["key id"].strip(), secret=fields["secret"].strip())


# --- the signed client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Partner:
    key_id: str
    secret: str

    def headers(self, path: str, body: bytes, *, method: str = "POST", **extra: str) -> dict[str, str]:
        timestamp = str(int(time.time()))  # the server checks ±300 s against its system clock
        nonce = secrets.token_hex(16)
        return {
            "X-Huimin-Key": self.key_id,
            "X-Huimin-Timestamp": timestamp,
            "X-Huimin-Nonce": nonce,
            "X-Huimin-Signature": sign(self.secret, SignedRequest(method, path, timestamp, nonce, body)),
            "Content-Type": "application/json",
            **extra,
        }


def encode(payload: dict[str, Any]) -> bytes:
    # Serialise once: the signature covers these exact bytes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- the load -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    outcomes: list[tuple[int, str, float]] = field(default_factory=list)  # status, code, seconds
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    transport_errors: list[dict[str, Any]] = field(default_factory=list)  # no HTTP answer at all
    cpu_seconds: float = 0.0
    connections_opened: int = 0  # by the client, reconnects included: more than the concurrency means closes
    finished_at: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)  # what a benchmark wants to check afterwards

    async def post(
        self, http: Connection, path: str, body: bytes, headers: dict[str, str], *, created: str
    ) -> Response | None:
        """POST and record the outcome: `created` for a 201, else the answer's `code`; None when the
        request got no HTTP answer at all."""
        began = time.perf_counter()
        try:
            response = await http.post(path, content=body, headers=headers)
        except (ConnectionLost, OSError) as error:
            elapsed = time.perf_counter() - began
            self.outcomes.append((0, type(error).__name__, elapsed))
            if len(self.transport_errors) < SERVER_ERROR_SAMPLES:
                self.transport_errors.append(
                    {"error": f"{type(error).__name__}: {error!r}", "after_ms": round(elapsed * 1e3)}
                )
            return None
        elapsed = time.perf_counter() - began
        if response.status_code == 201:
            self.outcomes.append((201, created, elapsed))
            return response
        try:
            code = str(response.json().get("code"))
        except ValueError:
            code = "not_json"
        self.outcomes.append((response.status_code, code, elapsed))
        if response.status_code >= 500 and len(self.server_errors) < SERVER_ERROR_SAMPLES:
            self.server_errors.append({"status": response.status_code, "body": response.text[:500]})
        return response


async def drive(
    *,
    base_url: str,
    concurrency: int,
    start_at: float,
    deadline: float,
    attempts: Iterable[T],
    attempt: Callable[[Connection, T, LoadResult], Awaitable[None]],
) -> LoadResult:
    """`concurrency` workers, each on its own keep-alive connection (bench/loadgen.py), take the next
    attempt from one shared iterator (so each attempt is made once) from `start_at` on, until the
    attempts run out or `deadline` passes."""
    result = LoadResult()
    shared = iter(attempts)
    address = httpx.URL(base_url)
    connections = [Connection(address.host, address.port or 80) for _ in range(concurrency)]

    async def worker(http: Connection) -> None:
        for item in shared:
            if time.time() >= deadline:
                return
            await attempt(http, item, result)

    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu_before = own_cpu()
        await asyncio.gather(*(worker(http) for http in connections))
        result.finished_at = time.time()
        result.cpu_seconds = own_cpu() - cpu_before
    finally:
        for http in connections:
            http.close()
    result.connections_opened = sum(http.opened for http in connections)
    return result


def own_cpu() -> float:
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


@dataclass
class Measurement:
    """What the machine did while the load ran: filled in when the `measuring` block ends."""

    load_average_before: float
    server_s: float = 0.0
    postgres_s: float | None = None
    machine: tuple[float, float, float] = (0.0, 0.0, 0.0)  # busy, stolen, total seconds


@contextmanager
def measuring(*, server_pid: int, database: str | None) -> Iterator[Measurement]:
    """CPU of the server, of the bench database's PostgreSQL backends and of the whole machine, over
    the block; `database` None: no PostgreSQL to account for."""
    measurement = Measurement(load_average_before=round(os.getloadavg()[0], 2))
    machine_before = machine_cpu()
    with CpuSampler(server_pid=server_pid, database=database) as cpu:
        yield measurement
    machine_after = machine_cpu()
    measurement.server_s = cpu.seconds("server")
    measurement.postgres_s = cpu.seconds("postgres") if database else None
    measurement.machine = tuple(  # type: ignore[assignment]
        after - before for after, before in zip(machine_after, machine_before, strict=True)
    )


def cpu_figures(measurement: Measurement, *, client_s: float, wall: float, processes: int) -> dict[str, Any]:
    busy, stolen, total = measurement.machine
    postgres = measurement.postgres_s
    return {
        "cores": os.cpu_count() or 1,
        "client_s": round(client_s, 1),
        "client_busy_per_process": round(client_s / wall / processes, 2),
        "server_s": round(measurement.server_s, 1),
        "server_cores": round(measurement.server_s / wall, 2),
        "postgres_s": None if postgres is None else round(postgres, 1),
        # what the machine did besides the client, the server and the bench database's backends:
        # other programs, PostgreSQL's own background processes, the kernel
        "other_s": round(busy - client_s - measurement.server_s - (postgres or 0.0), 1),
        "machine_busy": round(busy / total, 2) if total else None,
        "machine_stolen": round(stolen / total, 2) if total else None,
    }


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


def profiled(profile: str | None) -> list[str] | None:
    """The server command of a `--profile FILE` run (one worker under cProfile), or None."""
    return [sys.executable, str(ROOT / "bench" / "profiled_serve.py"), profile] if profile else None


@contextmanager
def server(
    env: dict[str, str], workers: int, log: Path, *, command: Sequence[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`huimin serve` (or `command`, given the port as its last argument) on a free loopback port, until
    the block ends; yields its base URL and process."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = (
        [*command, str(port)]
        if command
        else [str(HUIMIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    )
    with log.open("wb") as stderr:
        # stdout carries uvicorn's access log when it is on: written (and discarded) as in service.
        process = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
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
            sys.exit(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    sys.exit(f"the server did not answer /healthz within 60 s:\n{log.read_text(errors='replace')}")


@asynccontextmanager
async def database(url: str) -> AsyncIterator[Any]:
    """A connection to the bench database for setup and checks, outside the server."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


# --- figures --------------------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(seconds)

    def rank(q: float) -> float:  # nearest rank
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))] * 1e3, 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1] * 1e3, 1)}


def throughput(results: list[LoadResult], start_at: float) -> dict[str, Any]:
    """Attempts, wall time, rate, latency percentiles and outcome counts of one run's results."""
    outcomes = [outcome for result in results for outcome in result.outcomes]
    wall = max(result.finished_at for result in results) - start_at
    successes = [seconds for status, _, seconds in outcomes if status == 201]
    return {
        "attempts": len(outcomes),
        "wall_s": round(wall, 2),
        "attempts_per_s": round(len(outcomes) / wall, 1),
        "successes": len(successes),
        "successes_per_s": round(len(successes) / wall, 1),
        "latency_ms": {
            "all": percentiles([seconds for _, _, seconds in outcomes]),
            "successes": percentiles(successes),
        },
        "outcomes": dict(Counter(f"{status} {code}" for status, code, _ in outcomes).most_common()),
        "connections_opened": sum(result.connections_opened for result in results),
    }


def keep_server_log(results: list[LoadResult], server_stderr: str, prefix: str) -> str | None:
    """Keep the server's stderr when something went wrong (a 5xx or no answer); its path."""
    failed = any(result.server_errors for result in results) or any(
        status == 0 or status >= 500 for result in results for status, _, _ in result.outcomes
    )
    if not failed:
        return None
    kept = Path(tempfile.gettempdir()) / f"{prefix}_server_{secrets.token_hex(4)}.log"
    kept.write_text(server_stderr)
    return str(kept)


def row(label: str, value: object) -> None:
    print(f"  {label:<30} {value}")


def ms(figures: dict[str, float | None]) -> str:
    return "  ".join(f"{name} {value if value is not None else '-'}" for name, value in figures.items())


def print_load(report: dict[str, Any], *, success_label: str) -> None:
    """The rows every benchmark prints: attempts, rates, latencies, outcomes."""
    run = report["run"]
    row("attempts", f"{report['attempts']:,} of {run['attempts']:,} in {report['wall_s']:.1f} s")
    row("attempts/s", f"{report['attempts_per_s']:,.0f}")
    row("successes/s", f"{report['successes_per_s']:,.0f}  ({report['successes']:,} {success_label})")
    row("latency ms, all", ms(report["latency_ms"]["all"]))
    row("latency ms, successes", ms(report["latency_ms"]["successes"]))
    for outcome, count in report["outcomes"].items():
        row(f"  {outcome}", f"{count:,}")
    row(
        "client connections opened", f"{report['connections_opened']:,}  (concurrency {run['concurrency']:,})"
    )


def print_cpu(report: dict[str, Any]) -> None:
    cpu, run = report["cpu"], report["run"]
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


def print_errors(report: dict[str, Any]) -> None:
    for sample in report["server_errors"]:
        print(f"  5xx sample: {sample['status']} {sample['body']}")
    for sample in report["transport_errors"]:
        print(f"  no answer: {sample['error']} after {sample['after_ms']} ms")
    if report.get("server_log"):
        print(f"  server stderr kept at {report['server_log']}")


# A benchmark drives the server from one loopback address: the per-address and global rate limits
# (docs/operations.md) would measure themselves, so the servers it starts run without them.
UNLIMITED = {
    "HUIMIN_RATE_LIMIT_CLAIM_IP": "off",
    "HUIMIN_RATE_LIMIT_CLAIM_GLOBAL": "off",
    "HUIMIN_RATE_LIMIT_PUBLIC_IP": "off",
}
