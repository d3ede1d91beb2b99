"""Console sign-in: argon2 password, mandatory TOTP for government roles, lockout after 5 failures,
30-minute idle sessions, CSRF on writes, security headers. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.accounts import NewUser, create_user, totp_sealer
from huimin.auth.models import UserRow
from huimin.auth.principals import Role
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.errors import InvalidInput
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction

PASSWORD = "correct horse battery"


async def make_user(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    username: str,
    role: Role,
    **extra: object,
) -> NewUser:
    async with unit_of_work(sessions) as session:
        return await create_user(
            session,
            username=username,
            display_name=username,
            role=role,
            password=PASSWORD,
            sealer=totp_sealer(settings.secret_key.get_secret_value()),
            clock=clock,
            **extra,  # type: ignore[arg-type]
        )


def code(user: NewUser, clock: ManualClock, steps: int = 0) -> str:
    assert user.totp_secret
    return pyotp.TOTP(user.totp_secret).at(clock.now() + timedelta(seconds=30 * steps))


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, totp: str | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/staff/sign-in", json={"username": username, "password": password, "totp": totp}
    )


async def test_a_reviewer_signs_in_with_password_and_code(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(
        sessions, settings, clock, "yanjiang.li", Role.COUNTY_REVIEWER, jurisdiction=Jurisdiction.YANJIANG
    )
    response = await sign_in(client, "yanjiang.li", totp=code(user, clock))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["role"], body["jurisdiction"]) == ("county_reviewer", "yanjiang")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    me = await client.get("/api/v1/staff/me")
    assert me.status_code == 200
    assert me.json()["user_id"] == user.user.id
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert header in me.headers


async def test_government_roles_need_the_second_factor(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(sessions, settings, clock, "finance.wang", Role.FINANCE)
    assert (await sign_in(client, "finance.wang")).status_code == 401
    assert (await sign_in(client, "finance.wang", totp="000000")).status_code == 401
    good = code(user, clock)
    assert (await sign_in(client, "finance.wang", totp=good)).status_code == 200
    replayed = await sign_in(client, "finance.wang", totp=good)
    assert replayed.status_code == 401  # a code works once
    assert replayed.json()["code"] == "sign_in_failed"


async def test_five_failures_lock_the_account(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(sessions, settings, clock, "city.zhao", Role.CITY_ADMIN)
    for _ in range(5):
        assert (
            await sign_in(client, "city.zhao", password="wrong password!!", totp=code(user, clock))
        ).status_code == 401
    locked = await sign_in(client, "city.zhao", totp=code(user, clock, steps=1))
    assert locked.status_code == 423
    assert locked.json()["code"] == "account_locked"
    async with unit_of_work(sessions) as session:
        row = await session.scalar(select(UserRow).where(UserRow.username == "city.zhao"))
        assert row is not None
        assert row.failed_sign_ins == 5
        assert row.locked_at is not None


async def test_unknown_users_get_the_same_answer(client: httpx.AsyncClient) -> None:
    response = await sign_in(client, "nobody", totp="123456")
    assert response.status_code == 401
    assert response.json()["code"] == "sign_in_failed"


async def test_idle_sessions_end_after_30_minutes_and_writes_need_the_csrf_token(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(sessions, settings, clock, "operator.chen", Role.OPERATOR)
    csrf = (await sign_in(client, "operator.chen", totp=code(user, clock))).json()["csrf_token"]
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/staff/me")).status_code == 200  # activity keeps it alive
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/staff/me")).status_code == 200
    no_token = await client.post("/api/v1/staff/sign-out")
    assert (no_token.status_code, no_token.json()["code"]) == (403, "csrf_failed")
    assert (await client.post("/api/v1/staff/sign-out", headers={"X-CSRF-Token": csrf})).status_code == 204
    assert (await client.get("/api/v1/staff/me")).status_code == 401

    csrf = (await sign_in(client, "operator.chen", totp=code(user, clock, steps=1))).json()["csrf_token"]
    clock.advance(timedelta(minutes=31))
    expired = await client.get("/api/v1/staff/me")
    assert (expired.status_code, expired.json()["code"]) == (401, "session_expired")


async def test_merchants_sign_in_without_a_code(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> None:
    user = await make_user(sessions, settings, clock, "shop.001", Role.MERCHANT, merchant_id="mch_01")
    assert user.totp_secret is None
    assert (await sign_in(client, "shop.001")).status_code == 200


@pytest.mark.parametrize(
    ("username", "role", "extra", "field"),
    [
        ("a.b", Role.OPERATOR, {}, None),
        ("reviewer", Role.COUNTY_REVIEWER, {}, "jurisdiction"),
        ("admin", Role.CITY_ADMIN, {"jurisdiction": Jurisdiction.ANYUE}, "jurisdiction"),
    ],
)
async def test_account_rules(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    username: str,
    role: Role,
    extra: dict[str, object],
    field: str | None,
) -> None:
    if field is None:
        with pytest.raises(InvalidInput) as caught:
            async with unit_of_work(sessions) as session:
                await create_user(
                    session,
                    username=username,
                    display_name="",
                    role=role,
                    password="short",
                    sealer=totp_sealer("k" * 40),
                    clock=clock,
                )
        assert caught.value.problems[0].field == "password"
        return
    with pytest.raises(InvalidInput) as caught:
        await make_user(sessions, settings, clock, username, role, **extra)
    assert field in {problem.field for problem in caught.value.problems}
