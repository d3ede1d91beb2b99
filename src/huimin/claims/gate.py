"""The claim gate: who may try to take a voucher, decided before PostgreSQL is touched.

At 10:00 on a Friday hundreds of thousands of residents press 领取 for a few tens of thousands of
vouchers. Two implementations, chosen by configuration (`HUIMIN_CLAIMS_BACKEND`):

- `SqlGate` (embedded default): admits everyone; the claim transaction's conditional writes decide.
- `RedisGate` (production): one Lua script per round and event-loop pass checks the round's stock and
  each person's per-round limit atomically and reserves them. Only admitted claims open a database
  transaction, so the flood of losers costs one Redis round trip, not a PostgreSQL write. The database
  still has the last word (the same conditional writes run for every admitted claim): if Redis and
  PostgreSQL ever disagree, PostgreSQL refuses and the reservation is given back, so Redis can never
  cause over-issue.

After Redis loses its data (restart without persistence, failover), a round's `ready` key is missing
and claims are refused with `claims_paused` (503) until `huimin claims reconcile` has rebuilt the
round's stock and per-person counts from PostgreSQL. Every key of a round carries the hash tag
`{<round id>}`, so a round's keys live in one slot and the scripts run unchanged on Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from huimin.errors import HuiminError
from huimin.protection.soldout import CHANNEL as STOCK_EVENTS
from huimin.protection.soldout import stock_event

__all__ = [
    "Admission",
    "ClaimGate",
    "RedisGate",
    "SqlGate",
    "claims_paused",
    "is_connection_error",
    "round_keys",
]

Admission = str  # "ok", "sold_out", "limit_reached", "paused"

# KEYS[1] = ready flag, then for each distinct batch: its stock counter and its per-person count hash.
# ARGV = n, then n triples (batch index, person id, per-round limit), then the round id and the batch
# ids. Returns one verdict per request. A batch found sold out is announced on the stock-events
# channel in the same atomic step (see huimin.protection.soldout).
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local paused = {}
  for i = 1, tonumber(ARGV[1]) do paused[i] = 'paused' end
  return paused
end
local n = tonumber(ARGV[1])
local verdicts, announced = {}, {}
for i = 1, n do
  local b = tonumber(ARGV[3 * i - 1])
  local person = ARGV[3 * i]
  local limit = tonumber(ARGV[3 * i + 1])
  local stock_key, counts_key = KEYS[2 * b], KEYS[2 * b + 1]
  local held = tonumber(redis.call('HGET', counts_key, person) or '0')
  if held >= limit then
    verdicts[i] = 'limit_reached'
  elseif tonumber(redis.call('GET', stock_key) or '0') <= 0 then
    verdicts[i] = 'sold_out'
    if not announced[b] then
      announced[b] = true
      redis.call('PUBLISH', '$CHANNEL', 'sold_out ' .. ARGV[3 * n + 2] .. ' ' .. ARGV[3 * n + 2 + b])
    end
  else
    redis.call('DECR', stock_key)
    redis.call('HINCRBY', counts_key, person, 1)
    verdicts[i] = 'ok'
  end
end
return verdicts
""".replace("$CHANNEL", STOCK_EVENTS)

# KEYS = stock counter, count hash; ARGV = person id, round id, batch id. Gives back one reservation;
# stock back from 0 to 1 clears the batch's sold-out flag on every worker.
_RELEASE = """
if tonumber(redis.call('INCR', KEYS[1])) == 1 then
  redis.call('PUBLISH', '$CHANNEL', 'restocked ' .. ARGV[2] .. ' ' .. ARGV[3])
end
if tonumber(redis.call('HINCRBY', KEYS[2], ARGV[1], -1)) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
""".replace("$CHANNEL", STOCK_EVENTS)


def claims_paused() -> HuiminError:
    return HuiminError(
        "claims are paused while the claim gate is rebuilt; retry shortly",
        code="claims_paused",
        status=503,
        final=False,
    )


def round_keys(round_id: str, batch_id: str) -> tuple[str, str, str]:
    """(ready flag, stock counter, per-person count hash) of a round's batch, in one hash slot."""
    tag = "{" + round_id + "}"
    return f"huimin:{tag}:ready", f"huimin:{tag}:stock:{batch_id}", f"huimin:{tag}:held:{batch_id}"


