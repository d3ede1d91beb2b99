"""When PostgreSQL is out of reach (restarting, a network cut), requests answer 503
`database_unavailable` with Retry-After, not a bare 500: nothing was written, so clients retry."""

from __future__ import annotations

import httpx

from huimin.app import create_app
from huimin.config import Settings

# A port nothing listens on: every connection is refused, as while PostgreSQL restarts.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/huimin"


async def test_requests_answer_503_while_the_database_is_out_of_reach() -> None:
    app = create_app(Settings(database_url=UNREACHABLE))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://huimin.test") as http:
            response = await http.get("/api/v1/campaigns")
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "2"
