"""`huimin merchant ...`: the merchant workflow from the operator's shell.

Reads (list, show, export, the dishonest list, the outbox) run as the system. Every command that is a
person's act takes `--actor NAME --role ROLE [--jurisdiction J]`, checked like a signed-in user of that
role (a county review needs `--role county_reviewer --jurisdiction 安岳县` and a merchant of 安岳县), so
the history records who really did it. MERCHANT is a merchant id (mch_...) or, with `--campaign`, a
credit code. Refusals raise `HuiminError`, which the `huimin` command prints with its code.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.principals import Principal, Role
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock, to_local
from huimin.kit.terms import Category, Jurisdiction, MerchantClass, TermError
from huimin.merchants import flows, schemas, service
from huimin.merchants.domain import Action, Application, MerchantStatus, normalise_credit_code

__all__ = ["merchant_app"]

merchant_app = typer.Typer(
    help="Merchants (参与商家): invitation, application, county review, final list, commitment, sanctions.",
    no_args_is_help=True,
)
dishonest_app = typer.Typer(help="The dishonest list (失信名单).", no_args_is_help=True)
merchant_app.add_typer(dishonest_app, name="dishonest")

out = Console()
T = TypeVar("T")

ActorOption = Annotated[str, typer.Option("--actor", help="Who does this, as recorded, e.g. 王芳.")]
RoleOption = Annotated[
    str, typer.Option("--role", help="Their role: city_admin, county_reviewer, operator or merchant.")
]
ActorJurisdiction = Annotated[
    str | None, typer.Option("--jurisdiction", help="A county reviewer's jurisdiction, e.g. 安岳县.")
]
CampaignOption = Annotated[str, typer.Option("--campaign", help="Campaign code, e.g. ziyang-2022.")]
MerchantArgument = Annotated[
    str, typer.Argument(help="Merchant id (mch_...), or a credit code with --campaign.")
]
OptionalCampaign = Annotated[
    str | None, typer.Option("--campaign", help="Campaign code, when MERCHANT is a credit code.")
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why: recorded and shown to whoever reads the history.")
]
MerchantJurisdiction = Annotated[
    str | None, typer.Option("--merchant-jurisdiction", help="The merchant's jurisdiction, e.g. 雁江区.")
]


_settings = checked_settings


def _run(job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_job(job, checked_settings())


def _sealer() -> service.MerchantSealer:
    return service.MerchantSealer.from_settings(_settings())


def _term(kind: type[Jurisdiction] | type[Category] | type[MerchantClass], value: str, hint: str) -> Any:
    try:
        return kind.parse(value)
    except TermError as error:
        raise typer.BadParameter(str(error), param_hint=hint) from None


def _person(actor: str, role: str, jurisdiction: str | None, *, merchant_id: str | None = None) -> Principal:
    """The person acting, validated like a console user of that role."""
    if not actor.strip():
        raise typer.BadParameter("name the person who acts", param_hint="--actor")
    people = [item for item in Role if item is not Role.SYSTEM]
    try:
        parsed = Role(role)
    except ValueError:
        parsed = Role.SYSTEM
    if parsed is Role.SYSTEM:
        raise typer.BadParameter(f"one of {', '.join(item.value for item in people)}", param_hint="--role")
    place = None if jurisdiction is None else _term(Jurisdiction, jurisdiction, "--jurisdiction")
    if parsed is Role.COUNTY_REVIEWER and place is None:
        raise typer.BadParameter(
            "a county reviewer acts for one jurisdiction: give --jurisdiction", param_hint="--role"
        )
    if parsed is not Role.COUNTY_REVIEWER and place is not None:
        raise typer.BadParameter("only a county reviewer has a jurisdiction", param_hint="--jurisdiction")
    return Principal(
        actor_id=f"cli:{actor.strip()}",
        role=parsed,
        jurisdiction=place,
        merchant_id=merchant_id if parsed is Role.MERCHANT else None,
        name=actor.strip(),
    )


async def _merchant_id(session: AsyncSession, reference: str, campaign: str | None) -> str:
    if reference.startswith("mch_"):
        return reference
    if campaign is None:
        raise typer.BadParameter("a credit code names a merchant within a campaign: give --campaign")
    return await service.merchant_id_by_credit_code(session, campaign_code=campaign, credit_code=reference)


def _report(row: Any) -> None:
    status = MerchantStatus(row.status)
    out.print(
        f"{row.legal_name} ({row.credit_code}, id {row.id}): {status.value} {status.label}", highlight=False
    )


# Acts of persons


@merchant_app.command("invite")
def invite(
    campaign: CampaignOption,
    credit_code: Annotated[str, typer.Option("--credit-code", help="统一社会信用代码.")],
    name: Annotated[str, typer.Option("--name", help="Legal name (企业名称).")],
    merchant_jurisdiction: Annotated[str, typer.Option("--merchant-jurisdiction", help="e.g. 雁江区.")],
    category: Annotated[str, typer.Option("--category", help="餐饮, 零售, 住宿, 服务, 批发, 汽车, 家电.")],
    merchant_class: Annotated[
        str, typer.Option("--class", help="服务业规上, 限上, 限下抽样, 重点培育, 商业综合体入驻.")
    ],
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
    address: Annotated[str, typer.Option("--address", help="Registered address.")] = "",
    contact_name: Annotated[str, typer.Option("--contact-name")] = "",
    contact_phone: Annotated[str, typer.Option("--contact-phone")] = "",
) -> None:
    """Invite one merchant into a campaign (定向邀约) — city admin."""
    principal = _person(actor, role, jurisdiction)
    invitation = schemas.parse_invitation(
        {
            "credit_code": credit_code,
            "legal_name": name,
            "jurisdiction": merchant_jurisdiction,
            "category": category,
            "merchant_class": merchant_class,
            "registered_address": address,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
        }
    )
    sealer = _sealer()

    async def job(session: AsyncSession) -> Any:
        row = await service.campaign_by_code(session, campaign)
        return await service.invite(
            session,
            principal=principal,
            campaign_id=row.id,
            invitation=invitation,
            sealer=sealer,
            clock=SystemClock(),
        )

    _report(_run(job))


@merchant_app.command("import")
def import_invitations(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="XLSX or CSV invitation list.")
    ],
    campaign: CampaignOption,
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
) -> None:
    """Import the commerce bureau's invitation list: good rows invited, bad rows reported by row number;
    the credit code is the key, so importing the same file again changes nothing."""
    principal = _person(actor, role, jurisdiction)
    sealer = _sealer()

    async def job(session: AsyncSession) -> flows.ImportReport:
        row = await service.campaign_by_code(session, campaign)
        return await flows.import_invitations(
            session,
            principal=principal,
            campaign_id=row.id,
            source=file,
            file_name=file.name,
            sealer=sealer,
            clock=SystemClock(),
        )

    report = _run(job)
    typer.echo(
        f"{report.total_rows} rows: {report.invited} merchants invited, {report.already_invited} already invited, "
        f"{len(report.rejected)} rows rejected"
    )
    # Plain lines, never wrapped: a clerk greps them or pastes them into a reply to the bureau.
    for problem in report.rejected:
        typer.echo(f"  row {problem.row}: {problem.reason}", err=True)


@merchant_app.command("apply")
def apply(
    merchant: MerchantArgument,
    address: Annotated[str, typer.Option("--address", help="Registered address (注册地址).")],
    hours: Annotated[
        str, typer.Option("--hours", help='Business hours: "09:00-21:00" or "10:00-14:00,17:00-22:00".')
    ],
    terminal: Annotated[
        list[str], typer.Option("--terminal", help="A till terminal number; repeat for each.")
    ],
    bank_name: Annotated[str, typer.Option("--bank-name", help="开户银行.")],
    bank_account: Annotated[str, typer.Option("--bank-account", help="结算账号 (stored sealed).")],
    contact_name: Annotated[str, typer.Option("--contact-name")],
    contact_phone: Annotated[str, typer.Option("--contact-phone")],
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
    campaign: OptionalCampaign = None,
    name: Annotated[str | None, typer.Option("--name", help="Correct the legal name.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Correct the category.")] = None,
    merchant_class: Annotated[str | None, typer.Option("--class", help="Correct the class.")] = None,
    merchant_jurisdiction: MerchantJurisdiction = None,
) -> None:
    """Complete the application with the merchant (or amend it, or correct it after rejection) — operator."""
    principal = _person(actor, role, jurisdiction)
    corrections = service.Corrections(
        legal_name=name,
        jurisdiction=None
        if merchant_jurisdiction is None
        else _term(Jurisdiction, merchant_jurisdiction, "--merchant-jurisdiction"),
        category=None if category is None else _term(Category, category, "--category"),
        merchant_class=None if merchant_class is None else _term(MerchantClass, merchant_class, "--class"),
    )
    application = Application(
        registered_address=address,
        business_hours=hours,
        terminals=tuple(terminal),
        bank_name=bank_name,
        bank_account=bank_account,
        contact_name=contact_name,
        contact_phone=contact_phone,
    )
    sealer = _sealer()

    async def job(session: AsyncSession) -> Any:
        return await service.apply(
            session,
            principal=principal,
            merchant_id=await _merchant_id(session, merchant, campaign),
            application=application,
            corrections=corrections,
            sealer=sealer,
            clock=SystemClock(),
        )

    _report(_run(job))


@merchant_app.command("submit")
def submit(
    merchant: MerchantArgument,
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
    campaign: OptionalCampaign = None,
) -> None:
    """Submit the application to the county for review — operator."""
    principal = _person(actor, role, jurisdiction)

    async def job(session: AsyncSession) -> Any:
        merchant_id = await _merchant_id(session, merchant, campaign)
        return await service.submit(
            session, principal=principal, merchant_id=merchant_id, clock=SystemClock()
        )

    _report(_run(job))


@merchant_app.command("review")
def review(
    merchant: MerchantArgument,
    decision: Annotated[str, typer.Argument(help="approve or reject.")],
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
    reason: Annotated[str, typer.Option("--reason", help="Required to reject.")] = "",
    campaign: OptionalCampaign = None,
) -> None:
    """Approve or reject — the county reviewer of the merchant's own jurisdiction."""
    if decision not in ("approve", "reject"):
        raise typer.BadParameter("approve or reject", param_hint="DECISION")
    principal = _person(actor, role, jurisdiction)

    async def job(session: AsyncSession) -> Any:
        return await service.review(
            session,
            principal=principal,
            merchant_id=await _merchant_id(session, merchant, campaign),
            approve=decision == "approve",
            reason=reason,
            clock=SystemClock(),
        )

    _report(_run(job))


