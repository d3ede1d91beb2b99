"""Importing the trade union's member list (工会会员名单导入), on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility.models import UnionMemberRow
from huimin.eligibility.service import is_union_member
from huimin.eligibility.union import NUMBER_LOST, ImportReport, RowProblem, import_members
from huimin.errors import InvalidInput
from huimin.kit.clock import ManualClock
from huimin.kit.hashing import mask
from tests.support import id_number

UNION = "雁江区总工会"
BAD_CHECK_DIGIT = "check digit does not match (GB 11643)"
TOO_SHORT = "must be 18 characters: 17 digits and a check digit or X"


@dataclass(frozen=True)
class MemberList:
    path: Path
    members: list[str]  # the clear ID numbers that should become members, once each
    rejected: list[RowProblem]


def with_wrong_check_digit(value: str) -> str:
    return value[:17] + ("0" if value[17] != "0" else "1")


def spelled_differently(value: str, variant: int) -> str:
    """The same ID number as a clerk might type it again: spaced, lower-case x, full-width digits."""
    if variant % 3 == 0:
        return f"{value[:6]} {value[6:14]} {value[14:]}"
    if variant % 3 == 1:
        return value.lower()
    return value.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))


def write_member_list(path: Path) -> MemberList:
    """1,000 data rows (spreadsheet rows 2-1001): 980 members and, every 50th row, one of 20 bad rows."""
    bad_kinds = ["check"] * 6 + ["empty"] * 5 + ["duplicate"] * 5 + ["number"] * 3 + ["short"]
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["序号", "姓名", "身份证号码", "所属工会"])
    members: list[str] = []
    cells: list[str | float | None] = []
    rejected: list[RowProblem] = []
    for index in range(1000):
        row = index + 2
        if index % 50 != 25:
            members.append(id_number(len(members)))
            cells.append(members[-1])
            continue
        kind = bad_kinds[index // 50]
        if kind == "check":
            cells.append(with_wrong_check_digit(id_number(5000 + index)))
            rejected.append(RowProblem(row, BAD_CHECK_DIGIT))
        elif kind == "empty":
            cells.append(None if index % 100 == 25 else "  ")
            rejected.append(RowProblem(row, "empty ID number"))
        elif kind == "duplicate":
            # Ten rows up is always a member: bad rows are 50 apart.
            cells.append(spelled_differently(str(cells[index - 10]), index))
            rejected.append(RowProblem(row, f"duplicate of row {row - 10}"))
        elif kind == "number":
            cells.append(float(with_wrong_check_digit(id_number(6000 + index))))  # as Excel stores it
            rejected.append(RowProblem(row, NUMBER_LOST))
        else:
            cells.append(id_number(7000)[:17])
            rejected.append(RowProblem(row, TOO_SHORT))
    for index, cell in enumerate(cells):
        sheet.append([index + 1, f"会员{index + 1}", cell, UNION])
    workbook.save(path)
    assert len(members) == 980
    assert len(rejected) == 20
    return MemberList(path, members, rejected)


@pytest.fixture
def member_list(tmp_path: Path) -> MemberList:
    return write_member_list(tmp_path / "2022年会员名单.xlsx")


async def import_file(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock, path: Path
) -> ImportReport:
    async with unit_of_work(sessions) as session:
        return await import_members(session, path=path, hasher=settings.hasher, clock=clock)


async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[UnionMemberRow]:
    async with unit_of_work(sessions) as session:
        return list(await session.scalars(select(UnionMemberRow)))


async def test_a_member_list_imports_its_good_rows_and_reports_every_bad_one(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    member_list: MemberList,
) -> None:
    report = await import_file(sessions, settings, clock, member_list.path)

    assert report == ImportReport(
        total_rows=1000, imported=980, already_members=0, rejected=member_list.rejected
    )
    rows = {row.id_number_digest: row for row in await stored(sessions)}
    assert len(rows) == 980
    for clear in member_list.members:
        row = rows[settings.hasher.digest("id_number", clear)]
        assert row.id_number_masked == mask(clear)
        assert row.source == f"{member_list.path.name} / {UNION}"
        assert row.imported_at == clock.now()
    async with unit_of_work(sessions) as session:
        assert await is_union_member(
            session, id_number_digest=settings.hasher.digest("id_number", member_list.members[0])
        )
        assert not await is_union_member(
            session, id_number_digest=settings.hasher.digest("id_number", id_number(5025))
        )


async def test_importing_the_same_list_again_adds_nobody(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    member_list: MemberList,
) -> None:
    first_import = clock.now()
    await import_file(sessions, settings, clock, member_list.path)
    clock.advance(timedelta(days=1))

    report = await import_file(sessions, settings, clock, member_list.path)

    assert report == ImportReport(
        total_rows=1000, imported=0, already_members=980, rejected=member_list.rejected
    )
    rows = await stored(sessions)
    assert len(rows) == 980
    assert {row.imported_at for row in rows} == {first_import}


async def test_a_later_list_adds_only_the_new_members(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    member_list: MemberList,
    tmp_path: Path,
) -> None:
    await import_file(sessions, settings, clock, member_list.path)
    later = tmp_path / "新入会.csv"
    newcomers = [id_number(990), id_number(991)]
    lines = ["姓名,证件号码", *(f"会员,{value}" for value in [*member_list.members[:3], *newcomers])]
    later.write_bytes("\r\n".join(lines).encode("gb18030"))  # as WPS on Chinese Windows saves it

    report = await import_file(sessions, settings, clock, later)

    assert report == ImportReport(total_rows=5, imported=2, already_members=3, rejected=[])
    rows = {row.id_number_digest: row for row in await stored(sessions)}
    assert len(rows) == 982
    assert {rows[settings.hasher.digest("id_number", value)].source for value in newcomers} == {later.name}


async def test_no_clear_id_number_is_stored(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    member_list: MemberList,
) -> None:
    await import_file(sessions, settings, clock, member_list.path)
    clear = {value.upper() for value in member_list.members}
    async with unit_of_work(sessions) as session:
        table = UnionMemberRow.__table__
        assert await session.scalar(select(func.count()).select_from(table)) == 980
        stored_values = [
            str(value).upper() for row in (await session.execute(select(table))).all() for value in row
        ]
    leaks = [value for value in stored_values if any(number in value for number in clear)]
    assert leaks == []
    # The masked form keeps 7 of the 18 characters: region prefix and the last four.
    assert all(re.fullmatch(r"\d{3}\*{11}\d{3}[\dX]", row.id_number_masked) for row in await stored(sessions))


async def test_a_file_without_an_id_number_column_imports_nothing(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "members.csv"
    path.write_text(f"姓名,手机号\n张三,{id_number(1)}\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        await import_file(sessions, settings, clock, path)
    assert raised.value.code == "invalid_member_file"
    assert await stored(sessions) == []
