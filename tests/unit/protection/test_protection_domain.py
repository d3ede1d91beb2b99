"""Pure parts of protection: rates, the GCRA arithmetic, the client address, the in-process limiter,
the claim slots and the sold-out flag set."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from contextlib import AsyncExitStack

import pytest

from huimin.protection.domain import (
    MICROS,
    Busy,
    Denied,
    Limit,
    Rate,
    RateLimited,
    client_ip,
    gcra,
    parse_networks,
    retry_after_seconds,
)
from huimin.protection.limiter import LocalLimiter
from huimin.protection.service import ClaimSlots
from huimin.protection.soldout import SoldOutFlags, parse_event, stock_event

T0 = 1_656_036_000 * MICROS  # 2022-06-24 02:00 UTC in µs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/60", Rate(10, 60.0)),
        ("10/1m", Rate(10, 60.0)),
        (" 20000 / 1s ", Rate(20000, 1.0)),
        ("3/2h", Rate(3, 7200.0)),
        ("off", None),
        ("0", None),
    ],
)
def test_rates_parse(text: str, expected: Rate | None) -> None:
    assert Rate.parse(text) == expected


@pytest.mark.parametrize("text", ["ten/60", "10", "10/0", "0/60", "10/60x"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"COUNT/SECONDS|positive"):
        Rate.parse(text)


def admitted_at_once(rate: Rate, now: int, attempts: int) -> int:
    tat: int | None = None
    admitted = 0
    for _ in range(attempts):
        ok, tat, _ = gcra(tat, now, rate)
        admitted += ok
    return admitted


@pytest.mark.parametrize(("count", "period"), [(1, 1.0), (5, 60.0), (10, 60.0), (3000, 1.0)])
def test_a_burst_admits_exactly_count(count: int, period: float) -> None:
    assert admitted_at_once(Rate(count, period), T0, count * 2) == count


def test_after_the_period_a_full_burst_is_back_and_in_between_it_drips() -> None:
    rate = Rate(5, 60.0)
    tat: int | None = None
    for _ in range(5):
        ok, tat, _ = gcra(tat, T0, rate)
        assert ok
    ok, tat, wait = gcra(tat, T0, rate)
    assert not ok
    assert wait == 12 * MICROS  # one every 12 s
    assert retry_after_seconds(wait) == 12
    ok, tat, _ = gcra(tat, T0 + 12 * MICROS, rate)  # one more after 12 s
    assert ok
    ok, tat, _ = gcra(tat, T0 + 12 * MICROS, rate)
    assert not ok
    later = T0 + 12 * MICROS + 60 * MICROS
    admitted = 0
    for _ in range(10):
        ok, tat, _ = gcra(tat, later, rate)
        admitted += ok
    assert admitted == 5


def test_a_tat_from_another_clock_is_ignored() -> None:
    rate = Rate(2, 60.0)
    far_future = T0 + 3600 * MICROS
    ok, _, _ = gcra(far_future, T0, rate)
    assert ok


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", None, [], "203.0.113.7"),
        ("203.0.113.7", "1.2.3.4", [], "203.0.113.7"),  # nobody trusted: the header is ignored
        ("203.0.113.7", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.7"),  # the peer is not a proxy of ours
        ("10.0.0.5", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),  # the left part is the client's say
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # two proxies of ours
        ("10.0.0.5", "10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),  # all ours: the first is the client
        ("10.0.0.5", "not-an-ip", ["10.0.0.0/8"], "10.0.0.5"),
        ("::1", "2001:db8::1", ["::1"], "2001:db8::1"),
        (None, "1.2.3.4", ["10.0.0.0/8"], None),
    ],
)
def test_client_ip(peer: str | None, forwarded: str | None, trusted: list[str], expected: str | None) -> None:
    assert client_ip(peer, forwarded, parse_networks(trusted)) == expected


async def test_the_local_limiter_charges_all_limits_or_none() -> None:
    limiter = LocalLimiter()
    tight = Limit("resident", "r1", Rate(1, 60.0))
    loose = Limit("global", "claims", Rate(100, 1.0))
    assert await limiter.check([tight, loose], T0) is None
    denied = await limiter.check([tight, loose], T0)
    assert isinstance(denied, Denied)
    assert denied.limit is tight
    # the refused attempt did not charge the global limit: 99 more fit
    others = [await limiter.check([loose], T0) for _ in range(100)]
    assert sum(1 for item in others if item is None) == 99


def test_the_local_limiter_forgets_the_oldest_keys_beyond_its_bound() -> None:
    limiter = LocalLimiter(max_keys=100)
    for serial in range(1000):
        assert (
            limiter.check_now([Limit("ip", f"10.0.{serial // 256}.{serial % 256}", Rate(1, 60.0))], T0)
            is None
        )
    assert len(limiter._tats) <= 100


def test_refusals_carry_their_retry_after() -> None:
    refusal = RateLimited(Denied(Limit("device", "d", Rate(20, 60.0)), 2_500_000))
    assert (refusal.status, refusal.code, refusal.headers) == (429, "rate_limited", {"Retry-After": "3"})
    assert refusal.body()["limit"] == "device"
    busy = Busy(1)
    assert (busy.status, busy.code, busy.headers, busy.final) == (503, "busy", {"Retry-After": "1"}, False)


async def test_claim_slots_queue_a_few_and_refuse_the_rest() -> None:
    slots = ClaimSlots(capacity=2, queue=1)

    async def waiting_claim() -> str:
        async with slots.slot():
            return "done"

    async with AsyncExitStack() as held:
        await held.enter_async_context(slots.slot())
        await held.enter_async_context(slots.slot())
        waiter = asyncio.create_task(waiting_claim())
        await asyncio.sleep(0)  # one pass of the loop: the task reaches the semaphore and waits
        assert (slots.in_flight, slots.waiting) == (2, 1)
        with pytest.raises(Busy):
            async with slots.slot():
                pass
    assert await waiter == "done"  # the queued claim got a slot when one was freed
    assert (slots.in_flight, slots.waiting) == (0, 0)


def test_stock_events_round_trip() -> None:
    assert parse_event(stock_event("sold_out", "rnd_1", "bat_2").encode()) == ("sold_out", "rnd_1", "bat_2")
    assert parse_event("restocked rnd_1 bat_2") == ("restocked", "rnd_1", "bat_2")
    assert parse_event("hello") is None
    assert parse_event("sold_out a") is None


async def test_flags_follow_the_events_and_resync_drops_restocked_batches() -> None:
    stock: dict[tuple[str, str], int | None] = {("r", "a"): 0, ("r", "b"): 3, ("r", "c"): None}

    async def stock_left(pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        return {pair: stock[pair] for pair in pairs}

    flags = SoldOutFlags(stock_left=stock_left)
    assert not flags
    for batch in "abc":
        flags.apply(stock_event("sold_out", "r", batch))
    assert all(flags.is_sold_out("r", batch) for batch in "abc")
    flags.apply("restocked r a")
    assert not flags.is_sold_out("r", "a")
    flags.apply("sold_out r a")
    await flags.resync()  # b has stock again, c's counter is gone: only a stays flagged
    assert [batch for batch in "abc" if flags.is_sold_out("r", batch)] == ["a"]
    flags.apply("garbage")
    assert flags.is_sold_out("r", "a")
