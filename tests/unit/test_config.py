from __future__ import annotations

import pytest
from pydantic import SecretStr

from huimin.app import create_app
from huimin.config import DEFAULT_DATABASE_URL, Settings
from huimin.errors import ConfigurationError


def test_the_embedded_default_needs_no_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUIMIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUIMIN_REDIS_URL", raising=False)
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.redis_url is None


def test_settings_come_from_huimin_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIMIN_DATABASE_URL", "postgresql+asyncpg://huimin@db.internal/huimin")
    monkeypatch.setenv("HUIMIN_REDIS_URL", "redis://cache.internal:6379/0")
    settings = Settings()
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://cache.internal:6379/0"


def test_production_refuses_to_start_with_default_secrets() -> None:
    settings = Settings(env="production")
    with pytest.raises(ConfigurationError, match="HUIMIN_SECRET_KEY") as caught:
        create_app(settings)
    assert "HUIMIN_HASH_KEY" in caught.value.message


def test_production_starts_with_real_secrets() -> None:
    settings = Settings(env="production", secret_key=SecretStr("s" * 40), hash_key=SecretStr("h" * 40))
    settings.check_production()
    assert create_app(settings).title.startswith("Huimin")


async def test_an_exhausted_connection_pool_answers_503_busy() -> None:
    import httpx
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app = create_app(Settings())

    @app.get("/_exhausted")
    async def exhausted() -> None:
        raise PoolTimeout("QueuePool limit reached")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/_exhausted")
    assert response.status_code == 503
    assert response.json()["code"] == "busy"
    assert response.headers["Retry-After"] == "1"
