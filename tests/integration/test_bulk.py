"""Statements over many rows whose SQL text does not depend on how many (`huimin.bulk`), on SQLite and
PostgreSQL, against tables of the real schema: `BulkInsert` writes exactly the rows given (varchar,
integers, bigint, bytea, date, JSON, aware instants, NULLs), skips conflicts and returns exactly the new
rows; `AnyOf` matches exactly the values (tuples as tuples) and `.rows()` returns exactly the matching
rows, narrowed and locked on demand; `InsertAll` writes rows that reference one another in one call and
returns the last insert's rows. On PostgreSQL the statements are one text whatever the count."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy import Table, event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.models import PartnerNonceRow, PartnerRow
from huimin.auth.service import create_partner, partner_sealer
from huimin.bulk import AnyOf, BulkInsert, InsertAll
from huimin.campaigns.models import BatchRow
from huimin.db import unit_of_work
from huimin.idempotency.models import IdempotencyKeyRow
from huimin.kit.clock import ManualClock
from huimin.ledger.models import LedgerPostingRow, LedgerTransactionRow
from huimin.merchants.domain import MerchantStatus
from huimin.redemptions.models import MerchantDayCounterRow
from tests.integration.merchant_helpers import merchant_in, new_campaign

PARTNERS = cast(Table, PartnerRow.__table__)
NONCES = cast(Table, PartnerNonceRow.__table__)
KEYS = cast(Table, IdempotencyKeyRow.__table__)
COUNTERS = cast(Table, MerchantDayCounterRow.__table__)
TRANSACTIONS = cast(Table, LedgerTransactionRow.__table__)
POSTINGS = cast(Table, LedgerPostingRow.__table__)

NOW = datetime(2022, 6, 24, 2, 0, 0, 123456, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))
FRIDAY, SATURDAY, SUNDAY = date(2022, 6, 24), date(2022, 6, 25), date(2022, 6, 26)
KEY_COLUMNS = tuple(str(column.name) for column in KEYS.columns)  # every column of idempotency_keys
COUNTER_COLUMNS = ("merchant_id", "batch_id", "day", "redeemed")

POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

# Built once, as the application builds its statements.
WRITE_KEYS = BulkInsert(KEYS, KEY_COLUMNS)
BURN = BulkInsert(
    NONCES,
    ("partner_id", "nonce", "seen_at"),
    conflict=("partner_id", "nonce"),
    returning=("partner_id", "nonce", "seen_at"),
)
OPEN_COUNTERS = BulkInsert(COUNTERS, COUNTER_COLUMNS, conflict=("merchant_id", "batch_id", "day"))
BY_KEY = AnyOf("keys", KEYS.c.key)
BY_PAIR = AnyOf("pairs", KEYS.c.partner_id, KEYS.c.key)
BY_DAY = AnyOf("days", COUNTERS.c.merchant_id, COUNTERS.c.batch_id, COUNTERS.c.day)

Row = dict[str, Any]


# --- helpers ----------------------------------------------------------------------------------------


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    return cast(AsyncEngine, sessions.kw["bind"])


def dialect_of(sessions: async_sessionmaker[AsyncSession]) -> str:
    return engine_of(sessions).dialect.name


@contextmanager
def sent(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[tuple[str, Any]]]:
    """The statements (other than BEGIN and the like) sent to the database in the block, with their
    parameters as the driver gets them."""
    seen: list[tuple[str, Any]] = []

    def spy(_c: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "WITH", "SELECT", "UPDATE", "DELETE")):
            seen.append((statement, parameters))

    engine = engine_of(sessions).sync_engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", spy)


async def new_partners(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    sealer = partner_sealer("test-secret-key-for-bulk-tests-0123456789")
    async with unit_of_work(sessions) as session:
        return [
            (
                await create_partner(
                    session,
                    name=f"till {number}",
                    kind=PartnerKind.TERMINAL,
                    sealer=sealer,
                    clock=ManualClock(NOW),
                )
            ).partner.id
            for number in range(count)
        ]


def key_row(partner_id: str, key: str, number: int) -> Row:
    """An idempotency_keys row whose columns vary with `number`: NULLs and JSON answers of several
    shapes, instants in UTC and in +08:00, microseconds."""
    done = number % 3 != 0
    answers: list[Any] = [
        {"n": number, "名称": "惠民券", "codes": [number, None, True], "fen": 10**12 + number},
        [number, "退款", {"nested": {}}],
        f"plain string {number}",
        {},
    ]
    created = NOW + timedelta(seconds=number)
    return {
        "partner_id": partner_id,
        "key": key,
        "request_digest": f"{number:064x}",
        "state": "done" if done else "in_progress",
        "status_code": 200 + number % 3 if done else None,
        "response": answers[number % 4] if done else None,
        "created_at": created.astimezone(SHANGHAI) if number % 2 else created,
        "locked_at": NOW + timedelta(minutes=number, microseconds=number),
    }


def by_pair(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {(row["partner_id"], row["key"]): row for row in rows}


async def stored_keys(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], Row]:
    async with unit_of_work(sessions) as session:
        return by_pair([dict(row._mapping) for row in await session.execute(select(KEYS))])


def assert_utc(rows: dict[Any, Row], *columns: str) -> None:
    """Instants read back aware, in UTC (equality alone would accept any zone)."""
    for row in rows.values():
        for column in columns:
            if row[column] is not None:
                assert row[column].utcoffset() == timedelta(0), (column, row[column])


async def write_keys(sessions: async_sessionmaker[AsyncSession], rows: list[Row]) -> None:
    async with unit_of_work(sessions) as session:
        await WRITE_KEYS.run(await session.connection(), rows)


async def stored_nonces(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], datetime]:
    async with unit_of_work(sessions) as session:
        return {
            (row.partner_id, row.nonce): row.seen_at
            for row in await session.execute(select(NONCES.c.partner_id, NONCES.c.nonce, NONCES.c.seen_at))
        }


def nonce(partner_id: str, value: str, seen_at: datetime) -> Row:
    return {"partner_id": partner_id, "nonce": value, "seen_at": seen_at}


# --- BulkInsert -------------------------------------------------------------------------------------


async def test_one_row_is_written_with_every_column(sessions: async_sessionmaker[AsyncSession]) -> None:
    [partner] = await new_partners(sessions, 1)
    row = key_row(partner, "only", 1)  # done: a JSON answer; created_at given in +08:00
    assert row["created_at"].utcoffset() == timedelta(hours=8)
    await write_keys(sessions, [row])
    stored = await stored_keys(sessions)
    assert stored == {(partner, "only"): row}
    assert_utc(stored, "created_at", "locked_at")


async def test_nulls_and_json_answers_read_back_equal(sessions: async_sessionmaker[AsyncSession]) -> None:
    [partner] = await new_partners(sessions, 1)
    rows = [key_row(partner, f"k{number}", number) for number in range(12)]
    # every shape of answer is there: NULL, an object, an array, a string, an empty object
    assert {type(row["response"]).__name__ for row in rows} == {"NoneType", "dict", "list", "str"}
    assert {} in [row["response"] for row in rows]
    await write_keys(sessions, rows)
    stored = await stored_keys(sessions)
    assert stored == by_pair(rows)
    assert stored[(partner, "k3")]["status_code"] is None
    assert stored[(partner, "k3")]["response"] is None
    assert stored[(partner, "k2")]["response"] == "plain string 2"  # a JSON string, not encoded twice
    assert_utc(stored, "created_at", "locked_at")


async def test_many_rows_in_one_call(sessions: async_sessionmaker[AsyncSession]) -> None:
    partners = await new_partners(sessions, 3)
    rows = [key_row(partners[number % 3], f"key-{number:04d}", number) for number in range(300)]
    await write_keys(sessions, rows)
    stored = await stored_keys(sessions)
    assert len(stored) == 300
    assert stored == by_pair(rows)
    assert_utc(stored, "created_at", "locked_at")


async def test_conflicts_are_skipped_and_returning_gives_exactly_the_new_rows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await new_partners(sessions, 2)
    async with unit_of_work(sessions) as session:
        result = await BURN.run(
            await session.connection(),
            [nonce(first, "a", NOW), nonce(first, "b", NOW), nonce(second, "a", NOW)],
        )
        assert sorted(tuple(row) for row in result) == [
            (first, "a", NOW),
            (first, "b", NOW),
            (second, "a", NOW),
        ]
    later = NOW + timedelta(minutes=1)
    again = later + timedelta(seconds=1)
    async with unit_of_work(sessions) as session:
        result = await BURN.run(
            await session.connection(),
            [
                nonce(first, "a", later),  # already there
                nonce(second, "b", later),  # new
                nonce(second, "a", later),  # already there
                nonce(first, "c", later),  # new ...
                nonce(first, "c", again),  # ... and again in the same call, another instant
                nonce(second, "b", later),  # new, and the very same row twice in the call
            ],
        )
        returned = sorted(tuple(row) for row in result)
    stored = await stored_nonces(sessions)
    assert stored[(first, "c")] in (later, again)  # which of the two is not promised, but only one
    assert stored == {
        (first, "a"): NOW,  # the rows already there are left as they were
        (first, "b"): NOW,
        (second, "a"): NOW,
        (second, "b"): later,
        (first, "c"): stored[(first, "c")],
    }
    # each new row once, as stored, aware
    assert returned == sorted([(second, "b", later), (first, "c", stored[(first, "c")])])
    assert all(row[2].utcoffset() == timedelta(0) for row in returned)
    # nothing new: an empty result, not None
    async with unit_of_work(sessions) as session:
        result = await BURN.run(
            await session.connection(), [nonce(first, "a", again), nonce(second, "b", again)]
        )
        assert result is not None
        assert list(result) == []
    assert await stored_nonces(sessions) == stored


async def test_an_empty_list_returns_none_and_sends_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [partner] = await new_partners(sessions, 1)
    await write_keys(sessions, [key_row(partner, "before", 1)])
    with sent(sessions) as statements:
        async with unit_of_work(sessions) as session:
            connection = await session.connection()
            assert await WRITE_KEYS.run(connection, []) is None
            assert await BURN.run(connection, []) is None
    assert statements == []
    assert set(await stored_keys(sessions)) == {(partner, "before")}
    assert await stored_nonces(sessions) == {}


async def test_dates_are_written_and_conflicts_on_a_key_with_a_date_skipped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    merchants, batches = await merchants_and_batches(sessions)
    m, b = merchants[0], batches[0]
    async with unit_of_work(sessions) as session:
        connection = await session.connection()
        await OPEN_COUNTERS.run(connection, [counter(m, b, FRIDAY, 3), counter(m, b, SATURDAY, 0)])
        # Friday is there (its count is kept), Sunday is new, and twice in the call
        await OPEN_COUNTERS.run(
            connection, [counter(m, b, FRIDAY, 0), counter(m, b, SUNDAY, 5), counter(m, b, SUNDAY, 5)]
        )
    assert await stored_counters(sessions) == {(m, b, FRIDAY): 3, (m, b, SATURDAY): 0, (m, b, SUNDAY): 5}
    async with unit_of_work(sessions) as session:
        days = (await session.scalars(select(COUNTERS.c.day))).all()
    assert all(type(day) is date for day in days), days


@POSTGRES_ONLY
async def test_on_postgresql_the_statement_text_does_not_depend_on_the_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [first] = await new_partners(sessions, 1)
    counts = (1, 2, 300)
    with sent(sessions) as inserts:
        for count in counts:
            await write_keys(
                sessions, [key_row(first, f"{count}-{number}", number) for number in range(count)]
            )
    assert len(inserts) == len(counts)  # one statement per call, whatever the count
    assert len({statement for statement, _ in inserts}) == 1
    assert placeholders(inserts[0][0]) == len(KEY_COLUMNS)  # a parameter per column, none per row
    for (_, parameters), count in zip(inserts, counts, strict=True):
        assert [len(array) for array in parameters] == [count] * len(KEY_COLUMNS)
    assert len(await stored_keys(sessions)) == sum(counts)

    # the lookups: one text for 1 or 300 values, one array per column
    wanted = [(first, f"300-{number}") for number in range(300)]
    every, done = [1, 3, 300], [0, 2, 200]  # key_row(..., n) is done unless n % 3 == 0
    for any_of, query, values, expected in (
        (BY_KEY, select(KEYS.c.key).where(BY_KEY.clause("postgresql")), [key for _, key in wanted], every),
        (BY_PAIR, select(KEYS.c.key).where(BY_PAIR.clause("postgresql")), wanted, every),
        (BY_PAIR, BY_PAIR.rows("postgresql"), wanted, every),
        (BY_PAIR, BY_PAIR.rows("postgresql", where="state = 'done'", lock=True), wanted, done),
    ):
        with sent(sessions) as selects:
            async with unit_of_work(sessions) as session:
                found = [
                    len((await session.execute(query, any_of.params("postgresql", values[:count]))).all())
                    for count in (1, 3, 300)
                ]
        assert found == expected
        assert len(selects) == 3
        assert len({statement for statement, _ in selects}) == 1, selects[0][0]
        assert placeholders(selects[0][0]) == len(any_of.columns)
        for (_, parameters), count in zip(selects, (1, 3, 300), strict=True):
            assert [len(array) for array in parameters] == [count] * len(any_of.columns)


def placeholders(statement: str) -> int:
    return len(set(re.findall(r"\$\d+", statement)))


# --- AnyOf ------------------------------------------------------------------------------------------


async def keys_of_two_partners(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, str, list[Row]]:
    """Keys k0..k4 of the first partner, k0..k2 of the second."""
    first, second = await new_partners(sessions, 2)
    rows = [key_row(first, f"k{n}", n) for n in range(5)] + [
        key_row(second, f"k{n}", 10 + n) for n in range(3)
    ]
    await write_keys(sessions, rows)
    return first, second, rows


async def test_any_of_one_column(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, second, _ = await keys_of_two_partners(sessions)
    d = dialect_of(sessions)
    query = select(KEYS.c.partner_id, KEYS.c.key).where(BY_KEY.clause(d))
    async with unit_of_work(sessions) as session:

        async def matching(values: Any) -> list[tuple[str, str]]:
            return sorted(tuple(row) for row in await session.execute(query, BY_KEY.params(d, values)))

        assert await matching([]) == []  # an empty list is supported on both backends
        assert await matching(["k1"]) == sorted([(first, "k1"), (second, "k1")])
        assert await matching(["k4"]) == [(first, "k4")]
        assert await matching(["nope"]) == []
        assert await matching(["k0", "k3", "k4", "nope"]) == sorted(
            [(first, "k0"), (second, "k0"), (first, "k3"), (first, "k4")]
        )
        assert await matching({"k2", "k3"}) == sorted([(first, "k2"), (second, "k2"), (first, "k3")])


async def test_any_of_two_columns_matches_pairs_not_each_column(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second, _ = await keys_of_two_partners(sessions)
    d = dialect_of(sessions)
    query = select(KEYS.c.partner_id, KEYS.c.key).where(BY_PAIR.clause(d))
    async with unit_of_work(sessions) as session:

        async def matching(values: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return sorted(tuple(row) for row in await session.execute(query, BY_PAIR.params(d, values)))

        assert await matching([]) == []
        assert await matching([(second, "k2")]) == [(second, "k2")]
        assert await matching([(second, "k4")]) == []  # k4 is the first partner's only
        # each partner and each key is asked for, but only these pairs exist
        assert await matching([(first, "k3"), (second, "k1"), (second, "k4"), (first, "nope")]) == sorted(
            [(first, "k3"), (second, "k1")]
        )


async def test_any_of_rows_returns_exactly_the_matching_rows_with_every_column(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second, rows = await keys_of_two_partners(sessions)
    written = by_pair(rows)
    d = dialect_of(sessions)
    async with unit_of_work(sessions) as session:

        async def found(values: list[tuple[str, str]], **options: Any) -> dict[tuple[str, str], Row]:
            result = await session.execute(BY_PAIR.rows(d, **options), BY_PAIR.params(d, values))
            rows = [dict(row._mapping) for row in result]
            assert all(set(row) == set(KEY_COLUMNS) for row in rows)
            matched = by_pair(rows)
            assert len(matched) == len(rows)  # a row once
            assert_utc(matched, "created_at", "locked_at")
            return matched

        assert await found([]) == {}
        assert await found([(second, "k1")]) == {(second, "k1"): written[(second, "k1")]}
        asked = [(first, "k0"), (first, "k1"), (second, "k1"), (second, "k4"), (first, "nope")]
        assert await found(asked) == {pair: written[pair] for pair in asked[:3]}
        # `where` narrows to the done ones: (first, k0) is in progress
        assert written[(first, "k0")]["state"] == "in_progress"
        assert await found(asked, where="state = 'done'") == {pair: written[pair] for pair in asked[1:3]}
        assert await found(asked, where="status_code = 201") == {(first, "k1"): written[(first, "k1")]}


async def test_any_of_rows_locks_inside_a_transaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, second, rows = await keys_of_two_partners(sessions)
    written = by_pair(rows)
    d = dialect_of(sessions)
    asked = [(first, "k1"), (second, "k1"), (first, "nope")]
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            BY_PAIR.rows(d, where="state = 'done'", lock=True), BY_PAIR.params(d, asked)
        )
        assert by_pair([dict(row._mapping) for row in result]) == {pair: written[pair] for pair in asked[:2]}
        if d == "postgresql":  # SQLite has no row locks: its writers are serialised (BEGIN IMMEDIATE)
            assert await locked(sessions, first, "k1") is True
            assert await locked(sessions, second, "k1") is True
            assert await locked(sessions, first, "k2") is False  # not asked for
    if d == "postgresql":
        assert await locked(sessions, first, "k1") is False  # released at commit


async def locked(sessions: async_sessionmaker[AsyncSession], partner_id: str, key: str) -> bool:
    """Whether another transaction holds the row's lock (PostgreSQL), tried without waiting."""
    async with engine_of(sessions).connect() as other, other.begin():
        try:
            await other.execute(
                text("SELECT 1 FROM idempotency_keys WHERE partner_id = :p AND key = :k FOR UPDATE NOWAIT"),
                {"p": partner_id, "k": key},
            )
        except DBAPIError as error:
            if isinstance(getattr(error.orig, "__cause__", None), asyncpg.exceptions.LockNotAvailableError):
                return True
            raise
        return False