@merchant_app.command("publish")
def publish(
    campaign: CampaignOption,
    actor: ActorOption,
    role: RoleOption,
    merchants: Annotated[
        list[str] | None, typer.Argument(help="Only these merchants (ids); all county-approved when omitted.")
    ] = None,
    jurisdiction: ActorJurisdiction = None,
    merchant_jurisdiction: MerchantJurisdiction = None,
) -> None:
    """Publish the city's final list: county-approved merchants become listed — city admin."""
    principal = _person(actor, role, jurisdiction)
    place = (
        None
        if merchant_jurisdiction is None
        else _term(Jurisdiction, merchant_jurisdiction, "--merchant-jurisdiction")
    )

    async def job(session: AsyncSession) -> Any:
        row = await service.campaign_by_code(session, campaign)
        return await service.publish(
            session,
            principal=principal,
            campaign_id=row.id,
            merchant_ids=merchants or None,
            jurisdiction=place,
            clock=SystemClock(),
        )

    rows = _run(job)
    typer.echo(f"{len(rows)} merchants put on the final list")


@merchant_app.command("commit")
def commit(
    merchant: MerchantArgument,
    signatory: Annotated[
        str, typer.Option("--signatory", help="Who signed for the merchant (法定代表人或授权代表).")
    ],
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
    version: Annotated[
        str, typer.Option("--version", help="The commitment text signed.")
    ] = service.COMMITMENT_VERSION,
    campaign: OptionalCampaign = None,
) -> None:
    """Record the merchant's acceptance of the integrity commitment (承诺书): the merchant becomes active."""
    text = service.commitment_text(version)

    async def job(session: AsyncSession) -> Any:
        merchant_id = await _merchant_id(session, merchant, campaign)
        return await service.accept_commitment(
            session,
            principal=_person(actor, role, jurisdiction, merchant_id=merchant_id),
            merchant_id=merchant_id,
            version=text.version,
            sha256=text.sha256,
            signatory=signatory,
            clock=SystemClock(),
        )

    _report(_run(job))


