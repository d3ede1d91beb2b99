"""`run_once` on SQLite and PostgreSQL: one effect per (partner, Idempotency-Key), the stored answer to
every retry, refusals kept, nothing left behind by a request that fails, duplicates in flight refused."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.models import PartnerNonceRow
from huimin.auth.service import create_partner, partner_sealer
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.idempotency.service import LEASE, Answer, run_once
from huimin.kit.clock import ManualClock

KEY = "purchase-0001"
DIGEST = "a" * 64


@pytest.fixture
async def partner_id(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> str:
    async with unit_of_work(sessions) as session:
        created = await create_partner(
            session, name="till", kind=PartnerKind.TERMINAL, sealer=partner_sealer("k" * 40), clock=clock
        )
    return created.partner.id


class Effects:
    """A unit of work that leaves a row behind (a nonce row stands in for a redemption) and answers."""

    def __init__(self, partner_id: str) -> None:
        self.partner_id = partner_id
        self.calls = 0

    def work(
        self, *, refuse: HuiminError | Exception | None = None
    ) -> Callable[[AsyncSession], Awaitable[Answer]]:
        async def run(session: AsyncSession) -> Answer:
            self.calls += 1
            effect = f"effect-{secrets.token_hex(8)}"
            await session.execute(
                insert(PartnerNonceRow).values(partner_id=self.partner_id, nonce=effect, seen_at=_NOW)
            )
            if refuse is not None:
                raise refuse
            return 201, {"effect": effect}

        return run


_NOW = datetime(2022, 6, 24, 2, 0, tzinfo=UTC)


async def count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with unit_of_work(sessions) as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def once(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    partner_id: str,
    work: Callable[[AsyncSession], Awaitable[Answer]],
    *,
    digest: str = DIGEST,
) -> Answer:
    return await run_once(sessions, partner_id=partner_id, key=KEY, digest=digest, clock=clock, work=work)


async def test_a_retry_gets_the_stored_answer_without_a_second_effect(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str
) -> None:
    effects = Effects(partner_id)
    first = await once(sessions, clock, partner_id, effects.work())
    again = await once(sessions, clock, partner_id, effects.work())
    assert first[0] == 201
    assert again == first
    assert effects.calls == 1
    assert await count(sessions, PartnerNonceRow) == 1


async def test_the_same_key_for_another_request_is_refused(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str
) -> None:
    effects = Effects(partner_id)
    await once(sessions, clock, partner_id, effects.work())
    with pytest.raises(HuiminError) as refused:
        await once(sessions, clock, partner_id, effects.work(), digest="b" * 64)
    assert (refused.value.status, refused.value.code) == (422, "idempotency_mismatch")


async def test_a_refusal_is_the_answer_and_its_work_leaves_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str
) -> None:
    effects = Effects(partner_id)
    with pytest.raises(HuiminError):
        await once(
            sessions, clock, partner_id, effects.work(refuse=HuiminError("gone", code="sold_out", status=409))
        )
    status, body = await once(sessions, clock, partner_id, effects.work())
    assert (status, body["code"]) == (409, "sold_out")
    assert effects.calls == 1
    assert await count(sessions, PartnerNonceRow) == 0  # the refused work rolled back


@pytest.mark.parametrize(
    "failure",
    [
        HuiminError("not yet", code="round_not_open", status=409, final=False),
        HuiminError("pool exhausted", code="busy", status=503),
        RuntimeError("the worker died"),
    ],
    ids=["try-later refusal", "5xx", "crash"],
)
async def test_a_request_that_fails_leaves_the_key_free_at_once(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str, failure: Exception
) -> None:
    effects = Effects(partner_id)
    with pytest.raises(type(failure)):
        await once(sessions, clock, partner_id, effects.work(refuse=failure))
    assert await count(sessions, IdempotencyKeyRow) == 0
    # no reservation to wait out: the client's retry does the work
    assert (await once(sessions, clock, partner_id, effects.work()))[0] == 201
    assert effects.calls == 2
    assert await count(sessions, PartnerNonceRow) == 1


async def test_a_reservation_abandoned_by_an_earlier_version_is_taken_over_after_the_lease(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            IdempotencyKeyRow(
                partner_id=partner_id,
                key=KEY,
                request_digest=DIGEST,
                state="in_progress",
                created_at=clock.now(),
                locked_at=clock.now(),
            )
        )
    effects = Effects(partner_id)
    with pytest.raises(HuiminError) as busy:
        await once(sessions, clock, partner_id, effects.work())
    assert busy.value.code == "idempotency_in_progress"
    clock.advance(LEASE)
    assert (await once(sessions, clock, partner_id, effects.work()))[0] == 201
    assert effects.calls == 1


async def test_parallel_copies_of_one_request_have_one_effect(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str
) -> None:
    effects = Effects(partner_id)
    outcomes = await asyncio.gather(
        *(once(sessions, clock, partner_id, effects.work()) for _ in range(10)), return_exceptions=True
    )
    answers = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    refused = Counter(outcome.code for outcome in outcomes if isinstance(outcome, HuiminError))
    assert answers
    assert len({body["effect"] for _, body in answers}) == 1
    assert set(refused) <= {"idempotency_in_progress"}
    assert len(answers) + sum(refused.values()) == 10
    assert await count(sessions, PartnerNonceRow) == 1


async def test_a_duplicate_in_flight_is_refused_at_once_on_postgresql(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, partner_id: str, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: there the duplicate waits for the first")
    started, finish = asyncio.Event(), asyncio.Event()
    effects = Effects(partner_id)

    async def slow(session: AsyncSession) -> Answer:
        started.set()
        await finish.wait()
        return await effects.work()(session)

    first = asyncio.create_task(once(sessions, clock, partner_id, slow))
    await started.wait()
    with pytest.raises(HuiminError) as duplicate:
        await once(sessions, clock, partner_id, effects.work())
    assert duplicate.value.code == "idempotency_in_progress"
    finish.set()
    answer = await first
    assert await once(sessions, clock, partner_id, effects.work()) == answer
    assert effects.calls == 1
