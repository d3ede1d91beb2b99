"""Running one unit of work from a command line: the settings, checked, and one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work

__all__ = ["checked_settings", "run_job"]

T = TypeVar("T")


def checked_settings() -> Settings:
    """The settings from the environment; production refuses default secrets."""
    settings = Settings()
    settings.check_production()
    return settings


def run_job(job: Callable[[AsyncSession], Awaitable[T]], settings: Settings) -> T:
    """Run one unit of work against the configured database: committed if the job returns."""

    async def main() -> T:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await job(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())
