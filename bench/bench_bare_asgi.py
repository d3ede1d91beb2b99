"""The floor of this machine: a bare ASGI app under uvicorn whose only work per request is its share of
one Redis Lua call, batched per event-loop pass like the claim gate; measured with the same load
generator as the claim and redemption benchmarks, so their figures can be read against it.

Run:
  .venv/bin/python bench/bench_bare_asgi.py --workers 2 [--attempts 20000] [--concurrency 100] [--json]

Each POST sends a small JSON body; the app reads it, adds the request to the current batch, and the
batch goes to Redis (HUIMIN_BENCH_REDIS_URL, default redis://127.0.0.1:6379/0) as one EVALSHA that
decrements a counter once per request (a stand-in for the gate's stock check), then answers 201 with a
small JSON body. No framework, no signature, no database: what is left is uvicorn, the HTTP parsing,
the Redis round trip and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    DEFAULT_REDIS_URL,
    ROOT,
    LoadResult,
    commit,
    cpu_figures,
    drive,
    keep_server_log,
    measuring,
    print_cpu,
    print_errors,
    print_load,
    server,
    throughput,
)
from loadgen import Connection
from redis.asyncio import Redis

# --- the app (imported by uvicorn in each worker) --------------------------------------------------

_SCRIPT = """
local left = redis.call('DECRBY', KEYS[1], tonumber(ARGV[1]))
return left
"""
_COUNTER = "huimin:bench:bare:{counter}"


class _Batcher:
    """The requests of one event-loop pass share one script call."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.script = redis.register_script(_SCRIPT)
        self.pending: list[asyncio.Future[int]] = []

    async def admit(self) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        if len(self.pending) == 1:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))
        return await future

    async def _flush(self) -> None:
        batch, self.pending = self.pending, []
        try:
            left = int(await self.script(keys=[_COUNTER], args=[len(batch)]))
        except Exception as error:
            for future in batch:
                future.set_exception(error)
            return
        for offset, future in enumerate(batch):
            future.set_result(left + offset)


_state: dict[str, _Batcher] = {}
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                redis = Redis.from_url(os.environ.get("HUIMIN_BENCH_REDIS_URL", DEFAULT_REDIS_URL))
                _state["batcher"] = _Batcher(redis)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state["batcher"].redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/healthz":
        await _answer(send, 200, b'{"status":"ok"}')
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    json.loads(body)
    left = await _state["batcher"].admit()
    await _answer(send, 201, json.dumps({"left": left}).encode())


async def _answer(send: Any, status: int, body: bytes) -> None:
    # With its length, as every framework sends a JSON answer (else uvicorn would chunk it).
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the run --------------------------------------------------------------------------------------


async def fire(
    base_url: str, *, attempts: int, concurrency: int, start_at: float, deadline: float
) -> LoadResult:
    body = json.dumps({"resident_id": "res_bench", "batch_id": "bat_bench"}).encode()
    headers = {"Content-Type": "application/json"}

    async def attempt(http: Connection, _item: int, result: LoadResult) -> None:
        await result.post(http, "/claims", body, headers, created="admitted")

    return await drive(
        base_url=base_url,
        concurrency=concurrency,
        start_at=start_at,
        deadline=deadline,
        attempts=range(attempts),
        attempt=attempt,
    )


def run(options: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="huimin-bench-"))
    log = scratch / "server.stderr"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "bench"),
        "bench_bare_asgi:app",
        "--workers",
        str(options.workers),
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
    ]
    with server(dict(os.environ), options.workers, log, command=command) as (base_url, process):
        start_at = time.time() + 1.0
        with measuring(server_pid=process.pid, database=None) as measurement:
            result = asyncio.run(
                fire(
                    base_url,
                    attempts=options.attempts,
                    concurrency=options.concurrency,
                    start_at=start_at,
                    deadline=start_at + options.duration_limit,
                )
            )
        server_stderr = log.read_text(errors="replace")
    load = throughput([result], start_at)
    return {
        "run": {
            "workers": options.workers,
            "attempts": options.attempts,
            "concurrency": options.concurrency,
            "started_at": datetime.fromtimestamp(start_at, UTC).isoformat(timespec="seconds"),
            "commit": commit(),
            "load_average_before": measurement.load_average_before,
        },
        **load,
        "cpu": cpu_figures(measurement, client_s=result.cpu_seconds, wall=load["wall_s"], processes=1),
        "server_errors": result.server_errors,
        "transport_errors": result.transport_errors,
        "server_log": keep_server_log([result], server_stderr, f"bench_bare_asgi_{secrets.token_hex(2)}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight")
    parser.add_argument("--duration-limit", type=float, default=60, help="seconds; stop sending after this")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    report = run(options)
    if options.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    run_ = report["run"]
    print(
        f"bare ASGI + one batched Redis Lua call: {run_['workers']} worker(s), concurrency {run_['concurrency']}"
    )
    print_load(report, success_label="admitted")
    print_cpu(report)
    print_errors(report)


if __name__ == "__main__":
    main()
