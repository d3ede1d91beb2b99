"""Residents, signed requests and claims through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.domain import PartnerKind
from huimin.auth.service import create_partner, partner_sealer
from huimin.campaigns import service as campaigns
from huimin.claims.models import ClaimCounterRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.eligibility.models import UnionMemberRow
from huimin.kit.clock import ManualClock
from tests.support import CHENGDU, ZIYANG_CENTRE, SignedClient, id_number, resident_body, small_campaign

OPENS = datetime(2022, 6, 24, 2, 0, tzinfo=UTC)  # Friday 10:00 in Ziyang


async def new_partner(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, kind: PartnerKind, clock: ManualClock
) -> tuple[str, str]:
    sealer = partner_sealer(settings.secret_key.get_secret_value())
    async with unit_of_work(sessions) as session:
        created = await create_partner(session, name=f"test {kind}", kind=kind, sealer=sealer, clock=clock)
    return created.partner.key_id, created.secret


@pytest.fixture
async def app_client(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> SignedClient:
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    return SignedClient(client, key_id=key_id, secret=secret, clock=clock)


@pytest.fixture
async def rounds(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    """The small campaign loaded; returns {round code: round json} with batch ids."""
    marker = request.node.get_closest_marker("campaign")
    options = marker.kwargs if marker else {}
    async with unit_of_work(sessions) as session:
        await campaigns.load_campaign(session, text=small_campaign(**options), clock=clock)
    listed = (await client.get("/api/v1/rounds")).json()
    return {item["code"]: item for item in listed}


def batch_id(round_: dict[str, Any], code: str) -> str:
    return next(item["batch_id"] for item in round_["batches"] if item["batch_code"] == code)


async def register(app_client: SignedClient, serial: int, **overrides: Any) -> str:
    response = await app_client.post("/api/v1/residents", resident_body(serial, **overrides))
    assert response.status_code in (200, 201), response.text
    return str(response.json()["resident_id"])


async def claim(
    app_client: SignedClient,
    round_: dict[str, Any],
    resident_id: str,
    *,
    batch: str = "general",
    key: str | None = None,
    location: dict[str, Any] | None = None,
) -> httpx.Response:
    body = {
        "resident_id": resident_id,
        "batch_id": batch_id(round_, batch),
        "location": location or ZIYANG_CENTRE,
    }
    return await app_client.post(
        f"/api/v1/rounds/{round_['round_id']}/claims",
        body,
        **{"Idempotency-Key": key or f"claim-{resident_id}-{batch}-{round_['code']}"},
    )


async def test_registering_stores_only_masked_identifiers(
    app_client: SignedClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await app_client.post("/api/v1/residents", resident_body(7))
    assert response.status_code == 201
    body = response.json()
    assert body["id_number_masked"] == id_number(7)[:3] + "*" * 11 + id_number(7)[-4:]
    assert body["phone_masked"] == "138****0007"
    again = await app_client.post("/api/v1/residents", resident_body(7))
    assert again.status_code == 200
    assert again.json()["resident_id"] == body["resident_id"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"id_number": id_number(8)[:-1] + ("0" if id_number(8)[-1] != "0" else "1")}, "id_number"),
        ({"phone": "12345"}, "phone"),
    ],
)
async def test_bad_identifiers_are_refused_by_field(
    app_client: SignedClient, override: dict[str, str], field: str
) -> None:
    response = await app_client.post("/api/v1/residents", resident_body(8, **override))
    assert response.status_code == 422
    assert response.json()["code"] in ("invalid_resident", "invalid_request")
    assert field in response.text


async def test_unknown_fields_are_refused(app_client: SignedClient) -> None:
    response = await app_client.post("/api/v1/residents", {**resident_body(9), "role": "admin"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


async def test_a_claim_returns_the_voucher(
    app_client: SignedClient, rounds: dict[str, Any], clock: ManualClock
) -> None:
    resident = await register(app_client, 1)
    clock.set(OPENS + timedelta(seconds=5))
    response = await claim(app_client, rounds["friday-20220624"], resident)
    assert response.status_code == 201, response.text
    voucher = response.json()
    assert (voucher["face_value_fen"], voucher["threshold_fen"]) == (3000, 10000)
    assert len(voucher["code"]) == 17
    assert voucher["qr_payload"] == f"HUIMIN:V1:{voucher['code']}"
    assert (
        voucher["valid_until"] == "2022-06-30T16:00:00Z"
    )  # 7 days counting the claim day, to local midnight
    wallet = await app_client.get(f"/api/v1/residents/{resident}/vouchers")
    assert [item["voucher_id"] for item in wallet.json()] == [voucher["voucher_id"]]
    board = await app_client.http.get(f"/api/v1/rounds/{rounds['friday-20220624']['round_id']}")
    assert board.json()["status"] == "open"
    assert {item["batch_code"]: item["remaining"] for item in board.json()["batches"]} == {
        "general": 99,
        "union": 100,
    }


async def test_the_same_idempotency_key_gives_the_same_voucher_once(
    app_client: SignedClient,
    rounds: dict[str, Any],
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    resident = await register(app_client, 2)
    clock.set(OPENS + timedelta(seconds=5))
    first = await claim(app_client, rounds["friday-20220624"], resident, key="same-key-0001")
    again = await claim(app_client, rounds["friday-20220624"], resident, key="same-key-0001")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    other_body = await claim(
        app_client, rounds["friday-20220624"], resident, key="same-key-0001", batch="union"
    )
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_mismatch"
    async with unit_of_work(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(VoucherRow)) == 1


async def test_a_claim_needs_an_idempotency_key(
    app_client: SignedClient, rounds: dict[str, Any], clock: ManualClock
) -> None:
    resident = await register(app_client, 3)
    clock.set(OPENS + timedelta(seconds=5))
    round_ = rounds["friday-20220624"]
    body = {"resident_id": resident, "batch_id": batch_id(round_, "general"), "location": ZIYANG_CENTRE}
    response = await app_client.post(f"/api/v1/rounds/{round_['round_id']}/claims", body)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"


async def test_one_second_before_release_the_round_is_not_open(
    app_client: SignedClient, rounds: dict[str, Any], clock: ManualClock
) -> None:
    resident = await register(app_client, 4)
    clock.set(OPENS - timedelta(seconds=1))
    early = await claim(app_client, rounds["friday-20220624"], resident, key="early-key-0001")
    assert early.status_code == 409
    assert early.json()["code"] == "round_not_open"
    clock.set(OPENS)
    on_time = await claim(app_client, rounds["friday-20220624"], resident, key="early-key-0001")
    assert on_time.status_code == 201  # not a final answer: the same key works once the round opens


@pytest.mark.campaign(stock=2)
async def test_refusals_have_their_codes(
    app_client: SignedClient,
    rounds: dict[str, Any],
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    friday = rounds["friday-20220624"]
    residents = [await register(app_client, serial) for serial in range(10, 14)]
    unverified = await register(app_client, 20, real_name_verified=False)
    clock.set(OPENS + timedelta(minutes=1))

    async def code_of(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["code"] if response.status_code >= 400 else ""

    assert await code_of(await claim(app_client, friday, residents[0])) == (201, "")
    assert await code_of(await claim(app_client, friday, residents[0], key="again-0000001")) == (
        409,
        "limit_reached",
    )
    assert await code_of(
        await claim(app_client, friday, residents[1], location=CHENGDU, key="chengdu-0000001")
    ) == (
        403,
        "not_eligible_location",
    )
    assert await code_of(await claim(app_client, friday, residents[1])) == (201, "")
    assert await code_of(await claim(app_client, friday, residents[2])) == (409, "sold_out")
    assert await code_of(await claim(app_client, friday, residents[2], batch="union")) == (
        403,
        "not_union_member",
    )
    assert await code_of(await claim(app_client, friday, unverified)) == (403, "identity_unverified")
    later = rounds["later-20220701"]
    assert await code_of(await claim(app_client, later, residents[3])) == (409, "round_not_open")

    unknown_round = {**friday, "round_id": "rnd_01J00000000000000000000000"}
    assert await code_of(await claim(app_client, unknown_round, residents[3], key="unknown-round-01")) == (
        404,
        "unknown_round",
    )
    wrong_batch = {**friday, "batches": [{"batch_code": "general", "batch_id": "bat_nope"}]}
    assert await code_of(await claim(app_client, wrong_batch, residents[3], key="unknown-batch-01")) == (
        404,
        "unknown_batch",
    )
    assert await code_of(await claim(app_client, friday, "res_nobody")) == (404, "unknown_resident")

    async with unit_of_work(sessions) as session:
        # a refused claim leaves no trace: two vouchers, and only the two successful claims counted
        assert await session.scalar(select(func.count()).select_from(VoucherRow)) == 2
        assert await session.scalar(select(func.sum(ClaimCounterRow.claimed))) == 2


async def test_union_members_may_claim_union_batches(
    app_client: SignedClient,
    rounds: dict[str, Any],
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    resident = await register(app_client, 30)
    async with unit_of_work(sessions) as session:
        session.add(
            UnionMemberRow(
                id_number_digest=settings.hasher.digest("id_number", id_number(30)),
                id_number_masked="***",
                source="test",
                imported_at=clock.now(),
            )
        )
    clock.set(OPENS + timedelta(seconds=1))
    response = await claim(app_client, rounds["friday-20220624"], resident, batch="union")
    assert response.status_code == 201, response.text


async def test_one_person_under_two_app_accounts_shares_the_limit(
    app_client: SignedClient, rounds: dict[str, Any], clock: ManualClock
) -> None:
    first = await register(app_client, 40)
    second_account = await register(app_client, 41, id_number=id_number(40))  # same person, another account
    third_account = await register(app_client, 42, phone="13800000040")  # same phone, so the same person too
    clock.set(OPENS + timedelta(seconds=1))
    assert (await claim(app_client, rounds["friday-20220624"], first)).status_code == 201
    for account in (second_account, third_account):
        refused = await claim(app_client, rounds["friday-20220624"], account)
        assert refused.status_code == 409
        assert refused.json()["code"] == "limit_reached"


async def test_identifiers_of_two_persons_cannot_be_joined(app_client: SignedClient) -> None:
    await register(app_client, 50)
    await register(app_client, 51)
    response = await app_client.post(
        "/api/v1/residents", resident_body(52, id_number=id_number(50), phone="13800000051")
    )
    assert response.status_code == 409
    assert response.json()["code"] == "identity_conflict"


async def test_the_wallet_of_another_partners_resident_is_404(
    app_client: SignedClient,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    resident = await register(app_client, 60)
    key_id, secret = await new_partner(sessions, settings, PartnerKind.APP, clock)
    other = SignedClient(client, key_id=key_id, secret=secret, clock=clock)
    response = await other.get(f"/api/v1/residents/{resident}/vouchers")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_resident"
