"""Use cases of the console pages that span packages: the overview, the campaign boards, the choice of
campaign. Each checks the principal first (403 `forbidden`); merchant and account pages call their
own packages' services, which check for themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Permission, Principal
from huimin.campaigns import service as campaigns
from huimin.campaigns.models import CampaignRow
from huimin.claims import service as claims
from huimin.claims.service import RoundBoard
from huimin.console import figures
from huimin.console.figures import Figure, Scope, Series
from huimin.console.repository import OverviewRepository
from huimin.errors import NotFound
from huimin.kit.clock import Clock, local_date

__all__ = ["CampaignBoard", "Overview", "campaign_board", "campaign_list", "choose_campaign", "overview"]


def choose_campaign(
    campaigns_: Sequence[CampaignRow], campaign_id: str | None, now: datetime
) -> CampaignRow | None:
    """The campaign a page is about: the one asked for (404 if unknown), else the one running today,
    else the latest to start."""
    if campaign_id:
        for campaign in campaigns_:
            if campaign.id == campaign_id:
                return campaign
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    today = local_date(now)
    running = [campaign for campaign in campaigns_ if campaign.starts_on <= today <= campaign.ends_on]
    if running:
        return max(running, key=lambda campaign: campaign.starts_on)
    return max(campaigns_, key=lambda campaign: campaign.starts_on, default=None)


@dataclass(frozen=True)
class Overview:
    campaigns: Sequence[CampaignRow]
    campaign: CampaignRow | None  # None: no campaign loaded yet
    scope: Scope | None
    claim_figures: Sequence[Figure]
    redemption_figures: Sequence[Figure]
    charts: Sequence[Series]


async def overview(
    session: AsyncSession, *, principal: Principal, clock: Clock, campaign_id: str | None = None
) -> Overview:
    """总览: live figures of one campaign. Claims are city-wide aggregates; merchants are counted
    within the caller's jurisdiction (a county sees its own)."""
    principal.require(Permission.REPORT_READ)
    now = clock.now()
    known = await campaigns.list_campaigns(session)
    campaign = choose_campaign(known, campaign_id, now)
    if campaign is None:
        return Overview(known, None, None, (), (), ())
    scope = Scope(
        campaign_id=campaign.id,
        now=now,
        jurisdictions=frozenset({principal.jurisdiction}) if principal.jurisdiction else frozenset(),
    )
    repository = OverviewRepository(session)
    return Overview(
        campaigns=known,
        campaign=campaign,
        scope=scope,
        claim_figures=[await figure(repository, scope) for figure in figures.CLAIM_FIGURES],
        redemption_figures=[await figure(repository, scope) for figure in figures.REDEMPTION_FIGURES],
        charts=[
            await figures.claims_by_day(repository, scope),
            await figures.claims_by_district(repository, scope),
            await figures.merchants_by_status(repository, scope),
        ],
    )


async def campaign_list(session: AsyncSession, *, principal: Principal) -> Sequence[CampaignRow]:
    principal.require(Permission.CAMPAIGN_READ)
    return await campaigns.list_campaigns(session)


@dataclass(frozen=True)
class CampaignBoard:
    campaign: CampaignRow  # with funders, batches and rounds loaded
    rounds: Sequence[RoundBoard]  # each with the live remaining stock of its batches


async def campaign_board(
    session: AsyncSession, *, principal: Principal, campaign_id: str, clock: Clock
) -> CampaignBoard:
    principal.require(Permission.CAMPAIGN_READ)
    campaign = await campaigns.get_campaign(session, campaign_id=campaign_id)
    rounds = await claims.list_rounds(session, clock=clock, campaign_id=campaign_id)
    return CampaignBoard(campaign, rounds)
