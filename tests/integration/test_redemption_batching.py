"""The till's redemptions decided a pass of the event loop at a time (`huimin.redemptions.batching`),
through signed HTTP on SQLite and PostgreSQL: `asyncio.gather` puts many requests into one pass. Every
answer is the one the same request gets alone (on the one-at-a-time path), the database holds exactly
the effects of the 201s, the stored answers replay, and a pass the database refuses as a whole, or
cannot reach, still answers every request correctly with nothing half-written."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns.models import CampaignRow
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.kit.clock import ManualClock, local_date
from huimin.ledger.checks import run_checks
from huimin.redemptions import batching
from huimin.redemptions.batching import TillBatcher
from huimin.redemptions.models import MerchantDayCounterRow, RedemptionEventRow, RedemptionRow
from huimin.risk.service import Source
from huimin.risk.stream import stream_name
from tests.integration.redis_servers import RedisProcess, redis_process
from tests.integration.till import Till, checked_balances, fund, open_till
from tests.support import SignedClient

Body = dict[str, Any]
Outcome = tuple[int, str]
REDEEMED: Outcome = (201, "redeemed")
# A port nothing listens on: every connection is refused, as while PostgreSQL restarts.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/huimin"


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The Idempotency-Keys of the requests each batched pass was given, in order of the passes."""
    seen: list[list[str]] = []
    real = batching._decide_pass

    async def spy(session: AsyncSession, items: list[Any], now: Any) -> Any:
        seen.append([item.key for item in items])
        return await real(session, items, now)

    monkeypatch.setattr(batching, "_decide_pass", spy)
    return seen


def outcome(response: httpx.Response) -> Outcome:
    if response.status_code == 201:
        return REDEEMED
    return response.status_code, str(response.json()["code"])


def car_invoice(number: int, amount_fen: int) -> dict[str, object]:
    return {
        "sales_invoice_no": f"0513{number:08d}",
        "sales_invoice_amount_fen": amount_fen,
        "tax_invoice_no": f"TBX{number:09d}",
    }


def mistyped(code: str) -> str:
    return code[:-1] + ("0" if code[-1] != "0" else "1")


async def gather_redeem(till: Till, requests: list[tuple[Body, str]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(till.redeem(body, key=key) for body, key in requests)))


# --- the database, as the tests read it -----------------------------------------------------------------


async def redemptions(sessions: async_sessionmaker[AsyncSession]) -> dict[str, RedemptionRow]:
    """Every redemption by its id."""
    async with unit_of_work(sessions) as session:
        return {row.id: row for row in await session.scalars(select(RedemptionRow))}


async def voucher_statuses(sessions: async_sessionmaker[AsyncSession], *ids: str) -> dict[str, str]:
    async with unit_of_work(sessions) as session:
        rows = await session.execute(select(VoucherRow.id, VoucherRow.status).where(VoucherRow.id.in_(ids)))
        return {row.id: row.status for row in rows}


async def redeemed_events(sessions: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    """The `redeemed` redemption events: event id -> redemption id."""
    async with unit_of_work(sessions) as session:
        rows = await session.execute(
            select(RedemptionEventRow.id, RedemptionEventRow.redemption_id).where(
                RedemptionEventRow.kind == "redeemed"
            )
        )
        return {row.id: row.redemption_id for row in rows}


async def voucher_redeemed_events(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with unit_of_work(sessions) as session:
        return Counter(
            (
                await session.scalars(
                    select(VoucherEventRow.voucher_id).where(VoucherEventRow.kind == "redeemed")
                )
            ).all()
        )


async def stored_answers(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, tuple[str, int | None, Any]]:
    """Every Idempotency-Key's row but the claims': key -> (state, status, answer)."""
    async with unit_of_work(sessions) as session:
        return {
            row.key: (row.state, row.status_code, row.response)
            for row in await session.scalars(select(IdempotencyKeyRow))
            if not row.key.startswith("claim-")
        }


async def day_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str, date], int]:
    async with unit_of_work(sessions) as session:
        return {
            (row.merchant_id, row.batch_id, row.day): row.redeemed
            for row in await session.scalars(select(MerchantDayCounterRow))
        }


async def ledger_problems(sessions: async_sessionmaker[AsyncSession], till: Till) -> list[Any]:
    async with unit_of_work(sessions) as session:
        campaign = await session.get(CampaignRow, till.campaign_id)
        assert campaign is not None
        report = await run_checks(session, campaign)
    assert report.results
    return [(result.name, result.figures, result.problems) for result in report.results if not result.ok]


def assert_effects_are_the_201s(
    before: dict[str, RedemptionRow],
    after: dict[str, RedemptionRow],
    answers: list[tuple[Body, httpx.Response]],
) -> dict[str, RedemptionRow]:
    """The redemptions written since `before` are exactly the 201 answers', with their arithmetic;
    the new rows by redemption id."""
    new = {rid: row for rid, row in after.items() if rid not in before}
    created = {
        response.json()["redemption_id"]: (body, response.json())
        for body, response in answers
        if response.status_code == 201
    }
    assert set(new) == set(created)
    for rid, (body, answer) in created.items():
        row = new[rid]
        assert (row.voucher_id, row.merchant_id, row.status) == (
            answer["voucher_id"],
            body["merchant_id"],
            answer["status"],
        )
        assert (row.order_fen, row.merchant_discount_fen, row.subsidy_fen, row.order_ref) == (
            body["order_amount_fen"],
            body["merchant_discount_fen"],
            answer["subsidy_fen"],
            body.get("order_ref"),
        )
        assert datetime.fromisoformat(answer["redeemed_at"]) == row.redeemed_at
    assert len({row.voucher_id for row in new.values()}) == len(new)
    return new