class ClaimGate(Protocol):
    async def admit(self, round_id: str, batch_id: str, person_id: str, limit: int) -> Admission: ...

    async def release(self, round_id: str, batch_id: str, person_id: str) -> None: ...


class SqlGate:
    """Admits every claim: the database transaction decides."""

    async def admit(self, round_id: str, batch_id: str, person_id: str, limit: int) -> Admission:
        return "ok"

    async def release(self, round_id: str, batch_id: str, person_id: str) -> None:
        return None


@dataclass
class _Pending:
    requests: list[tuple[str, str, int, asyncio.Future[Admission]]] = field(default_factory=list)


class RedisGate:
    """Batches the claims that arrive in one event-loop pass, per round, into one script call."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)
        self._pending: dict[str, _Pending] = {}

    async def admit(self, round_id: str, batch_id: str, person_id: str, limit: int) -> Admission:
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(round_id)
        if pending is None:
            pending = self._pending[round_id] = _Pending()
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush(round_id)))
        pending.requests.append((batch_id, person_id, limit, future))
        return await future

    async def _flush(self, round_id: str) -> None:
        pending = self._pending.pop(round_id)
        batches: list[str] = []
        for batch_id, _, _, _ in pending.requests:
            if batch_id not in batches:
                batches.append(batch_id)
        keys = [round_keys(round_id, batches[0])[0]]
        for batch_id in batches:
            _, stock, held = round_keys(round_id, batch_id)
            keys += [stock, held]
        args: list[Any] = [len(pending.requests)]
        for batch_id, person_id, limit, _ in pending.requests:
            args += [batches.index(batch_id) + 1, person_id, limit]
        args += [round_id, *batches]
        try:
            verdicts = await self._admit(keys=keys, args=args)
        except Exception as error:  # Redis down: nobody is admitted, everybody hears why
            for *_, future in pending.requests:
                if not future.done():
                    future.set_exception(claims_paused() if is_connection_error(error) else error)
            return
        for (*_, future), verdict in zip(pending.requests, verdicts, strict=True):
            if not future.done():
                future.set_result(verdict.decode() if isinstance(verdict, bytes) else str(verdict))

    async def release(self, round_id: str, batch_id: str, person_id: str) -> None:
        _, stock, held = round_keys(round_id, batch_id)
        await self._release(keys=[stock, held], args=[person_id, round_id, batch_id])

    async def provision(self, round_id: str, stock: dict[str, int], held: dict[str, dict[str, int]]) -> None:
        """Write a round's state as PostgreSQL knows it, then open the gate (set `ready`)."""
        ready = round_keys(round_id, "")[0]
        await self.redis.delete(ready)  # paused while it is rebuilt
        for batch_id, remaining in stock.items():
            _, stock_key, held_key = round_keys(round_id, batch_id)
            await self.redis.set(stock_key, remaining)
            await self.redis.delete(held_key)
            counts = held.get(batch_id, {})
            if counts:
                await self.redis.hset(held_key, mapping=dict(counts.items()))
            if remaining > 0:  # before `ready`: no claim of the round can flag it sold out meanwhile
                await self.redis.publish(STOCK_EVENTS, stock_event("restocked", round_id, batch_id))
        await self.redis.set(ready, "1")

    async def stock_left(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        """The gate's stock counter of each (round, batch); None where there is none (never provisioned,
        or lost with Redis's memory). One MGET per round (a round's keys share a slot)."""
        by_round: dict[str, list[str]] = {}
        for round_id, batch_id in pairs:
            by_round.setdefault(round_id, []).append(batch_id)
        left: dict[tuple[str, str], int | None] = {}
        for round_id, batch_ids in by_round.items():
            values = await self.redis.mget([round_keys(round_id, batch_id)[1] for batch_id in batch_ids])
            for batch_id, value in zip(batch_ids, values, strict=True):
                left[(round_id, batch_id)] = None if value is None else int(value)
        return left

    async def is_ready(self, round_ids: Iterable[str]) -> dict[str, bool]:
        return {
            round_id: bool(await self.redis.exists(round_keys(round_id, "")[0])) for round_id in round_ids
        }


def is_connection_error(error: Exception) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(error, RedisConnectionError | RedisTimeoutError | OSError)
