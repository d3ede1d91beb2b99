"""Statements over many rows whose SQL text does not depend on how many.

SQLAlchemy renders an `IN` list or an executemany insert as one parameter per value or row, so each
count is another SQL text: on PostgreSQL another statement to parse and plan and another entry in the
connection's prepared-statement cache (hashing a text of thousands of parameters on every lookup).
For the statements of the hot paths (the till's batched redemptions, nonces, ledger postings) these
cost more than the rows themselves. On PostgreSQL they are written with one array parameter per column
instead, `= ANY($1)`, `IN (SELECT unnest($1), unnest($2))` and `INSERT ... SELECT * FROM unnest(...)`,
prepared once per connection whatever the count; on SQLite, which has no arrays and runs in-process,
as the usual expanding IN and executemany.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Table, TextClause, any_, bindparam, func, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import Select, TextualSelect
from sqlalchemy.types import TypeDecorator

__all__ = ["AnyOf", "BulkInsert", "InsertAll"]

_POSTGRES = postgresql.dialect()  # type: ignore[no-untyped-call]


class AnyOf:
    """`column IN (values)`, or `(a, b, ...) IN (tuples)`, bound as `name`."""

    def __init__(self, name: str, *columns: ColumnElement[Any]) -> None:
        self.name = name
        self.columns = columns

    def clause(self, dialect: str) -> ColumnElement[bool]:
        if dialect != "postgresql":
            target = self.columns[0] if len(self.columns) == 1 else tuple_(*self.columns)
            return target.in_(bindparam(self.name, expanding=True))
        arrays = [
            bindparam(f"{self.name}_{index}", type_=ARRAY(column.type))
            for index, column in enumerate(self.columns)
        ]
        if len(self.columns) == 1:
            return self.columns[0] == any_(arrays[0])
        return tuple_(*self.columns).in_(select(*(func.unnest(array) for array in arrays)))

    def rows(self, dialect: str, *, where: str = "", lock: bool = False) -> Select[Any] | TextualSelect:
        """The rows of the columns' table that match, with every column (at most one row per value:
        the columns must be a unique key, or a unique index under `where`).

        On PostgreSQL a lateral lookup per value, so that each is one probe of the key's index: as a
        plain `IN (SELECT unnest(...))`, a prepared statement's generic plan (which cannot know how
        many values come) was seen hashing the whole table instead, a cost that grew with it. `where`
        is a further SQL condition on the table's other columns, unqualified (our own constants only); `lock` locks the rows found,
        in the order of the values."""
        table = cast(Table, self.columns[0].table)
        if dialect != "postgresql":
            query = select(table).where(self.clause(dialect))
            if where:
                query = query.where(text(f"({where})"))
            return query.with_for_update() if lock else query
        quote = _POSTGRES.identifier_preparer.quote
        names = [quote(str(column.name)) for column in self.columns]
        arrays = ", ".join(
            f"CAST(:{self.name}_{index} AS {column.type.compile(dialect=_POSTGRES)}[])"
            for index, column in enumerate(self.columns)
        )
        matches = " AND ".join(f"found.{name} = wanted.{name}" for name in names)
        if where:
            matches += f" AND ({where})"
        # Only names from the table's definition and the caller's constants go into the text.
        found = f"SELECT * FROM {quote(table.name)} AS found WHERE {matches} LIMIT 1"  # noqa: S608
        if lock:
            found += " FOR UPDATE"
        wanted = f"unnest({arrays}) AS wanted({', '.join(names)})"
        sql = f"SELECT found.* FROM {wanted} CROSS JOIN LATERAL ({found}) AS found"  # noqa: S608
        return text(sql).columns(*table.columns)

    def params(self, dialect: str, values: Iterable[Any]) -> dict[str, Any]:
        """The parameters for `values` (single values, or tuples for several columns; each once)."""
        rows = list(dict.fromkeys(values))
        if dialect != "postgresql":
            return {self.name: rows}
        if len(self.columns) == 1:
            return {f"{self.name}_0": rows}
        return {f"{self.name}_{index}": [row[index] for row in rows] for index in range(len(self.columns))}


class BulkInsert:
    """Insert many rows (dicts with the same `columns`) in one statement; `conflict` names the unique
    columns whose duplicates are skipped, `returning` the columns to return of the rows inserted."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        conflict: Sequence[str] = (),
        returning: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.columns = list(columns)
        self.returning = list(returning)
        self._json = {name for name in self.columns if isinstance(table.c[name].type, JSON)}
        self._decorated = {name for name in self.columns if isinstance(table.c[name].type, TypeDecorator)}
        self.sql = self._postgres_sql(conflict)
        self._postgres = _textual(self.sql, self.returning)
        self._other = self._other_statement(conflict, returning)

    def _postgres_sql(self, conflict: Sequence[str]) -> str:
        """The PostgreSQL text, its arrays bound as `<table>__<column>` (unique among the inserts of
        one `InsertAll`)."""
        quote = _POSTGRES.identifier_preparer.quote
        arrays = ", ".join(
            f"CAST(:{self.table.name}__{name} AS {self.table.c[name].type.compile(dialect=_POSTGRES)}[])"
            for name in self.columns
        )
        # Only names from the table's own definition go into the text (S608: no outside input)
        names = ", ".join(quote(name) for name in self.columns)
        sql = f"INSERT INTO {quote(self.table.name)} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608
        if conflict:
            sql += f" ON CONFLICT ({', '.join(quote(name) for name in conflict)}) DO NOTHING"
        if self.returning:
            sql += f" RETURNING {', '.join(quote(name) for name in self.returning)}"
        return sql

    def arrays(self, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        """The PostgreSQL statement's parameters for `rows`: each column's values as its type binds them
        (a UTC instant refuses a naive datetime; JSON, `None` included, serialised as the ORM would)."""
        arrays: dict[str, list[Any]] = {}
        for name in self.columns:
            values = [row[name] for row in rows]
            if name in self._json:
                values = [json.dumps(value) for value in values]
            elif name in self._decorated:
                bind = self.table.c[name].type.process_bind_param  # type: ignore[attr-defined]
                values = [bind(value, _POSTGRES) for value in values]
            arrays[f"{self.table.name}__{name}"] = values
        return arrays

    def _other_statement(self, conflict: Sequence[str], returning: Sequence[str]) -> Insert:
        statement = sqlite_insert(self.table)
        if conflict:
            statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
        if returning:
            return statement.returning(*(self.table.c[name] for name in returning))
        return statement

    async def run(self, connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> Any:
        """The statement's result (its RETURNING rows, in no promised order); None without rows."""
        if not rows:
            return None
        if connection.dialect.name != "postgresql":
            return await connection.execute(self._other, list(rows))
        return await connection.execute(self._postgres, self.arrays(rows))


class InsertAll:
    """Several `BulkInsert`s in one round trip: on PostgreSQL one statement whose inserts but the last
    are data-modifying CTEs (foreign keys between them are checked at its end, so a row may reference
    one inserted beside it); elsewhere one after the other, in order. The result is the last one's."""

    def __init__(self, *inserts: BulkInsert) -> None:
        tables = [insert.table.name for insert in inserts]
        if len(set(tables)) != len(tables):  # their parameters are named after the table
            raise ValueError(f"one insert per table in an InsertAll, got {tables}")
        *first, last = inserts
        self.inserts = inserts
        ctes = ", ".join(f"written_{index} AS ({insert.sql})" for index, insert in enumerate(first))
        self._postgres = _textual(f"WITH {ctes} {last.sql}" if first else last.sql, last.returning)

    async def run(self, connection: AsyncConnection, rows: Sequence[Sequence[dict[str, Any]]]) -> Any:
        """`rows[i]` for `inserts[i]`; every insert must have rows."""
        if connection.dialect.name != "postgresql":
            result = None
            for insert, its_rows in zip(self.inserts, rows, strict=True):
                result = await insert.run(connection, its_rows)
            return result
        params: dict[str, list[Any]] = {}
        for insert, its_rows in zip(self.inserts, rows, strict=True):
            params.update(insert.arrays(its_rows))
        return await connection.execute(self._postgres, params)


def _textual(sql: str, returning: Sequence[str]) -> TextClause | TextualSelect:
    statement = text(sql)
    if returning:
        return statement.columns(*(ColumnClause(name) for name in returning))
    return statement
