"""Helpers for the console tests (integration and browser): accounts of every role, claims in each
district and redemptions of them, so that the overview and the redemption pages have figures to show."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser, create_user, totp_sealer
from huimin.auth.domain import PartnerKind
from huimin.auth.principals import Role
from huimin.auth.service import create_partner, partner_sealer
from huimin.claims import service as claims
from huimin.claims.domain import RoundStatus
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Crs, Location, default_geofence
from huimin.eligibility.schemas import ResidentIn
from huimin.kit.clock import Clock
from huimin.kit.money import Fen
from huimin.kit.terms import Category, District, Jurisdiction
from huimin.redemptions import service as redemptions
from huimin.redemptions.service import RedemptionRequest
from tests.support import id_number, phone

PASSWORD = "correct horse battery"

# A point inside each district (GCJ-02), as the geofence places it.
DISTRICT_POINTS = {
    District.YANJIANG: (104.6276, 30.1288),
    District.ANYUE: (105.3476, 29.9633),
    District.LEZHI: (105.1858, 30.2983),
}


async def make_user(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    username: str,
    role: Role,
    *,
    display_name: str | None = None,
    jurisdiction: Jurisdiction | None = None,
    merchant_id: str | None = None,
) -> NewUser:
    async with unit_of_work(sessions) as session:
        return await create_user(
            session,
            username=username,
            display_name=display_name or username,
            role=role,
            password=PASSWORD,
            sealer=totp_sealer(settings.secret_key.get_secret_value()),
            clock=clock,
            jurisdiction=jurisdiction,
            merchant_id=merchant_id,
        )


async def seed_claims(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    campaign_id: str,
    counts: Mapping[District, int],
    *,
    first_serial: int = 0,
    batch_code: str = "general",
) -> int:
    """Residents claim one voucher each of `batch_code` in the round open now, `counts[d]` of them
    standing in district d. Returns the next unused resident serial."""
    geofence = default_geofence()
    async with unit_of_work(sessions) as session:
        partner = await create_partner(
            session,
            name=f"test app {first_serial}",
            kind=PartnerKind.APP,
            sealer=partner_sealer(settings.secret_key.get_secret_value()),
            clock=clock,
        )
        boards = await claims.list_rounds(session, clock=clock, campaign_id=campaign_id)
    [board] = [board for board in boards if board.status is RoundStatus.OPEN]
    [batch_id] = [batch.id for _, batch, _ in board.stock if batch.code == batch_code]
    serial = first_serial
    for district, count in counts.items():
        lng, lat = DISTRICT_POINTS[district]
        for _ in range(count):
            async with unit_of_work(sessions) as session:
                resident = await eligibility.register_resident(
                    session,
                    partner_id=partner.partner.id,
                    data=ResidentIn(
                        app_user_id=f"user-{serial}",
                        real_name_verified=True,
                        id_number=id_number(serial),
                        phone=phone(serial),
                        device_id=f"device-{serial}",
                    ),
                    hasher=settings.hasher,
                    clock=clock,
                )
                await claims.claim_voucher(
                    session,
                    partner_id=partner.partner.id,
                    resident_id=resident.resident.id,
                    round_id=board.round.id,
                    batch_id=batch_id,
                    location=Location(lng, lat, Crs.GCJ02),
                    geofence=geofence,
                    clock=clock,
                )
            serial += 1
    return serial


async def redeem_claimed(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    merchant_id: str,
    terminal_id: str,
    order_fen: int,
    category: Category = Category.CATERING,
    district: District | None = None,
) -> str:
    """Spend one claimed voucher (of a resident in `district`, if given) at the merchant's till, through
    the redemption service as a terminal partner would; returns the redemption's id."""
    async with unit_of_work(sessions) as session:
        query = select(VoucherRow).where(VoucherRow.status == "claimed").order_by(VoucherRow.id.desc())
        if district is not None:
            query = query.where(VoucherRow.district == district.value)
        voucher = (await session.scalars(query)).first()
        assert voucher is not None, "no claimed voucher left"
        redeemed = await redemptions.redeem(
            session,
            partner_id="ptn_console_tests",
            request=RedemptionRequest(
                voucher_code=voucher.code,
                merchant_id=merchant_id,
                terminal_id=terminal_id,
                order_amount=Fen(order_fen),
                merchant_discount=Fen(0),
                category=category,
            ),
            clock=clock,
        )
        return redeemed.redemption.id
