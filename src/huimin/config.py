"""Configuration from the environment (prefix `HUIMIN_`), with defaults for the embedded shape.

The defaults run everything on one machine with a SQLite file under ./var and no other service.
Production (`HUIMIN_ENV=production`) refuses to start while any secret still has its default value.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from huimin.errors import ConfigurationError
from huimin.kit.hashing import KeyedHasher

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
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def hasher(self) -> KeyedHasher:
        return KeyedHasher(self.hash_key.get_secret_value().encode())

    def check_backends(self) -> None:
        if self.claims_backend == "redis" and not self.redis_url:
            raise ConfigurationError("HUIMIN_CLAIMS_BACKEND=redis needs HUIMIN_REDIS_URL")

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
