"""A person's or a device's case sanctioned (issue 7), on SQLite and PostgreSQL: `block_and_revoke` revokes
the person's unused vouchers through the ledger (every check still holds) and refuses the next claim under
any of the person's app accounts; a device `block` refuses another person on that device; a lottery
entry is refused and a winner blocked after entering forfeits; a lifted block lets the person claim again;
each step is in the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal
from huimin.campaigns.models import CampaignRow
from huimin.claims import flows as claim_flows
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility.models import ClaimBlockRow, ResidentRow
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from huimin.ledger.models import LedgerTransactionRow
from huimin.risk import flows, sanctions, service
from huimin.risk.domain import CaseAction, CaseStatus, Measure, SubjectKind
from huimin.risk.models import RiskCaseRow
from tests.integration import test_lottery_and_recycling as lottery
from tests.integration import test_risk_scan as risk_scan
from tests.integration.merchant_helpers import CITY, OPERATOR
from tests.integration.staff import as_
from tests.integration.till import Till, checked_balances, fund
from tests.support import ZIYANG_CENTRE

app, till = risk_scan.app, risk_scan.till  # the app with test principals, the till with small settings
world = lottery.world  # a lottery campaign with a dozen registered residents

RISK = "/api/v1/staff/risk"
_KEYS = iter(range(1, 1_000))


async def attempt(till: Till, resident_id: str) -> httpx.Response:
    return await till.app.post(
        f"/api/v1/rounds/{till.round_id}/claims",
        {"resident_id": resident_id, "batch_id": till.batches["general"], "location": ZIYANG_CENTRE},
        **{"Idempotency-Key": f"block-claim-{next(_KEYS)}"},
    )


async def case_sanctioned(
    http: httpx.AsyncClient, subject_id: str, measure: str, *, refused: tuple[str | None, ...] = ()
) -> dict[str, Any]:
    """The subject's open alerts opened as a case, investigated, confirmed and sanctioned by the city;
    each measure in `refused` is tried first and must be refused with invalid_step."""
    listed = await http.get(f"{RISK}/alerts", params={"subject_id": subject_id}, headers=as_(OPERATOR))
    alert_ids = [item["alert_id"] for item in listed.json()["items"]]
    assert alert_ids, listed.text
    opened = await http.post(
        f"{RISK}/cases",
        json={"alert_ids": alert_ids, "title": "设备聚集领券", "reason": "多账户领券"},
        headers=as_(OPERATOR),
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]

    async def step(who: Principal, **body: Any) -> httpx.Response:
        return await http.post(f"{RISK}/cases/{case_id}/transitions", json=body, headers=as_(who))

    assert (await step(OPERATOR, action="investigate", reason="调取设备与身份信息")).status_code == 200
    assert (await step(OPERATOR, action="confirm", reason="核查属实")).status_code == 200
    for wrong in refused:
        answer = await step(CITY, action="sanction", reason="x", **({"measure": wrong} if wrong else {}))
        assert (answer.status_code, answer.json()["code"]) == (422, "invalid_step"), wrong
    sanctioned = await step(CITY, action="sanction", reason="多账户套领，禁止领券", measure=measure)
    assert sanctioned.status_code == 200, sanctioned.text
    return dict(sanctioned.json())


async def confirmed_person_case(
    session: AsyncSession, case_id: str, campaign_id: str, person_id: str, title: str, clock: ManualClock
) -> RiskCaseRow:
    """A person's case already confirmed by the investigator, ready to be sanctioned."""
    case = RiskCaseRow(
        id=case_id,
        campaign_id=campaign_id,
        subject_kind=SubjectKind.PERSON.value,
        subject_id=person_id,
        jurisdiction=None,
        title=title,
        status=CaseStatus.CONFIRMED.value,
        assignee=None,
        measure=None,
        opened_at=clock.now(),
        opened_by=OPERATOR.actor_id,
        updated_at=clock.now(),
    )
    session.add(case)
    await session.flush()
    return case


