"""The Redis connection of the production shape (claim gate now; rate limits and streams later)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from huimin.config import Settings
from huimin.errors import ConfigurationError

__all__ = ["connect_redis"]


def connect_redis(settings: Settings) -> Redis | RedisCluster:
    if not settings.redis_url:
        raise ConfigurationError("HUIMIN_REDIS_URL is not set")
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url)
    # A bounded pool whose callers wait (up to the 2 s they would wait for a reply) when every
    # connection is busy: the default pool raises MaxConnectionsError at once, which at a release
    # turned bursts of claims into 503s while Redis itself was idle.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=_MAX_CONNECTIONS,
        timeout=2,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=10,
    )
    return Redis.from_pool(pool)


_MAX_CONNECTIONS = 100  # per worker process; a request holds one only for its own Redis call
