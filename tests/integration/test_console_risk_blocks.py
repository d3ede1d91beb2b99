"""The case page of a device's case, on SQLite and PostgreSQL: the sanction form offers the measures of a
person or a device (block, block and revoke), not a merchant's; the city's sanction blocks the device and
the page shows the block, in Chinese and English; the city lifts the block through its form."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.principals import Role
from huimin.db import unit_of_work
from huimin.eligibility.models import ClaimBlockRow
from huimin.kit.clock import ManualClock
from huimin.kit.ids import new_id
from huimin.risk import service as risk
from huimin.risk.domain import AlertStatus, CaseAction, Measure, Rule, SubjectKind
from huimin.risk.models import RiskAlertRow
from tests.integration.complaint_helpers import CITY, OPERATOR
from tests.integration.test_console_pages import World, assert_page_is_clean, clock, signed_in, world

__all__ = ["clock", "world"]

DEVICE = "d" * 64  # a device digest as the alerts name it


async def confirmed_device_case(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, campaign_id: str
) -> str:
    now = clock.now()
    async with unit_of_work(sessions) as session:
        alert = RiskAlertRow(
            id=new_id("alr"),
            campaign_id=campaign_id,
            rule=Rule.DEVICE_FARM.value,
            subject_kind=SubjectKind.DEVICE.value,
            subject_id=DEVICE,
            jurisdiction=None,
            period="2022-06-24",
            status=AlertStatus.OPEN.value,
            score=80,
            figure=6,
            threshold=5,
            unit="count",
            summary="6 persons registered on device dddddddddddd",
            evidence={"device": DEVICE[:12], "persons": []},
            hits=1,
            raised_at=now,
            updated_at=now,
            last_event_at=now,
        )
        session.add(alert)
        await session.flush()
        case = await risk.open_case(
            session, principal=OPERATOR, alert_ids=[alert.id], title="设备聚集", reason="预警", clock=clock
        )
        for action in (CaseAction.INVESTIGATE, CaseAction.CONFIRM):
            await risk.step_case(
                session, principal=OPERATOR, case_id=case.case.id, action=action, reason="核查", clock=clock
            )
    return case.case.id


async def test_a_device_case_is_sanctioned_with_a_block_from_its_page(
    app: FastAPI, world: World, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    case_id = await confirmed_device_case(sessions, clock, world.campaign_id)
    city = await signed_in(app, world.users[Role.CITY_ADMIN], clock)
    path = f"/console/risk/cases/{case_id}"
    page = await city.http.get(path)
    assert page.status_code == 200
    assert_page_is_clean(page)
    assert 'value="block"' in page.text
    assert 'value="block_and_revoke"' in page.text
    assert "禁止领券并作废未使用的券" in page.text
    assert 'value="expel"' not in page.text
    assert 'value="suspend"' not in page.text

    wrong = await city.http.post(
        f"{path}/steps",
        data={"action": "sanction", "measure": "expel", "reason": "x", "csrf_token": city.csrf},
    )
    assert wrong.status_code == 422  # a merchant's measure: the form again with the problem
    assert "请检查：处罚措施" in wrong.text

    done = await city.http.post(
        f"{path}/steps",
        data={"action": "sanction", "measure": "block", "reason": "设备农场", "csrf_token": city.csrf},
    )
    assert done.status_code == 303, done.text
    page = await city.http.get(done.headers["location"])
    assert "data-block=" in page.text
    assert "禁止领券（本活动内不得领取、报名摇号）" in page.text
    english = await city.http.get(f"{path}?lang=en")
    assert "Blocked from claiming" in english.text


async def test_the_city_lifts_a_block_from_the_case_page(
    app: FastAPI, world: World, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    case_id = await confirmed_device_case(sessions, clock, world.campaign_id)
    async with unit_of_work(sessions) as session:
        detail = await risk.step_case(
            session,
            principal=CITY,
            case_id=case_id,
            action=CaseAction.SANCTION,
            reason="设备农场",
            measure=Measure.BLOCK,
            clock=clock,
        )
        block_id = detail.blocks[0].id
    path = f"/console/risk/cases/{case_id}"
    operator = await signed_in(app, world.users[Role.OPERATOR], clock)
    assert "data-lift-form" not in (await operator.http.get(path)).text  # not the operator's to lift
    forbidden = await operator.http.post(
        f"{path}/blocks/{block_id}/lift", data={"reason": "申诉成立", "csrf_token": operator.csrf}
    )
    assert forbidden.status_code == 403

    city = await signed_in(app, world.users[Role.CITY_ADMIN], clock)
    page = await city.http.get(path)
    assert_page_is_clean(page)
    assert f'data-lift-form="{block_id}"' in page.text
    assert "解除禁止领取" in page.text
    assert "Lift the block" in (await city.http.get(f"{path}?lang=en")).text
    await city.http.get(f"{path}?lang=zh")  # the language chosen sticks: back to Chinese
    no_csrf = await city.http.post(f"{path}/blocks/{block_id}/lift", data={"reason": "申诉成立"})
    assert no_csrf.status_code == 403
    empty = await city.http.post(
        f"{path}/blocks/{block_id}/lift", data={"reason": " ", "csrf_token": city.csrf}
    )
    assert empty.status_code == 422  # the page again with the problem
    assert "请检查：理由" in empty.text

    done = await city.http.post(
        f"{path}/blocks/{block_id}/lift", data={"reason": "申诉成立，系误判", "csrf_token": city.csrf}
    )
    assert done.status_code == 303, done.text
    page = await city.http.get(done.headers["location"])
    assert "已解除禁止领取。" in page.text
    assert "data-lift-form" not in page.text  # lifted: no form any more
    assert f"解除禁止领取 {block_id}: 申诉成立，系误判" in page.text  # the note step on the case
    async with unit_of_work(sessions) as session:
        row = await session.get(ClaimBlockRow, block_id)
        assert row is not None
        assert row.lifted_at is not None
    again = await city.http.post(
        f"{path}/blocks/{block_id}/lift", data={"reason": "再次", "csrf_token": city.csrf}
    )
    assert again.status_code == 409
