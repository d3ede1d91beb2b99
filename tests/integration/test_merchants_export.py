"""Exporting the city's final list (参与商家名单) as XLSX, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.merchants import flows
from huimin.merchants.domain import MerchantStatus
from tests.integration.merchant_helpers import (
    BANK_ACCOUNT,
    CITY,
    OPERATOR,
    PHONE,
    credit_code,
    merchant_in,
    merchant_principal,
    new_campaign,
    reviewer,
)

HEADERS = [
    "序号",
    "企业名称",
    "统一社会信用代码",
    "所属区县",
    "行业类别",
    "商家类型",
    "注册地址",
    "营业时间",
    "收银终端",
    "开户银行",
    "结算账号",
    "联系人",
    "联系电话",
    "状态",
    "列入名单时间",
    "承诺书签署时间",
]


async def final_list(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> str:
    """A campaign whose merchants are in every state, in three jurisdictions."""
    campaign_id = await new_campaign(sessions, clock)
    plan = [
        (Jurisdiction.YANJIANG, MerchantStatus.ACTIVE),
        (Jurisdiction.YANJIANG, MerchantStatus.LISTED),
        (Jurisdiction.YANJIANG, MerchantStatus.EXPELLED),  # off the list
        (Jurisdiction.YANJIANG, MerchantStatus.COUNTY_APPROVED),  # not on it yet
        (Jurisdiction.ANYUE, MerchantStatus.SUSPENDED),
        (Jurisdiction.ANYUE, MerchantStatus.SUBMITTED),
        (Jurisdiction.GAOXIN, MerchantStatus.ACTIVE),
    ]
    for serial, (jurisdiction, status) in enumerate(plan, start=1):
        await merchant_in(sessions, clock, campaign_id, status, serial, jurisdiction)
    return campaign_id


def cells(content: bytes) -> dict[str, list[list[object]]]:
    workbook = load_workbook(io.BytesIO(content))
    return {
        sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets
    }


async def test_the_city_file_has_a_summary_and_a_sheet_per_jurisdiction(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await final_list(sessions, clock)
    async with unit_of_work(sessions) as session:
        export = await flows.export_final_list(
            session, principal=CITY, campaign_id=campaign_id, jurisdiction=None, clock=clock
        )
    assert export.file_name == "test-2022-参与商家名单-全市-20220601.xlsx"
    book = cells(export.content)
    assert list(book) == ["汇总", "雁江区", "安岳县", "乐至县", "高新区", "临空经济区"]

    summary = book["汇总"]
    assert summary[0][0] == "测试活动参与商家名单汇总"
    assert summary[1][0] == "导出时间：2022-06-01 08:00    共 4 户"
    assert summary[2] == ["序号", "区县", "已列入名单", "参与中", "已暂停", "合计"]
    assert summary[3:] == [
        [1, "雁江区", 1, 1, 0, 2],
        [2, "安岳县", 0, 0, 1, 1],
        [3, "乐至县", 0, 0, 0, 0],
        [4, "高新区", 0, 1, 0, 1],
        [5, "临空经济区", 0, 0, 0, 0],
        [None, "合计", 1, 2, 1, 4],
    ]

    yanjiang = book["雁江区"]
    assert yanjiang[0][0] == "测试活动参与商家名单（雁江区）"
    assert yanjiang[2] == HEADERS
    assert [row[2] for row in yanjiang[3:]] == [credit_code(1), credit_code(2)]
    active = dict(zip(HEADERS, yanjiang[3], strict=True))
    assert active == {
        "序号": 1,
        "企业名称": "资阳市测试商贸有限公司1号店",
        "统一社会信用代码": credit_code(1),
        "所属区县": "雁江区",
        "行业类别": "餐饮",
        "商家类型": "限上",
        "注册地址": "资阳市测试路1号",
        "营业时间": "09:00-21:00",
        "收银终端": "T0000001",
        "开户银行": "中国工商银行资阳分行",
        "结算账号": "622************0123",
        "联系人": "陈静",
        "联系电话": "138****5678",
        "状态": "参与中",
        "列入名单时间": "2022-06-01 08:00",
        "承诺书签署时间": "2022-06-01 08:00",
    }
    assert [row[13] for row in book["安岳县"][3:]] == ["已暂停"]
    assert book["乐至县"][3:] == []
    # no clear account or phone number anywhere in the file
    flat = [str(value) for sheet in book.values() for row in sheet for value in row if value is not None]
    assert not any(BANK_ACCOUNT in value or PHONE in value for value in flat)


async def test_a_jurisdiction_file_reads_back_as_an_invitation_list(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await final_list(sessions, clock)
    async with unit_of_work(sessions) as session:
        export = await flows.export_final_list(
            session,
            principal=OPERATOR,
            campaign_id=campaign_id,
            jurisdiction=Jurisdiction.YANJIANG,
            clock=clock,
        )
    assert list(cells(export.content)) == ["雁江区"]
    rows, _ = flows.read_invitation_rows(export.content, suffix=".xlsx")
    assert [(row.row, row.cells["credit_code"]) for row in rows] == [(4, credit_code(1)), (5, credit_code(2))]


async def test_a_county_exports_its_own_list_only(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await final_list(sessions, clock)
    county = reviewer(Jurisdiction.ANYUE)
    async with unit_of_work(sessions) as session:
        own = await flows.export_final_list(
            session, principal=county, campaign_id=campaign_id, jurisdiction=None, clock=clock
        )
    assert list(cells(own.content)) == ["安岳县"]
    assert "安岳县" in own.file_name
    with pytest.raises(HuiminError) as hidden:
        async with unit_of_work(sessions) as session:
            await flows.export_final_list(
                session,
                principal=county,
                campaign_id=campaign_id,
                jurisdiction=Jurisdiction.YANJIANG,
                clock=clock,
            )
    assert (hidden.value.code, hidden.value.status) == ("unknown_jurisdiction", 404)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await flows.export_final_list(
                session,
                principal=merchant_principal("mch_x"),
                campaign_id=campaign_id,
                jurisdiction=None,
                clock=clock,
            )
    assert refused.value.code == "forbidden"
