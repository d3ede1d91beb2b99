"""A lean HTTP/1.1 load generator for the benchmarks: one keep-alive connection per concurrent request,
written on asyncio's protocol layer, so that the client costs the shared machine tens of microseconds per
request instead of httpx's milliseconds.

On two cores the client competes with the server it measures. With httpx the client spent two to ten
times the server's CPU per request (docs/benchmarks.md, "The floor of this machine"), so the figures
showed the client, not the server. This client does only what a request needs: it writes the request
line, the headers and the body in one `write`, and reads the answer's status and `Content-Length` body.

What it does not do, on purpose: TLS, proxies, redirects, chunked answers (uvicorn answers our JSON with
a `Content-Length`; a chunked answer is an error here), pipelining (one request in flight per
connection, like a browser's or an app's HTTP/1.1 client). A connection the server closes (an answer with
`Connection: close`, a killed worker) is reopened for the next request; the request it was carrying
fails with `ConnectionLost`, which the harness records as "no answer"; so does a request without an
answer within the connection's timeout (60 s unless told), after which the connection is reopened.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class ConnectionLost(Exception):
    """The connection closed before the whole answer arrived."""


class Response:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: bytes, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # the raw header block, lower-cased
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter = None
            waiter.set_exception(ConnectionLost("an answer without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        body_at = end + 4
        if len(self.buffer) < body_at + length:
            return
        body = bytes(self.buffer[body_at : body_at + length])
        del self.buffer[: body_at + length]
        self.waiter = None
        if b"\r\nconnection: close" in head:
            self.closed = True
        waiter.set_result(Response(int(head[9:12]), head, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(str(exc) if exc else "closed by the server"))


class Connection:
    """One keep-alive connection to `host:port`, one request at a time."""

    def __init__(self, host: str, port: int, *, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._host_line = f"Host: {host}:{port}\r\n".encode()
        self.opened = 0  # connections opened, reconnects included

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            if protocol is not None and protocol.transport is not None:
                protocol.transport.close()
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            self._protocol = protocol
            self.opened += 1
        return protocol

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        protocol = await self._ready()
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_line]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}\r\n".encode())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode())
        lines.append(body)
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        protocol.waiter = waiter
        assert protocol.transport is not None
        protocol.transport.write(b"".join(lines))
        expiry = asyncio.get_running_loop().call_later(self.timeout, self._expire, protocol, waiter)
        try:
            return await waiter
        finally:
            expiry.cancel()

    def _expire(self, protocol: _Protocol, waiter: asyncio.Future[Response]) -> None:
        # A late answer would arrive as the next request's: drop the connection with the request.
        if not waiter.done():
            protocol.waiter = None
            protocol.closed = True
            waiter.set_exception(ConnectionLost(f"no answer within {self.timeout:g} s"))
            if protocol.transport is not None:
                protocol.transport.close()

    async def post(self, path: str, *, content: bytes, headers: dict[str, str]) -> Response:
        return await self.request("POST", path, content, headers)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, b"", headers)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
