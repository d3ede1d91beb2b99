"""工会会员名单导入: the trade union's member list, read from the XLSX or CSV file that 市总工会 hands over.

Union 普惠券 batches are claimable only by members. The list arrives as a spreadsheet with a header row;
every data row names one member by ID number. The file is read in full, every bad row is reported by
the row number the union's clerk sees in Excel, and the good rows are stored as keyed hashes with a
masked display form: the clear ID number never leaves `import_members`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.eligibility.identity import id_number_problem
from huimin.eligibility.models import UnionMemberRow
from huimin.errors import InvalidInput, Problem
from huimin.kit.clock import Clock
from huimin.kit.hashing import KeyedHasher, mask, normalise_identifier

__all__ = [
    "ID_NUMBER_HEADERS",
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

NUMBER_LOST = "stored as a number, digits lost: format the column as text"
# What a CSV saved from Excel holds when the column was numeric: "5.12002E+17".
_SCIENTIFIC = re.compile(r"\d+(\.\d*)?E\+?\d+")
_CHUNK = 500
_SOURCE_LENGTH = 200  # UnionMemberRow.source

CellValue = str | int | float | None


@dataclass(frozen=True)
class MemberRow:
    """One data row of the member list, as the file holds it."""

    row: int  # as the spreadsheet shows it: the header is row 1
    id_number: CellValue  # text, or a number when Excel stored the column as numbers
    union: str | None = None  # the member's grass-roots union (基层工会), when the file names one


@dataclass(frozen=True)
class RowProblem:
    row: int
    reason: str


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
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix == ".xlsx":
        rows = _xlsx_rows(path)
    else:
        raise _file_error(
            f"unsupported file type {path.suffix or '(none)'!r}: save the member list as .xlsx or .csv"
        )
    return _member_rows(rows)


def _csv_rows(path: Path) -> list[list[CellValue]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel and WPS on Chinese Windows save "CSV" in the ANSI code page: GBK, a subset of GB18030.
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise _file_error("the CSV file is neither UTF-8 nor GB18030 text") from None
    return [list(record) for record in csv.reader(io.StringIO(text, newline=""))]


def _xlsx_rows(path: Path) -> list[list[CellValue]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError):
        raise _file_error("not a readable .xlsx workbook") from None
    try:
        if not workbook.worksheets:
            raise _file_error("the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        # Some exporters write a wrong <dimension>; read-only mode would trust it and cut rows off.
        sheet.reset_dimensions()
        return [[_cell(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _cell(value: object) -> CellValue:
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    return str(value)  # a date or a boolean where an ID number should be: reported as not one


_HEADER_SEARCH_ROWS = 5


def _member_rows(rows: Sequence[list[CellValue]]) -> list[MemberRow]:
    if not rows:
        raise _file_error(f"the file is empty: row 1 must be a header naming {_accepted()}")
    # Exports from office systems often put a title line or two above the header: look a few rows down.
    header_index = next(
        (
            index
            for index, values in enumerate(rows[:_HEADER_SEARCH_ROWS])
            if any(_header(value) in ID_NUMBER_HEADERS for value in values)
        ),
        0,
    )
    headers = [_header(value) for value in rows[header_index]]
    id_columns = [index for index, name in enumerate(headers) if name in ID_NUMBER_HEADERS]
    if not id_columns:
        raise _file_error(
            f"no ID number column: a header row within the first {_HEADER_SEARCH_ROWS} rows must name one of {_accepted()}"
        )
    if len(id_columns) > 1:
        raise _file_error("the header row names more than one ID number column: keep one")
    id_column = id_columns[0]
    union_column = next((index for index, name in enumerate(headers) if name in UNION_HEADERS), None)

    members = []
    for number, values in enumerate(rows[header_index + 1 :], start=header_index + 2):
        if all(value is None or (isinstance(value, str) and not value.strip()) for value in values):
            continue
        union = _at(values, union_column)
        members.append(
            MemberRow(
                row=number,
                id_number=_at(values, id_column),
                union=None if union is None else str(union).strip() or None,
            )
        )
    return members


def _header(value: CellValue) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip().casefold() if value is not None else ""


def _accepted() -> str:
    return " / ".join(ID_NUMBER_HEADERS)


def _at(values: Sequence[CellValue], index: int | None) -> CellValue:
    # Rows can be shorter than the header: a CSV line with trailing fields left off, an XLSX row
    # whose last cells are empty.
    return values[index] if index is not None and index < len(values) else None


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
    if _SCIENTIFIC.fullmatch(normalise_identifier(value)):
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
