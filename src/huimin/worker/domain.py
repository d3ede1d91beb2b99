"""The worker's rules, pure: when a scheduled job is due, and when a lease may be taken.

Two kinds of schedule:

- `Every(seconds)`: due when the last attempt started at least that long ago (a failure is retried at
  the same pace).
- `DailyAt(time)`: once per Asia/Shanghai day, from that wall-clock time on. A worker that was down at
  that time runs the job when it comes back the same day (catch-up); a failed run is retried after
  `retry` until one succeeds; a run that is under way (started, not finished) is never started again.

A lease is free when nobody holds it, or its holder lets it expire (a dead worker), or the asking worker
holds it already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from huimin.kit.clock import local_datetime, to_local

__all__ = [
    "DailyAt",
    "Every",
    "JobState",
    "Outcome",
    "Schedule",
    "is_due",
    "lease_is_free",
    "next_due",
    "run_unfinished",
]


class Outcome:
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Every:
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError("an interval is a positive number of seconds")

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


@dataclass(frozen=True)
class DailyAt:
    at: time  # Asia/Shanghai wall clock
    retry: timedelta = timedelta(minutes=10)

    def describe(self) -> str:
        return f"daily at {self.at:%H:%M} Asia/Shanghai"

    def slot(self, now: datetime) -> datetime:
        """The latest occurrence of `at` that is not after `now` (today's, or yesterday's before it)."""
        today = local_datetime(to_local(now).date(), self.at)
        return today if today <= now else local_datetime(to_local(now).date() - timedelta(days=1), self.at)


Schedule = Every | DailyAt


@dataclass(frozen=True)
class JobState:
    """What a job's lease row says about its past runs."""

    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    last_outcome: str | None = None


def run_unfinished(state: JobState) -> bool:
    """A run was started and never recorded its end (under way, or its worker died)."""
    if state.last_started_at is None:
        return False
    return state.last_finished_at is None or state.last_finished_at < state.last_started_at


def is_due(schedule: Schedule, state: JobState, now: datetime) -> bool:
    if run_unfinished(state):
        return False  # under way elsewhere; a dead holder's run is marked failed when its lease is taken
    if isinstance(schedule, Every):
        return state.last_started_at is None or now - state.last_started_at >= timedelta(
            seconds=schedule.seconds
        )
    slot = schedule.slot(now)
    if state.last_success_at is not None and state.last_success_at >= slot:
        return False  # done for this day
    if state.last_started_at is None or state.last_started_at < slot:
        return True  # not tried since the slot
    # tried since the slot and failed: retry after a pause
    finished = state.last_finished_at or state.last_started_at
    return now - finished >= schedule.retry


def next_due(schedule: Schedule, state: JobState, now: datetime) -> datetime:
    """When the job is next due, for sleeping until then (now if it is due; a run under way counts as
    due at once, so that the worker looks again soon)."""
    if is_due(schedule, state, now) or run_unfinished(state):
        return now
    if isinstance(schedule, Every):
        started = state.last_started_at or now  # never started: due, handled above
        return started + timedelta(seconds=schedule.seconds)
    slot = schedule.slot(now)
    if state.last_success_at is not None and state.last_success_at >= slot:
        return local_datetime(to_local(slot).date() + timedelta(days=1), schedule.at)
    finished = state.last_finished_at or state.last_started_at or now
    return finished + schedule.retry


def lease_is_free(holder: str | None, expires_at: datetime | None, *, me: str, now: datetime) -> bool:
    """The rule the conditional UPDATE of `WorkerRepository.acquire` applies in SQL."""
    return holder is None or holder == me or expires_at is None or expires_at <= now
