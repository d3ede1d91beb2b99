"""Console accounts and sessions (SPEC §11.2, 等保 2.0 level 3 identification and authentication):

- passwords hashed with argon2id, at least 12 characters;
- a TOTP second factor (RFC 6238, 30-second steps) mandatory for every government role and the
  operator; a code is accepted once (its time step is remembered);
- 5 failed sign-ins in a row lock the account until an administrator unlocks it;
- sessions end after 30 idle minutes; the cookie carries a random token whose SHA-256 is stored;
- every session has a CSRF token that cookie-authenticated writes must echo in `X-CSRF-Token`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.audit import service as audit
from huimin.auth.models import StaffSessionRow, UserRow
from huimin.auth.principals import GOVERNMENT_ROLES, Permission, Principal, Role
from huimin.errors import ConflictError, HuiminError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.ids import new_id
from huimin.kit.sealing import Sealer
from huimin.kit.terms import Jurisdiction

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_FAILED_SIGN_INS",
    "NewUser",
    "SignedIn",
    "account_roles",
    "add_user",
    "create_user",
    "end_session",
    "list_users",
    "principal_of",
    "resolve_session",
    "sign_in",
    "totp_sealer",
    "unlock_user",
]

IDLE_TIMEOUT = timedelta(minutes=30)
MAX_FAILED_SIGN_INS = 5
MIN_PASSWORD_LENGTH = 12
_HASHER = PasswordHasher()  # argon2id with the library's current defaults
# A hash to verify against when the username is unknown, so both paths take the same time.
_DUMMY_HASH = _HASHER.hash("not-a-real-password-0000")


def totp_sealer(secret_key: str) -> Sealer:
    return Sealer(secret_key, "totp-secret")


@dataclass(frozen=True)
class NewUser:
    user: UserRow
    totp_secret: str | None  # shown once to be enrolled in an authenticator app
    totp_uri: str | None


def _password_problem(password: str, username: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if username.lower() in password.lower():
        return "must not contain the username"
    return None


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    sealer: Sealer,
    clock: Clock,
    jurisdiction: Jurisdiction | None = None,
    merchant_id: str | None = None,
    created_by: Principal | None = None,
) -> NewUser:
    """A console account. `created_by` is the administrator acting; without one it is the operator's
    shell (`huimin user create`), recorded as the system."""
    problems = []
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").isalnum():
        problems.append(Problem("username", "use 1-64 letters, digits, '.' or '_'"))
    if (reason := _password_problem(password, username)) is not None:
        problems.append(Problem("password", reason))
    if role is Role.COUNTY_REVIEWER and jurisdiction is None:
        problems.append(Problem("jurisdiction", "a county reviewer needs the jurisdiction it reviews"))
    if role is not Role.COUNTY_REVIEWER and jurisdiction is not None:
        problems.append(Problem("jurisdiction", "only county reviewers are scoped to a jurisdiction"))
    if role is Role.MERCHANT and not merchant_id:
        problems.append(Problem("merchant_id", "a merchant account needs its merchant"))
    if role is Role.SYSTEM:
        problems.append(Problem("role", "system is not a sign-in role"))
    if problems:
        raise InvalidInput(problems, code="invalid_user")
    if await session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
        raise ConflictError(f"user {username!r} exists", code="user_exists")
    secret = pyotp.random_base32() if role in GOVERNMENT_ROLES else None
    user = UserRow(
        id=new_id("usr"),
        username=username,
        display_name=display_name or username,
        role=role.value,
        jurisdiction=jurisdiction.value if jurisdiction else None,
        merchant_id=merchant_id,
        password_hash=_HASHER.hash(password),
        totp_sealed=sealer.seal(secret) if secret else None,
        failed_sign_ins=0,
        created_at=clock.now(),
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        principal=created_by or Principal.system("cli"),
        action="user.create",
        object_type="user",
        object_id=user.id,
        at=user.created_at,
        detail={"username": username, "role": role.value, "jurisdiction": user.jurisdiction},
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Huimin 惠民") if secret else None
    return NewUser(user, secret, uri)


async def add_user(
    session: AsyncSession,
    *,
    principal: Principal,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    sealer: Sealer,
    clock: Clock,
    jurisdiction: Jurisdiction | None = None,
    merchant_id: str | None = None,
) -> NewUser:
    """An administrator creates an account in the console (the CLI's `huimin user create` is the
    system's way, for the first city admin)."""
    principal.require(Permission.USER_MANAGE)
    return await create_user(
        session,
        username=username.strip(),
        display_name=display_name.strip(),
        role=role,
        password=password,
        sealer=sealer,
        clock=clock,
        jurisdiction=jurisdiction,
        merchant_id=merchant_id,
        created_by=principal,
    )


def account_roles(principal: Principal) -> list[Role]:
    """The roles an administrator may give a new account (every sign-in role)."""
    principal.require(Permission.USER_MANAGE)
    return [role for role in Role if role is not Role.SYSTEM]


async def list_users(session: AsyncSession, *, principal: Principal) -> Sequence[UserRow]:
    """Every console account, by role then username (a city has hundreds, not thousands)."""
    principal.require(Permission.USER_MANAGE)
    return (await session.scalars(select(UserRow).order_by(UserRow.role, UserRow.username))).all()


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the cookie; only its hash is stored
    csrf_token: str
    principal: Principal


def _refused() -> HuiminError:
    # One message for a wrong username, password or code: do not tell which.
    return HuiminError("wrong username, password or code", code="sign_in_failed", status=401)


async def sign_in(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    totp_code: str | None,
    sealer: Sealer,
    clock: Clock,
    client_ip: str | None = None,
) -> SignedIn | HuiminError:
    """Check password and second factor. A refusal is returned, not raised, because the failure count
    it wrote must be committed: the caller commits, then raises it."""
    user = await session.scalar(select(UserRow).where(UserRow.username == username))
    now = clock.now()

    async def audited(outcome: SignedIn | HuiminError) -> SignedIn | HuiminError:
        failed = isinstance(outcome, HuiminError)
        await audit.record(
            session,
            principal=principal_of(user) if user is not None else None,
            action="staff.sign_in",
            object_type="user",
            object_id=user.id if user is not None else username[:64],
            at=now,
            result=outcome.code if isinstance(outcome, HuiminError) else "ok",
            detail={"username": username[:64]} if failed else {},
        )
        return outcome

    if user is None:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH, password)
        return await audited(_refused())
    if user.disabled_at is not None:
        return await audited(_refused())
    if user.locked_at is not None:
        return await audited(
            HuiminError(
                "this account is locked after too many failed sign-ins; ask an administrator to unlock it",
                code="account_locked",
                status=423,
            )
        )
    if not _password_ok(user, password) or not _second_factor_ok(user, totp_code, sealer, now):
        user.failed_sign_ins += 1
        if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
            user.locked_at = now
        await session.flush()
        return await audited(_refused())
    user.failed_sign_ins = 0
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    session.add(
        StaffSessionRow(
            token_sha256=_digest(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            client_ip=client_ip,
        )
    )
    await session.flush()
    return await audited(SignedIn(token, csrf, principal_of(user)))


def _password_ok(user: UserRow, password: str) -> bool:
    try:
        return _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _second_factor_ok(user: UserRow, code: str | None, sealer: Sealer, now: datetime) -> bool:
    if user.totp_sealed is None:
        return Role(user.role) not in GOVERNMENT_ROLES  # a government account without TOTP cannot sign in
    if not code or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(sealer.open(user.totp_sealed))
    step = int(now.timestamp()) // 30
    for candidate in (step, step - 1, step + 1):  # one step of clock drift either way
        if user.last_totp_step is not None and candidate <= user.last_totp_step:
            continue  # each code once: a replayed code is refused
        if hmac.compare_digest(totp.at(candidate * 30), code):
            user.last_totp_step = candidate
            return True
    return False


def principal_of(user: UserRow) -> Principal:
    return Principal(
        actor_id=user.id,
        role=Role(user.role),
        jurisdiction=Jurisdiction(user.jurisdiction) if user.jurisdiction else None,
        merchant_id=user.merchant_id,
        name=user.display_name,
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    principal: Principal
    csrf_token: str


async def resolve_session(session: AsyncSession, *, token: str, clock: Clock) -> ActiveSession | None:
    """The principal of a session cookie, or None when it is unknown, ended or idle for 30 minutes."""
    row = await session.get(StaffSessionRow, _digest(token))
    now = clock.now()
    if row is None or row.ended_at is not None:
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT:
        row.ended_at = now
        return None
    user = await session.get(UserRow, row.user_id)
    if user is None or user.disabled_at is not None or user.locked_at is not None:
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # don't write on every request
        row.last_seen_at = now
    return ActiveSession(principal_of(user), row.csrf_token)


async def end_session(session: AsyncSession, *, token: str, clock: Clock) -> None:
    row = await session.get(StaffSessionRow, _digest(token))
    if row is not None and row.ended_at is None:
        row.ended_at = clock.now()


async def unlock_user(session: AsyncSession, *, username: str, clock: Clock) -> None:
    """The operator's shell unlocks an account locked after too many failed sign-ins (recorded)."""
    user = await session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", code="unknown_user")
    user.locked_at, user.failed_sign_ins = None, 0
    await audit.record(
        session,
        principal=Principal.system("cli"),
        action="user.unlock",
        object_type="user",
        object_id=user.id,
        at=clock.now(),
    )
