"""Time. Every rule that depends on time reads an injected `Clock`, never the system clock directly,
so that the demo runs seven months in minutes and a test can stand one second before a release.

Instants are timezone-aware UTC datetimes; campaign wall time is Asia/Shanghai (SPEC §9).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = ["LOCAL_TZ", "Clock", "ManualClock", "SystemClock", "local_date", "local_datetime", "to_local"]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests and the simulated campaign."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start).astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        instant = _require_aware(instant).astimezone(UTC)
        with self._lock:
            if instant < self._now:
                raise ValueError(
                    f"a clock does not go backwards: {instant.isoformat()} < {self._now.isoformat()}"
                )
            self._now = instant

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += delta
            return self._now


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: give a timezone")
    return instant


def to_local(instant: datetime) -> datetime:
    """An instant in campaign wall time (Asia/Shanghai)."""
    return _require_aware(instant).astimezone(LOCAL_TZ)


def local_date(instant: datetime) -> date:
    """The Asia/Shanghai calendar day of an instant (the business day of settlement and reports)."""
    return to_local(instant).date()


def local_datetime(day: date, at: time) -> datetime:
    """The UTC instant of a wall-clock time on a day in Asia/Shanghai."""
    return datetime.combine(day, at, tzinfo=LOCAL_TZ).astimezone(UTC)
