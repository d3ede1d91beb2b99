"""Prometheus metrics.

Several worker processes (`huimin serve --workers N`) each count their own requests; a scrape of
/metrics lands on one of them and must answer for all. prometheus_client's multiprocess mode does
that: with `PROMETHEUS_MULTIPROC_DIR` set (by `huimin serve` to a fresh temporary directory when
N > 1) every process writes its counters and histograms to memory-mapped files there, and the scrape
adds them up. Without it (one worker, tests) the values live in this process's default registry.

Values that are facts of the database or Redis rather than counts of this process (stock remaining,
settlement runs by status) are read when scraped (`huimin.observability.scrape`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "CLAIM_ROUTE",
    "CONTENT_TYPE_LATEST",
    "exposition",
    "multiprocess_dir",
    "observe_rate_limited",
    "observe_request",
    "observe_till_pass",
    "serve_metrics",
    "set_stream_lag",
]

# The flash claim: its requests are also counted by outcome in huimin_claims_total.
CLAIM_ROUTE = ("POST", "/api/v1/rounds/{round_id}/claims")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "huimin_http_requests",
    "HTTP requests by route template and outcome (status class and error code).",
    ["method", "route", "status", "code"],
)
HTTP_LATENCY = Histogram(
    "huimin_http_request_duration_seconds",
    "Time from the request's arrival in the app to the end of its answer.",
    ["method", "route", "status", "code"],
    buckets=_BUCKETS,
)
CLAIMS = Counter(
    "huimin_claims",
    "Claim attempts (POST /api/v1/rounds/{round_id}/claims) by outcome: issued, or the refusal code.",
    ["outcome"],
)
RATE_LIMITED = Counter(
    "huimin_rate_limited",
    "Requests refused with 429 rate_limited, by the limit that tripped.",
    ["limit"],
)
STREAM_LAG = Gauge(
    "huimin_stream_lag_entries",
    "Entries of a Redis stream not yet processed by its consumer group (set by `huimin worker`).",
    ["stream", "group"],
    multiprocess_mode="mostrecent",
)
STREAM_LAG_SECONDS = Gauge(
    "huimin_stream_lag_seconds",
    "Age of the oldest entry of a Redis stream not yet processed by its consumer group.",
    ["stream", "group"],
    multiprocess_mode="mostrecent",
)

TILL_PASSES = Histogram(
    "huimin_till_pass_size",
    "Redemptions decided together in one transaction (one event-loop pass of a worker), by outcome: "
    "committed, one_at_a_time (the database refused the pass as a whole), failed.",
    ["outcome"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
TILL_PASS_SECONDS = Histogram(
    "huimin_till_pass_duration_seconds",
    "Time one pass of redemptions spends deciding and committing.",
    buckets=_BUCKETS,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_children: dict[tuple[str, str, int, str], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, code: str | None, seconds: float) -> None:
    """Count one answered request. `code` is the refusal's stable code (None for a success)."""
    key = (method, route, status, code or "")
    children = _children.get(key)
    if children is None:
        labels = (
            method if method in _METHODS else "other",
            route,
            _STATUS_CLASSES.get(status // 100, "other"),
            code or ("ok" if status < 400 else f"http_{status}"),
        )
        children = _children[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)
    if (method, route) == CLAIM_ROUTE:
        CLAIMS.labels("issued" if status in (200, 201) else code or f"http_{status}").inc()


def observe_till_pass(size: int, seconds: float, outcome: str) -> None:
    TILL_PASSES.labels(outcome).observe(size)
    TILL_PASS_SECONDS.observe(seconds)


def observe_rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit).inc()


def set_stream_lag(stream: str, group: str, *, entries: int, seconds: float | None = None) -> None:
    """The hook of the stream consumers (`huimin worker`): call after each read or XINFO GROUPS with the
    group's lag (Redis 7 reports it as `lag`) and, when known, the age of its oldest pending entry."""
    STREAM_LAG.labels(stream, group).set(entries)
    if seconds is not None:
        STREAM_LAG_SECONDS.labels(stream, group).set(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Snapshot(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def exposition(scraped: Iterable[Metric] = ()) -> bytes:
    """The text exposition: every process's counters (multiprocess mode) or this process's, then the
    values read at scrape time."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_Snapshot(scraped))
    return text + generate_latest(extra)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """For processes without the HTTP app (`huimin worker`): their own /metrics on a loopback port, for
    the stream lag and whatever else they count."""
    start_http_server(port, addr=host)
