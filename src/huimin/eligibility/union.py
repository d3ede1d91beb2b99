"""工会会员名单导入: the trade union's member list, read from the XLSX or CSV file that 市总工会 hands over.

Union 普惠券 batches are claimable only by members. The list arrives as a spreadsheet with a header row;
every data row names one member by ID number. The file is read in full, every bad row is reported by
the row number the union's clerk sees in Excel, and the good rows are stored as keyed hashes with a
masked display form: the clear ID number never leaves `import_members`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.eligibility.identity import id_number_problem
from huimin.eligibility.models import UnionMemberRow
from huimin.errors import InvalidInput, Problem
from huimin.kit.clock import Clock
from huimin.kit.hashing import KeyedHasher, mask, normalise_identifier
from huimin.kit.sheets import (
    HEADER_SEARCH_ROWS,
    NUMBER_LOST,
    CellValue,
    RowProblem,
    SheetError,
    cell_at,
    data_rows,
    find_header_row,
    header_key,
    looks_scientific,
    read_rows,
)

__all__ = [
    "ID_NUMBER_HEADERS",
    "NUMBER_LOST",
    "ImportReport",
    "MemberRow",
    "RowProblem",
    "import_members",
    "member_id_problem",
    "read_member_rows",
]

# Header names are compared after NFKC folding, trimming and case-folding.
ID_NUMBER_HEADERS = ("身份证号", "身份证号码", "证件号码", "id_number")
UNION_HEADERS = ("工会", "所属工会", "union")
# A name column (姓名 / name) is deliberately never read: membership needs only the ID number's hash,
# and a stored name would be one more piece of personal information to protect.

_CHUNK = 500
_SOURCE_LENGTH = 200  # UnionMemberRow.source


@dataclass(frozen=True)
class MemberRow:
    """One data row of the member list, as the file holds it."""

    row: int  # as the spreadsheet shows it: the header is row 1
    id_number: CellValue  # text, or a number when Excel stored the column as numbers
    union: str | None = None  # the member's grass-roots union (基层工会), when the file names one


@dataclass(frozen=True)
class ImportReport:
    total_rows: int
    imported: int
    already_members: int
    rejected: list[RowProblem]


def _file_error(message: str) -> InvalidInput:
    return InvalidInput([Problem("file", message)], code="invalid_member_file")


def read_member_rows(path: Path) -> list[MemberRow]:
    """The data rows of a member list (.csv or .xlsx); rows with no value at all are skipped.

    Raises InvalidInput (code invalid_member_file) for an unsupported or unreadable file, and for a
    header row without an ID number column.
    """
    try:
        rows = read_rows(path, what="the member list")
    except SheetError as error:
        raise _file_error(str(error)) from None
    if not rows:
        raise _file_error(f"the file is empty: row 1 must be a header naming {_accepted()}")
    header_index = find_header_row(rows, ID_NUMBER_HEADERS) or 0
    headers = [header_key(value) for value in rows[header_index]]
    id_columns = [index for index, name in enumerate(headers) if name in ID_NUMBER_HEADERS]
    if not id_columns:
        raise _file_error(
            f"no ID number column: a header row within the first {HEADER_SEARCH_ROWS} rows must name one of {_accepted()}"
        )
    if len(id_columns) > 1:
        raise _file_error("the header row names more than one ID number column: keep one")
    id_column = id_columns[0]
    union_column = next((index for index, name in enumerate(headers) if name in UNION_HEADERS), None)

    members = []
    for number, values in data_rows(rows, header_index):
        union = cell_at(values, union_column)
        members.append(
            MemberRow(
                row=number,
                id_number=cell_at(values, id_column),
                union=None if union is None else str(union).strip() or None,
            )
        )
    return members


def _accepted() -> str:
    return " / ".join(ID_NUMBER_HEADERS)


def member_id_problem(value: CellValue) -> str | None:
    """Why a cell cannot name a member, or None when it holds a valid ID number."""
    if value is None or (isinstance(value, str) and not normalise_identifier(value)):
        return "empty ID number"
    if isinstance(value, float):
        return NUMBER_LOST
    if isinstance(value, int):
        # Excel keeps 15 significant digits; an int survives only when written by another program,
        # and cannot carry a trailing X. Accept it only when all 18 digits check out.
        return NUMBER_LOST if id_number_problem(str(value)) else None
    if looks_scientific(normalise_identifier(value)):
        return NUMBER_LOST
    return id_number_problem(value)


async def import_members(
    session: AsyncSession, *, path: Path, hasher: KeyedHasher, clock: Clock
) -> ImportReport:
    """Import a member list: add the members not yet known, report every row that names nobody.

    Idempotent: importing the same file again adds nothing. Writes in the caller's transaction; the
    caller commits.
    """
    rows = read_member_rows(path)
    rejected: list[RowProblem] = []
    first_row: dict[str, int] = {}  # digest -> the row that named it first
    candidates: dict[str, tuple[str, str]] = {}  # digest -> (masked, source)
    for row in rows:
        problem = member_id_problem(row.id_number)
        if problem is not None:
            rejected.append(RowProblem(row.row, problem))
            continue
        clear = normalise_identifier(str(row.id_number))
        digest = hasher.digest("id_number", clear)
        if digest in first_row:
            rejected.append(RowProblem(row.row, f"duplicate of row {first_row[digest]}"))
            continue
        first_row[digest] = row.row
        candidates[digest] = (mask(clear), _source(path.name, row.union))

    known: set[str] = set()
    for chunk in _chunks(list(candidates)):
        known.update(
            await session.scalars(
                select(UnionMemberRow.id_number_digest).where(UnionMemberRow.id_number_digest.in_(chunk))
            )
        )
    now = clock.now()
    new = [
        {"id_number_digest": digest, "id_number_masked": masked, "source": source, "imported_at": now}
        for digest, (masked, source) in candidates.items()
        if digest not in known
    ]
    if new:
        await session.execute(insert(UnionMemberRow), new)
    return ImportReport(
        total_rows=len(rows), imported=len(new), already_members=len(known), rejected=rejected
    )


def _source(file_name: str, union: str | None) -> str:
    return (f"{file_name} / {union}" if union else file_name)[:_SOURCE_LENGTH]


def _chunks(digests: list[str]) -> Iterable[list[str]]:
    # Bounded IN lists: SQLite caps bound parameters, and long lists plan badly on PostgreSQL.
    for start in range(0, len(digests), _CHUNK):
        yield digests[start : start + _CHUNK]
