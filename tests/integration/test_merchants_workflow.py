"""The merchant lifecycle through the service layer, on SQLite and on PostgreSQL: every allowed and
every refused transition, who may take each, jurisdiction scope, the dishonest list, the outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.auth.principals import Principal, Role
from huimin.db import unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.merchants import service
from huimin.merchants.domain import TRANSITIONS, Action, EventKind, MerchantStatus
from huimin.merchants.models import DishonestEntryRow, MerchantEventRow, MerchantRow, MerchantTransitionRow
from tests.integration.merchant_helpers import (
    BANK_ACCOUNT,
    CITY,
    OPERATOR,
    PATHS,
    PHONE,
    REGULATOR,
    SEALER,
    actor_for,
    application,
    credit_code,
    invitation,
    merchant_in,
    merchant_principal,
    new_campaign,
    reviewer,
    snapshot,
    take,
)

ALLOWED = [(source, action) for action, (sources, _) in TRANSITIONS.items() for source in sorted(sources)]
REFUSED = [
    (status, action)
    for status in MerchantStatus
    for action in TRANSITIONS
    if status not in TRANSITIONS[action][0]
]


def test_the_tables_cover_every_pair() -> None:
    assert len(ALLOWED) + len(REFUSED) == len(MerchantStatus) * len(TRANSITIONS)
    assert len(ALLOWED) == 12


async def test_the_whole_workflow_records_every_step(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(
        sessions, clock, campaign_id, MerchantStatus.INVITED, 1, Jurisdiction.ANYUE
    )
    steps = [Action.APPLY, Action.SUBMIT, Action.APPROVE, Action.PUBLISH, Action.COMMIT, Action.SUSPEND]
    steps += [Action.REINSTATE, Action.EXPEL]
    for action in steps:
        clock.advance(timedelta(hours=1))
        async with unit_of_work(sessions) as session:
            await take(session, action, merchant_id, clock=clock)

    async with unit_of_work(sessions) as session:
        detail = await service.get_merchant(session, principal=CITY, merchant_id=merchant_id)
        row = detail.merchant
        assert row.status == MerchantStatus.EXPELLED
        assert [step.action for step in detail.history] == ["invite", *steps]
        assert [step.to_status for step in detail.history] == [
            "invited",
            "applied",
            "submitted",
            "county_approved",
            "listed",
            "active",
            "suspended",
            "active",
            "expelled",
        ]
        review = detail.history[3]
        assert (review.actor_id, review.actor_role, review.actor_jurisdiction) == (
            "usr_reviewer_anyue",
            "county_reviewer",
            "anyue",
        )
        assert review.actor_name == "安岳县商务局 张伟"
        assert review.reason == "材料齐全"
        assert detail.history[-1].reason == "套现嫌疑，待核查"
        assert detail.history[-1].actor_role == "city_admin"
        assert [step.at for step in detail.history] == sorted(step.at for step in detail.history)
        assert detail.history[-1].at == clock.now()
        # the commitment: which text, who signed, who recorded it, when
        current = service.commitment_text()
        assert (row.commitment_version, row.commitment_sha256) == ("v1", current.sha256)
        assert row.commitment_signatory == "陈静"
        assert (row.committed_by, row.committed_by_role) == (f"usr_{merchant_id}", "merchant")
        assert row.committed_at == detail.history[5].at
        # the bank account and the phone are sealed, shown masked
        assert row.bank_account_masked == "622************0123"
        assert row.contact_phone_masked == "138****5678"
        assert row.bank_account_sealed is not None
        assert BANK_ACCOUNT.encode() not in row.bank_account_sealed
        assert SEALER.bank_account.open(row.bank_account_sealed) == BANK_ACCOUNT
        assert row.contact_phone_sealed is not None
        assert SEALER.contact_phone.open(row.contact_phone_sealed) == PHONE
        assert [terminal.terminal_id for terminal in row.terminals] == ["T0000001"]
        # the outbox the money side reads
        events = await service.events(session, merchant_id=merchant_id)
        assert [event.kind for event in events] == [
            EventKind.ACTIVATED,
            EventKind.SUSPENDED,
            EventKind.REINSTATED,
            EventKind.EXPELLED,
        ]
        expelled = events[-1]
        assert expelled.payload["freeze_unsettled_subsidy"] is True
        assert expelled.payload["claw_back_settled_subsidy"] is True
        assert expelled.payload["credit_code"] == credit_code(1)
        assert expelled.occurred_at == clock.now()
        assert expelled.consumed_at is None
        # and the dishonest list
        [entry] = await service.list_dishonest(session, principal=CITY)
        assert (entry.credit_code, entry.merchant_id, entry.campaign_id) == (
            credit_code(1),
            merchant_id,
            campaign_id,
        )
        assert (entry.listed_by, entry.listed_by_role, entry.reason) == (
            "usr_city",
            "city_admin",
            "套现嫌疑，待核查",
        )
        assert detail.dishonest is True
        assert detail.actions == []  # expelled is the end


@pytest.mark.parametrize(("source", "action"), ALLOWED, ids=lambda item: str(item))
async def test_an_allowed_transition(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, source: MerchantStatus, action: Action
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, source, 7)
    before = await snapshot(sessions, merchant_id)
    clock.advance(timedelta(minutes=5))
    async with unit_of_work(sessions) as session:
        row = await take(session, action, merchant_id, clock=clock)
        assert row.status == TRANSITIONS[action][1]
    after = await snapshot(sessions, merchant_id)
    assert after.status == TRANSITIONS[action][1]
    assert after.transitions == before.transitions + 1
    async with unit_of_work(sessions) as session:
        last = (
            await session.scalars(
                select(MerchantTransitionRow)
                .where(MerchantTransitionRow.merchant_id == merchant_id)
                .order_by(MerchantTransitionRow.id.desc())
            )
        ).first()
        assert last is not None
        assert (last.action, last.from_status, last.to_status, last.at) == (
            action.value,
            source.value,
            TRANSITIONS[action][1].value,
            clock.now(),
        )


async def test_every_refused_transition_is_invalid_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchants = {
        status: await merchant_in(sessions, clock, campaign_id, status, index + 1)
        for index, status in enumerate(MerchantStatus)
    }
    for status, action in REFUSED:
        merchant_id = merchants[status]
        before = await snapshot(sessions, merchant_id)
        with pytest.raises(HuiminError) as refused:
            async with unit_of_work(sessions) as session:
                await take(session, action, merchant_id, clock=clock)
        assert (refused.value.code, refused.value.status) == ("invalid_transition", 409), (status, action)
        assert await snapshot(sessions, merchant_id) == before, (status, action)


async def test_a_publication_of_named_merchants_is_all_or_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    approved = await merchant_in(sessions, clock, campaign_id, MerchantStatus.COUNTY_APPROVED, 1)
    submitted = await merchant_in(sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 2)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.publish(
                session,
                principal=CITY,
                campaign_id=campaign_id,
                merchant_ids=[approved, submitted],
                clock=clock,
            )
    assert refused.value.code == "invalid_transition"
    assert (await snapshot(sessions, approved)).status == "county_approved"
    # without names: every county-approved merchant, and only those
    async with unit_of_work(sessions) as session:
        published = await service.publish(session, principal=CITY, campaign_id=campaign_id, clock=clock)
    assert [row.id for row in published] == [approved]
    assert (await snapshot(sessions, submitted)).status == "submitted"
    async with unit_of_work(sessions) as session:
        assert await service.publish(session, principal=CITY, campaign_id=campaign_id, clock=clock) == []


async def test_a_sanction_or_rejection_needs_a_reason(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    submitted = await merchant_in(sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 1)
    active = await merchant_in(sessions, clock, campaign_id, MerchantStatus.ACTIVE, 2)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.review(
                session,
                principal=reviewer(Jurisdiction.YANJIANG),
                merchant_id=submitted,
                approve=False,
                reason=" ",
                clock=clock,
            )
    assert refused.value.code == "reason_required"
    for action in (Action.SUSPEND, Action.EXPEL):
        with pytest.raises(HuiminError) as refused:
            async with unit_of_work(sessions) as session:
                await service.sanction(
                    session, principal=CITY, merchant_id=active, action=action, reason="", clock=clock
                )
        assert refused.value.code == "reason_required"
    assert (await snapshot(sessions, submitted)).status == "submitted"
    assert (await snapshot(sessions, active)).status == "active"


# Who may do what


ROLES = [
    CITY,
    OPERATOR,
    REGULATOR,
    Principal(actor_id="usr_union", role=Role.UNION_ADMIN),
    Principal(actor_id="usr_finance", role=Role.FINANCE),
    Principal(actor_id="usr_police", role=Role.POLICE),
    Principal(actor_id="usr_pboc", role=Role.PBOC),
    Principal(actor_id="usr_hotline", role=Role.HOTLINE),
    Principal(actor_id="usr_publicity", role=Role.PUBLICITY),
]
# The seed's division of duties: who takes each step (own jurisdiction / own merchant where scoped).
DUTIES = {
    Action.APPLY: {Role.OPERATOR, Role.SYSTEM},
    Action.SUBMIT: {Role.OPERATOR, Role.SYSTEM},
    Action.APPROVE: {Role.COUNTY_REVIEWER, Role.SYSTEM},
    Action.REJECT: {Role.COUNTY_REVIEWER, Role.SYSTEM},
    Action.PUBLISH: {Role.CITY_ADMIN, Role.SYSTEM},
    Action.COMMIT: {Role.MERCHANT, Role.OPERATOR, Role.SYSTEM},
    Action.SUSPEND: {Role.CITY_ADMIN, Role.SYSTEM},
    Action.REINSTATE: {Role.CITY_ADMIN, Role.SYSTEM},
    Action.EXPEL: {Role.CITY_ADMIN, Role.SYSTEM},
}


async def test_each_role_may_take_only_its_own_steps(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Every role against every step, from the state the step starts from: the wrong role is 403 and
    changes nothing; the right role moves the merchant (on a fresh one each time)."""
    campaign_id = await new_campaign(sessions, clock)
    sources = {action: sorted(TRANSITIONS[action][0])[0] for action in DUTIES}
    waiting = {
        action: await merchant_in(sessions, clock, campaign_id, source, index + 1)
        for index, (action, source) in enumerate(sources.items())
    }
    serial = 100
    for action, merchant_id in waiting.items():
        people = [
            *ROLES,
            reviewer(Jurisdiction.YANJIANG),
            merchant_principal(merchant_id),
            Principal.system(),
        ]
        for who in people:
            if who.role in DUTIES[action]:
                serial += 1
                fresh = await merchant_in(sessions, clock, campaign_id, sources[action], serial)
                who = merchant_principal(fresh) if who.role is Role.MERCHANT else who
                async with unit_of_work(sessions) as session:
                    row = await take(session, action, fresh, clock=clock, principal=who)
                assert row.status == TRANSITIONS[action][1], (action, who.role)
                continue
            before = await snapshot(sessions, merchant_id)
            with pytest.raises(HuiminError) as refused:
                async with unit_of_work(sessions) as session:
                    await take(session, action, merchant_id, clock=clock, principal=who)
            assert (refused.value.code, refused.value.status) == ("forbidden", 403), (action, who.role)
            assert await snapshot(sessions, merchant_id) == before


