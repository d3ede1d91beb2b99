"""Reading the spreadsheets that departments hand over (XLSX, or CSV in UTF-8 or GB18030), and the
look of the workbooks the platform hands back (a title, a header row, boxed cells).

Lists arrive from offices (the union's member list, the commerce bureau's merchant invitations) as a
header row and data rows, sometimes with a title line or two above the header. This module turns a
file into rows of cells and locates the header; what the columns mean is the caller's business.
Row numbers are the ones the clerk sees in Excel: the first row is 1.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "HEADER_SEARCH_ROWS",
    "NUMBER_LOST",
    "CellValue",
    "RowProblem",
    "SheetError",
    "box",
    "cell_at",
    "data_rows",
    "find_header_row",
    "header_key",
    "looks_scientific",
    "read_rows",
    "write_header",
    "write_title",
]

CellValue = str | int | float | None

# Exports from office systems often put a title line or two above the header: look a few rows down.
HEADER_SEARCH_ROWS = 5
NUMBER_LOST = "stored as a number, digits lost: format the column as text"
# What a CSV saved from Excel holds when the column was numeric: "5.12002E+17".
_SCIENTIFIC = re.compile(r"\d+(\.\d*)?E\+?\d+")


@dataclass(frozen=True)
class RowProblem:
    """Why one data row of an imported list was not taken, by the row number Excel shows."""

    row: int
    reason: str


class SheetError(ValueError):
    """A file that cannot be read as a table (wrong type, corrupt, wrong encoding)."""


def read_rows(
    source: Path | bytes, *, suffix: str | None = None, what: str = "the list"
) -> list[list[CellValue]]:
    """Every row of a .csv file or of an .xlsx workbook's first sheet, as cell values.

    `source` is a path (its extension decides, case-insensitively) or the file's bytes with `suffix`.
    Raises SheetError naming `what` for an unsupported, unreadable or undecodable file.
    """
    if isinstance(source, Path):
        suffix = source.suffix
        data = source.read_bytes()
    else:
        data = source
    kind = (suffix or "").lower()
    if kind == ".csv":
        return _csv_rows(data)
    if kind == ".xlsx":
        return _xlsx_rows(data)
    raise SheetError(f"unsupported file type {suffix or '(none)'!r}: save {what} as .xlsx or .csv")


def _csv_rows(data: bytes) -> list[list[CellValue]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel and WPS on Chinese Windows save "CSV" in the ANSI code page: GBK, a subset of GB18030.
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise SheetError("the CSV file is neither UTF-8 nor GB18030 text") from None
    return [list(record) for record in csv.reader(io.StringIO(text, newline=""))]


def _xlsx_rows(data: bytes) -> list[list[CellValue]]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError):
        raise SheetError("not a readable .xlsx workbook") from None
    try:
        if not workbook.worksheets:
            raise SheetError("the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        # Some exporters write a wrong <dimension>; read-only mode would trust it and cut rows off.
        sheet.reset_dimensions()
        return [[_cell(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _cell(value: object) -> CellValue:
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    return str(value)  # a date or a boolean where text should be: the caller reports it as wrong


def header_key(value: CellValue) -> str:
    """A header cell as compared: NFKC-folded (full-width to half-width), trimmed, case-folded."""
    return unicodedata.normalize("NFKC", str(value)).strip().casefold() if value is not None else ""


def find_header_row(rows: Sequence[Sequence[CellValue]], wanted: Collection[str]) -> int | None:
    """The index of the first row, among the first HEADER_SEARCH_ROWS, naming one of `wanted`
    (header keys); None when no row does."""
    return next(
        (
            index
            for index, values in enumerate(rows[:HEADER_SEARCH_ROWS])
            if any(header_key(value) in wanted for value in values)
        ),
        None,
    )


def data_rows(rows: Sequence[list[CellValue]], header_index: int) -> Iterator[tuple[int, list[CellValue]]]:
    """(spreadsheet row number, cells) of every row below the header that holds any value."""
    for number, values in enumerate(rows[header_index + 1 :], start=header_index + 2):
        if all(value is None or (isinstance(value, str) and not value.strip()) for value in values):
            continue
        yield number, values


def cell_at(values: Sequence[CellValue], index: int | None) -> CellValue:
    # Rows can be shorter than the header: a CSV line with trailing fields left off, an XLSX row
    # whose last cells are empty.
    return values[index] if index is not None and index < len(values) else None


def looks_scientific(text: str) -> bool:
    """True for "5.12002E+17": a long number Excel showed in scientific notation, digits lost."""
    return _SCIENTIFIC.fullmatch(text) is not None


_THIN = Side(style="thin", color="999999")
BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


def write_title(sheet: Worksheet, title: str, subtitle: str, width: int) -> None:
    """Rows 1 and 2: a bold centred title and a subtitle (export time, totals) across `width` columns."""
    sheet.append([title])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.append([subtitle])
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)


def write_header(sheet: Worksheet, columns: Sequence[tuple[str, int]]) -> None:
    """Row 3: the column names (with their widths), frozen above the data and printed on every page."""
    sheet.append([name for name, _ in columns])
    for index, (_, width) in enumerate(columns, start=1):
        cell = sheet.cell(row=3, column=index)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.border = BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A4"
    sheet.print_title_rows = "3:3"


def box(sheet: Worksheet, *, first_row: int, columns: int) -> None:
    """Thin borders round every cell from `first_row` down."""
    for line in sheet.iter_rows(min_row=first_row, max_row=sheet.max_row, max_col=columns):
        for cell in line:
            cell.border = BORDER
