"""A campaign with one voucher product of every kind the till must handle, active merchants with
terminals, and signed clients for the payment app and the terminal partner."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Principal, Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns.models import CampaignRow
from huimin.campaigns.service import load_campaign
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.money import Fen
from huimin.kit.terms import Category, Jurisdiction, MerchantClass
from huimin.ledger import service as ledger
from huimin.ledger.checks import run_checks
from huimin.merchants.domain import MerchantStatus
from tests.integration.merchant_helpers import OPERATOR, merchant_in
from tests.support import ZIYANG_CENTRE, SignedClient, resident_body

OPENS = datetime(2022, 6, 24, 2, 0, tzinfo=UTC)  # Friday 10:00 in Ziyang
FINANCE = Principal(actor_id="usr_finance", role=Role.FINANCE, name="市财政局 刘洋")

TILL_CAMPAIGN = """
[campaign]
code = "till-2022"
name = "核销测试活动"
starts_on = 2022-06-01
ends_on = 2022-12-31
budget = "1000000"

[[funders]]
code = "fiscal"
name = "财政"
kind = "fiscal"
budget = "800000"

[[funders]]
code = "social"
name = "社会资源"
kind = "social"
budget = "200000"

[[batches]]
code = "general"
name = "通用券 满100减30"
kind = "threshold"
face_value = "30"
threshold = "100"
validity = { days_after_claim = 7 }
funding = { fiscal = "70%", social = "30%" }
scope = { categories = ["餐饮", "零售"] }
limits = { per_person_per_round = 5, per_merchant_daily = 3 }

[[batches]]
code = "gross"
name = "满100减30（门槛按优惠前金额）"
kind = "threshold"
face_value = "30"
threshold = "100"
threshold_after_discount = false
validity = { days_after_claim = 7 }
funding = { fiscal = "100%" }
scope = { categories = ["餐饮"] }
limits = { per_person_per_round = 5 }

[[batches]]
code = "pct"
name = "零售九折券 最高50元"
kind = "percentage"
percent = "10%"
cap = "50"
validity = { days_after_claim = 7 }
funding = { fiscal = "100%" }
scope = { categories = ["零售"] }
refund_policy = "no_restore"
limits = { per_person_per_round = 5 }

[[batches]]
code = "anyue"
name = "安岳餐饮券 满50减10（规上限上）"
kind = "threshold"
face_value = "10"
threshold = "50"
validity = { days_after_claim = 7 }
funding = { fiscal = "100%" }
scope = { categories = ["餐饮"], jurisdictions = ["安岳县"], merchant_classes = ["限上"] }
limits = { per_person_per_round = 5 }

[[batches]]
code = "cars"
name = "汽车消费券"
kind = "tiered"
big_ticket = true
validity = { days_after_claim = 30 }
funding = { fiscal = "100%" }
scope = { categories = ["汽车"] }
refund_policy = "no_restore"
tiers = [
  { min_price = "50000", max_price = "100000", face_value = "2000" },
  { min_price = "100000", face_value = "5000" },
]
limits = { per_person_per_round = 2 }

