"""Returning a settlement run (退回), on SQLite and PostgreSQL: finance sends a prepared run back with a
reason; nothing is posted, its redemptions are free again, and the day's next run takes the same
redemptions and is approved as usual. Through the service, the staff API and the console."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.money import Fen
from huimin.settlement import service
from huimin.settlement.models import SettlementItemRow, SettlementRunRow
from huimin.settlement.reconcile import reconcile
from tests.integration import test_console_settlement_reports_audit as console
from tests.integration import test_settlement as base
from tests.integration.merchant_helpers import OPERATOR
from tests.integration.staff import as_
from tests.integration.till import FINANCE, Till, checked_balances

# The neighbours' fixtures: a funded till with merchants (and its app), and a desk of signed-in officials.
settings, app, till, desk = base.settings, base.app, base.till, console.desk
BANK, FINANCE_2, JUNE_24 = base.BANK, base.FINANCE_2, base.JUNE_24
approve, detail, prepare, spend, page = base.approve, base.detail, base.prepare, base.spend, console.page

WHY = "一家商户已被县里要求冻结，本批次仍含其补贴；数据修正后请重新生成。"


async def return_run(
    sessions: async_sessionmaker[AsyncSession],
    till: Till,
    run_id: str,
    reason: str = WHY,
    who: Principal = FINANCE,
) -> SettlementRunRow:
    async with unit_of_work(sessions) as session:
        return await service.return_run(
            session, principal=who, run_id=run_id, reason=reason, clock=till.clock
        )


async def items(sessions: async_sessionmaker[AsyncSession], run_id: str) -> set[str]:
    async with unit_of_work(sessions) as session:
        rows = await session.scalars(
            select(SettlementItemRow.redemption_id).where(SettlementItemRow.run_id == run_id)
        )
        return set(rows)


async def refused(call: object) -> HuiminError:
    with pytest.raises(HuiminError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_returned_day_is_prepared_again_with_the_same_redemptions(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await spend(till, "catering", "catering")
    await spend(till, "retail", "retail")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    before = await checked_balances(sessions, till)
    first = await prepare(sessions, till, JUNE_24)
    held = await items(sessions, first.id)
    assert len(held) == 2

    returned = await return_run(sessions, till, first.id, reason=f"  {WHY}\n")
    assert (returned.status, returned.return_reason, returned.returned_by) == (
        "returned",
        WHY,
        FINANCE.actor_id,
    )
    assert returned.approved_at is None
    assert {line.status for line in (await detail(sessions, first.id)).lines} == {"returned"}
    # Nothing was posted at preparation and nothing is at return: every ledger check holds.
    assert await checked_balances(sessions, till) == before
    async with unit_of_work(sessions) as session:
        report = await reconcile(session, principal=FINANCE, day=JUNE_24, sealer=BANK)
        [record] = await session.scalars(
            select(AuditRecordRow).where(AuditRecordRow.action == "settlement.run_returned")
        )
    assert report.clean, report.differences
    assert (record.actor_id, record.object_id) == (FINANCE.actor_id, first.id)

    # Approving, or returning again, a returned run is refused; so is its clearing file.
    assert (await refused(approve(sessions, till, first.id, who=FINANCE_2))).code == "run_not_prepared"
    again = await refused(return_run(sessions, till, first.id, who=FINANCE_2))
    assert (again.code, again.status) == ("run_not_prepared", 409)

    second = await prepare(sessions, till, JUNE_24)
    assert second.id != first.id
    assert (second.status, second.lines, second.total_fen) == ("prepared", 2, first.total_fen)
    assert await items(sessions, second.id) == held
    assert all(line.retry_fen == 0 for line in (await detail(sessions, second.id)).lines)
    assert (await prepare(sessions, till, JUNE_24)).id == second.id  # idempotent on the live run
    approved = await approve(sessions, till, second.id)
    assert approved.status == "approved"
    assert (await checked_balances(sessions, till))["clearing"] == second.total_fen
    async with unit_of_work(sessions) as session:
        report = await reconcile(session, principal=FINANCE, day=JUNE_24, sealer=BANK)
    assert report.runs == 2
    assert [item.what for item in report.differences] == ["awaiting_bank", "awaiting_bank"]

    late = await refused(return_run(sessions, till, second.id))
    assert (late.code, late.status) == ("run_not_prepared", 409)
    assert (await checked_balances(sessions, till))["clearing"] == second.total_fen


async def test_who_may_return_and_the_reason(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    async with unit_of_work(sessions) as session:
        await service.configure(
            session, principal=FINANCE, campaign_id=till.campaign_id, dual_approval_above=Fen(100)
        )
    await spend(till, "catering", "catering")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    run = await prepare(sessions, till, JUNE_24)
    for reason in ("", "   \n", "因" * 501):
        problem = await refused(return_run(sessions, till, run.id, reason=reason))
        assert (problem.code, problem.status) == ("invalid_return_reason", 422)
    operator = await refused(return_run(sessions, till, run.id, who=OPERATOR))
    assert (operator.code, operator.status) == ("forbidden", 403)
    assert (await refused(return_run(sessions, till, "stl_nope"))).status == 404
    # A run with the first of its two approvals may still be returned, by that approver too.
    assert (await approve(sessions, till, run.id)).status == "prepared"
    returned = await return_run(sessions, till, run.id, reason="因" * 500)
    assert returned.status == "returned"
    assert len((await detail(sessions, run.id)).approvals) == 1  # kept on record, without effect
    assert "clearing" not in await checked_balances(sessions, till)


async def test_the_staff_api(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    await spend(till, "catering", "catering")
    till.clock.set(datetime(2022, 6, 25, 1, 0, tzinfo=UTC))
    http = till.http
    run = await prepare(sessions, till, JUNE_24)
    path = f"/api/v1/staff/settlement/runs/{run.id}/return"
    forbidden = await http.post(path, json={"reason": WHY}, headers=as_(OPERATOR))
    assert forbidden.status_code == 403
    empty = await http.post(path, json={"reason": " "}, headers=as_(FINANCE))
    assert (empty.status_code, empty.json()["code"]) == (422, "invalid_return_reason")
    assert (await http.post(path, json={}, headers=as_(FINANCE))).status_code == 422
    done = await http.post(path, json={"reason": WHY}, headers=as_(FINANCE))
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["return_reason"], body["returned_by"]) == ("returned", WHY, FINANCE.name)
    twice = await http.post(path, json={"reason": WHY}, headers=as_(FINANCE_2))
    assert (twice.status_code, twice.json()["code"]) == (409, "run_not_prepared")
    shown = await http.get(f"/api/v1/staff/settlement/runs/{run.id}", headers=as_(FINANCE))
    assert [payout["status"] for payout in shown.json()["payouts"]] == ["returned"]
    again = await http.post(
        "/api/v1/staff/settlement/runs",
        json={"campaign_id": till.campaign_id, "business_day": "2022-06-24"},
        headers=as_(OPERATOR),
    )
    assert again.status_code == 201
    assert again.json()["run_id"] != run.id
    approved = await http.post(
        f"/api/v1/staff/settlement/runs/{again.json()['run_id']}/approval", headers=as_(FINANCE)
    )
    assert approved.json()["status"] == "approved"


async def test_the_console_return_form(
    desk: console.Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    till, b = desk.till, desk.browsers
    campaign = till.campaign_id
    form = {"campaign_id": campaign, "business_day": "2022-06-24", "csrf_token": b["operator"].csrf}
    prepared = await b["operator"].http.post("/console/settlement/runs", data=form)
    assert prepared.status_code == 303
    run_path = prepared.headers["location"].split("?")[0]
    run_id = run_path.rsplit("/", 1)[1]
    assert "/return" not in await page(b["operator"], run_path)  # the operator cannot return
    assert "/return" not in await page(b["city"], run_path)
    text = await page(b["finance"], run_path)
    assert f'action="/console/settlement/runs/{run_id}/return"' in text
    assert "退回原因" in text

    denied = await b["operator"].http.post(
        f"{run_path}/return", data={"reason": WHY, "csrf_token": b["operator"].csrf}
    )
    assert denied.status_code == 403
    empty = await b["finance"].http.post(
        f"{run_path}/return", data={"reason": "  ", "csrf_token": b["finance"].csrf}
    )
    assert empty.status_code == 422
    assert "请填写退回原因" in empty.text
    returned = await b["finance"].http.post(
        f"{run_path}/return", data={"reason": WHY, "csrf_token": b["finance"].csrf}
    )
    assert returned.status_code == 303, returned.text[:500]
    assert returned.headers["location"] == f"{run_path}?done=returned"
    text = await page(b["finance"], returned.headers["location"])
    assert 'data-run-status="returned"' in text
    assert "批次已退回运营机构" in text
    assert WHY in text
    assert "/return" not in text
    assert "/approval" not in text
    english = await b["finance"].http.get(f"{run_path}?lang=en")
    assert "This run was returned" in english.text
    await b["finance"].http.get(f"{run_path}?lang=zh")
    again = await b["finance_2"].http.post(
        f"{run_path}/return", data={"reason": WHY, "csrf_token": b["finance_2"].csrf}
    )
    assert again.status_code == 409
    assert "不在待审批状态" in again.text

    listing = await page(b["city"], f"/console/settlement?campaign_id={campaign}")
    assert "已退回" in listing
    assert f"退回原因：{WHY}" in listing
    anew = await b["operator"].http.post("/console/settlement/runs", data=form)
    assert anew.status_code == 303
    assert anew.headers["location"].split("?")[0] != run_path
    async with unit_of_work(sessions) as session:
        runs = (await session.scalars(select(SettlementRunRow))).all()
    assert sorted((run.id == run_id, run.status) for run in runs) == [(False, "prepared"), (True, "returned")]
    assert re.search(r"data-line-status=\"prepared\"", await page(b["finance"], anew.headers["location"]))
