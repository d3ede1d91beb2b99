"""Helpers for the merchant tests: credit codes, the people who act, and a merchant driven to any state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.principals import Principal, Role
from huimin.campaigns.service import load_campaign
from huimin.db import unit_of_work
from huimin.kit.clock import Clock
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.merchants import service
from huimin.merchants.domain import (
    Action,
    Application,
    Invitation,
    MerchantStatus,
    credit_code_check_character,
)
from huimin.merchants.models import (
    DishonestEntryRow,
    MerchantEventRow,
    MerchantRow,
    MerchantTerminalRow,
    MerchantTransitionRow,
)
from tests.support import small_campaign

SEALER = service.MerchantSealer("test-secret-key-for-merchant-tests-0123456789")
BANK_ACCOUNT = "6222021234567890123"
PHONE = "13812345678"

CITY = Principal(actor_id="usr_city", role=Role.CITY_ADMIN, name="市商务局 王芳")
OPERATOR = Principal(actor_id="usr_operator", role=Role.OPERATOR, name="银联 李强")
REGULATOR = Principal(actor_id="usr_regulator", role=Role.MARKET_REGULATOR, name="市场监管局 赵敏")


def reviewer(jurisdiction: Jurisdiction) -> Principal:
    return Principal(
        actor_id=f"usr_reviewer_{jurisdiction.value}",
        role=Role.COUNTY_REVIEWER,
        jurisdiction=jurisdiction,
        name=f"{jurisdiction.label}商务局 张伟",
    )


def merchant_principal(merchant_id: str) -> Principal:
    return Principal(
        actor_id=f"usr_{merchant_id}", role=Role.MERCHANT, merchant_id=merchant_id, name="店长 陈静"
    )


def credit_code(serial: int, *, region: str = "512002") -> str:
    """A well-formed unified social credit code (GB 32100) for test company `serial`."""
    body = f"92{region}{serial:09d}"  # 9: market regulator, 2: individual business
    return body + credit_code_check_character(body)


def invitation(
    serial: int, jurisdiction: Jurisdiction = Jurisdiction.YANJIANG, **changes: object
) -> Invitation:
    fields: dict[str, object] = {
        "credit_code": credit_code(serial),
        "legal_name": f"资阳市测试商贸有限公司{serial}号店",
        "jurisdiction": jurisdiction,
        "category": Category.CATERING,
        "merchant_class": MerchantClass.ABOVE_QUOTA,
        "registered_address": f"资阳市{jurisdiction.label}测试路{serial}号",
        **changes,
    }
    return Invitation(**fields)  # type: ignore[arg-type]


def application(serial: int, **changes: object) -> Application:
    fields: dict[str, object] = {
        "registered_address": f"资阳市测试路{serial}号",
        "business_hours": "09:00-21:00",
        "terminals": (f"T{serial:07d}",),
        "bank_name": "中国工商银行资阳分行",
        "bank_account": BANK_ACCOUNT,
        "contact_name": "陈静",
        "contact_phone": PHONE,
        **changes,
    }
    return Application(**fields)  # type: ignore[arg-type]


async def new_campaign(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, code: str = "test-2022"
) -> str:
    async with unit_of_work(sessions) as session:
        return (await load_campaign(session, text=small_campaign(code=code), clock=clock)).campaign_id


# The path to each state: the steps from `invited`, each with who takes it.
PATHS: dict[MerchantStatus, tuple[Action, ...]] = {
    MerchantStatus.INVITED: (),
    MerchantStatus.APPLIED: (Action.APPLY,),
    MerchantStatus.SUBMITTED: (Action.APPLY, Action.SUBMIT),
    MerchantStatus.COUNTY_APPROVED: (Action.APPLY, Action.SUBMIT, Action.APPROVE),
    MerchantStatus.COUNTY_REJECTED: (Action.APPLY, Action.SUBMIT, Action.REJECT),
    MerchantStatus.LISTED: (Action.APPLY, Action.SUBMIT, Action.APPROVE, Action.PUBLISH),
    MerchantStatus.ACTIVE: (Action.APPLY, Action.SUBMIT, Action.APPROVE, Action.PUBLISH, Action.COMMIT),
    MerchantStatus.SUSPENDED: (
        Action.APPLY,
        Action.SUBMIT,
        Action.APPROVE,
        Action.PUBLISH,
        Action.COMMIT,
        Action.SUSPEND,
    ),
    MerchantStatus.EXPELLED: (
        Action.APPLY,
        Action.SUBMIT,
        Action.APPROVE,
        Action.PUBLISH,
        Action.COMMIT,
        Action.EXPEL,
    ),
}


def actor_for(action: Action, row: MerchantRow) -> Principal:
    """Who takes `action` on this merchant in the seed's division of duties."""
    jurisdiction = Jurisdiction(row.jurisdiction)
    if action in (Action.APPLY, Action.SUBMIT):
        return OPERATOR
    if action in (Action.APPROVE, Action.REJECT):
        return reviewer(jurisdiction)
    if action is Action.COMMIT:
        return merchant_principal(row.id)
    return CITY


