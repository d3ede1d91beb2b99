"""Configuration from the environment (prefix `HUIMIN_`), with defaults for the embedded shape.

The defaults run everything on one machine with a SQLite file under ./var and no other service.
Production (`HUIMIN_ENV=production`) refuses to start while any secret still has its default value.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from huimin.errors import ConfigurationError
from huimin.kit.hashing import KeyedHasher
from huimin.protection.domain import Rate, parse_networks

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/huimin.db"

# Development defaults: good enough for a laptop demo, refused in production.
_DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production"  # noqa: S105 (refused in production)
_DEV_HASH_KEY = "dev-only-identifier-hash-key-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUIMIN_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_cluster: bool = False  # HUIMIN_REDIS_URL names one node of a Redis Cluster
    claims_backend: Literal["sql", "redis"] = "sql"  # who admits claims first: the database or Redis
    claims_ack: Literal["postgres", "redis"] = Field(
        default="postgres",
        description="when a claim is answered: once PostgreSQL has committed it, or (express claims, needs "
        "HUIMIN_CLAIMS_BACKEND=redis and a Redis with AOF appendfsync always) once Redis has decided it, "
        "PostgreSQL following within moments (docs/claims.md)",
    )
    claims_ack_volatile_redis: bool = Field(
        default=False,
        description="let express claims run on a Redis that does not keep every acknowledged write "
        "(development only: a Redis restart then loses vouchers residents were told they have)",
    )
    secret_key: SecretStr = SecretStr(_DEV_SECRET_KEY)
    hash_key: SecretStr = Field(
        default=SecretStr(_DEV_HASH_KEY),
        description="HMAC key for ID numbers and phone numbers; keep it outside the database.",
    )
    database_echo: bool = False
    partner_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="how long a worker keeps a partner key (and so how long a revoked key still works); 0: read it per request",
    )
    assets_dir: Path | None = Field(
        default=None,
        description="the installed npm packages the console serves (`npm ci` makes ./node_modules); "
        "unset: the project's node_modules",
    )
    complaint_sla_days: dict[str, int] = Field(
        default_factory=dict,
        description="working days to answer a complaint, per category, overriding the defaults of "
        'complaints.domain.DEFAULT_SLA_DAYS (JSON, e.g. {"cannot_claim": 2})',
    )
    complaint_holidays: list[date] = Field(
        default_factory=list, description="public holidays (法定节假日) that are not working days (JSON list)"
    )
    privacy_purge_after_days: int = Field(
        default=180,
        ge=0,
        description="days after a campaign's final settlement before its personal data is purged",
    )
    # Protection at release time (docs/operations.md, "Rate limits"): COUNT/SECONDS admits COUNT at
    # once, then one every SECONDS/COUNT; "off" lifts a limit. Held in Redis when HUIMIN_REDIS_URL is
    # set (shared by every worker), else in each worker's memory.
    rate_limit_claim_resident: str = Field(
        default="10/60", description="claim attempts per resident (the app's account)"
    )
    rate_limit_claim_device: str = Field(
        default="20/60", description="claim attempts per device (the app's X-Huimin-Device header)"
    )
    rate_limit_claim_ip: str = Field(
        default="3000/1",
        description="claim attempts per client address (claims come from the partners' servers)",
    )
    rate_limit_claim_global: str = Field(
        default="20000/1", description="claim attempts of the whole deployment (all workers)"
    )
    rate_limit_public_ip: str = Field(
        default="300/60", description="public reads (campaigns, rounds, merchants, announcements) per address"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='addresses or CIDR blocks of the proxies whose X-Forwarded-For is believed (JSON list, e.g. ["127.0.0.1"])',
    )
    claim_concurrency: int = Field(default=256, ge=1, description="claims in flight per worker process")
    claim_queue: int = Field(
        default=64, ge=0, description="claims waiting for a slot per worker; beyond: 503 busy"
    )
    busy_retry_after_seconds: int = Field(default=1, ge=1, description="Retry-After of a 503 busy")
    # Observability (docs/operations.md)
    log_format: Literal["json", "text"] = "json"
    access_log: bool = Field(default=True, description="one log line per request (huimin.access)")
    probe_timeout_seconds: float = Field(
        default=1.0, gt=0, description="how long /readyz and /metrics wait for the database and Redis"
    )
    host: str = "127.0.0.1"
    port: int = 8000

    @field_validator(
        "rate_limit_claim_resident",
        "rate_limit_claim_device",
        "rate_limit_claim_ip",
        "rate_limit_claim_global",
        "rate_limit_public_ip",
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        Rate.parse(value)  # a bad rate stops the start, naming the setting
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def hasher(self) -> KeyedHasher:
        return KeyedHasher(self.hash_key.get_secret_value().encode())

    def check_backends(self) -> None:
        if self.claims_backend == "redis" and not self.redis_url:
            raise ConfigurationError("HUIMIN_CLAIMS_BACKEND=redis needs HUIMIN_REDIS_URL")
        if self.claims_ack == "redis" and self.claims_backend != "redis":
            raise ConfigurationError("HUIMIN_CLAIMS_ACK=redis needs HUIMIN_CLAIMS_BACKEND=redis")
        if self.claims_ack_volatile_redis and self.env == "production":
            raise ConfigurationError("HUIMIN_CLAIMS_ACK_VOLATILE_REDIS is for development, never production")

    def check_production(self) -> None:
        """Refuse to run production with a default or short secret."""
        if self.env != "production":
            return
        problems = []
        if self.secret_key.get_secret_value() == _DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("HUIMIN_SECRET_KEY must be set to a random value of at least 32 characters")
        if self.hash_key.get_secret_value() == _DEV_HASH_KEY or len(self.hash_key) < 32:
            problems.append("HUIMIN_HASH_KEY must be set to a random value of at least 32 characters")
        if problems:
            raise ConfigurationError("refusing to start in production: " + "; ".join(problems))
