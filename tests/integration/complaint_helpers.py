"""Helpers for the complaints, inspections, announcements and privacy tests: the people who act, a
test app that accepts them, and a risk case about a merchant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.principals import Principal, Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import Clock, ManualClock
from huimin.kit.ids import new_id
from huimin.kit.terms import Jurisdiction
from huimin.risk import service as risk
from huimin.risk.domain import AlertStatus, Rule, SubjectKind
from huimin.risk.models import RiskAlertRow
from tests.integration.merchant_helpers import CITY, OPERATOR, REGULATOR, reviewer
from tests.integration.staff import accept_test_principals

__all__ = [
    "CITY",
    "HOTLINE",
    "OPERATOR",
    "PBOC",
    "PUBLICITY",
    "REGULATOR",
    "open_risk_case",
    "reviewer",
    "staff_app",
]

HOTLINE = Principal(actor_id="usr_hotline", role=Role.HOTLINE, name="12345热线 刘洋")
PBOC = Principal(actor_id="usr_pboc", role=Role.PBOC, name="人行资阳市中心支行 孙丽")
PUBLICITY = Principal(actor_id="usr_publicity", role=Role.PUBLICITY, name="市委宣传部 周杰")
COUNTY_YANJIANG = reviewer(Jurisdiction.YANJIANG)
COUNTY_ANYUE = reviewer(Jurisdiction.ANYUE)


@pytest.fixture
async def staff_app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


async def open_risk_case(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, *, campaign_id: str, merchant_id: str
) -> str:
    """An alert about the merchant taken into a case by the operator's risk team; the case id."""
    now: datetime = clock.now()
    async with unit_of_work(sessions) as session:
        alert = RiskAlertRow(
            id=new_id("ral"),
            campaign_id=campaign_id,
            rule=Rule.THRESHOLD_HUGGING.value,
            subject_kind=SubjectKind.MERCHANT.value,
            subject_id=merchant_id,
            jurisdiction=Jurisdiction.YANJIANG.value,
            period="2022-06-01",
            status=AlertStatus.OPEN.value,
            score=30,
            figure=9000,
            threshold=7000,
            unit="bp",
            summary="金额贴近门槛",
            evidence={},
            hits=1,
            raised_at=now,
            updated_at=now,
            last_event_at=now,
        )
        session.add(alert)
        await session.flush()
        case = await risk.open_case(
            session,
            principal=OPERATOR,
            alert_ids=[alert.id],
            title="疑似套现",
            reason="核销金额集中",
            clock=clock,
        )
        return case.case.id
