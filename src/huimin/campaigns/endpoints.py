"""Public reads of campaigns: `GET /api/v1/campaigns` and `GET /api/v1/campaigns/{campaign_id}`."""

from __future__ import annotations

from fastapi import APIRouter

from huimin.campaigns import service
from huimin.campaigns.schemas import CampaignDetail, CampaignSummary, campaign_detail, campaign_summary
from huimin.deps import SessionDep

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])


@router.get("", response_model=list[CampaignSummary], summary="List campaigns with their budgets and funders")
async def list_campaigns(session: SessionDep) -> list[CampaignSummary]:
    return [campaign_summary(row) for row in await service.list_campaigns(session)]


@router.get(
    "/{campaign_id}",
    response_model=CampaignDetail,
    summary="One campaign with its batches and rounds",
    responses={404: {"description": "unknown_campaign"}},
)
async def get_campaign(campaign_id: str, session: SessionDep) -> CampaignDetail:
    return campaign_detail(await service.get_campaign(session, campaign_id=campaign_id))
