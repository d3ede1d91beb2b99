"""The sold-out flag (售罄): once a round's batch is sold out, every worker answers `sold_out` from
memory, without a Redis round trip, an authentication or a database read.

How a flag travels (Redis claim gate only):

- The gate's Lua script, when it answers `sold_out` for a batch, publishes `sold_out <round> <batch>`
  on the channel `huimin:stock-events` in the same atomic step. When stock comes back to the gate
  (a reservation given back takes the counter from 0 to 1; `huimin claims reconcile` provisions a
  round with stock), `restocked <round> <batch>` is published the same way. Redis orders the two
  kinds of message as it ran the scripts, so a worker never keeps a flag that a later restock cleared.
- Each worker keeps the flags in a set, filled and emptied only by the messages it receives (also
  for the claims it sent itself: its own reading of a script answer could overtake a later restock).
- A background task subscribes at startup. On every (re)connection it first subscribes, then resyncs:
  it reads the gate's stock counter of every flag it holds and drops those with stock again (or gone).
  A flag missed while disconnected is harmless: the next claim reaches the gate, which answers
  `sold_out` and publishes the flag again.

Without the Redis gate (the embedded SQLite shape, or `HUIMIN_CLAIMS_BACKEND=sql`) there are no flags:
the database's conditional stock write answers `sold_out` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["CHANNEL", "SoldOutFlags", "parse_event", "stock_event", "subscriber"]

log = logging.getLogger("huimin.protection")

CHANNEL = "huimin:stock-events"
Event = Literal["sold_out", "restocked"]
BatchKey = tuple[str, str]  # (round id, batch id)
StockReader = Callable[[Collection[BatchKey]], Awaitable[dict[BatchKey, int | None]]]


def stock_event(event: Event, round_id: str, batch_id: str) -> str:
    return f"{event} {round_id} {batch_id}"


def parse_event(data: bytes | str) -> tuple[Event, str, str] | None:
    text = data.decode() if isinstance(data, bytes) else data
    parts = text.split(" ")
    if len(parts) != 3 or parts[0] not in ("sold_out", "restocked"):
        return None
    event: Event = "sold_out" if parts[0] == "sold_out" else "restocked"
    return event, parts[1], parts[2]


def subscriber(url: str) -> Redis:
    """A connection of its own for the subscription: no command timeout (it waits for messages), a PING
    every 10 s to notice a dead peer, and no silent reconnection, so that every reconnection resyncs."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_keepalive=True,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )


class SoldOutFlags:
    """The (round, batch) pairs this worker knows to be sold out."""

    def __init__(self, redis: Redis | None = None, *, stock_left: StockReader | None = None) -> None:
        self.redis = redis
        self.stock_left = stock_left
        self._flags: set[BatchKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self.redis is not None

    def __bool__(self) -> bool:
        return bool(self._flags)

    def is_sold_out(self, round_id: str, batch_id: str) -> bool:
        return (round_id, batch_id) in self._flags

    def apply(self, data: bytes | str) -> None:
        parsed = parse_event(data)
        if parsed is None:
            log.warning("ignored a malformed stock event %r", data)
            return
        event, round_id, batch_id = parsed
        if event == "sold_out":
            self._flags.add((round_id, batch_id))
        else:
            self._flags.discard((round_id, batch_id))
        self._notify()

    async def resync(self) -> None:
        """Drop every flag whose batch has stock again (or whose counter is gone) in Redis."""
        if not self._flags or self.stock_left is None:
            return
        held = set(self._flags)
        left = await self.stock_left(held)
        for key in held:
            remaining = left.get(key)
            if remaining is None or remaining > 0:
                self._flags.discard(key)
        self._notify()

    def start(self) -> None:
        if self.redis is not None and self._task is None:
            self._task = asyncio.create_task(self._listen(self.redis), name="huimin-sold-out-flags")

    async def stop(self) -> None:
        """Stop listening (the flags stay as they are until `start` resyncs them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._connected.clear()

    async def close(self) -> None:
        await self.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate` holds after some flag changed (tests: wrap in a timeout)."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    async def until_connected(self) -> None:
        await self._connected.wait()

    def _notify(self) -> None:
        self._changed.set()

    async def _listen(self, redis: Redis) -> None:
        delay = 0.2
        while True:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                await self.resync()  # after subscribing: nothing published from here on is missed
                self._connected.set()
                self._notify()
                delay = 0.2
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    _raise_if_cancelled()
                    if message is not None and message["type"] == "message":
                        self.apply(message["data"])
            except (RedisError, OSError) as error:
                if self._connected.is_set():
                    log.warning("sold-out flags: subscription lost, reconnecting: %s", error)
                self._connected.clear()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            _raise_if_cancelled()
            await asyncio.sleep(delay)  # back off while Redis is away
            delay = min(delay * 2, 5.0)


def _raise_if_cancelled() -> None:
    """redis-py's pubsub read can swallow the task's cancellation (seen: `stop` then waited forever on a
    task marked cancelling, looping on `get_message`); the task's own count of cancel requests does not
    lie, so the loop honours it here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
