"""The Redis connection of the production shape: a burst larger than the pool waits for a connection."""

from __future__ import annotations

import asyncio

from huimin.config import Settings
from huimin.redis_client import connect_redis


async def test_a_burst_beyond_the_pool_waits_for_a_connection_instead_of_failing(redis_url: str) -> None:
    # 300 concurrent calls against a pool of 100: the default redis-py pool raised
    # MaxConnectionsError for the 200 beyond it, which the claim path answered with 503s.
    redis = connect_redis(Settings(redis_url=redis_url))
    try:
        key = "huimin:test:pool-burst"
        await redis.delete(key)
        results = await asyncio.gather(*(redis.incr(key) for _ in range(300)))
        assert sorted(results) == list(range(1, 301))
        assert int(await redis.get(key)) == 300
        await redis.delete(key)
    finally:
        await redis.aclose()
