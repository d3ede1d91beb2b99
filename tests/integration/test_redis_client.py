"""The Redis connection of the production shape: a burst larger than the pool waits for a connection;
nonces burnt in batches."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from huimin.auth.service import NONCE_MEMORY, RedisNonces
from huimin.config import Settings
from huimin.errors import HuiminError
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


async def test_nonces_of_one_pass_share_a_pipeline_and_a_repeat_in_it_is_still_a_replay(
    redis_url: str,
) -> None:
    redis = connect_redis(Settings(redis_url=redis_url))
    nonces = RedisNonces(redis)
    now = datetime.now(UTC)
    partner = f"ptn_test_{secrets.token_hex(4)}"
    try:
        fresh = [secrets.token_hex(8) for _ in range(50)]
        burnt = await asyncio.gather(*(nonces.burn(partner, nonce, now=now) for nonce in [*fresh, fresh[7]]))
        assert burnt == [True] * 50 + [False]  # the same nonce twice in one pass: the second is a replay
        assert await nonces.burn(partner, fresh[0], now=now) is False  # and in a later pass
        assert 0 < await redis.ttl(f"huimin:nonce:{{{partner}}}:{fresh[0]}") <= NONCE_MEMORY.total_seconds()
    finally:
        await redis.aclose()


async def test_nonces_refuse_with_503_when_redis_is_unreachable() -> None:
    nonces = RedisNonces(connect_redis(Settings(redis_url="redis://127.0.0.1:1/0")))
    results = await asyncio.gather(
        *(nonces.burn("ptn_x", f"nonce-{n}", now=datetime.now(UTC)) for n in range(3)), return_exceptions=True
    )
    assert all(
        isinstance(result, HuiminError) and result.code == "nonce_check_unavailable" for result in results
    )
