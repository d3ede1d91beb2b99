"""Private Redis servers for failure tests: started on free loopback ports, killed and restarted at
will, never the machine's shared Redis."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.conftest import IN_CI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return binary


class RedisProcess:
    def __init__(self, directory: Path, port: int, *extra: str) -> None:
        self.directory, self.port, self.extra = directory, port, extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 (a fixed local binary)
            [
                redis_server_binary(),
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
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def redis_process(directory: Path, *extra: str) -> Iterator[RedisProcess]:
    server = RedisProcess(directory, free_port(), *extra)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def redis_cluster(directory: Path, *extra: str) -> Iterator[int]:
    """Three redis-server nodes in cluster mode on free loopback ports, joined with `redis-cli --cluster
    create`; yields the first node's port. Fails (never skips) when the cluster cannot be created."""
    servers = [
        RedisProcess(directory / f"node-{number}", free_cluster_port(), "--cluster-enabled", "yes", *extra)
        for number in range(3)
    ]
    try:
        for server in servers:
            server.start()
        created = subprocess.run(  # noqa: S603 (a fixed local binary, found on PATH like redis-server)
            [  # noqa: S607
                "redis-cli",
                "--cluster",
                "create",
                *[f"127.0.0.1:{server.port}" for server in servers],
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            pytest.fail(f"could not create the cluster: {created.stdout} {created.stderr}")
        yield servers[0].port
    finally:
        for server in servers:
            server.kill()


async def cluster_client(port: int) -> RedisCluster:
    """A client of the cluster once it has settled its slots (within a few seconds)."""
    cluster = RedisCluster(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            if (await cluster.cluster_info())["cluster_state"] == "ok":
                break
        except Exception:  # noqa: S110 (not ready yet)
            pass
        await asyncio.sleep(0.1)
    return cluster
