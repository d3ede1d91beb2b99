"""Merchant onboarding in the demo (seed 三, 五(一)): invitation, application, county review, the final
list and the commitment, each step by the person whose duty it is, through `merchants.service`.

June 2022, before the first round: the city commerce bureau (市商务局) invites every merchant of the
synthetic city; the payment operator (银联) completes and submits each application; the commerce
department of each merchant's own jurisdiction approves it, or rejects it with the reason the city
drew for it (`Merchant.review_problem`); the city publishes the final list; each listed merchant
accepts the integrity commitment (承诺书) itself and is active. Rejected merchants stay rejected: they
are counted, never corrected.

The services flush and never commit, so many merchants share one transaction (`CHUNK`): the steps are
the same calls a console user makes one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.principals import Principal, Role
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock, local_datetime
from huimin.kit.terms import Jurisdiction
from huimin.merchants import service as merchant_service
from huimin.merchants.domain import Application, Invitation
from huimin.simulation.city import Merchant

__all__ = ["CITY", "FINANCE", "OPERATOR", "STEPS", "Onboarding", "reviewer"]

CHUNK = 100  # merchants per transaction

CITY = Principal(actor_id="demo_city_admin", role=Role.CITY_ADMIN, name="市商务局 王芳")
OPERATOR = Principal(actor_id="demo_operator", role=Role.OPERATOR, name="银联资阳分公司 李强")
FINANCE = Principal(actor_id="demo_finance", role=Role.FINANCE, name="市财政局 刘洋")


def reviewer(jurisdiction: Jurisdiction) -> Principal:
    """The commerce department of a jurisdiction (县（区）商务主管部门, 高新区, 临空经济区)."""
    return Principal(
        actor_id=f"demo_reviewer_{jurisdiction.value}",
        role=Role.COUNTY_REVIEWER,
        jurisdiction=jurisdiction,
        name=f"{jurisdiction.label}商务局 张伟",
    )


STEPS: tuple[tuple[str, datetime], ...] = (
    ("invite", local_datetime(date(2022, 6, 6), time(9, 30))),
    ("apply", local_datetime(date(2022, 6, 8), time(10))),
    ("submit", local_datetime(date(2022, 6, 10), time(16))),
    ("review", local_datetime(date(2022, 6, 14), time(10))),
    ("publish", local_datetime(date(2022, 6, 17), time(16))),
    ("commit", local_datetime(date(2022, 6, 20), time(10))),
)
"""The onboarding calendar: each step for every merchant at once, before the first round (2022-06-22)."""


@dataclass
class Onboarding:
    """The merchants of one campaign through the workflow; `ids` maps a city serial to its merchant id."""

    sessions: async_sessionmaker[AsyncSession]
    sealer: merchant_service.MerchantSealer
    clock: ManualClock
    campaign_id: str
    merchants: Sequence[Merchant]
    ids: dict[int, str] = field(default_factory=dict)

    async def step(self, name: str) -> None:
        if name == "publish":
            async with unit_of_work(self.sessions) as session:
                await merchant_service.publish(
                    session, principal=CITY, campaign_id=self.campaign_id, clock=self.clock
                )
            return
        for start in range(0, len(self.merchants), CHUNK):
            async with unit_of_work(self.sessions) as session:
                for merchant in self.merchants[start : start + CHUNK]:
                    await self._take(session, name, merchant)

    async def _take(self, session: AsyncSession, name: str, merchant: Merchant) -> None:
        if name == "invite":
            row = await merchant_service.invite(
                session,
                principal=CITY,
                campaign_id=self.campaign_id,
                invitation=Invitation(
                    credit_code=merchant.credit_code,
                    legal_name=merchant.legal_name,
                    jurisdiction=merchant.jurisdiction,
                    category=merchant.category,
                    merchant_class=merchant.merchant_class,
                    registered_address=merchant.registered_address,
                    contact_name=merchant.contact_name,
                    contact_phone=merchant.contact_phone,
                ),
                sealer=self.sealer,
                clock=self.clock,
            )
            self.ids[merchant.serial] = row.id
            return
        merchant_id = self.ids[merchant.serial]
        if name == "apply":
            await merchant_service.apply(
                session,
                principal=OPERATOR,
                merchant_id=merchant_id,
                application=Application(
                    registered_address=merchant.registered_address,
                    business_hours=merchant.business_hours,
                    terminals=merchant.terminals,
                    bank_name=merchant.bank_name,
                    bank_account=merchant.bank_account,
                    contact_name=merchant.contact_name,
                    contact_phone=merchant.contact_phone,
                ),
                sealer=self.sealer,
                clock=self.clock,
            )
        elif name == "submit":
            await merchant_service.submit(
                session, principal=OPERATOR, merchant_id=merchant_id, clock=self.clock
            )
        elif name == "review":
            problem = merchant.review_problem
            await merchant_service.review(
                session,
                principal=reviewer(merchant.jurisdiction),
                merchant_id=merchant_id,
                approve=problem is None,
                reason=problem or "材料齐全，同意参加",
                clock=self.clock,
            )
        elif name == "commit" and merchant.review_problem is None:
            text = merchant_service.commitment_text()
            await merchant_service.accept_commitment(
                session,
                principal=Principal(
                    actor_id=f"demo_merchant_{merchant.serial}",
                    role=Role.MERCHANT,
                    merchant_id=merchant_id,
                    name=f"{merchant.legal_name} {merchant.contact_name}",
                ),
                merchant_id=merchant_id,
                version=text.version,
                sha256=text.sha256,
                signatory=merchant.contact_name,
                clock=self.clock,
            )