[[schedules]]
code = "friday"
every = "once"
at = 10:00:00
first = 2022-06-24
window_hours = 12
stock = { "general" = 60, "gross" = 20, "pct" = 20, "anyue" = 20, "cars" = 20 }
"""


@dataclass
class Till:
    """What a till test needs: the round, the merchants, signed clients, and a voucher on demand."""

    http: httpx.AsyncClient
    app: SignedClient
    terminal: SignedClient
    campaign_id: str
    round_id: str
    batches: dict[str, str]  # code -> id
    merchants: dict[str, str]  # name -> merchant id
    terminals: dict[str, str]  # name -> terminal id
    clock: ManualClock
    _residents: int = 0
    _keys: int = field(default=0)

    async def resident(self) -> str:
        self._residents += 1
        response = await self.app.post("/api/v1/residents", resident_body(self._residents))
        assert response.status_code == 201, response.text
        return str(response.json()["resident_id"])

    async def voucher(self, batch: str = "general", resident_id: str | None = None) -> dict[str, Any]:
        """A freshly claimed voucher of `batch` (for a new resident unless one is given)."""
        resident_id = resident_id or await self.resident()
        self._keys += 1
        response = await self.app.post(
            f"/api/v1/rounds/{self.round_id}/claims",
            {"resident_id": resident_id, "batch_id": self.batches[batch], "location": ZIYANG_CENTRE},
            **{"Idempotency-Key": f"claim-{self._keys:06d}"},
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def body(self, voucher: dict[str, Any], merchant: str = "catering", **fields: Any) -> dict[str, Any]:
        return {
            "voucher_code": voucher["code"],
            "merchant_id": self.merchants[merchant],
            "terminal_id": self.terminals[merchant],
            "order_amount_fen": 12_000,
            "merchant_discount_fen": 0,
            "category": "catering",
            **fields,
        }

    async def redeem(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        self._keys += 1
        return await self.terminal.post(
            "/api/v1/redemptions", body, **{"Idempotency-Key": key or f"redeem-{self._keys:06d}"}
        )

    async def refund(self, redemption_id: str, amount_fen: int, key: str | None = None) -> httpx.Response:
        self._keys += 1
        return await self.terminal.post(
            f"/api/v1/redemptions/{redemption_id}/refunds",
            {"amount_fen": amount_fen},
            **{"Idempotency-Key": key or f"refund-{self._keys:06d}"},
        )


# name -> (status, jurisdiction, invitation changes)
MERCHANTS: dict[str, tuple[MerchantStatus, Jurisdiction, dict[str, object]]] = {
    "catering": (MerchantStatus.ACTIVE, Jurisdiction.YANJIANG, {"category": Category.CATERING}),
    "retail": (MerchantStatus.ACTIVE, Jurisdiction.YANJIANG, {"category": Category.RETAIL}),
    "cars": (MerchantStatus.ACTIVE, Jurisdiction.YANJIANG, {"category": Category.CARS}),
    "cars_anyue": (MerchantStatus.ACTIVE, Jurisdiction.ANYUE, {"category": Category.CARS}),
    "anyue_above": (MerchantStatus.ACTIVE, Jurisdiction.ANYUE, {"category": Category.CATERING}),
    "anyue_below": (
        MerchantStatus.ACTIVE,
        Jurisdiction.ANYUE,
        {"category": Category.CATERING, "merchant_class": MerchantClass.BELOW_QUOTA_SAMPLED},
    ),
    "suspended": (MerchantStatus.SUSPENDED, Jurisdiction.YANJIANG, {"category": Category.CATERING}),
    "catering_2": (MerchantStatus.ACTIVE, Jurisdiction.LEZHI, {"category": Category.CATERING}),
}


async def open_till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    sealer = partner_sealer(settings.secret_key.get_secret_value())
    clients = {}
    async with unit_of_work(sessions) as session:
        outcome = await load_campaign(session, text=TILL_CAMPAIGN, clock=clock)
        for kind in (PartnerKind.APP, PartnerKind.TERMINAL):
            created = await create_partner(
                session, name=f"test {kind}", kind=kind, sealer=sealer, clock=clock
            )
            clients[kind] = (created.partner.key_id, created.secret)
    merchants, terminals = {}, {}
    for serial, (name, (status, jurisdiction, changes)) in enumerate(MERCHANTS.items(), start=1):
        merchants[name] = await merchant_in(
            sessions, clock, outcome.campaign_id, status, serial, jurisdiction, **changes
        )
        terminals[name] = f"T{serial:07d}"
    [round_] = (await client.get("/api/v1/rounds")).json()
    clock.set(OPENS)
    return Till(
        http=client,
        app=SignedClient(
            client, key_id=clients[PartnerKind.APP][0], secret=clients[PartnerKind.APP][1], clock=clock
        ),
        terminal=SignedClient(
            client,
            key_id=clients[PartnerKind.TERMINAL][0],
            secret=clients[PartnerKind.TERMINAL][1],
            clock=clock,
        ),
        campaign_id=outcome.campaign_id,
        round_id=round_["round_id"],
        batches={item["batch_code"]: item["batch_id"] for item in round_["batches"]},
        merchants=merchants,
        terminals=terminals,
        clock=clock,
    )


async def fund(sessions: async_sessionmaker[AsyncSession], till: Till, clock: ManualClock) -> None:
    """Each funder deposits its whole budget: recorded by the operator, approved by finance."""
    async with unit_of_work(sessions) as session:
        for funder, yuan in (("fiscal", 800_000), ("social", 200_000)):
            deposit = await ledger.request_deposit(
                session,
                principal=OPERATOR,
                campaign_id=till.campaign_id,
                funder_code=funder,
                amount=Fen.yuan(yuan),
                clock=clock,
            )
            await ledger.approve_deposit(session, principal=FINANCE, deposit_id=deposit.row.id, clock=clock)


async def checked_balances(sessions: async_sessionmaker[AsyncSession], till: Till) -> dict[str, int]:
    """Non-zero balances in fen, merchant accounts by the test's merchant names; every ledger check
    must hold."""
    names = {merchant_id: name for name, merchant_id in till.merchants.items()}
    async with unit_of_work(sessions) as session:
        found = await ledger.balances(session, campaign_id=till.campaign_id)
        campaign = await session.get(CampaignRow, till.campaign_id)
        assert campaign is not None
        report = await run_checks(session, campaign)
    failed = [(result.name, result.figures, result.problems) for result in report.results if not result.ok]
    assert not failed, failed
    shown = {}
    for key, value in found.items():
        kind, _, owner = key.partition(":")
        if value:
            shown[f"{kind}:{names.get(owner, owner)}" if owner else kind] = int(value)
    return shown
