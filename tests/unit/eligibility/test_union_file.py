"""Reading the trade union's member list: CSV in its encodings, XLSX, flexible headers, numeric cells."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from huimin.eligibility.union import NUMBER_LOST, MemberRow, member_id_problem, read_member_rows
from huimin.errors import InvalidInput
from tests.support import id_number

A, B, C = id_number(1), id_number(2), id_number(3)


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def store_exact_integer(path: Path, cell: str, value: int) -> None:
    """Rewrite one numeric cell as an exact integer, as some exporters write it. openpyxl itself writes
    every number through a float (an 18-digit int comes out as 5.120021990010401e+17), like Excel."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet, count = re.subn(rf'(<c r="{cell}" t="n"><v>)[^<]*(</v>)', rf"\g<1>{value}\g<2>", sheet)
    assert count == 1
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def test_a_utf8_csv(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"name,id_number\nZhang San,{A}\nLi Si,{B}\n", encoding="utf-8")
    assert read_member_rows(path) == [MemberRow(2, A), MemberRow(3, B)]


def test_a_csv_with_a_byte_order_mark_still_finds_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"身份证号,姓名\n{A},张三\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_member_rows(path) == [MemberRow(2, A)]


def test_a_gb18030_csv_with_chinese_headers_and_the_union_column(tmp_path: Path) -> None:
    path = tmp_path / "会员名单.csv"
    text = f"序号,姓名,身份证号码,所属工会\n1,张三,{A},雁江区总工会\n2,李四,{B},\n"
    path.write_bytes(text.encode("gb18030"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    assert read_member_rows(path) == [MemberRow(2, A, "雁江区总工会"), MemberRow(3, B, None)]


@pytest.mark.parametrize("header", ["证件号码", " ID_Number ", "ＩＤ＿ＮＵＭＢＥＲ", "身份证号码\t"])
def test_headers_are_matched_after_trimming_case_and_width_folding(tmp_path: Path, header: str) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f'"{header}"\n{A}\n', encoding="utf-8")
    assert read_member_rows(path) == [MemberRow(2, A)]


def test_row_numbers_are_the_spreadsheets_and_blank_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"姓名,身份证号\n张三,{A}\n,\n\n李四,\n王五,{C}\n", encoding="utf-8")
    assert read_member_rows(path) == [MemberRow(2, A), MemberRow(5, ""), MemberRow(6, C)]


def test_an_xlsx_keeps_numeric_cells_as_numbers_so_that_they_can_be_refused(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "members.xlsx",
        [
            ["姓名", "身份证号", "工会"],
            ["张三", A, "市教育工会"],
            ["李四", float(B), None],  # what Excel makes of an ID number typed into a General cell
            ["王五", 0, None],  # made an exact integer below
            ["赵六", None, None],
            [None, None, None],
            ["钱七", A.lower(), None],
        ],
    )
    store_exact_integer(path, "B4", int(C))
    rows = read_member_rows(path)
    assert rows == [
        MemberRow(2, A, "市教育工会"),
        MemberRow(3, float(B)),
        MemberRow(4, int(C)),
        MemberRow(5, None),
        MemberRow(7, A.lower()),
    ]
    assert [member_id_problem(row.id_number) for row in rows] == [
        None,
        NUMBER_LOST,
        None,
        "empty ID number",
        None,
    ]


def test_an_xlsx_reads_the_first_sheet_only(tmp_path: Path) -> None:
    workbook = Workbook()
    first = workbook.active
    assert first is not None
    first.append(["id_number"])
    first.append([A])
    workbook.create_sheet("说明").append(["id_number", "not a member"])
    workbook.save(tmp_path / "members.xlsx")
    assert read_member_rows(tmp_path / "members.xlsx") == [MemberRow(2, A)]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (A, None),
        (f" {A[:6]} {A[6:14]} {A[14:]} ", None),  # spaced as printed on the card
        ("11010519491231002x", None),
        ("", "empty ID number"),
        ("   ", "empty ID number"),
        (None, "empty ID number"),
        (1.10105194912310e17, NUMBER_LOST),
        ("1.10105E+17", NUMBER_LOST),  # a CSV saved from a numeric Excel column
        (110105194912310021, NUMBER_LOST),  # an int whose digits do not check out
        (11010519491231002, NUMBER_LOST),  # 17 digits: the X cannot be stored in a number
        (int(A), None),
        ("110105194912310021", "check digit does not match (GB 11643)"),
        ("2022-06-01 00:00:00", "must be 18 characters: 17 digits and a check digit or X"),
    ],
)
def test_member_id_problems(value: str | int | float | None, problem: str | None) -> None:
    assert member_id_problem(value) == problem


def test_a_file_without_an_id_number_column_names_the_accepted_headers(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"姓名,身份证\n张三,{A}\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        read_member_rows(path)
    assert raised.value.code == "invalid_member_file"
    [problem] = raised.value.problems
    assert problem.field == "file"
    assert all(header in problem.message for header in ("身份证号", "身份证号码", "证件号码", "id_number"))


def test_an_xlsx_without_an_id_number_column_is_refused_too(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "members.xlsx", [["姓名", "手机号"], ["张三", "13812345678"]])
    with pytest.raises(InvalidInput, match="no ID number column") as raised:
        read_member_rows(path)
    assert raised.value.code == "invalid_member_file"


def test_two_id_number_columns_are_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"身份证号,证件号码\n{A},{B}\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="more than one ID number column"):
        read_member_rows(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(b"")
    with pytest.raises(InvalidInput, match="the file is empty"):
        read_member_rows(path)


@pytest.mark.parametrize("name", ["members.xls", "members.txt", "members"])
def test_an_unsupported_file_type_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(f"id_number\n{A}\n", encoding="utf-8")
    with pytest.raises(
        InvalidInput, match=r"unsupported file type .*save the member list as \.xlsx or \.csv"
    ) as raised:
        read_member_rows(path)
    assert raised.value.code == "invalid_member_file"


def test_the_extension_is_matched_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "MEMBERS.CSV"
    path.write_text(f"id_number\n{A}\n", encoding="utf-8")
    assert read_member_rows(path) == [MemberRow(2, A)]


def test_a_corrupt_xlsx_is_refused_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "members.xlsx"
    path.write_text("this is not a zip archive", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"not a readable \.xlsx workbook") as raised:
        read_member_rows(path)
    assert raised.value.code == "invalid_member_file"


def test_a_title_line_above_the_header_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        f"资阳市总工会会员名单（2022年6月）\n姓名,身份证号\n张三,{id_number(1)}\n", encoding="utf-8"
    )
    [member] = read_member_rows(path)
    assert (member.row, member.id_number) == (3, id_number(1))