def _sanction(action: Action, help_text: str) -> None:
    def command(
        merchant: MerchantArgument,
        reason: ReasonOption,
        actor: ActorOption,
        role: RoleOption,
        jurisdiction: ActorJurisdiction = None,
        campaign: OptionalCampaign = None,
    ) -> None:
        principal = _person(actor, role, jurisdiction)

        async def job(session: AsyncSession) -> Any:
            return await service.sanction(
                session,
                principal=principal,
                merchant_id=await _merchant_id(session, merchant, campaign),
                action=action,
                reason=reason,
                clock=SystemClock(),
            )

        _report(_run(job))

    command.__doc__ = help_text
    merchant_app.command(action.value)(command)


_sanction(Action.SUSPEND, "Suspend an active merchant — city admin.")
_sanction(Action.REINSTATE, "Reinstate a suspended merchant — city admin.")
_sanction(
    Action.EXPEL,
    "Expel a merchant (取消参与资格): dishonest list, unsettled subsidy frozen, settled subsidy clawed back — city admin.",
)


# Reads (as the system)


@merchant_app.command("list")
def list_merchants(
    campaign: CampaignOption,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only this state; repeatable.")] = None,
    merchant_jurisdiction: MerchantJurisdiction = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")] = False,
) -> None:
    """List a campaign's merchants (all pages)."""
    try:
        statuses = [MerchantStatus(item) for item in status or []]
    except ValueError:
        raise typer.BadParameter(
            ", ".join(item.value for item in MerchantStatus), param_hint="--status"
        ) from None
    place = (
        None
        if merchant_jurisdiction is None
        else _term(Jurisdiction, merchant_jurisdiction, "--merchant-jurisdiction")
    )

    async def job(session: AsyncSession) -> list[schemas.MerchantOut]:
        row = await service.campaign_by_code(session, campaign)
        found: list[schemas.MerchantOut] = []
        page = 1
        while True:
            batch = await service.list_merchants(
                session,
                principal=Principal.system(),
                campaign_id=row.id,
                statuses=statuses,
                jurisdiction=place,
                page=page,
                page_size=service.MAX_PAGE_SIZE,
            )
            found += [schemas.merchant_out(item) for item in batch.items]
            if len(found) >= batch.total or not batch.items:
                return found
            page += 1

    merchants = _run(job)
    if as_json:
        typer.echo(
            json.dumps([item.model_dump(mode="json") for item in merchants], ensure_ascii=False, indent=2)
        )
        return
    table = Table(
        "id", "企业名称", "统一社会信用代码", "所属区县", "行业", "状态", title=f"{len(merchants)} merchants"
    )
    for item in merchants:
        table.add_row(
            item.id,
            item.legal_name,
            item.credit_code,
            item.jurisdiction.label,
            item.category.label,
            item.status_label,
        )
    out.print(table)


