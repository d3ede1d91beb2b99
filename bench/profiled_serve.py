"""`huimin serve` with one worker under a CPU-time profiler, for the benchmarks' `--profile FILE` option.
Profiling starts with the first `/api/` request (not the imports and startup) and the stats go to FILE
when the server stops.

CPU time, not wall time: a request spends most of its wall time waiting (for PostgreSQL, for its turn
on the event loop). FILE ending in `.yappi` uses yappi (`pip install yappi`, not a project dependency),
whose inclusive times follow coroutines across their suspensions; anything else uses cProfile, whose
self times are right but whose cumulative times double-count resumed coroutines.

  python bench/profiled_serve.py FILE PORT
  python -m pstats FILE    # then: sort tottime, stats 40
"""

from __future__ import annotations

import cProfile
import importlib
import signal
import sys
import time
from types import FrameType
from typing import Any

import uvicorn

from huimin.app import create_app


class Profiler:
    def __init__(self, target: str) -> None:
        self.target = target
        self.yappi: Any = None
        self.profile: cProfile.Profile | None = None
        if target.endswith(".yappi"):
            self.yappi = importlib.import_module("yappi")  # optional: only for this kind of run
            self.yappi.set_clock_type("cpu")
        else:
            self.profile = cProfile.Profile(time.process_time)
        self.started = False

    def start(self) -> None:
        self.started = True
        if self.yappi is not None:
            self.yappi.start()
        elif self.profile is not None:
            self.profile.enable()

    def stop(self) -> None:
        if self.yappi is not None:
            self.yappi.stop()
            self.yappi.get_func_stats().save(self.target, type="pstat")
        elif self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(self.target)


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    profiler = Profiler(target)
    app = create_app()

    async def profiled(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not profiler.started and scope["type"] == "http" and scope["path"].startswith("/api/"):
            profiler.start()
        await app(scope, receive, send)

    def stop(signum: int, _frame: FrameType | None) -> None:
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again to the handler it found
        # installed: this one, which writes the stats before exiting.
        profiler.stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    uvicorn.run(profiled, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
