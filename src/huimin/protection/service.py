"""What protects a worker at a release: the limits of the claim path and of public reads, the bound on
claims in flight in this process, and the sold-out flags. One `Protection` per app (app.state)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from huimin.config import Settings
from huimin.kit.clock import Clock
from huimin.kit.hashing import KeyedHasher
from huimin.observability.metrics import observe_rate_limited
from huimin.protection.domain import Busy, Limit, Network, Rate, RateLimited, parse_networks
from huimin.protection.limiter import LocalLimiter, RateLimiter, RedisLimiter
from huimin.protection.soldout import SoldOutFlags, StockReader, subscriber

__all__ = ["ClaimRates", "ClaimSlots", "Protection", "build_protection"]


@dataclass(frozen=True)
class ClaimRates:
    resident: Rate | None
    device: Rate | None
    ip: Rate | None
    global_: Rate | None

    @classmethod
    def of(cls, settings: Settings) -> ClaimRates:
        return cls(
            resident=Rate.parse(settings.rate_limit_claim_resident),
            device=Rate.parse(settings.rate_limit_claim_device),
            ip=Rate.parse(settings.rate_limit_claim_ip),
            global_=Rate.parse(settings.rate_limit_claim_global),
        )


class ClaimSlots:
    """At most `capacity` claims in flight in this process and `queue` more waiting for a slot; the
    next one is refused at once with 503 `busy` rather than queued without bound behind the others."""

    def __init__(self, capacity: int, queue: int, retry_after: int = 1) -> None:
        self.capacity = capacity
        self.queue = queue
        self.retry_after = retry_after
        self.in_flight = 0
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(capacity)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._semaphore.locked():
            if self.waiting >= self.queue:
                raise Busy(self.retry_after)
            self.waiting += 1
            try:
                await self._semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()


class Protection:
    def __init__(
        self,
        *,
        settings: Settings,
        limiter: RateLimiter,
        flags: SoldOutFlags,
        clock: Clock,
        hasher: KeyedHasher,
    ) -> None:
        self.limiter = limiter
        self.flags = flags
        self.clock = clock
        self.hasher = hasher
        self.claim_rates = ClaimRates.of(settings)
        self.public_read_rate = Rate.parse(settings.rate_limit_public_ip)
        self.trusted_proxies: tuple[Network, ...] = parse_networks(settings.trusted_proxies)
        self.slots = ClaimSlots(
            settings.claim_concurrency, settings.claim_queue, retry_after=settings.busy_retry_after_seconds
        )

    def _now(self) -> int:
        return int(self.clock.now().timestamp() * 1_000_000)

    async def check_claim(
        self, *, partner_id: str, resident_id: str, device_id: str | None, ip: str | None
    ) -> None:
        """Charge one claim attempt against every configured limit, or raise `RateLimited`."""
        rates = self.claim_rates
        limits = []
        if rates.resident is not None:
            limits.append(Limit("resident", f"{partner_id}:{resident_id}", rates.resident))
        if rates.device is not None and device_id:
            # the same keyed digest as the resident's stored device: no raw device id in Redis
            limits.append(Limit("device", self.hasher.digest("device", device_id), rates.device))
        if rates.ip is not None and ip:
            limits.append(Limit("ip", ip, rates.ip))
        if rates.global_ is not None:
            limits.append(Limit("global", "claims", rates.global_))
        denied = await self.limiter.check(limits, self._now())
        if denied is not None:
            observe_rate_limited(denied.limit.name)
            raise RateLimited(denied)

    async def check_public_read(self, ip: str | None) -> None:
        if self.public_read_rate is None or not ip:
            return
        denied = await self.limiter.check([Limit("public", ip, self.public_read_rate)], self._now())
        if denied is not None:
            observe_rate_limited(denied.limit.name)
            raise RateLimited(denied)


def build_protection(
    settings: Settings, *, redis: Redis | RedisCluster | None, stock_left: StockReader | None, clock: Clock
) -> Protection:
    """Limits in Redis when there is one, else in this process; sold-out flags only with the Redis
    claim gate (`stock_left` reads its counters), else none (the database answers sold_out)."""
    flags = SoldOutFlags()
    if stock_left is not None and settings.redis_url:
        flags = SoldOutFlags(subscriber(settings.redis_url), stock_left=stock_left)
    return Protection(
        settings=settings,
        limiter=RedisLimiter(redis) if redis is not None else LocalLimiter(),
        flags=flags,
        clock=clock,
        hasher=settings.hasher,
    )
