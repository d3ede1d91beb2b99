"""The `huimin` command for operators: serving, the database, campaigns.

Errors are printed as one line naming what is wrong (for a campaign file: every bad field) and the
command exits non-zero; nothing is half-written.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.errors import HuiminError, InvalidInput
from huimin.kit.clock import SystemClock, to_local
from huimin.kit.money import Fen
from huimin.kit.terms import Category

app = typer.Typer(
    pretty_exceptions_enable=False,  # plain tracebacks: rich ones print local variables, secrets included
    name="huimin",
    help="Huimin 惠民: government consumption-voucher campaigns.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns (活动): load and show campaign files.", no_args_is_help=True)
partner_app = typer.Typer(help="Partner keys for the payment app and till terminals.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(partner_app, name="partner")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _settings() -> Settings:
    settings = Settings()
    settings.check_production()
    return settings


def _run(job: Callable[[Any], Awaitable[T]], settings: Settings) -> T:
    """Run one unit of work against the configured database."""

    async def main() -> T:
        engine = create_engine(settings.database_url, echo=settings.database_echo)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await job(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default HUIMIN_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HUIMIN_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per core in production).")] = 1,
) -> None:
    """Serve the API (and, later, the console) with uvicorn."""
    import uvicorn

    settings = _settings()
    if settings.is_sqlite and workers > 1:
        raise typer.BadParameter(
            "the embedded SQLite database serves one worker; use PostgreSQL for more", param_hint="--workers"
        )
    host = host or settings.host
    port = port or settings.port
    out.print(f"Huimin serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "huimin.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info"
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the migrations to the configured database (HUIMIN_DATABASE_URL)."""
    from huimin.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    out.print(f"database at revision {revision}: {_redacted(settings.database_url)}")


@campaign_app.command("load")
def campaign_load(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Campaign TOML file.")
    ],
) -> None:
    """Validate a campaign file and store it. A rejected file changes nothing."""
    from huimin.campaigns import service

    text = file.read_text(encoding="utf-8")
    settings = _settings()
    outcome = _run(lambda session: service.load_campaign(session, text=text, clock=SystemClock()), settings)
    verb = "loaded" if outcome.created else "already loaded, unchanged:"
    out.print(f"campaign {verb} {outcome.code} (id {outcome.campaign_id})")


@campaign_app.command("show")
def campaign_show(
    code: Annotated[str | None, typer.Argument(help="Campaign code; all campaigns when omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")] = False,
) -> None:
    """Show campaigns: budget, funders, batches and rounds."""
    from huimin.campaigns import schemas, service

    settings = _settings()

    async def job(session: Any) -> list[schemas.CampaignDetail]:
        if code is not None:
            return [schemas.campaign_detail(await service.get_campaign_by_code(session, code=code))]
        rows = await service.list_campaigns(session)
        return [
            schemas.campaign_detail(await service.get_campaign(session, campaign_id=row.id)) for row in rows
        ]

    details = _run(job, settings)
    if as_json:
        typer.echo(
            json.dumps([detail.model_dump(mode="json") for detail in details], ensure_ascii=False, indent=2)
        )
        return
    if not details:
        out.print("no campaigns loaded; try: huimin campaign load campaigns/ziyang-2022.toml")
    for detail in details:
        _print_campaign(detail)


@partner_app.command("create")
def partner_create(
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. the payment app or a merchant's till.")],
    kind: Annotated[str, typer.Option(help="app (acts for residents) or terminal (a till that redeems).")],
) -> None:
    """Create a partner key. The secret is printed once and cannot be shown again."""
    from huimin.auth.domain import PartnerKind
    from huimin.auth.service import create_partner, partner_sealer

    if kind not in {item.value for item in PartnerKind}:
        raise typer.BadParameter("must be app or terminal", param_hint="--kind")
    settings = _settings()
    sealer = partner_sealer(settings.secret_key.get_secret_value())
    created = _run(
        lambda session: create_partner(
            session, name=name, kind=PartnerKind(kind), sealer=sealer, clock=SystemClock()
        ),
        settings,
    )
    typer.echo(f"partner: {created.partner.name} ({created.partner.kind})")
    typer.echo(f"key id:  {created.partner.key_id}")
    typer.echo(f"secret:  {created.secret}")
    typer.echo(
        "Keep the secret safe: it is shown only now. Sign requests as described in docs/partner-api.md."
    )


def _print_campaign(detail: Any) -> None:
    out.print(f"[bold]{detail.name}[/bold]  {detail.code}  ({detail.id})")
    out.print(f"{detail.starts_on} to {detail.ends_on}   budget {Fen(detail.budget_fen).format()}")
    funders = Table("funder", "kind", "budget", title="funders 资金来源")
    for funder in detail.funders:
        funders.add_row(f"{funder.code} {funder.name}", funder.kind, Fen(funder.budget_fen).format())
    out.print(funders)
    batches = Table("batch", "kind", "value", "scope", "funding", title="batches 券批次")
    for batch in detail.batches:
        batches.add_row(
            f"{batch.code}\n{batch.name}",
            batch.kind,
            _describe_value(batch),
            "、".join(Category(code).label for code in batch.categories),
            ", ".join(f"{code} {bp / 100:g}%" for code, bp in batch.funding.items()),
        )
    out.print(batches)
    if detail.rounds:
        first, last = detail.rounds[0], detail.rounds[-1]
        out.print(
            f"{len(detail.rounds)} rounds 场次, first {first.code} at {to_local(first.opens_at):%Y-%m-%d %H:%M}, "
            f"last {last.code} at {to_local(last.opens_at):%Y-%m-%d %H:%M} (Asia/Shanghai)"
        )


def _describe_value(batch: Any) -> str:
    def yuan(fen: int) -> str:
        return Fen(fen).to_yuan_text().removesuffix(".00")

    if batch.kind == "threshold":
        return f"满{yuan(batch.threshold_fen)}减{yuan(batch.face_value_fen)}"
    if batch.kind == "fixed":
        return f"立减{yuan(batch.face_value_fen)}"
    if batch.kind == "percentage":
        return f"{batch.percent_bp / 100:g}%, max {yuan(batch.cap_fen)}"
    return "\n".join(f"≥{yuan(tier.min_price_fen)}: {yuan(tier.face_value_fen)}" for tier in batch.tiers)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    try:
        app()
    except InvalidInput as error:
        err.print(f"[red]error ({error.code}):[/red] {error.message.split(':', 1)[0]}", highlight=False)
        for problem in error.problems:
            err.print(f"  - {problem.field}: {problem.message}", highlight=False, markup=False)
        sys.exit(2)
    except HuiminError as error:
        err.print(f"[red]error ({error.code}):[/red] {error.message}", highlight=False)
        sys.exit(1)
