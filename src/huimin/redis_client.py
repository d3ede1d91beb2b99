"""The Redis connection of the production shape (claim gate now; rate limits and streams later)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from huimin.config import Settings
from huimin.errors import ConfigurationError

__all__ = ["connect_redis"]


def connect_redis(settings: Settings) -> Redis | RedisCluster:
    if not settings.redis_url:
        raise ConfigurationError("HUIMIN_REDIS_URL is not set")
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url)
    return Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10
    )
