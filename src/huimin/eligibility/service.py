"""Use cases of residents and union membership."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.eligibility.identity import id_number_problem, normalise_phone, phone_problem
from huimin.eligibility.models import PersonIdentifierRow, PersonRow, ResidentRow, UnionMemberRow
from huimin.eligibility.schemas import ResidentIn
from huimin.errors import ConflictError, InvalidInput, NotFound, Problem
from huimin.kit.clock import Clock
from huimin.kit.hashing import KeyedHasher, mask, normalise_identifier
from huimin.kit.ids import new_id

__all__ = ["Registration", "get_resident", "is_union_member", "register_resident", "unknown_resident"]


@dataclass(frozen=True)
class Registration:
    resident: ResidentRow
    created: bool


async def register_resident(
    session: AsyncSession, *, partner_id: str, data: ResidentIn, hasher: KeyedHasher, clock: Clock
) -> Registration:
    """Register (or refresh) an app user as a resident, linked to the natural person behind it."""
    problems = [
        Problem(field, message)
        for field, message in (
            ("id_number", id_number_problem(data.id_number)),
            ("phone", phone_problem(data.phone)),
        )
        if message
    ]
    if problems:
        raise InvalidInput(problems, code="invalid_resident")
    id_number = normalise_identifier(data.id_number)
    phone = normalise_phone(data.phone)
    id_digest = hasher.digest("id_number", id_number)
    phone_digest = hasher.digest("phone", phone)
    now = clock.now()

    existing = await session.scalar(
        select(ResidentRow).where(
            ResidentRow.partner_id == partner_id, ResidentRow.app_user_id == data.app_user_id
        )
    )
    if existing is not None:
        if existing.id_number_digest != id_digest:
            raise ConflictError(
                "this app user is registered with another ID number", code="resident_identity_mismatch"
            )
        existing.real_name_verified = data.real_name_verified
        existing.device_digest = hasher.digest("device", data.device_id)
        if existing.phone_digest != phone_digest:
            await _link_identifiers(session, existing.person_id, [("phone", phone_digest, mask(phone))])
            existing.phone_digest, existing.phone_masked = phone_digest, mask(phone)
        existing.updated_at = now
        await _flush(session)
        return Registration(existing, created=False)

    identifiers = [("id_number", id_digest, mask(id_number)), ("phone", phone_digest, mask(phone))]
    known = (
        await session.execute(
            select(PersonIdentifierRow.person_id).where(
                (PersonIdentifierRow.kind == "id_number") & (PersonIdentifierRow.digest == id_digest)
                | (PersonIdentifierRow.kind == "phone") & (PersonIdentifierRow.digest == phone_digest)
            )
        )
    ).scalars()
    persons = set(known)
    if len(persons) > 1:
        raise ConflictError(
            "the ID number and the phone number belong to two different persons", code="identity_conflict"
        )
    if persons:
        person_id = persons.pop()
    else:
        person_id = new_id("psn")
        session.add(PersonRow(id=person_id, created_at=now))
    await _link_identifiers(session, person_id, identifiers)
    resident = ResidentRow(
        id=new_id("res"),
        partner_id=partner_id,
        app_user_id=data.app_user_id,
        person_id=person_id,
        real_name_verified=data.real_name_verified,
        id_number_digest=id_digest,
        id_number_masked=mask(id_number),
        phone_digest=phone_digest,
        phone_masked=mask(phone),
        device_digest=hasher.digest("device", data.device_id),
        registered_at=now,
        updated_at=now,
    )
    session.add(resident)
    await _flush(session)
    return Registration(resident, created=True)


async def _link_identifiers(
    session: AsyncSession, person_id: str, identifiers: list[tuple[str, str, str]]
) -> None:
    for kind, digest, masked in identifiers:
        row = await session.get(PersonIdentifierRow, (kind, digest))
        if row is None:
            session.add(PersonIdentifierRow(kind=kind, digest=digest, person_id=person_id, masked=masked))
        elif row.person_id != person_id:
            raise ConflictError(
                f"this {kind.replace('_', ' ')} belongs to another person", code="identity_conflict"
            )


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # Two registrations of the same new person raced; the loser retries and links to the winner.
        raise ConflictError(
            "a concurrent registration of the same person won; retry", code="registration_conflict"
        ) from None


async def get_resident(session: AsyncSession, *, partner_id: str, resident_id: str) -> ResidentRow:
    """A resident of this partner; another partner's resident is as unknown as a missing one."""
    row = await session.get(ResidentRow, resident_id)
    if row is None or row.partner_id != partner_id:
        raise unknown_resident(resident_id)
    return row


def unknown_resident(resident_id: str) -> NotFound:
    return NotFound(f"no resident {resident_id!r}", code="unknown_resident")


async def is_union_member(session: AsyncSession, *, id_number_digest: str) -> bool:
    return await session.get(UnionMemberRow, id_number_digest) is not None