def counter(merchant_id: str, batch_id: str, day: date, redeemed: int) -> Row:
    return {"merchant_id": merchant_id, "batch_id": batch_id, "day": day, "redeemed": redeemed}


async def merchants_and_batches(sessions: async_sessionmaker[AsyncSession]) -> tuple[list[str], list[str]]:
    clock = ManualClock(NOW)
    campaign_id = await new_campaign(sessions, clock)
    merchants = [
        await merchant_in(sessions, clock, campaign_id, MerchantStatus.INVITED, serial) for serial in (1, 2)
    ]
    async with unit_of_work(sessions) as session:
        batches = sorted(
            (await session.scalars(select(BatchRow.id).where(BatchRow.campaign_id == campaign_id))).all()
        )
    assert len(batches) == 2
    return merchants, batches


async def stored_counters(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str, date], int]:
    async with unit_of_work(sessions) as session:
        return {
            (row.merchant_id, row.batch_id, row.day): row.redeemed
            for row in await session.execute(select(COUNTERS))
        }


async def test_any_of_a_three_column_key_with_a_date(sessions: async_sessionmaker[AsyncSession]) -> None:
    (m1, m2), (b1, b2) = await merchants_and_batches(sessions)
    counters = [
        counter(m1, b1, FRIDAY, 4),
        counter(m1, b1, SATURDAY, 0),
        counter(m1, b2, FRIDAY, 2),
        counter(m2, b2, SATURDAY, 7),
    ]
    async with unit_of_work(sessions) as session:
        await OPEN_COUNTERS.run(await session.connection(), counters)
    written = {(row["merchant_id"], row["batch_id"], row["day"]): row for row in counters}
    assert await stored_counters(sessions) == {key: row["redeemed"] for key, row in written.items()}
    d = dialect_of(sessions)
    # asked: two that exist, and near misses: the day after, the other batch, the other merchant
    asked = [(m1, b1, FRIDAY), (m2, b2, SATURDAY), (m1, b1, SUNDAY), (m2, b1, SATURDAY), (m2, b2, FRIDAY)]
    query = select(COUNTERS.c.merchant_id, COUNTERS.c.batch_id, COUNTERS.c.day).where(BY_DAY.clause(d))
    async with unit_of_work(sessions) as session:

        async def matching(values: list[tuple[str, str, date]]) -> list[tuple[str, str, date]]:
            return sorted(tuple(row) for row in await session.execute(query, BY_DAY.params(d, values)))

        assert await matching([]) == []
        assert await matching([(m1, b2, FRIDAY)]) == [(m1, b2, FRIDAY)]
        assert await matching([(m1, b2, SATURDAY)]) == []
        assert await matching(asked) == sorted([(m1, b1, FRIDAY), (m2, b2, SATURDAY)])

        async def found(
            values: list[tuple[str, str, date]], **options: Any
        ) -> dict[tuple[str, str, date], Row]:
            result = await session.execute(BY_DAY.rows(d, **options), BY_DAY.params(d, values))
            rows = [dict(row._mapping) for row in result]
            assert all(set(row) == set(COUNTER_COLUMNS) and type(row["day"]) is date for row in rows)
            return {(row["merchant_id"], row["batch_id"], row["day"]): row for row in rows}

        assert await found([(m1, b1, SATURDAY)]) == {(m1, b1, SATURDAY): written[(m1, b1, SATURDAY)]}
        every = [*asked, (m1, b1, SATURDAY), (m1, b2, FRIDAY)]
        assert await found(every) == {key: written[key] for key in every if key in written}
        assert len(await found(every)) == 4
        # narrowed to those with redemptions, and locked, as the till's pass reads its day counters
        assert await found(every, where="redeemed > 0", lock=True) == {
            key: written[key] for key in [(m1, b1, FRIDAY), (m2, b2, SATURDAY), (m1, b2, FRIDAY)]
        }