async def attempt_on(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    who: Principal,
    merchant_id: str,
    attempt: str,
) -> None:
    async with unit_of_work(sessions) as session:
        if attempt == "read":
            await service.get_merchant(session, principal=who, merchant_id=merchant_id)
        else:
            await service.review(
                session,
                principal=who,
                merchant_id=merchant_id,
                approve=attempt == "approve",
                reason="不符合",
                clock=clock,
            )


async def test_a_county_reviewer_sees_and_acts_on_its_own_jurisdiction_only(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    mine = {
        jurisdiction: await merchant_in(
            sessions, clock, campaign_id, MerchantStatus.SUBMITTED, index + 1, jurisdiction
        )
        for index, jurisdiction in enumerate(Jurisdiction)
    }
    for jurisdiction in Jurisdiction:
        county = reviewer(jurisdiction)
        async with unit_of_work(sessions) as session:
            page = await service.list_merchants(session, principal=county, campaign_id=campaign_id)
            assert [row.id for row in page.items] == [mine[jurisdiction]]
            assert page.total == 1
            other = next(item for item in Jurisdiction if item is not jurisdiction)
            assert (await service.list_merchants(session, principal=county, jurisdiction=other)).items == []
        for foreign_jurisdiction, foreign in mine.items():
            if foreign_jurisdiction is jurisdiction:
                continue
            before = await snapshot(sessions, foreign)
            for attempt in ("read", "approve", "reject"):
                with pytest.raises(HuiminError) as hidden:
                    await attempt_on(sessions, clock, county, foreign, attempt)
                assert (hidden.value.code, hidden.value.status) == ("unknown_merchant", 404)
            assert await snapshot(sessions, foreign) == before
    # the city, the operator and the market regulator see all five
    for who in (CITY, OPERATOR, REGULATOR, Principal.system()):
        async with unit_of_work(sessions) as session:
            assert (await service.list_merchants(session, principal=who, campaign_id=campaign_id)).total == 5
    # roles without merchant access see nothing at all
    for role in (Role.FINANCE, Role.POLICE, Role.UNION_ADMIN, Role.HOTLINE):
        with pytest.raises(HuiminError) as refused:
            async with unit_of_work(sessions) as session:
                await service.list_merchants(session, principal=Principal(actor_id="x", role=role))
        assert refused.value.code == "forbidden"


async def test_a_merchant_sees_itself_only(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    mine = await merchant_in(sessions, clock, campaign_id, MerchantStatus.LISTED, 1)
    theirs = await merchant_in(sessions, clock, campaign_id, MerchantStatus.LISTED, 2)
    me = merchant_principal(mine)
    async with unit_of_work(sessions) as session:
        assert [row.id for row in (await service.list_merchants(session, principal=me)).items] == [mine]
        detail = await service.get_merchant(session, principal=me, merchant_id=mine)
        assert detail.actions == [Action.COMMIT]
    before = await snapshot(sessions, theirs)
    with pytest.raises(HuiminError) as hidden:
        async with unit_of_work(sessions) as session:
            await take(session, Action.COMMIT, theirs, clock=clock, principal=me)
    assert hidden.value.code == "unknown_merchant"
    assert await snapshot(sessions, theirs) == before


# The dishonest list


async def test_an_expelled_merchant_cannot_take_part_in_a_later_campaign(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    first = await new_campaign(sessions, clock, "test-2022")
    expelled = await merchant_in(sessions, clock, first, MerchantStatus.EXPELLED, 1)
    later = await new_campaign(sessions, clock, "test-2023")
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.invite(
                session,
                principal=CITY,
                campaign_id=later,
                invitation=invitation(1),
                sealer=SEALER,
                clock=clock,
            )
    assert (refused.value.code, refused.value.status) == ("merchant_dishonest", 409)
    async with unit_of_work(sessions) as session:
        assert (await service.list_merchants(session, principal=CITY, campaign_id=later)).total == 0
        assert (await session.get(MerchantRow, expelled)) is not None

    # delisting is recorded, the entry kept; then the merchant may be invited again
    clock.advance(timedelta(days=30))
    async with unit_of_work(sessions) as session:
        entry = await service.delist(
            session, principal=CITY, credit_code=credit_code(1).lower(), reason="复议撤销", clock=clock
        )
        assert (entry.delisted_by, entry.delisted_by_role, entry.delist_reason) == (
            "usr_city",
            "city_admin",
            "复议撤销",
        )
        assert entry.delisted_at == clock.now()
    async with unit_of_work(sessions) as session:
        assert await service.list_dishonest(session, principal=CITY) == []
        [closed] = await service.list_dishonest(session, principal=CITY, include_delisted=True)
        assert closed.listed_at < closed.delisted_at  # type: ignore[operator]
        await service.invite(
            session, principal=CITY, campaign_id=later, invitation=invitation(1), sealer=SEALER, clock=clock
        )
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.delist(
                session, principal=CITY, credit_code=credit_code(1), reason="再次", clock=clock
            )
    assert refused.value.code == "not_dishonest"


async def test_a_code_listed_after_its_invitation_cannot_apply_or_commit(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Two campaigns at once: expelled in one, the same company stops in the other."""
    first = await new_campaign(sessions, clock, "test-2022")
    second = await new_campaign(sessions, clock, "test-2022b")
    invited = await merchant_in(sessions, clock, second, MerchantStatus.INVITED, 1)
    listed = await merchant_in(sessions, clock, second, MerchantStatus.LISTED, 2)
    for serial in (1, 2):
        await merchant_in(sessions, clock, first, MerchantStatus.EXPELLED, serial)
    for merchant_id, action in ((invited, Action.APPLY), (listed, Action.COMMIT)):
        before = await snapshot(sessions, merchant_id)
        with pytest.raises(HuiminError) as refused:
            async with unit_of_work(sessions) as session:
                await take(session, action, merchant_id, clock=clock)
        assert refused.value.code == "merchant_dishonest"
        assert await snapshot(sessions, merchant_id) == before


async def test_one_open_entry_per_code_even_when_expelled_twice(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    first = await new_campaign(sessions, clock, "test-2022")
    second = await new_campaign(sessions, clock, "test-2022b")
    await merchant_in(sessions, clock, first, MerchantStatus.ACTIVE, 1)
    await merchant_in(sessions, clock, second, MerchantStatus.ACTIVE, 1)
    async with unit_of_work(sessions) as session:
        for row in (await session.scalars(select(MerchantRow))).all():
            await service.sanction(
                session, principal=CITY, merchant_id=row.id, action=Action.EXPEL, reason="套现", clock=clock
            )
    async with unit_of_work(sessions) as session:
        assert len(await service.list_dishonest(session, principal=CITY)) == 1
        assert len((await session.scalars(select(MerchantEventRow))).all()) == 2 * 2  # activated, expelled


async def test_the_database_refuses_what_the_workflow_refuses(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    listed = await merchant_in(sessions, clock, campaign_id, MerchantStatus.LISTED, 1)
    invited = await merchant_in(sessions, clock, campaign_id, MerchantStatus.INVITED, 2)
    await merchant_in(sessions, clock, campaign_id, MerchantStatus.EXPELLED, 3)
    for statement, values in (
        ("UPDATE merchants SET status = 'active' WHERE id = :id", {"id": listed}),  # no commitment
        ("UPDATE merchants SET status = 'submitted' WHERE id = :id", {"id": invited}),  # no application
        ("UPDATE merchants SET status = 'approved' WHERE id = :id", {"id": listed}),
        ("UPDATE merchants SET jurisdiction = 'chengdu' WHERE id = :id", {"id": listed}),
        ("UPDATE merchants SET credit_code = :code WHERE id = :id", {"id": invited, "code": credit_code(1)}),
        ("UPDATE dishonest_entries SET delisted_at = listed_at", {}),  # delisted by nobody
    ):
        with pytest.raises(IntegrityError):
            async with unit_of_work(sessions) as session:
                await session.execute(text(statement), values)
    async with unit_of_work(sessions) as session:
        entry = (await session.scalars(select(DishonestEntryRow))).one()
        duplicate = DishonestEntryRow(
            id="dis_duplicate",
            credit_code=entry.credit_code,
            legal_name=entry.legal_name,
            reason="again",
            listed_at=clock.now(),
            listed_by="x",
            listed_by_name="x",
            listed_by_role="city_admin",
        )
    with pytest.raises(IntegrityError):
        async with unit_of_work(sessions) as session:
            session.add(duplicate)


async def test_terminals_belong_to_one_merchant_per_campaign(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    first = await merchant_in(sessions, clock, campaign_id, MerchantStatus.APPLIED, 1)
    second = await merchant_in(sessions, clock, campaign_id, MerchantStatus.INVITED, 2)
    before = await snapshot(sessions, second)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.apply(
                session,
                principal=OPERATOR,
                merchant_id=second,
                application=application(2, terminals=("t0000001", "T0000002")),
                sealer=SEALER,
                clock=clock,
            )
    assert refused.value.code == "terminal_taken"
    assert await snapshot(sessions, second) == before
    # an amendment replaces the merchant's own terminals
    async with unit_of_work(sessions) as session:
        await service.apply(
            session,
            principal=OPERATOR,
            merchant_id=first,
            application=application(1, terminals=("T0000001", "t0000009")),
            sealer=SEALER,
            clock=clock,
        )
    async with unit_of_work(sessions) as session:
        detail = await service.get_merchant(session, principal=OPERATOR, merchant_id=first)
        assert [terminal.terminal_id for terminal in detail.merchant.terminals] == ["T0000001", "T0000009"]
        assert [step.action for step in detail.history] == ["invite", "apply", "apply"]


async def test_an_incomplete_application_names_every_problem(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.INVITED, 1)
    before = await snapshot(sessions, merchant_id)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.apply(
                session,
                principal=OPERATOR,
                merchant_id=merchant_id,
                application=application(
                    1, business_hours="全天", terminals=(), bank_account="6222-abc", contact_phone="12345"
                ),
                sealer=SEALER,
                clock=clock,
            )
    assert refused.value.code == "invalid_application"
    assert [problem.field for problem in refused.value.problems] == [  # type: ignore[attr-defined]
        "business_hours",
        "terminals",
        "bank_account",
        "contact_phone",
    ]
    assert await snapshot(sessions, merchant_id) == before


async def test_a_commitment_must_quote_the_current_text(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.LISTED, 1)
    before = await snapshot(sessions, merchant_id)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.accept_commitment(
                session,
                principal=merchant_principal(merchant_id),
                merchant_id=merchant_id,
                version="v1",
                sha256="0" * 64,
                signatory="陈静",
                clock=clock,
            )
    assert refused.value.code == "commitment_mismatch"
    assert await snapshot(sessions, merchant_id) == before


async def test_invited_twice_is_refused_and_the_actor_is_recorded(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.INVITED, 1)
    with pytest.raises(HuiminError) as refused:
        async with unit_of_work(sessions) as session:
            await service.invite(
                session,
                principal=CITY,
                campaign_id=campaign_id,
                invitation=invitation(1),
                sealer=SEALER,
                clock=clock,
            )
    assert refused.value.code == "merchant_exists"
    async with unit_of_work(sessions) as session:
        [invite] = (await service.get_merchant(session, principal=CITY, merchant_id=merchant_id)).history
        assert (invite.action, invite.from_status, invite.actor_id, invite.actor_role) == (
            "invite",
            None,
            "usr_city",
            "city_admin",
        )


def test_every_state_has_a_path() -> None:
    assert set(PATHS) == set(MerchantStatus)
    for status, path in PATHS.items():
        current = MerchantStatus.INVITED
        for action in path:
            current = TRANSITIONS[action][1]
        assert current is status
        assert all(actor_for(action, MerchantRow(jurisdiction="anyue", id="mch_x")) for action in path)


async def wait_until_blocked(sessions: async_sessionmaker[AsyncSession], task: asyncio.Task[str]) -> None:
    """On PostgreSQL, until another transaction waits for a lock (or the task ended). On SQLite a
    second writer waits in BEGIN IMMEDIATE in the driver's thread: there is nothing to observe."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        async with sessions() as session:
            if task.done() or await session.scalar(waiting):
                return
        await asyncio.sleep(0.01)  # polling a condition, bounded: not a guess at timing
    raise AssertionError("the second decision never waited for the first")


async def test_a_second_decision_waits_for_the_first_and_sees_its_result(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """An approval and a rejection of the same merchant at the same moment: the row lock (PostgreSQL)
    or the write lock (SQLite) makes the second read the first's outcome; it is refused, and only one
    decision is recorded."""
    campaign_id = await new_campaign(sessions, clock)
    merchant_id = await merchant_in(sessions, clock, campaign_id, MerchantStatus.SUBMITTED, 1)
    county = reviewer(Jurisdiction.YANJIANG)

    async def reject() -> str:
        try:
            async with unit_of_work(sessions) as session:
                row = await service.review(
                    session,
                    principal=county,
                    merchant_id=merchant_id,
                    approve=False,
                    reason="不符合",
                    clock=clock,
                )
                return row.status
        except HuiminError as error:
            return error.code

    async with unit_of_work(sessions) as session:
        await service.review(
            session, principal=county, merchant_id=merchant_id, approve=True, reason="符合", clock=clock
        )
        second = asyncio.create_task(reject())
        await wait_until_blocked(sessions, second)
    assert await second == "invalid_transition"
    after = await snapshot(sessions, merchant_id)
    assert after.status == "county_approved"
    assert after.transitions == 4  # invite, apply, submit, and one decision
