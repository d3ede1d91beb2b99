"""The HTTP API over a real database: campaigns, health, OpenAPI, and the one error model."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.campaigns import service
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from tests.conftest import ZIYANG_FILE


@pytest.fixture
async def ziyang_id(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> str:
    async with unit_of_work(sessions) as session:
        outcome = await service.load_campaign(
            session, text=ZIYANG_FILE.read_text(encoding="utf-8"), clock=clock
        )
    return outcome.campaign_id


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_no_campaigns_is_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/campaigns")
    assert response.status_code == 200
    assert response.json() == []


async def test_the_ziyang_budget_is_split_across_its_funders(
    client: httpx.AsyncClient, ziyang_id: str
) -> None:
    response = await client.get("/api/v1/campaigns")
    assert response.status_code == 200
    [campaign] = response.json()
    assert campaign["id"] == ziyang_id
    assert campaign["name"] == "嗨购资阳·惠民共享"
    assert (campaign["starts_on"], campaign["ends_on"]) == ("2022-06-01", "2022-12-31")
    assert campaign["budget_fen"] == 8_000_000_000
    assert {funder["code"]: funder["budget_fen"] for funder in campaign["funders"]} == {
        "fiscal": 6_000_000_000,
        "union": 500_000_000,
        "social": 1_500_000_000,
    }
    assert sum(funder["budget_fen"] for funder in campaign["funders"]) == campaign["budget_fen"]


async def test_one_campaign_with_batches_and_rounds(client: httpx.AsyncClient, ziyang_id: str) -> None:
    response = await client.get(f"/api/v1/campaigns/{ziyang_id}")
    assert response.status_code == 200
    body = response.json()
    general = body["batches"][0]
    assert (general["code"], general["face_value_fen"], general["threshold_fen"]) == (
        "general-100-30",
        3000,
        10000,
    )
    assert general["funding"] == {"fiscal": 7500, "social": 2500}
    assert general["categories"] == ["catering", "lodging", "retail", "services"]
    first_friday = next(item for item in body["rounds"] if item["code"] == "friday-20220624")
    assert first_friday["opens_at"] == "2022-06-24T02:00:00Z"
    assert first_friday["mode"] == "first_come"
    assert {item["batch_code"]: item["stock"] for item in first_friday["stock"]} == {
        "general-100-30": 20000,
        "general-300-80": 10000,
        "dining-60-20": 10000,
        "car": 50,
        "appliance": 500,
    }


async def test_an_unknown_campaign_is_404_with_a_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/campaigns/cmp_01J00000000000000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_campaign"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("DELETE", "/api/v1/campaigns", 405, "method_not_allowed"),
    ],
)
async def test_every_refusal_has_the_error_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)


async def test_openapi_describes_the_campaigns(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert "/api/v1/campaigns" in spec["paths"]
    assert "budget_fen" in spec["components"]["schemas"]["CampaignSummary"]["properties"]