async def take(
    session: AsyncSession,
    action: Action,
    merchant_id: str,
    *,
    clock: Clock,
    principal: Principal | None = None,
) -> MerchantRow:
    """One step, by the right person unless told otherwise."""
    row = await session.get(MerchantRow, merchant_id)
    assert row is not None
    who = principal or actor_for(action, row)
    match action:
        case Action.APPLY:
            serial = int(row.credit_code[8:17])
            return await service.apply(
                session,
                principal=who,
                merchant_id=merchant_id,
                application=application(serial),
                sealer=SEALER,
                clock=clock,
            )
        case Action.SUBMIT:
            return await service.submit(session, principal=who, merchant_id=merchant_id, clock=clock)
        case Action.APPROVE | Action.REJECT:
            return await service.review(
                session,
                principal=who,
                merchant_id=merchant_id,
                approve=action is Action.APPROVE,
                reason="材料齐全" if action is Action.APPROVE else "营业执照已过期",
                clock=clock,
            )
        case Action.PUBLISH:
            [published] = await service.publish(
                session, principal=who, campaign_id=row.campaign_id, merchant_ids=[merchant_id], clock=clock
            )
            return published
        case Action.COMMIT:
            text = service.commitment_text()
            return await service.accept_commitment(
                session,
                principal=who,
                merchant_id=merchant_id,
                version=text.version,
                sha256=text.sha256,
                signatory="陈静",
                clock=clock,
            )
        case Action.SUSPEND | Action.REINSTATE | Action.EXPEL:
            return await service.sanction(
                session,
                principal=who,
                merchant_id=merchant_id,
                action=action,
                reason="套现嫌疑，待核查",
                clock=clock,
            )
        case Action.INVITE:
            raise ValueError("invite with service.invite")


async def merchant_in(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    campaign_id: str,
    status: MerchantStatus,
    serial: int,
    jurisdiction: Jurisdiction = Jurisdiction.YANJIANG,
    **changes: object,
) -> str:
    """A new merchant of the campaign, driven to `status` by the right people; its id. `changes` alter
    the invitation (category, merchant_class, …); its till terminal is `T` + the serial in 7 digits."""
    async with unit_of_work(sessions) as session:
        row = await service.invite(
            session,
            principal=CITY,
            campaign_id=campaign_id,
            invitation=invitation(serial, jurisdiction, **changes),
            sealer=SEALER,
            clock=clock,
        )
        merchant_id = row.id
    for action in PATHS[status]:
        async with unit_of_work(sessions) as session:
            await take(session, action, merchant_id, clock=clock)
    return merchant_id


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused step must leave as it was."""

    status: str
    status_changed_at: object
    transitions: int
    events: int
    dishonest: int
    terminals: int


async def snapshot(sessions: async_sessionmaker[AsyncSession], merchant_id: str) -> Snapshot:
    async with unit_of_work(sessions) as session:
        row = await session.get(MerchantRow, merchant_id)
        assert row is not None

        async def count(model: type, *where: object) -> int:
            return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]

        return Snapshot(
            status=row.status,
            status_changed_at=row.status_changed_at,
            transitions=await count(MerchantTransitionRow, MerchantTransitionRow.merchant_id == merchant_id),
            events=await count(MerchantEventRow, MerchantEventRow.merchant_id == merchant_id),
            dishonest=await count(DishonestEntryRow),
            terminals=await count(MerchantTerminalRow, MerchantTerminalRow.merchant_id == merchant_id),
        )