async def test_a_person_blocked_and_revoked_loses_unused_vouchers_and_may_not_claim(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    await fund(sessions, till, clock)
    async with unit_of_work(sessions) as session:  # one person on two devices is enough to be flagged
        await service.put_settings(
            session,
            principal=OPERATOR,
            campaign_id=till.campaign_id,
            overrides={**risk_scan.TEST_SETTINGS, "farm_devices_per_person": 2},
            clock=clock,
        )
    first = await risk_scan.resident(till, 500)
    second = await risk_scan.resident(till, 500, app_user_id="user-500-b", device_id="device-500-b")
    kept = [await risk_scan.claim(till, first), await risk_scan.claim(till, second)]
    spent = await risk_scan.claim(till, first)
    assert (await till.redeem(till.body(spent))).status_code == 201
    bystander = await risk_scan.resident(till, 501)
    assert (await attempt(till, bystander)).status_code == 201
    clock.advance(timedelta(minutes=5))  # past the scan's settle line
    await flows.scan(sessions, links=risk_scan.links(settings), clock=clock)
    async with unit_of_work(sessions) as session:
        resident = await session.get(ResidentRow, first)
        assert resident is not None
        person_id = resident.person_id

    detail = await case_sanctioned(
        till.http, person_id, "block_and_revoke", refused=(None, "expel", "suspend")
    )
    assert (detail["status"], detail["measure"], detail["subject_kind"]) == (
        "sanctioned",
        "block_and_revoke",
        "person",
    )
    [block] = detail["blocks"]
    assert (block["subject_id"], block["vouchers_revoked"], block["value_revoked_fen"]) == (
        person_id,
        2,
        6_000,
    )

    async with unit_of_work(sessions) as session:
        statuses = dict(
            (
                await session.execute(
                    select(VoucherRow.code, VoucherRow.status).where(VoucherRow.person_id == person_id)
                )
            ).all()
        )
        assert statuses == {kept[0]["code"]: "revoked", kept[1]["code"]: "revoked", spent["code"]: "redeemed"}
        events = (
            await session.scalars(select(VoucherEventRow.voucher_id).where(VoucherEventRow.kind == "revoked"))
        ).all()
        assert sorted(events) == sorted(voucher["voucher_id"] for voucher in kept)
        postings = (
            await session.scalars(
                select(LedgerTransactionRow.reference).where(LedgerTransactionRow.kind == "revoke")
            )
        ).all()
        assert sorted(postings) == sorted(events)
        [audited] = (
            await session.scalars(
                select(AuditRecordRow).where(
                    AuditRecordRow.object_id == detail["case_id"],
                    AuditRecordRow.action == "risk.case_sanction",
                )
            )
        ).all()
        assert audited.actor_id == CITY.actor_id
        assert (audited.detail["measure"], audited.detail["vouchers_revoked"]) == ("block_and_revoke", 2)
        assert audited.detail["block_id"] == block["block_id"]
    balances = await checked_balances(sessions, till)  # every ledger check holds
    assert balances["vouchers:fiscal"] + balances["vouchers:social"] == 30 * 100  # the bystander's

    for account in (first, second):  # blocked under each of the person's app accounts
        refused = await attempt(till, account)
        assert (refused.status_code, refused.json()["code"]) == (403, "claims_blocked")
    assert (await attempt(till, bystander)).status_code == 201
    revoked = await till.redeem(till.body(kept[0]))
    assert (revoked.status_code, revoked.json()["code"]) == (409, "voucher_revoked")


async def test_a_blocked_device_refuses_another_person_on_it(
    till: Till, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    farm = [await risk_scan.resident(till, 600 + i, device_id="farm-device") for i in range(3)]
    vouchers = [await risk_scan.claim(till, resident) for resident in farm]
    clock.advance(timedelta(minutes=5))
    await flows.scan(sessions, links=risk_scan.links(settings), clock=clock)
    device = settings.hasher.digest("device", "farm-device")

    detail = await case_sanctioned(till.http, device, "block", refused=("expel",))
    [block] = detail["blocks"]
    assert (block["subject_kind"], block["subject_id"], block["vouchers_revoked"]) == ("device", device, 0)

    newcomer = await risk_scan.resident(till, 610, device_id="farm-device")  # a person not in the case
    refused = await attempt(till, newcomer)
    assert (refused.status_code, refused.json()["code"]) == (403, "claims_blocked")
    elsewhere = await risk_scan.resident(till, 611)
    assert (await attempt(till, elsewhere)).status_code == 201
    async with unit_of_work(sessions) as session:  # `block` alone leaves the vouchers as they were
        statuses = (
            await session.scalars(
                select(VoucherRow.status).where(VoucherRow.code.in_([v["code"] for v in vouchers]))
            )
        ).all()
        assert statuses == ["claimed"] * 3


async def test_a_blocked_person_may_not_enter_a_lottery_and_forfeits_a_win(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, Any], clock: ManualClock
) -> None:
    residents: list[str] = world["residents"]
    clock.set(lottery.at(22, hour=11))
    for entrant in residents[:3]:
        await lottery.enter(sessions, world, entrant, clock)
    async with unit_of_work(sessions) as session:  # the city blocks the first two after they entered
        campaign_id = await session.scalar(select(CampaignRow.id))
        assert campaign_id is not None
        for resident_id in residents[:2]:
            account = await session.get(ResidentRow, resident_id)
            assert account is not None
            case = await confirmed_person_case(
                session, f"rcs_{resident_id[-20:]}", campaign_id, account.person_id, "冒用身份报名", clock
            )
            await sanctions.block_subject(
                session, case=case, measure=Measure.BLOCK, principal=CITY, reason="冒用身份", clock=clock
            )
        assert len((await session.scalars(select(ClaimBlockRow))).all()) == 2

    with pytest.raises(HuiminError) as entering:
        await lottery.enter(sessions, world, residents[0], clock)
    assert (entering.value.status, entering.value.code) == (403, "claims_blocked")

    clock.set(lottery.at(24, hour=11))  # registration closed: the draw
    async with unit_of_work(sessions) as session:
        report = await claim_flows.draw_lottery(
            session, round_id=world["rounds"]["draw-20220622"], sealer=lottery.SEALER, clock=clock
        )
        owners = (await session.scalars(select(VoucherRow.resident_id))).all()
    assert (report.entries, report.winners, report.vouchers) == (3, 3, 1)  # stock 5: all win, two forfeit
    assert owners == [residents[2]]
    with pytest.raises(HuiminError) as claiming:  # and the first-come rounds refuse them too
        await lottery.claim(sessions, world, residents[1], "friday-20220624", clock)
    assert claiming.value.code == "claims_blocked"
    assert await lottery.claim(sessions, world, residents[3], "friday-20220624", clock)


async def test_a_lifted_block_lets_the_person_claim_again(
    till: Till, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """解除禁止领取 (an appeal upheld): the city lifts the block; the next claim succeeds, the lift is in the
    audit trail and on the case; a second lift is 409, an operator's 403, a lift without a reason 422."""
    resident_id = await risk_scan.resident(till, 700)
    async with unit_of_work(sessions) as session:
        account = await session.get(ResidentRow, resident_id)
        assert account is not None
        case = await confirmed_person_case(
            session, "rcs_lift", till.campaign_id, account.person_id, "多账户领券", clock
        )
        detail = await service.step_case(
            session,
            principal=CITY,
            case_id=case.id,
            action=CaseAction.SANCTION,
            reason="多账户套领",
            measure=Measure.BLOCK,
            clock=clock,
        )
        [block] = detail.blocks
        block_id = block.id
    refused = await attempt(till, resident_id)
    assert (refused.status_code, refused.json()["code"]) == (403, "claims_blocked")

    async def lift(who: Principal, reason: str, block: str = block_id) -> httpx.Response:
        return await till.http.post(f"{RISK}/blocks/{block}/lift", json={"reason": reason}, headers=as_(who))

    answer = await lift(OPERATOR, "申诉成立")
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    answer = await lift(CITY, "  ")
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_lift")
    answer = await lift(CITY, "申诉成立", block="blk_unknown")
    assert (answer.status_code, answer.json()["code"]) == (404, "unknown_block")
    assert (await attempt(till, resident_id)).status_code == 403  # nothing lifted yet

    clock.advance(timedelta(minutes=1))
    lifted = await lift(CITY, "申诉成立，系误判")
    assert lifted.status_code == 200, lifted.text
    [shown] = lifted.json()["blocks"]
    assert shown["lifted_at"] is not None
    note = lifted.json()["transitions"][-1]
    assert (note["action"], note["actor_id"]) == ("note", CITY.actor_id)
    assert note["reason"] == f"解除禁止领取 {block_id}: 申诉成立，系误判"
    assert lifted.json()["status"] == "sanctioned"  # the case's decision stands; only the block is lifted
    assert (await attempt(till, resident_id)).status_code == 201

    again = await lift(CITY, "再次解除")
    assert (again.status_code, again.json()["code"]) == (409, "block_already_lifted")
    async with unit_of_work(sessions) as session:
        [audited] = (
            await session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "risk.block_lifted"))
        ).all()
        assert (audited.object_id, audited.actor_id) == (block_id, CITY.actor_id)
        assert {key: audited.detail[key] for key in ("case_id", "subject_kind", "reason")} == {
            "case_id": "rcs_lift",
            "subject_kind": "person",
            "reason": "申诉成立，系误判",
        }
        row = await session.get(ClaimBlockRow, block_id)
        assert row is not None
        assert row.lifted_at == clock.now()
