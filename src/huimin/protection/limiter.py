"""Rate limiters: in Redis for all workers (production), in this process (embedded shape, and the
fallback while Redis does not answer).

The Redis limiter batches the checks that arrive in one pass of the event loop into one Lua script
call, like the claim gate: one round trip for every limit of every request of the pass. Each request
is all or nothing: when one of its limits refuses, none of its limits is charged, and the answer names
the limit that would make it wait longest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from huimin.protection.domain import Denied, Limit, gcra

__all__ = ["KEY_PREFIX", "LocalLimiter", "RateLimiter", "RedisLimiter"]

log = logging.getLogger("huimin.protection")

# One hash tag for every rate-limit key: a batch's script touches one slot, so it runs on Redis
# Cluster too (the limits then live on one shard, which takes ~100k script calls/s).
KEY_PREFIX = "huimin:{rl}:"

# KEYS: the distinct limit keys of the batch. ARGV: now (µs), m, then per request: k, then per limit
# (key index, interval µs, tolerance µs). Returns 2m integers: per request the 1-based position of the
# limit that refused (0: admitted) and the microseconds to wait. A key lives until its tat (plus a
# second for the clocks of the workers to disagree): after that it would hold a full burst anyway.
_CHECK = """
local now = tonumber(ARGV[1])
local tats, ttls, out = {}, {}, {}
local pos = 3
for r = 1, tonumber(ARGV[2]) do
  local k = tonumber(ARGV[pos]); pos = pos + 1
  local which, worst, admitted = 0, 0, {}
  for j = 1, k do
    local key, interval, tolerance = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
    pos = pos + 3
    local tat = tats[key]
    if tat == nil then
      tat = tonumber(redis.call('GET', KEYS[key]) or '0')
      tats[key] = tat
    end
    if tat < now or tat - now > tolerance + interval then tat = now end
    if now < tat - tolerance then
      if tat - tolerance - now > worst then which, worst = j, tat - tolerance - now end
    else
      admitted[j] = {key, tat + interval}
    end
  end
  if which == 0 then
    for j = 1, k do
      local key, tat = admitted[j][1], admitted[j][2]
      tats[key], ttls[key] = tat, true
    end
  end
  out[2 * r - 1], out[2 * r] = which, worst
end
for key, _ in pairs(ttls) do
  redis.call('SET', KEYS[key], string.format('%d', tats[key]), 'PX', math.ceil((tats[key] - now) / 1000) + 1000)
end
return out
"""


class RateLimiter(Protocol):
    async def check(self, limits: Sequence[Limit], now: int) -> Denied | None:
        """Charge one request against `limits` at `now` (µs), or say which limit refuses it."""
        ...


class LocalLimiter:
    """The same arithmetic in this process's memory (bounded: the oldest keys go first)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._tats: dict[str, int] = {}

    async def check(self, limits: Sequence[Limit], now: int) -> Denied | None:
        return self.check_now(limits, now)

    def check_now(self, limits: Sequence[Limit], now: int) -> Denied | None:
        admitted: list[tuple[str, int]] = []
        denied: Denied | None = None
        for limit in limits:
            key = f"{limit.name}:{limit.key}"
            ok, tat, wait = gcra(self._tats.get(key), now, limit.rate)
            if ok:
                admitted.append((key, tat))
            elif denied is None or wait > denied.retry_after_us:
                denied = Denied(limit, wait)
        if denied is not None:
            return denied
        for key, tat in admitted:
            self._tats.pop(key, None)  # re-inserted last: dict order is recency order
            self._tats[key] = tat
        if len(self._tats) > self.max_keys:
            self._evict(now)
        return None

    def _evict(self, now: int) -> None:
        expired = [key for key, tat in self._tats.items() if tat <= now]
        for key in expired:  # a key whose tat has passed holds a full burst: the same as no key
            del self._tats[key]
        while len(self._tats) > self.max_keys * 9 // 10:
            del self._tats[next(iter(self._tats))]


_Request = tuple[Sequence[Limit], int, "asyncio.Future[Denied | None]"]


class RedisLimiter:
    """Limits shared by every worker. While Redis does not answer, each worker limits on its own
    (`LocalLimiter`) and tries Redis again after `retry_after` seconds, so a Redis outage neither
    lifts the limits nor makes every request wait for a connection timeout."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        prefix: str = KEY_PREFIX,
        fallback: LocalLimiter | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.fallback = fallback or LocalLimiter()
        self.retry_after = retry_after
        self.calls = 0  # script calls made: one per batch
        self._script = redis.register_script(_CHECK)
        self._pending: list[_Request] = []
        self._down_until = 0.0

    async def check(self, limits: Sequence[Limit], now: int) -> Denied | None:
        if not limits:
            return None
        if time.monotonic() < self._down_until:
            return self.fallback.check_now(limits, now)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Denied | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(lambda: asyncio.ensure_future(self._flush()))
        self._pending.append((limits, now, future))
        return await future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        keys: dict[str, int] = {}
        args: list[int] = [max(now for _, now, _ in batch), len(batch)]
        for limits, _, _ in batch:
            args.append(len(limits))
            for limit in limits:
                index = keys.setdefault(f"{self.prefix}{limit.name}:{limit.key}", len(keys) + 1)
                args += [index, limit.rate.interval_us, limit.rate.tolerance_us]
        try:
            self.calls += 1
            answer = await self._script(keys=list(keys), args=args)
        except (RedisError, OSError) as error:
            if time.monotonic() >= self._down_until:
                log.warning("rate limits fall back to this worker while Redis fails: %s", error)
            self._down_until = time.monotonic() + self.retry_after
            for limits, now, future in batch:
                if not future.done():
                    future.set_result(self.fallback.check_now(limits, now))
            return
        except Exception as error:  # a bug, not an outage: every waiting request hears it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for position, (limits, _, future) in enumerate(batch):
            which, wait = int(answer[2 * position]), int(answer[2 * position + 1])
            if not future.done():
                future.set_result(Denied(limits[which - 1], wait) if which else None)
