"""Importing the commerce bureau's invitation list (邀约名单), on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.db import unit_of_work
from huimin.errors import HuiminError, InvalidInput
from huimin.kit.clock import ManualClock
from huimin.kit.sheets import RowProblem
from huimin.kit.terms import Category, Jurisdiction, MerchantClass, TermError
from huimin.merchants import flows, service
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.flows import ImportReport
from huimin.merchants.models import MerchantRow, MerchantTransitionRow
from tests.integration.merchant_helpers import (
    CITY,
    OPERATOR,
    SEALER,
    credit_code,
    merchant_in,
    new_campaign,
    reviewer,
)

HEADER = [
    "序号",
    "企业名称",
    "统一社会信用代码",
    "所属区县",
    "行业类别",
    "商家类型",
    "注册地址",
    "联系人",
    "联系电话",
]
CHECK = "统一社会信用代码: check character does not match (GB 32100)"
LETTER = "统一社会信用代码: O cannot appear in a credit code (I, O, S, V and Z never do)"
EMPTY_NAME = "企业名称: empty name"


def unknown_jurisdiction(text: str) -> str:
    with pytest.raises(TermError) as error:
        Jurisdiction.parse(text)
    return f"所属区县: {error.value}"


def with_wrong_check(code: str) -> str:
    return code[:17] + ("0" if code[17] != "0" else "1")


def spelled_differently(code: str, variant: int) -> str:
    """The same code as a clerk might type it again: spaced, lower-case, full-width."""
    if variant % 3 == 0:
        return f"{code[:2]} {code[2:8]} {code[8:]}"
    if variant % 3 == 1:
        return code.lower()
    return code.translate(
        str.maketrans(
            "0123456789ABCDEFGHJKLMNPQRTUWXY",
            "０１２３４５６７８９ＡＢＣＤＥＦＧＨＪＫＬＭＮＰＱＲＴＵＷＸＹ",
        )
    )


@dataclass(frozen=True)
class InvitationList:
    path: Path
    codes: list[str]  # the codes that should be invited, once each
    rejected: list[RowProblem]


def write_invitation_list(path: Path, rows: int = 5000) -> InvitationList:
    """`rows` data rows (spreadsheet rows 2..rows+1); every 100th, from the 51st, is one of 50 bad rows:
    wrong check characters, letters no code has, unknown jurisdictions, duplicates, empty names."""
    kinds = ["check"] * 10 + ["letter"] * 3 + ["jurisdiction"] * 12 + ["duplicate"] * 13 + ["name"] * 12
    places = [item.label for item in Jurisdiction] + ["yanjiang"]  # Chinese names and a code
    categories = [item.label for item in Category]
    classes = [item.label for item in MerchantClass]
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["资阳市2022年“嗨购资阳·惠民共享”消费券活动邀约商家名单"])  # a title line above the header
    sheet.append(HEADER)
    codes: list[str] = []
    rejected: list[RowProblem] = []
    cells: list[list[object]] = []
    for index in range(rows):
        row = index + 3
        serial = index + 1
        name = f"资阳测试商贸{serial}号店"
        code = credit_code(serial)
        place = places[index % len(places)]
        phone: object = f"138{serial:08d}" if index % 2 else float(f"139{serial:08d}")  # Excel's number
        if index % 100 == 50:
            kind = kinds[index // 100]
            if kind == "check":
                code = with_wrong_check(code)
                rejected.append(RowProblem(row, CHECK))
            elif kind == "letter":
                code = code[:10] + "O" + code[11:]
                rejected.append(RowProblem(row, LETTER))
            elif kind == "jurisdiction":
                place = "成都市武侯区" if index % 200 == 50 else "简阳市"
                rejected.append(RowProblem(row, unknown_jurisdiction(place)))
            elif kind == "duplicate":
                code = spelled_differently(str(cells[index - 10][2]), index)  # ten rows up: always good
                rejected.append(RowProblem(row, f"duplicate of row {row - 10}"))
            else:
                name = "   " if index % 200 == 50 else ""
                rejected.append(RowProblem(row, EMPTY_NAME))
        else:
            codes.append(code)
        cells.append(
            [
                serial,
                name,
                code,
                place,
                categories[index % len(categories)],
                classes[index % len(classes)],
                f"资阳市测试路{serial}号",
                "联系人",
                phone,
            ]
        )
    for values in cells:
        sheet.append(values)
    workbook.save(path)
    return InvitationList(path, codes, rejected)


async def import_file(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, campaign_id: str, path: Path
) -> ImportReport:
    async with unit_of_work(sessions) as session:
        return await flows.import_invitations(
            session,
            principal=CITY,
            campaign_id=campaign_id,
            source=path,
            file_name=path.name,
            sealer=SEALER,
            clock=clock,
        )


async def counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with unit_of_work(sessions) as session:
        merchants = await session.scalar(select(func.count()).select_from(MerchantRow))
        transitions = await session.scalar(select(func.count()).select_from(MerchantTransitionRow))
        return merchants or 0, transitions or 0


async def test_5000_rows_with_50_bad_ones_import_4950_and_a_second_import_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, tmp_path: Path
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    listing = write_invitation_list(tmp_path / "2022年邀约商家名单.xlsx")
    assert (len(listing.codes), len(listing.rejected)) == (4950, 50)

    report = await import_file(sessions, clock, campaign_id, listing.path)

    assert report == ImportReport(total_rows=5000, invited=4950, already_invited=0, rejected=listing.rejected)
    assert await counts(sessions) == (4950, 4950)
    async with unit_of_work(sessions) as session:
        rows = {row.credit_code: row for row in await session.scalars(select(MerchantRow))}
        assert set(rows) == set(listing.codes)
        first = rows[credit_code(1)]
        assert (first.legal_name, first.jurisdiction, first.category, first.merchant_class) == (
            "资阳测试商贸1号店",
            "yanjiang",
            "catering",
            "above_scale_services",
        )
        assert first.status == "invited"
        assert first.contact_phone_masked == "139****0001"  # a phone Excel stored as a number still reads
        assert rows[credit_code(6)].jurisdiction == "yanjiang"  # written as the code
        assert rows[credit_code(4)].jurisdiction == "gaoxin"
        transition = await session.scalar(
            select(MerchantTransitionRow).where(MerchantTransitionRow.merchant_id == first.id)
        )
        assert transition is not None
        assert (transition.action, transition.actor_id, transition.reason) == (
            "invite",
            "usr_city",
            "2022年邀约商家名单.xlsx, row 3",
        )

    clock.advance(timedelta(days=1))
    again = await import_file(sessions, clock, campaign_id, listing.path)

    assert again == ImportReport(total_rows=5000, invited=0, already_invited=4950, rejected=listing.rejected)
    assert await counts(sessions) == (4950, 4950)
    async with unit_of_work(sessions) as session:
        assert set(await session.scalars(select(MerchantRow.invited_at))) == {clock.now() - timedelta(days=1)}


async def test_a_gb18030_csv_with_other_headers_and_a_dishonest_code(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, tmp_path: Path
) -> None:
    earlier = await new_campaign(sessions, clock, "test-2021")
    await merchant_in(sessions, clock, earlier, MerchantStatus.EXPELLED, 3)
    campaign_id = await new_campaign(sessions, clock)
    path = tmp_path / "邀约名单.csv"
    lines = [
        "商户名称,社会信用代码,辖区,行业,企业类型,手机号",
        f"一号店,{credit_code(1)},安岳县,零售,限上,13800000001",
        f"二号店,{credit_code(2)},乐至县,家电,重点培育,",
        f"三号店,{credit_code(3)},雁江区,餐饮,限上,",
        f"四号店,{credit_code(4)},雁江区,饮品,限上,",
        f"五号店,{credit_code(5)[:17]},临空经济区,住宿,特大型,028-2612",
        ",,,,,",
    ]
    path.write_bytes("\r\n".join(lines).encode("gb18030"))  # as WPS on Chinese Windows saves it

    report = await import_file(sessions, clock, campaign_id, path)

    assert (report.total_rows, report.invited, report.already_invited) == (5, 2, 0)
    assert [problem.row for problem in report.rejected] == [4, 5, 6]
    assert report.rejected[0].reason == "社会信用代码: on the dishonest list (失信名单)"
    assert report.rejected[1].reason.startswith("行业: unknown category '饮品'")
    # every problem of a row, each under the file's own header
    reasons = report.rejected[2].reason.split(" | ")
    assert reasons[0] == "社会信用代码: a credit code has 18 characters, this one has 17"
    assert reasons[1].startswith("企业类型: unknown merchant class '特大型'")
    assert reasons[2].startswith("手机号: must be an 11-digit mobile number")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("企业名称,所属区县\n一号店,雁江区\n", "no credit code column"),
        (
            f"企业名称,统一社会信用代码,所属区县\n一号店,{credit_code(1)},雁江区\n",
            "missing column 行业类别, 商家类型",
        ),
        ("名称,企业名称,统一社会信用代码,所属区县,行业类别,商家类型\n", "two columns are legal name"),
        ("", "the file is empty"),
    ],
)
async def test_a_file_that_is_not_an_invitation_list_imports_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, tmp_path: Path, content: str, message: str
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    path = tmp_path / "list.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message) as refused:
        await import_file(sessions, clock, campaign_id, path)
    assert refused.value.code == "invalid_invitation_file"
    assert await counts(sessions) == (0, 0)


async def test_only_the_city_imports_invitations(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, tmp_path: Path
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    listing = write_invitation_list(tmp_path / "list.xlsx", rows=10)
    for who in (OPERATOR, reviewer(Jurisdiction.ANYUE)):
        with pytest.raises(HuiminError) as refused:
            async with unit_of_work(sessions) as session:
                await flows.import_invitations(
                    session,
                    principal=who,
                    campaign_id=campaign_id,
                    source=listing.path,
                    file_name="list.xlsx",
                    sealer=SEALER,
                    clock=clock,
                )
        assert refused.value.code == "forbidden"
    with pytest.raises(HuiminError) as unknown:
        await import_file(sessions, clock, "cmp_nope", listing.path)
    assert unknown.value.code == "unknown_campaign"
    assert await counts(sessions) == (0, 0)
    async with unit_of_work(sessions) as session:
        assert (await service.list_merchants(session, principal=CITY)).total == 0