@merchant_app.command("show")
def show(
    merchant: MerchantArgument,
    campaign: OptionalCampaign = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")] = False,
) -> None:
    """One merchant with its history (who did what, when, why)."""

    async def job(session: AsyncSession) -> schemas.MerchantDetailOut:
        merchant_id = await _merchant_id(session, merchant, campaign)
        detail = await service.get_merchant(session, principal=Principal.system(), merchant_id=merchant_id)
        return schemas.merchant_detail_out(detail)

    detail = _run(job)
    if as_json:
        typer.echo(json.dumps(detail.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    out.print(
        f"{detail.legal_name} ({detail.credit_code}), {detail.jurisdiction.label}, {detail.category.label}, "
        f"{detail.merchant_class.label}: {detail.status.value} {detail.status_label}",
        highlight=False,
    )
    out.print(
        f"account {detail.bank_name} {detail.bank_account_masked}; terminals {', '.join(detail.terminals)}"
    )
    if detail.on_dishonest_list:
        out.print("[red]on the dishonest list (失信名单)[/red]")
    for step in detail.history:
        by = f"{step.actor_name} ({step.actor_role}{', ' + step.actor_jurisdiction if step.actor_jurisdiction else ''})"
        why = f": {step.reason}" if step.reason else ""
        out.print(
            f"  {to_local(step.at):%Y-%m-%d %H:%M} {step.action.value} → {step.to_status.value} by {by}{why}"
        )


@merchant_app.command("export")
def export(
    campaign: CampaignOption,
    merchant_jurisdiction: MerchantJurisdiction = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: a dated name here).")
    ] = None,
) -> None:
    """Export the final list as XLSX: one jurisdiction, or the whole city with a sheet per jurisdiction."""
    place = (
        None
        if merchant_jurisdiction is None
        else _term(Jurisdiction, merchant_jurisdiction, "--merchant-jurisdiction")
    )

    async def job(session: AsyncSession) -> flows.Export:
        row = await service.campaign_by_code(session, campaign)
        return await flows.export_final_list(
            session, principal=Principal.system(), campaign_id=row.id, jurisdiction=place, clock=SystemClock()
        )

    result = _run(job)
    path = output or Path(result.file_name)
    path.write_bytes(result.content)
    typer.echo(f"final list written to {path}")