# --- InsertAll --------------------------------------------------------------------------------------

WRITE_PARTNERS = BulkInsert(
    PARTNERS, ("id", "key_id", "name", "kind", "secret_sealed", "created_at", "revoked_at")
)
WRITE_NONCES = BulkInsert(NONCES, ("partner_id", "nonce", "seen_at"))
WRITE_KEYS_RETURNING = BulkInsert(
    KEYS, KEY_COLUMNS, returning=("partner_id", "key", "state", "response", "created_at")
)
ONBOARD = InsertAll(WRITE_PARTNERS, WRITE_NONCES, WRITE_KEYS_RETURNING)


def partner_row(number: int, *, revoked: bool = False) -> Row:
    return {
        "id": f"ptn_bulk_{number}",
        "key_id": f"pk_bulk_{number}",
        "name": f"收银台 {number}",
        "kind": "terminal" if number % 2 else "app",
        "secret_sealed": bytes([0, 255, number, 10, 13, 92, 39]),  # NUL, high bytes, newline, quote
        "created_at": NOW.astimezone(SHANGHAI),
        "revoked_at": NOW + timedelta(days=number) if revoked else None,
    }


async def test_insert_all_writes_rows_that_reference_rows_of_the_same_call(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [existing] = await new_partners(sessions, 1)
    partners = [partner_row(1), partner_row(2, revoked=True)]
    new_ids = [row["id"] for row in partners]
    nonces = [nonce(new_ids[0], "n1", NOW), nonce(new_ids[1], "n1", NOW), nonce(new_ids[1], "n2", NOW)]
    keys = [key_row(new_ids[0], "a", 1), key_row(new_ids[1], "a", 2), key_row(new_ids[1], "b", 3)]
    with sent(sessions) as statements:
        async with unit_of_work(sessions) as session:
            result = await ONBOARD.run(await session.connection(), [partners, nonces, keys])
            returned = sorted((tuple(row) for row in result), key=lambda row: (row[0], row[1]))
    if dialect_of(sessions) == "postgresql":
        assert len(statements) == 1  # one round trip
    else:
        assert len(statements) == 3
    # the last insert's rows, each once
    assert returned == sorted(
        ((row["partner_id"], row["key"], row["state"], row["response"], row["created_at"]) for row in keys),
        key=lambda row: (row[0], row[1]),
    )
    assert all(row[4].utcoffset() == timedelta(0) for row in returned)
    async with unit_of_work(sessions) as session:
        stored_partners = {
            row.id: dict(row._mapping)
            for row in await session.execute(select(PARTNERS).where(PARTNERS.c.id.in_(new_ids)))
        }
        every_partner = set((await session.scalars(select(PARTNERS.c.id))).all())
    assert every_partner == {existing, *new_ids}
    assert stored_partners == {row["id"]: row for row in partners}
    assert_utc(stored_partners, "created_at", "revoked_at")
    assert await stored_nonces(sessions) == {
        (row["partner_id"], row["nonce"]): row["seen_at"] for row in nonces
    }
    assert await stored_keys(sessions) == by_pair(keys)


async def test_insert_all_refuses_a_row_whose_parent_is_missing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [existing] = await new_partners(sessions, 1)
    partners = [partner_row(1)]
    nonces = [nonce(partners[0]["id"], "n1", NOW)]
    keys = [key_row(partners[0]["id"], "a", 1), key_row("ptn_nobody", "b", 2)]  # no such partner
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            await ONBOARD.run(await session.connection(), [partners, nonces, keys])
    async with unit_of_work(sessions) as session:
        assert (await session.scalars(select(PARTNERS.c.id))).all() == [existing]
    assert await stored_nonces(sessions) == {}
    assert await stored_keys(sessions) == {}


WRITE_POSTINGS = BulkInsert(POSTINGS, ("transaction_id", "campaign_id", "account", "amount_fen"))
WRITE_TRANSACTIONS = BulkInsert(
    TRANSACTIONS, ("id", "campaign_id", "kind", "reference", "at"), returning=("id", "reference", "at")
)
# The postings first: on SQLite a transaction row seals its postings (they must be there before it);
# their foreign key to it is deferred, and on PostgreSQL the balance is checked at COMMIT.
POST = InsertAll(WRITE_POSTINGS, WRITE_TRANSACTIONS)
BIG = 3_000_000_000  # more than 2**31 fen: a bigint


def transaction(campaign_id: str, number: int) -> Row:
    return {
        "id": f"ltx_bulk_{number}",
        "campaign_id": campaign_id,
        "kind": "deposit",
        "reference": f"ref-{number}",
        "at": (NOW + timedelta(hours=number)).astimezone(SHANGHAI),
    }


def posting(transaction_id: str, campaign_id: str, account: str, amount_fen: int) -> Row:
    return {
        "transaction_id": transaction_id,
        "campaign_id": campaign_id,
        "account": account,
        "amount_fen": amount_fen,
    }


async def test_insert_all_writes_balanced_ledger_transactions(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await new_campaign(sessions, ManualClock(NOW))
    one, two = transaction(campaign_id, 1), transaction(campaign_id, 2)
    postings = [
        posting(one["id"], campaign_id, "funder:fiscal", -BIG),
        posting(one["id"], campaign_id, "budget", BIG),
        posting(two["id"], campaign_id, "a", 5),
        posting(two["id"], campaign_id, "b", 7),
        posting(two["id"], campaign_id, "c", -12),
    ]
    async with unit_of_work(sessions) as session:
        result = await POST.run(await session.connection(), [postings, [one, two]])
        returned = sorted(tuple(row) for row in result)
    assert returned == [(one["id"], "ref-1", one["at"]), (two["id"], "ref-2", two["at"])]
    async with unit_of_work(sessions) as session:
        stored = sorted(
            tuple(row)
            for row in await session.execute(
                select(
                    POSTINGS.c.transaction_id,
                    POSTINGS.c.campaign_id,
                    POSTINGS.c.account,
                    POSTINGS.c.amount_fen,
                )
            )
        )
        transactions = {
            row.id: row.at for row in await session.execute(select(TRANSACTIONS.c.id, TRANSACTIONS.c.at))
        }
    assert stored == sorted(tuple(row.values()) for row in postings)
    assert transactions == {one["id"]: one["at"], two["id"]: two["at"]}

    # an unbalanced one is refused by the database (at COMMIT on PostgreSQL), and nothing of it stays
    three = transaction(campaign_id, 3)
    with pytest.raises(IntegrityError, match="unbalanced"):
        async with unit_of_work(sessions) as session:
            await POST.run(
                await session.connection(),
                [
                    [posting(three["id"], campaign_id, "a", BIG), posting(three["id"], campaign_id, "b", -1)],
                    [three],
                ],
            )
    async with unit_of_work(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(POSTINGS)) == len(postings)
        assert await session.scalar(select(func.count()).select_from(TRANSACTIONS)) == 2


# --- edges found by these tests, fixed -----------------------------------------------------------------


async def test_a_where_with_or_narrows_only_the_rows_asked_for(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second, rows = await keys_of_two_partners(sessions)
    written = by_pair(rows)
    d = dialect_of(sessions)
    assert written[(first, "k0")]["state"] == "in_progress"
    assert [pair for pair, row in written.items() if row["status_code"] == 201] == [
        (first, "k1"),
        (first, "k4"),
        (second, "k0"),
    ]
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            BY_PAIR.rows(d, where="state = 'in_progress' OR status_code = 201"),
            BY_PAIR.params(d, [(first, "k0"), (first, "nope")]),
        )
        # (without parentheses SQLite added every row of status 201, PostgreSQL one for the missing value)
        assert by_pair([dict(row._mapping) for row in result]) == {(first, "k0"): written[(first, "k0")]}


async def test_insert_all_of_one_insert(sessions: async_sessionmaker[AsyncSession]) -> None:
    [partner] = await new_partners(sessions, 1)
    async with unit_of_work(sessions) as session:
        result = await InsertAll(BURN).run(await session.connection(), [[nonce(partner, "only", NOW)]])
        assert [tuple(row) for row in result] == [(partner, "only", NOW)]


async def test_a_naive_instant_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    """UtcDateTime refuses naive datetimes, on the PostgreSQL arrays too (asyncpg would read a naive
    datetime as the client's local time)."""
    [partner] = await new_partners(sessions, 1)
    with pytest.raises((StatementError, ValueError), match="naive"):
        async with unit_of_work(sessions) as session:
            await BURN.run(await session.connection(), [nonce(partner, "naive", NOW.replace(tzinfo=None))])


def test_two_inserts_into_one_table_are_refused() -> None:
    """Their PostgreSQL parameters are named after the table: the second's would replace the first's."""
    with pytest.raises(ValueError, match="one insert per table"):
        InsertAll(BURN, BURN)


async def test_a_value_asked_twice_is_found_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    first, _, _ = await keys_of_two_partners(sessions)
    d = dialect_of(sessions)
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            BY_PAIR.rows(d), BY_PAIR.params(d, [(first, "k0"), (first, "k0"), (first, "k1")])
        )
        assert sorted(row.key for row in result) == ["k0", "k1"]