def fails_once(real: Callable[..., Any], error: Exception) -> Callable[..., Any]:
    """`real`, except that its first call does its work and then raises `error`."""
    calls = 0

    async def step(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real(*args, **kwargs)
        if calls == 1:
            raise error
        return result

    return step


def refused_as_a_whole() -> IntegrityError:
    return IntegrityError("INSERT INTO redemptions ...", {}, Exception("duplicate key (simulated)"))


# --- a mixed pass: every answer as alone ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    batch: str | None  # the voucher to claim for it (None: the code exists nowhere)
    body: Callable[[Till, Body, int], Body]
    expected: Outcome


def _car(till: Till, voucher: Body, serial: int) -> Body:
    return till.body(
        voucher,
        "cars",
        category="cars",
        order_amount_fen=8_000_000,
        invoice=car_invoice(serial, 8_000_000),
    )


MIXED: list[Case] = [
    *(Case(f"general at a restaurant {n}", "general", lambda t, v, s: t.body(v), REDEEMED) for n in range(3)),
    *(
        Case(
            f"general at a shop {n}",
            "general",
            lambda t, v, s: t.body(v, "retail", category="retail"),
            REDEEMED,
        )
        for n in range(2)
    ),
    *(
        Case(
            f"gross threshold with a house discount {n}",
            "gross",
            lambda t, v, s: t.body(v, merchant_discount_fen=2_500),
            REDEEMED,
        )
        for n in range(3)
    ),
    *(
        Case(
            f"ten per cent at a shop {n}",
            "pct",
            lambda t, v, s: t.body(
                v, "retail", category="retail", order_amount_fen=30_000, merchant_discount_fen=2_000
            ),
            REDEEMED,
        )
        for n in range(3)
    ),
    *(
        Case(
            f"anyue at its restaurant {n}",
            "anyue",
            lambda t, v, s: t.body(v, "anyue_above", order_amount_fen=5_000),
            REDEEMED,
        )
        for n in range(2)
    ),
    Case("a car with its invoices (one at a time)", "cars", _car, REDEEMED),
    *(
        Case(
            f"under the threshold {n}",
            "general",
            lambda t, v, s: t.body(v, order_amount_fen=9_999),
            (422, "below_threshold"),
        )
        for n in range(2)
    ),
    Case(
        "under the threshold after the house discount",
        "general",
        lambda t, v, s: t.body(v, merchant_discount_fen=2_500),
        (422, "below_threshold"),
    ),
    *(
        Case(
            f"a mistyped code {n}",
            "general",
            lambda t, v, s: t.body({"code": mistyped(v["code"])}),
            (404, "unknown_voucher"),
        )
        for n in range(2)
    ),
    Case(
        "a code that exists nowhere",
        None,
        lambda t, v, s: t.body({"code": f"NOSUCHVOUCHER{s:05d}"}),
        (404, "unknown_voucher"),
    ),
    Case(
        "general for a car at a restaurant",
        "general",
        lambda t, v, s: t.body(v, category="cars"),
        (403, "out_of_scope"),
    ),
    Case("anyue at a Yanjiang restaurant", "anyue", lambda t, v, s: t.body(v), (403, "out_of_scope")),
    Case(
        "anyue at a restaurant of the wrong class",
        "anyue",
        lambda t, v, s: t.body(v, "anyue_below"),
        (403, "out_of_scope"),
    ),
    *(
        Case(
            f"a suspended merchant {n}",
            "general",
            lambda t, v, s: t.body(v, "suspended"),
            (403, "merchant_not_active"),
        )
        for n in range(2)
    ),
    *(
        Case(
            f"another merchant's terminal {n}",
            "general",
            lambda t, v, s: t.body(v, terminal_id=t.terminals["retail"]),
            (403, "unknown_terminal"),
        )
        for n in range(2)
    ),
    Case(
        "a merchant that does not exist",
        "general",
        lambda t, v, s: t.body(v, merchant_id="mch_nobody"),
        (404, "unknown_merchant"),
    ),
    Case(
        "a car without invoices",
        "cars",
        lambda t, v, s: t.body(v, "cars", category="cars", order_amount_fen=8_000_000),
        (422, "invoice_required"),
    ),
    Case("a revoked voucher", "general", lambda t, v, s: t.body(v), (409, "voucher_revoked")),
    Case("a voucher spent yesterday", "general", lambda t, v, s: t.body(v), (409, "voucher_used")),
]


async def prepared(
    till: Till, sessions: async_sessionmaker[AsyncSession], serial: int
) -> list[tuple[Body, Body]]:
    """A voucher (or none) and the request body of every case; the revoked voucher revoked, the spent one
    spent (at a merchant whose cap the cases do not touch)."""
    prepared = []
    for index, case in enumerate(MIXED):
        voucher = await till.voucher(case.batch) if case.batch else {}
        prepared.append((voucher, case.body(till, voucher, serial * 100 + index)))
        if case.expected == (409, "voucher_revoked"):
            async with unit_of_work(sessions) as session:
                await session.execute(
                    update(VoucherRow).where(VoucherRow.id == voucher["voucher_id"]).values(status="revoked")
                )
        if case.expected == (409, "voucher_used"):
            spent = await till.redeem(till.body(voucher, "anyue_above"))
            assert spent.status_code == 201, spent.text
    return prepared


def comparable(response: httpx.Response) -> Body:
    """An answer without what differs between two equal requests: the ids, and the instant but for
    its format."""
    answer = dict(response.json())
    if response.status_code == 201:
        for name in ("redemption_id", "voucher_id"):
            answer.pop(name)
        answer["redeemed_at"] = re.sub(r"\d", "0", answer["redeemed_at"])
    return answer


async def test_a_mixed_pass_answers_each_request_as_it_is_answered_alone(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    passes: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batched, alone = await prepared(till, sessions, 1), await prepared(till, sessions, 2)
    before = await redemptions(sessions)
    counts_before = await day_counts(sessions)
    events_before = await redeemed_events(sessions)
    vouchers_events_before = await voucher_redeemed_events(sessions)
    keys = [f"mixed-{index:04d}" for index in range(len(MIXED))]
    passes.clear()

    responses = await gather_redeem(till, [(body, key) for (_, body), key in zip(batched, keys, strict=True)])

    # one pass decided every request but the car with its invoices (which goes one at a time)
    assert len(passes) == 1
    assert sorted(passes[0]) == sorted(
        key for key, (_, body) in zip(keys, batched, strict=True) if "invoice" not in body
    )
    got = {case.name: outcome(response) for case, response in zip(MIXED, responses, strict=True)}
    assert got == {case.name: case.expected for case in MIXED}

    # the database holds exactly the 201s' effects
    after = await redemptions(sessions)
    new = assert_effects_are_the_201s(
        before, after, [(body, r) for (_, body), r in zip(batched, responses, strict=True)]
    )
    assert len(new) == sum(case.expected == REDEEMED for case in MIXED) == 14
    statuses = await voucher_statuses(sessions, *(voucher["voucher_id"] for voucher, _ in batched if voucher))
    for case, (voucher, _) in zip(MIXED, batched, strict=True):
        if not voucher:
            continue
        expected_status = {
            REDEEMED: "redeemed",
            (409, "voucher_revoked"): "revoked",
            (409, "voucher_used"): "redeemed",
        }.get(case.expected, "claimed")
        assert statuses[voucher["voucher_id"]] == expected_status, case.name
    events = await redeemed_events(sessions)
    assert sorted(rid for eid, rid in events.items() if eid not in events_before) == sorted(new)
    assert await voucher_redeemed_events(sessions) - vouchers_events_before == Counter(
        row.voucher_id for row in new.values()
    )
    day = local_date(till.clock.now())
    counted = {key: value - counts_before.get(key, 0) for key, value in (await day_counts(sessions)).items()}
    assert {key: value for key, value in counted.items() if value} == {
        (till.merchants["catering"], till.batches["general"], day): 3,
        (till.merchants["retail"], till.batches["general"], day): 2,
    }
    # every answer is kept under its key, refusals too, and replays identically
    stored = await stored_answers(sessions)
    for key, response in zip(keys, responses, strict=True):
        assert stored[key] == ("done", response.status_code, response.json()), key
    passes.clear()
    replays = await gather_redeem(till, [(body, key) for (_, body), key in zip(batched, keys, strict=True)])
    for case, first, replay in zip(MIXED, responses, replays, strict=True):
        assert (replay.status_code, replay.json()) == (first.status_code, first.json()), case.name
    assert set(await redemptions(sessions)) == set(after)
    assert len(await redeemed_events(sessions)) == len(events)

    # the twin requests, each alone on the one-at-a-time path (another day: the caps start again)
    till.clock.advance(timedelta(days=1))

    async def refused(session: AsyncSession, items: list[Any], now: Any) -> Any:
        raise refused_as_a_whole()

    monkeypatch.setattr(batching, "_decide_pass", refused)
    for case, (_, body), first in zip(MIXED, alone, responses, strict=True):
        response = await till.redeem(body)
        assert outcome(response) == case.expected, case.name
        assert comparable(response) == comparable(first), case.name


# --- requests of one pass that must not be decided together ----------------------------------------------


async def test_one_voucher_sent_many_times_in_one_pass_is_spent_once(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    voucher, other = await till.voucher(), await till.voucher()
    # as printed, as typed (grouped, lower case) and as scanned: one voucher, whatever the till sends
    forms = [voucher["code"], voucher["code_display"].lower(), voucher["qr_payload"]]
    copies = [
        (
            till.body({"code": forms[index % 3]}, ("catering", "catering_2")[index % 2]),
            f"copy-{index:04d}",
        )
        for index in range(6)
    ]
    requests = [*copies, (till.body(other, "catering_2"), "other-0001")]
    passes.clear()
    responses = await gather_redeem(till, requests)

    assert sorted(passes[0]) == sorted(key for _, key in requests)  # all arrived in one pass
    outcomes = [outcome(response) for response in responses]
    assert Counter(outcomes[:6]) == {REDEEMED: 1, (409, "voucher_used"): 5}
    assert outcomes[6] == REDEEMED  # the other voucher of the pass is not held back
    rows = await redemptions(sessions)
    assert Counter(row.voucher_id for row in rows.values()) == {
        voucher["voucher_id"]: 1,
        other["voucher_id"]: 1,
    }
    assert_effects_are_the_201s(
        {}, rows, [(body, response) for (body, _), response in zip(requests, responses, strict=True)]
    )
    assert await voucher_redeemed_events(sessions) == {voucher["voucher_id"]: 1, other["voucher_id"]: 1}
    stored = await stored_answers(sessions)
    for (_, key), response in zip(requests, responses, strict=True):
        assert stored[key] == ("done", response.status_code, response.json())
    # and the loser's retry gets its refusal again, not a second chance
    loser = next(index for index, got in enumerate(outcomes) if got != REDEEMED)
    again = await till.redeem(requests[loser][0], key=requests[loser][1])
    assert (again.status_code, again.json()) == (responses[loser].status_code, responses[loser].json())


async def test_one_key_with_two_bodies_in_one_pass_has_one_effect(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    first, second = await till.voucher(), await till.voucher()
    bodies = [till.body(first), till.body(second, "catering_2")]
    passes.clear()
    responses = await gather_redeem(till, [(body, "shared-key-0001") for body in bodies])

    assert passes[0] == ["shared-key-0001", "shared-key-0001"]
    assert sorted(outcome(response) for response in responses) == [REDEEMED, (422, "idempotency_mismatch")]
    won = next(index for index, response in enumerate(responses) if response.status_code == 201)
    winner, loser = bodies[won], bodies[1 - won]
    rows = await redemptions(sessions)
    assert [row.voucher_id for row in rows.values()] == [responses[won].json()["voucher_id"]]
    assert rows[responses[won].json()["redemption_id"]].merchant_id == winner["merchant_id"]
    statuses = await voucher_statuses(sessions, first["voucher_id"], second["voucher_id"])
    assert sorted(statuses.values()) == ["claimed", "redeemed"]
    assert (await stored_answers(sessions))["shared-key-0001"] == ("done", 201, responses[won].json())
    # the key keeps its own request's answer: the winner's body replays it, the loser's is a mismatch
    replay = await till.redeem(winner, key="shared-key-0001")
    assert (replay.status_code, replay.json()) == (201, responses[won].json())
    mismatch = await till.redeem(loser, key="shared-key-0001")
    assert outcome(mismatch) == (422, "idempotency_mismatch")


async def test_one_key_with_the_same_body_in_one_pass_replays_the_one_answer(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    voucher = await till.voucher()
    body = till.body(voucher)
    passes.clear()
    responses = await gather_redeem(till, [(body, "same-key-0001")] * 4)

    assert passes[0] == ["same-key-0001"] * 4
    assert [response.status_code for response in responses] == [201] * 4
    assert all(response.json() == responses[0].json() for response in responses)
    rows = await redemptions(sessions)
    assert list(rows) == [responses[0].json()["redemption_id"]]
    assert len(await redeemed_events(sessions)) == 1


async def test_the_daily_cap_is_reached_inside_one_pass(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    earlier = await till.voucher()
    assert (await till.redeem(till.body(earlier))).status_code == 201  # one of the 3 already today
    general = [await till.voucher() for _ in range(4)]
    gross = [await till.voucher("gross") for _ in range(2)]  # another batch: no cap
    elsewhere = [await till.voucher() for _ in range(2)]  # the same batch at another merchant
    requests = [
        *((till.body(voucher), f"capped-{index:04d}") for index, voucher in enumerate(general)),
        *((till.body(voucher), f"gross-{index:04d}") for index, voucher in enumerate(gross)),
        *(
            (till.body(voucher, "catering_2"), f"there-{index:04d}")
            for index, voucher in enumerate(elsewhere)
        ),
    ]
    before = await redemptions(sessions)
    passes.clear()
    responses = await gather_redeem(till, requests)

    assert sorted(passes[0]) == sorted(key for _, key in requests)
    outcomes = [outcome(response) for response in responses]
    assert Counter(outcomes[:4]) == {REDEEMED: 2, (409, "merchant_daily_cap"): 2}
    assert outcomes[4:] == [REDEEMED] * 4
    assert_effects_are_the_201s(
        before,
        await redemptions(sessions),
        [(body, response) for (body, _), response in zip(requests, responses, strict=True)],
    )
    day = local_date(till.clock.now())
    assert await day_counts(sessions) == {
        (till.merchants["catering"], till.batches["general"], day): 3,
        (till.merchants["catering_2"], till.batches["general"], day): 2,
    }
    refused = [voucher for voucher, got in zip(general, outcomes[:4], strict=True) if got != REDEEMED]
    statuses = await voucher_statuses(sessions, *(voucher["voucher_id"] for voucher in general))
    assert sorted(statuses.values()) == ["claimed", "claimed", "redeemed", "redeemed"]
    assert all(statuses[voucher["voucher_id"]] == "claimed" for voucher in refused)
    stored = await stored_answers(sessions)
    for (_, key), response in zip(requests, responses, strict=True):
        assert stored[key] == ("done", response.status_code, response.json())
    # the refused vouchers are still the resident's to spend: at another merchant, at once
    again = await gather_redeem(
        till,
        [
            (till.body(voucher, "retail", category="retail"), f"moved-{n:04d}")
            for n, voucher in enumerate(refused)
        ],
    )
    assert [outcome(response) for response in again] == [REDEEMED, REDEEMED]
    # and the capped merchant stays capped for the day
    late = await till.voucher()
    assert outcome(await till.redeem(till.body(late))) == (409, "merchant_daily_cap")


async def test_one_order_at_one_merchant_takes_one_voucher_even_within_one_pass(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    first, second, third = await till.voucher(), await till.voucher(), await till.voucher()
    requests = [
        (till.body(first, order_ref="POS-0001"), "order-a-0001"),
        (till.body(second, order_ref="POS-0001"), "order-b-0001"),
        (till.body(third, "catering_2", order_ref="POS-0001"), "order-c-0001"),  # another merchant's order
    ]
    passes.clear()
    responses = await gather_redeem(till, requests)

    assert sorted(passes[0]) == sorted(key for _, key in requests)
    outcomes = [outcome(response) for response in responses]
    assert sorted(outcomes[:2]) == [REDEEMED, (409, "one_voucher_per_purchase")]
    assert outcomes[2] == REDEEMED
    rows = await redemptions(sessions)
    assert_effects_are_the_201s(
        {}, rows, [(body, response) for (body, _), response in zip(requests, responses, strict=True)]
    )
    assert sorted((row.merchant_id, row.order_ref) for row in rows.values()) == sorted(
        [(till.merchants["catering"], "POS-0001"), (till.merchants["catering_2"], "POS-0001")]
    )
    lost = [first, second][outcomes.index((409, "one_voucher_per_purchase"))]
    assert (await voucher_statuses(sessions, lost["voucher_id"]))[lost["voucher_id"]] == "claimed"
    # the voucher is still good for the next purchase
    assert outcome(await till.redeem(till.body(lost, order_ref="POS-0002"))) == REDEEMED


async def test_the_same_key_from_two_partners_is_two_requests(
    till: Till,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    passes: list[list[str]],
) -> None:
    async with unit_of_work(sessions) as session:
        created = await create_partner(
            session,
            name="another till",
            kind=PartnerKind.TERMINAL,
            sealer=partner_sealer(settings.secret_key.get_secret_value()),
            clock=till.clock,
        )
    other = SignedClient(client, key_id=created.partner.key_id, secret=created.secret, clock=till.clock)
    ours, theirs, later = await till.voucher(), await till.voucher(), await till.voucher()

    async def as_other(body: Body) -> httpx.Response:
        return await other.post("/api/v1/redemptions", body, **{"Idempotency-Key": "till-0001-order-1"})

    # both keys known to the worker already (as after their first request), so both arrive at once
    for signer in (till.terminal, other):
        assert (await signer.get("/api/v1/redemptions/rdm_nothing")).status_code == 404
    passes.clear()
    mine, foreign = await asyncio.gather(
        till.redeem(till.body(ours), key="till-0001-order-1"), as_other(till.body(theirs, "catering_2"))
    )
    assert passes[0] == ["till-0001-order-1", "till-0001-order-1"]  # one pass, not deferred
    assert (mine.status_code, foreign.status_code) == (201, 201)
    assert (mine.json()["voucher_id"], foreign.json()["voucher_id"]) == (
        ours["voucher_id"],
        theirs["voucher_id"],
    )
    # each partner's key keeps its own answer: a replay, and in a later pass a mismatch, never the other's
    replays = await asyncio.gather(
        till.redeem(till.body(ours), key="till-0001-order-1"), as_other(till.body(theirs, "catering_2"))
    )
    assert [replay.json() for replay in replays] == [mine.json(), foreign.json()]
    late = await as_other(till.body(later))
    assert outcome(late) == (422, "idempotency_mismatch")
    assert len(await redemptions(sessions)) == 2


async def test_passes_decided_at_once_agree_on_vouchers_caps_and_orders(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    passes: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More requests than a pass takes: the rest wait for the next passes, which on PostgreSQL run two at
    a time, in parallel transactions that meet on the voucher rows, the day counters and the orders."""
    monkeypatch.setattr(batching, "MAX_BATCH", 3)
    monkeypatch.setattr(batching, "_ANOTHER_PASS_AT", 1)  # a second pass beside the first at once
    general = [await till.voucher() for _ in range(6)]
    shared = await till.voucher("gross")
    orders = [await till.voucher() for _ in range(2)]
    requests = [
        *((till.body(voucher), f"cap-{n:04d}") for n, voucher in enumerate(general)),
        *((till.body(shared, ("catering", "catering_2")[n % 2]), f"shared-{n:04d}") for n in range(5)),
        *(
            (till.body(voucher, "catering_2", order_ref="POS-0042"), f"order-{n:04d}")
            for n, voucher in enumerate(orders)
        ),
    ]
    order = [index * 5 % len(requests) for index in range(len(requests))]  # interleaved (13 is prime)
    assert len(requests) == 13
    passes.clear()
    shuffled = await gather_redeem(till, [requests[index] for index in order])
    responses = [shuffled[order.index(index)] for index in range(len(requests))]

    assert len(passes) >= 5
    assert max(len(keys) for keys in passes) == 3
    outcomes = [outcome(response) for response in responses]
    assert Counter(outcomes[:6]) == {REDEEMED: 3, (409, "merchant_daily_cap"): 3}
    assert Counter(outcomes[6:11]) == {REDEEMED: 1, (409, "voucher_used"): 4}
    assert sorted(outcomes[11:]) == [REDEEMED, (409, "one_voucher_per_purchase")]
    rows = assert_effects_are_the_201s(
        {},
        await redemptions(sessions),
        [(body, response) for (body, _), response in zip(requests, responses, strict=True)],
    )
    assert len(rows) == 5
    day = local_date(till.clock.now())
    assert await day_counts(sessions) == {
        (till.merchants["catering"], till.batches["general"], day): 3,
        (till.merchants["catering_2"], till.batches["general"], day): 1,
    }
    stored = await stored_answers(sessions)
    for (_, key), response in zip(requests, responses, strict=True):
        assert stored[key] == ("done", response.status_code, response.json()), key


# --- the money ----------------------------------------------------------------------------------------


async def test_the_ledger_holds_to_the_fen_after_batched_passes(
    till: Till, sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    await fund(sessions, till, till.clock)
    general = [await till.voucher() for _ in range(10)]
    gross = [await till.voucher("gross") for _ in range(2)]
    pct = await till.voucher("pct")
    # a general voucher reserves 30 (70 % fiscal, 30 % social), a gross one 30 fiscal, the 10 % one its cap
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        "budget:fiscal": 800_000_00 - 2_100 * 10 - 3_000 * 2 - 5_000,
        "budget:social": 200_000_00 - 900 * 10,
        "vouchers:fiscal": 2_100 * 10 + 3_000 * 2 + 5_000,
        "vouchers:social": 900 * 10,
    }

    first_pass = [
        *((till.body(voucher), f"meal-{n:04d}") for n, voucher in enumerate(general[:5])),  # 2 over the cap
        *((till.body(voucher, "catering_2"), f"meal2-{n:04d}") for n, voucher in enumerate(general[5:8])),
        *(
            (till.body(voucher, "retail", category="retail"), f"shop-{n:04d}")
            for n, voucher in enumerate(general[8:])
        ),
        *(
            (till.body(voucher, merchant_discount_fen=2_500), f"gross-{n:04d}")
            for n, voucher in enumerate(gross)
        ),
        (
            till.body(pct, "retail", category="retail", order_amount_fen=30_000, merchant_discount_fen=2_000),
            "pct-0001",
        ),
    ]
    passes.clear()
    responses = await gather_redeem(till, first_pass)
    assert len(passes) == 1
    outcomes = [outcome(response) for response in responses]
    assert Counter(outcomes) == {REDEEMED: 11, (409, "merchant_daily_cap"): 2}
    assert [response.json()["subsidy_fen"] for response in responses[-3:]] == [3_000, 3_000, 2_800]
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        # the 10 % voucher paid 28 of its 50: 22 back to the budget
        "budget:fiscal": 800_000_00 - 2_100 * 10 - 3_000 * 2 - 5_000 + 2_200,
        "budget:social": 200_000_00 - 900 * 10,
        "vouchers:fiscal": 2_100 * 2,
        "vouchers:social": 900 * 2,
        "payable:catering": 3_000 * 3 + 3_000 * 2,
        "payable:catering_2": 3_000 * 3,
        "payable:retail": 3_000 * 2 + 2_800,
    }

    # a batched redemption refunds like any other: in full, the voucher is back with its 30
    meal = next(response.json() for response in responses[:5] if response.status_code == 201)
    refund = await till.refund(meal["redemption_id"], 12_000)
    assert (refund.status_code, refund.json()["voucher_restored"]) == (201, True)
    back = [voucher for voucher in general[:5] if voucher["voucher_id"] == meal["voucher_id"]]
    capped = [voucher for voucher, got in zip(general[:5], outcomes[:5], strict=True) if got != REDEEMED]
    second = await gather_redeem(
        till,
        [(till.body(voucher, "anyue_above"), f"anyue-{n:04d}") for n, voucher in enumerate(capped + back)],
    )
    assert [outcome(response) for response in second] == [REDEEMED] * 3
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        "budget:fiscal": 800_000_00 - 2_100 * 10 - 3_000 * 2 - 5_000 + 2_200,
        "budget:social": 200_000_00 - 900 * 10,
        "payable:catering": 3_000 * 2 + 3_000 * 2,
        "payable:catering_2": 3_000 * 3,
        "payable:retail": 3_000 * 2 + 2_800,
        "payable:anyue_above": 3_000 * 3,
    }


# --- a pass the database refuses as a whole -------------------------------------------------------------


async def test_a_pass_refused_as_a_whole_is_decided_one_at_a_time_with_the_same_answers(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    passes: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await fund(sessions, till, till.clock)
    general = [await till.voucher() for _ in range(7)]
    gross, below, twice = await till.voucher("gross"), await till.voucher(), await till.voucher()
    requests = [
        *((till.body(voucher), f"cap-{n:04d}") for n, voucher in enumerate(general[:4])),  # one over the cap
        *(
            (till.body(voucher, "catering_2", order_ref="POS-0007"), f"order-{n:04d}")
            for n, voucher in enumerate(general[4:6])
        ),
        (till.body(general[6], "catering_2", order_ref="POS-0008"), "order-0002"),
        (till.body(gross, merchant_discount_fen=2_500), "gross-0001"),
        (till.body(below, order_amount_fen=9_999), "below-0001"),
        (till.body({"code": mistyped(below["code"])}), "unknown-0001"),
        *((till.body(twice, "retail", category="retail"), f"twice-{n:04d}") for n in range(2)),
    ]
    # the pass writes everything, then the database refuses it (as a unique index or a deadlock does)
    monkeypatch.setattr(batching, "_write", fails_once(batching._write, refused_as_a_whole()))
    passes.clear()
    with caplog.at_level(logging.INFO, logger="huimin.redemptions.batching"):
        responses = await gather_redeem(till, requests)

    assert len(passes) == 1
    assert sorted(passes[0]) == sorted(key for _, key in requests)
    assert any("one at a time" in record.getMessage() for record in caplog.records)
    outcomes = [outcome(response) for response in responses]
    assert Counter(outcomes[:4]) == {REDEEMED: 3, (409, "merchant_daily_cap"): 1}
    assert sorted(outcomes[4:6]) == [REDEEMED, (409, "one_voucher_per_purchase")]
    assert outcomes[6:10] == [REDEEMED, REDEEMED, (422, "below_threshold"), (404, "unknown_voucher")]
    assert sorted(outcomes[10:]) == [REDEEMED, (409, "voucher_used")]

    # nothing of the refused pass is left: exactly one redemption, one event, one count per 201
    rows = assert_effects_are_the_201s(
        {},
        await redemptions(sessions),
        [(body, response) for (body, _), response in zip(requests, responses, strict=True)],
    )
    assert len(rows) == 7
    assert sorted((await redeemed_events(sessions)).values()) == sorted(rows)
    assert await voucher_redeemed_events(sessions) == Counter(row.voucher_id for row in rows.values())
    day = local_date(till.clock.now())
    assert await day_counts(sessions) == {
        (till.merchants["catering"], till.batches["general"], day): 3,
        (till.merchants["catering_2"], till.batches["general"], day): 2,
        (till.merchants["retail"], till.batches["general"], day): 1,
    }
    statuses = await voucher_statuses(
        sessions, *(voucher["voucher_id"] for voucher in [*general, gross, below, twice])
    )
    assert Counter(statuses.values()) == {"redeemed": 7, "claimed": 3}
    stored = await stored_answers(sessions)
    assert set(stored) == {key for _, key in requests}
    for (_, key), response in zip(requests, responses, strict=True):
        assert stored[key] == ("done", response.status_code, response.json()), key
    assert await ledger_problems(sessions, till) == []


async def test_duplicates_in_a_pass_refused_as_a_whole_still_have_one_effect_per_key(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-at-a-time path decides a refused pass's duplicates after their twins, as the next pass
    would: the copy gets the stored answer, the other body the mismatch; never a second effect."""
    again, first, second = await till.voucher(), await till.voucher(), await till.voucher()
    requests = [
        (till.body(again), "dup-same-0001"),
        (till.body(again), "dup-same-0001"),
        (till.body(first), "dup-diff-0001"),
        (till.body(second, "catering_2"), "dup-diff-0001"),
    ]
    monkeypatch.setattr(batching, "_write", fails_once(batching._write, refused_as_a_whole()))
    responses = await gather_redeem(till, requests)

    same, diff = responses[:2], responses[2:]
    assert [response.status_code for response in same] == [201, 201]
    assert same[1].json() == same[0].json()
    assert [outcome(response) for response in diff] == [REDEEMED, (422, "idempotency_mismatch")]
    rows = await redemptions(sessions)
    assert sorted(str(row.idempotency_key) for row in rows.values()) == ["dup-diff-0001", "dup-same-0001"]
    # the retries get the one answer of each key
    created = next(response.json() for response in same if response.status_code == 201)
    assert created["redemption_id"] in rows
    for body, key in requests[:2]:
        replay = await till.redeem(body, key=key)
        assert (replay.status_code, replay.json()) == (201, created)
    won = next(index for index, response in enumerate(diff) if response.status_code == 201)
    assert outcome(await till.redeem(*requests[2 + (1 - won)])) == (422, "idempotency_mismatch")
    replay = await till.redeem(*requests[2 + won])
    assert (replay.status_code, replay.json()) == (201, diff[won].json())


@pytest.mark.postgres
async def test_an_order_taken_by_another_pass_meanwhile_sends_the_pass_one_at_a_time(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    passes: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real unique violation: another pass of the worker (PostgreSQL runs two at once) redeems the
    same order after this pass checked its orders and before it writes."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one pass at a time: no other pass can commit in between")
    await fund(sessions, till, till.clock)
    ours, meal, gross, rival = (
        await till.voucher(),
        await till.voucher(),
        await till.voucher("gross"),
        await till.voucher(),
    )
    requests = [
        (till.body(ours, "catering_2", order_ref="POS-RACE"), "ours-0001"),
        (till.body(meal), "meal-0001"),
        (till.body(gross, merchant_discount_fen=2_500, order_ref="POS-OTHER"), "gross-0001"),
    ]
    rival_body = till.body(rival, "catering_2", order_ref="POS-RACE")
    rivals: list[httpx.Response] = []
    real = batching._take_vouchers

    async def race(*args: Any) -> Any:
        if not rivals and passes and "ours-0001" in passes[0]:
            rivals.append(httpx.Response(0))  # taken: the rival's own pass comes through here too
            rivals[0] = await till.redeem(rival_body, key="rival-0001")
        return await real(*args)

    monkeypatch.setattr(batching, "_take_vouchers", race)
    monkeypatch.setattr(batching, "_ANOTHER_PASS_AT", 1)  # the rival's pass runs beside ours
    passes.clear()
    with caplog.at_level(logging.INFO, logger="huimin.redemptions.batching"):
        responses = await gather_redeem(till, requests)

    assert outcome(rivals[0]) == REDEEMED
    assert passes[:2] == [[key for _, key in requests], ["rival-0001"]]
    assert any("one at a time" in record.getMessage() for record in caplog.records)
    assert [outcome(response) for response in responses] == [
        (409, "one_voucher_per_purchase"),
        REDEEMED,
        REDEEMED,
    ]
    rows = await redemptions(sessions)
    assert_effects_are_the_201s(
        {},
        rows,
        [
            (rival_body, rivals[0]),
            *((body, response) for (body, _), response in zip(requests, responses, strict=True)),
        ],
    )
    assert (await voucher_statuses(sessions, ours["voucher_id"]))[ours["voucher_id"]] == "claimed"
    day = local_date(till.clock.now())
    assert await day_counts(sessions) == {
        (till.merchants["catering_2"], till.batches["general"], day): 1,
        (till.merchants["catering"], till.batches["general"], day): 1,
    }
    stored = await stored_answers(sessions)
    assert stored["ours-0001"] == ("done", 409, responses[0].json())
    assert await ledger_problems(sessions, till) == []


# --- the database out of reach ------------------------------------------------------------------------


async def test_a_pass_that_cannot_reach_the_database_answers_503_and_writes_nothing(
    till: Till, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    vouchers = [await till.voucher() for _ in range(3)]
    car = await till.voucher("cars")
    requests = [
        *((till.body(voucher), f"cut-{n:04d}") for n, voucher in enumerate(vouchers)),
        (
            till.body(
                car, "cars", category="cars", order_amount_fen=8_000_000, invoice=car_invoice(1, 8_000_000)
            ),
            "cut-car-0001",
        ),
    ]
    # the signature is checked (keys and nonces in the reachable database); the till's database is cut
    engine = create_engine(UNREACHABLE)
    reachable = app.state.till
    app.state.till = TillBatcher(create_sessionmaker(engine), till.clock, publish_to=None, passes=2)
    try:
        responses = await gather_redeem(till, requests)
    finally:
        app.state.till = reachable
        await engine.dispose()
    for response in responses:
        assert (response.status_code, response.json()["code"]) == (503, "database_unavailable"), response.text
        assert response.headers["retry-after"] == "2"
    assert await redemptions(sessions) == {}
    assert await stored_answers(sessions) == {}
    statuses = await voucher_statuses(sessions, *(voucher["voucher_id"] for voucher in [*vouchers, car]))
    assert set(statuses.values()) == {"claimed"}

    # back in reach, the clients' retries (same keys) are decided as new
    retries = await gather_redeem(till, requests)
    assert [outcome(response) for response in retries] == [REDEEMED] * 4


@pytest.mark.postgres
async def test_a_connection_lost_in_the_middle_of_a_pass_leaves_nothing_half_written(
    till: Till,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    passes: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("an SQLite file has no connection to lose")
    vouchers = [await till.voucher() for _ in range(3)]
    requests = [
        (till.body(voucher, order_ref=f"POS-{n}"), f"lost-{n:04d}") for n, voucher in enumerate(vouchers)
    ]
    real = batching._within_daily_caps
    killed: list[int] = []

    async def server_dies(connection: AsyncConnection, *args: Any) -> Any:
        if not killed:  # the vouchers are taken (in the transaction): now the server drops the connection
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            killed.append(pid)
            admin = await asyncpg.connect(
                make_url(settings.database_url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
            )
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            finally:
                await admin.close()
        return await real(connection, *args)

    monkeypatch.setattr(batching, "_within_daily_caps", server_dies)
    passes.clear()
    responses = await gather_redeem(till, requests)

    assert killed
    assert len(passes) == 1
    for response in responses:
        assert (response.status_code, response.json()["code"]) == (503, "database_unavailable"), response.text
    assert await redemptions(sessions) == {}
    assert await stored_answers(sessions) == {}
    assert await day_counts(sessions) == {}
    statuses = await voucher_statuses(sessions, *(voucher["voucher_id"] for voucher in vouchers))
    assert set(statuses.values()) == {"claimed"}
    # the pool connects afresh; the retries are decided as new
    retries = await gather_redeem(till, requests)
    assert [outcome(response) for response in retries] == [REDEEMED] * 3
    assert len(await redemptions(sessions)) == 3


# --- risk events ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with redis_process(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def redis_till(
    database_url: str,
    redis_server: RedisProcess,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[tuple[Till, Redis]]:
    """A till on an app with Redis configured (nonces there, risk events published to its streams)."""
    settings = Settings(database_url=database_url, redis_url=redis_server.url)
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            redis = Redis.from_url(redis_server.url)
            try:
                yield await open_till(http, sessions, settings, clock), redis
            finally:
                await redis.aclose()


async def published(redis: Redis, expected: int) -> list[int]:
    """The redemption events on the stream, once there are `expected` (publishing follows the answers)."""
    deadline = time.monotonic() + 3
    while True:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream_name(Source.REDEMPTIONS))
        )
        if len(entries) >= expected or time.monotonic() > deadline:
            return [int(fields[b"id"]) for _, fields in entries]
        await asyncio.sleep(0.02)


async def test_a_batched_pass_publishes_its_redemption_events_to_the_risk_stream(
    redis_till: tuple[Till, Redis], sessions: async_sessionmaker[AsyncSession], passes: list[list[str]]
) -> None:
    till, redis = redis_till
    vouchers = [await till.voucher() for _ in range(4)]
    car, below = await till.voucher("cars"), await till.voucher()
    requests = [
        *(
            (till.body(voucher, ("catering", "catering_2")[n % 2]), f"risk-{n:04d}")
            for n, voucher in enumerate(vouchers)
        ),
        (
            till.body(
                car, "cars", category="cars", order_amount_fen=8_000_000, invoice=car_invoice(3, 8_000_000)
            ),
            "risk-car-0001",
        ),
        (till.body(below, order_amount_fen=9_999), "risk-below-0001"),
    ]
    passes.clear()
    responses = await gather_redeem(till, requests)

    assert [outcome(response) for response in responses] == [REDEEMED] * 5 + [(422, "below_threshold")]
    assert len(passes) == 1
    assert len(passes[0]) == 5
    events = await redeemed_events(sessions)
    assert sorted(events.values()) == sorted(response.json()["redemption_id"] for response in responses[:5])
    ids = await published(redis, len(events))
    assert sorted(ids) == sorted(events)  # every event once, the pass's and the car's

    # replayed answers wrote nothing, so publish nothing
    replays = await gather_redeem(till, requests)
    assert [replay.json() for replay in replays] == [response.json() for response in responses]
    await asyncio.sleep(0.3)
    assert sorted(await published(redis, 0)) == sorted(events)
