"""Request dependencies: the session of the request's one transaction, the settings and the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import Clock

__all__ = ["ClockDep", "SessionDep", "SettingsDep"]


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # One transaction per request: committed when the endpoint returns, rolled back if it raises.
    async with unit_of_work(request.app.state.sessions) as session:
        yield session


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(_session)]
ClockDep = Annotated[Clock, Depends(_clock)]
SettingsDep = Annotated[Settings, Depends(_settings)]