@merchant_app.command("commitment")
def commitment(
    version: Annotated[str, typer.Option("--version")] = service.COMMITMENT_VERSION,
) -> None:
    """Print the integrity commitment (承诺书) text with its version and SHA-256."""
    text = service.commitment_text(version)
    typer.echo(f"version {text.version}, sha256 {text.sha256}\n")
    typer.echo(text.text)


@merchant_app.command("events")
def events(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's.")] = None,
) -> None:
    """The outbox the money side reads (activation, suspension, reinstatement, expulsion)."""

    async def job(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await service.events(session, merchant_id=merchant)
        return [
            {
                "id": row.id,
                "kind": row.kind,
                "merchant_id": row.merchant_id,
                "occurred_at": row.occurred_at.isoformat(),
                "consumed_at": None if row.consumed_at is None else row.consumed_at.isoformat(),
                "payload": row.payload,
            }
            for row in rows
        ]

    typer.echo(json.dumps(_run(job), ensure_ascii=False, indent=2))


@dishonest_app.command("list")
def dishonest_list(
    include_delisted: Annotated[bool, typer.Option("--all", help="Include delisted entries.")] = False,
) -> None:
    """The dishonest list: credit codes barred from every later campaign."""

    async def job(session: AsyncSession) -> list[schemas.DishonestEntryOut]:
        rows = await service.list_dishonest(
            session, principal=Principal.system(), include_delisted=include_delisted
        )
        return [schemas.dishonest_entry_out(row) for row in rows]

    entries = _run(job)
    table = Table(
        "统一社会信用代码", "企业名称", "列入时间", "原因", "移出时间", title=f"{len(entries)} entries"
    )
    for entry in entries:
        table.add_row(
            entry.credit_code,
            entry.legal_name,
            f"{to_local(entry.listed_at):%Y-%m-%d}",
            entry.reason,
            "" if entry.delisted_at is None else f"{to_local(entry.delisted_at):%Y-%m-%d}",
        )
    out.print(table)


@dishonest_app.command("delist")
def dishonest_delist(
    credit_code: Annotated[str, typer.Argument(help="The credit code to take off the list.")],
    reason: ReasonOption,
    actor: ActorOption,
    role: RoleOption,
    jurisdiction: ActorJurisdiction = None,
) -> None:
    """Take a credit code off the dishonest list (the entry stays on record, closed) — city admin."""
    principal = _person(actor, role, jurisdiction)

    async def job(session: AsyncSession) -> Any:
        return await service.delist(
            session, principal=principal, credit_code=credit_code, reason=reason, clock=SystemClock()
        )

    entry = _run(job)
    out.print(
        f"{normalise_credit_code(credit_code)} ({entry.legal_name}) taken off the dishonest list",
        highlight=False,
    )
