"""Reading the commerce bureau's invitation list: headers as offices write them, cells as Excel keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from huimin.errors import InvalidInput
from huimin.kit.sheets import NUMBER_LOST
from huimin.merchants.domain import credit_code_check_character
from huimin.merchants.flows import InvitationRow, credit_code_cell, read_invitation_rows

BODY = "91512002MA62X0001"
CODE = BODY + credit_code_check_character(BODY)


def test_headers_are_matched_by_their_many_names_and_the_files_own_names_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "资阳市邀约商家名单\n\n序号,商户名称, 信用代码 ,辖区,行业,商家类别,地址,联系人,联系方式,备注\n"
        f"1,一号店,{CODE},雁江区,餐饮,限上,娇子大道1号,陈静,13812345678,优先\n",
        encoding="utf-8",
    )
    rows, headers = read_invitation_rows(path)
    assert rows == [
        InvitationRow(
            4,
            {
                "legal_name": "一号店",
                "credit_code": CODE,
                "jurisdiction": "雁江区",
                "category": "餐饮",
                "merchant_class": "限上",
                "registered_address": "娇子大道1号",
                "contact_name": "陈静",
                "contact_phone": "13812345678",
            },
        )
    ]
    assert headers["credit_code"] == "信用代码"
    assert headers["contact_phone"] == "联系方式"


def test_bytes_and_a_suffix_read_like_a_file(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["企业名称", "统一社会信用代码", "所属区县", "行业类别", "商家类型"])
    sheet.append(["一号店", CODE, "乐至县", "零售", "限下抽样"])
    sheet.append([None, None, None, None, None])
    sheet.append(["二号店", float(123456789012345678), "乐至县", "零售", "限下抽样"])
    workbook.save(tmp_path / "list.xlsx")
    rows, _ = read_invitation_rows((tmp_path / "list.xlsx").read_bytes(), suffix=".XLSX")
    assert [(row.row, row.cells["legal_name"]) for row in rows] == [(2, "一号店"), (4, "二号店")]
    assert credit_code_cell(rows[1].cells["credit_code"]) == ("", NUMBER_LOST)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (CODE, (CODE, None)),
        (None, ("", None)),
        (1.23e17, ("", NUMBER_LOST)),
        ("9.15120E+17", ("", NUMBER_LOST)),  # a CSV saved from a numeric Excel column
        (915120020000000001, ("915120020000000001", None)),  # an exact integer: checked as text
    ],
)
def test_credit_code_cells(cell: str | int | float | None, expected: tuple[str, str | None]) -> None:
    assert credit_code_cell(cell) == expected


@pytest.mark.parametrize("name", ["list.xls", "list.txt", "list"])
def test_other_file_types_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("企业名称\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"save the invitation list as \.xlsx or \.csv") as refused:
        read_invitation_rows(path)
    assert refused.value.code == "invalid_invitation_file"


def test_a_corrupt_workbook_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"not a readable \.xlsx workbook"):
        read_invitation_rows(b"not a zip", suffix=".xlsx")
