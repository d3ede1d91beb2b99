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

from huimin.allocation.cli import allocation_app
from huimin.audit.cli import audit_app
from huimin.backup.cli import backup_command, restore_command
from huimin.errors import HuiminError, InvalidInput
from huimin.jobs import checked_settings, run_job
from huimin.kit.clock import SystemClock, to_local
from huimin.kit.money import Fen
from huimin.kit.terms import Category
from huimin.ledger.cli import ledger_app
from huimin.merchants.cli import merchant_app
from huimin.privacy.cli import privacy_app
from huimin.reports.cli import report_app
from huimin.risk.cli import risk_app
from huimin.settlement.cli import reconcile_command, settlement_app
from huimin.worker.cli import worker_command

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
app.add_typer(merchant_app, name="merchant")
app.add_typer(audit_app, name="audit")
app.add_typer(ledger_app, name="ledger")
app.add_typer(settlement_app, name="settlement")
app.command("reconcile")(reconcile_command)
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("worker")(worker_command)
app.add_typer(risk_app, name="risk")
app.add_typer(privacy_app, name="privacy")
app.add_typer(report_app, name="report")
app.add_typer(allocation_app, name="allocation")
round_app = typer.Typer(help="Rounds (场次): extra rounds (加场).", no_args_is_help=True)
claims_app = typer.Typer(help="Claims: expiry and recycling.", no_args_is_help=True)
lottery_app = typer.Typer(help="Lottery rounds (摇号): commit, draw, verify.", no_args_is_help=True)
app.add_typer(round_app, name="round")
app.add_typer(claims_app, name="claims")
app.add_typer(lottery_app, name="lottery")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")


_settings = checked_settings
_run = run_job


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default HUIMIN_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HUIMIN_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per core in production).")] = 1,
    access_log: Annotated[
        bool | None,
        typer.Option(
            help="One log line per request (off behind a proxy that logs them already; default HUIMIN_ACCESS_LOG)."
        ),
    ] = None,
) -> None:
    """Serve the API and the console with uvicorn (uvloop and httptools); logs as JSON lines on stderr
    (HUIMIN_LOG_FORMAT=text for people), metrics of all workers at /metrics (docs/operations.md)."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from huimin.observability.logs import logging_config

    settings = _settings()
    if settings.is_sqlite and workers > 1:
        raise typer.BadParameter(
            "the embedded SQLite database serves one worker; use PostgreSQL for more", param_hint="--workers"
        )
    host = host or settings.host
    port = port or settings.port
    if access_log is not None:  # the workers read their settings from the environment
        os.environ["HUIMIN_ACCESS_LOG"] = "true" if access_log else "false"
    metrics_dir = None
    if workers > 1:
        # prometheus_client's multiprocess mode: each worker writes its counts to files here and a
        # scrape of any worker adds them up. Values from an earlier run must not be added in.
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if given:
            Path(given).mkdir(parents=True, exist_ok=True)
            for stale in Path(given).glob("*.db"):
                stale.unlink()
        else:
            metrics_dir = tempfile.mkdtemp(prefix="huimin-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    out.print(f"Huimin serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    try:
        uvicorn.run(
            "huimin.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(settings.log_format),
            log_level="info",
            access_log=False,  # the app writes its own access line, with the request id and route
            loop="uvloop",
            http="httptools",
            # The client address and scheme from X-Forwarded-* only from HUIMIN_TRUSTED_PROXIES, the
            # same list the app's own rate limits and audit trail believe.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
            # Longer than the idle timeout of the clients and proxies in front (nginx: 60 s; httpx: 5 s), so
            # that the client, not the server, closes an idle keep-alive connection: a server closing it can
            # cross a request the client is sending on it at that moment (seen as answerless requests).
            timeout_keep_alive=75,
            # A new worker imports the whole app before it answers the supervisor; on a busy 2-core box
            # that took 9 s, and uvicorn's default 5 s check killed every worker as hung (soak test).
            timeout_worker_healthcheck=30,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def demo(
    residents: Annotated[int, typer.Option(min=1, help="Synthetic residents.")] = 20_000,
    merchants: Annotated[int, typer.Option(min=0, help="Synthetic merchants invited to the campaign.")] = 800,
    seed: Annotated[int, typer.Option(help="Same seed, same summary.json.")] = 2022,
    out: Annotated[Path, typer.Option(help="Where the demo database and summary.json go.")] = Path(
        "var/demo"
    ),
    fraud_sets: Annotated[
        int,
        typer.Option(
            min=0, help="Times each fraud pattern is planted (the risk rules' recall is measured on them)."
        ),
    ] = 3,
    allocation: Annotated[
        str,
        typer.Option(
            help="static: the campaign file's stock; planner: the next-round planner and offers (docs/allocation.md)."
        ),
    ] = "static",
) -> None:
    """Run the Ziyang 2022 campaign June to December on a simulated clock through the real services:
    residents, rounds and lotteries, merchant onboarding, redemptions, invoices, refunds, expiry and
    recycling, planted fraud with the risk desk's cases and sanctions, complaints, daily settlement with the
    bank's answers, the close with the recovery, then the reports. See docs/demo.md."""
    from huimin.simulation.run import run_demo

    if allocation not in ("static", "planner"):
        raise typer.BadParameter("static or planner", param_hint="--allocation")
    demo = run_demo(
        residents=residents,
        merchants=merchants,
        seed=seed,
        out=out,
        fraud_sets=fraud_sets,
        allocation="planner" if allocation == "planner" else "static",
    )
    # uvloop, as `serve` runs: the walk is some ten thousand transactions, each a few dozen hops between
    # the event loop and aiosqlite's thread, and uvloop makes each hop cheaper (about 14 % of the run)
    try:
        import uvloop
    except ImportError:  # not on every platform
        summary = asyncio.run(demo)
    else:
        summary = uvloop.run(demo)
    failed = [name for name, ok in summary.get("invariants", {}).items() if not ok]
    if failed:
        err.print(f"invariants failed: {', '.join(failed)}", markup=False)
        raise typer.Exit(1)


@app.command("demo-totp")
def demo_totp(
    username: Annotated[str, typer.Argument(help="A demo console account (see DIR/sign-ins.json).")],
    out: Annotated[Path, typer.Option(help="The demo's directory.")] = Path("var/demo"),
) -> None:
    """Print the current 6-digit sign-in code of a demo console account, for those without an authenticator
    app at hand. It reads the demo's own sign-ins.json: real accounts' secrets are never written anywhere."""
    import json

    import pyotp

    from huimin.simulation.run import SIGN_INS_FILE

    path = out / SIGN_INS_FILE
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist: run `huimin demo` first", param_hint="--out")
    accounts = {account["username"]: account for account in json.loads(path.read_text(encoding="utf-8"))}
    if username not in accounts:
        raise typer.BadParameter(f"no demo account {username!r}; there are: {', '.join(accounts)}")
    secret = accounts[username]["totp_secret"]
    if not secret:
        raise typer.BadParameter(f"{username} signs in without a code")
    typer.echo(pyotp.TOTP(secret).now())


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


union_app = typer.Typer(help="Trade-union members (工会会员) for union 普惠券 batches.", no_args_is_help=True)
app.add_typer(union_app, name="union")


@union_app.command("import")
def union_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="XLSX or CSV member list.")
    ],
) -> None:
    """Import the trade union's member list: ID numbers are hashed on import, bad rows reported by row."""
    from huimin.eligibility.union import import_members

    settings = _settings()
    report = _run(
        lambda session: import_members(session, path=file, hasher=settings.hasher, clock=SystemClock()),
        settings,
    )
    out.print(
        f"{report.total_rows} rows: {report.imported} members imported, {report.already_members} already members, "
        f"{len(report.rejected)} rows rejected"
    )
    for problem in report.rejected:
        err.print(f"  row {problem.row}: {problem.reason}", markup=False, highlight=False)


user_app = typer.Typer(help="Console accounts: officials, the operator, merchants.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Sign-in name.")],
    role: Annotated[
        str,
        typer.Option(
            help="city_admin, county_reviewer, operator, union_admin, finance, market_regulator, police, pboc, hotline, publicity or merchant."
        ),
    ],
    name: Annotated[str, typer.Option(help="Display name, e.g. 雁江区商务局 张三.")] = "",
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="For county reviewers: yanjiang, anyue, lezhi, gaoxin, linkong (or 雁江区 …)."),
    ] = None,
    merchant_id: Annotated[str | None, typer.Option(help="For merchant accounts.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a console account. Government roles and the operator get a TOTP secret to enrol."""
    import sys as system

    from huimin.auth.accounts import create_user, totp_sealer
    from huimin.auth.principals import Role
    from huimin.kit.terms import Jurisdiction, TermError

    try:
        chosen_role = Role(role)
    except ValueError:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from None
    try:
        scope = Jurisdiction.parse(jurisdiction) if jurisdiction else None
    except TermError as error:
        raise typer.BadParameter(str(error), param_hint="--jurisdiction") from None
    if password_stdin:
        password = system.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt(
            "password (at least 12 characters)", hide_input=True, confirmation_prompt=True
        )
    settings = _settings()
    created = _run(
        lambda session: create_user(
            session,
            username=username,
            display_name=name,
            role=chosen_role,
            password=password,
            sealer=totp_sealer(settings.secret_key.get_secret_value()),
            clock=SystemClock(),
            jurisdiction=scope,
            merchant_id=merchant_id,
        ),
        settings,
    )
    typer.echo(f"user {created.user.username} ({created.user.role}) created")
    if created.totp_secret:
        typer.echo(f"TOTP secret (enrol it now, it is shown once): {created.totp_secret}")
        typer.echo(f"otpauth URI: {created.totp_uri}")


@user_app.command("unlock")
def user_unlock(username: Annotated[str, typer.Argument(help="The locked account.")]) -> None:
    """Unlock an account locked after 5 failed sign-ins."""
    from huimin.auth.accounts import unlock_user

    _run(lambda session: unlock_user(session, username=username, clock=SystemClock()), _settings())
    typer.echo(f"user {username} unlocked")


@round_app.command("add")
def round_add(
    campaign: Annotated[str, typer.Option(help="Campaign code.")],
    at: Annotated[str, typer.Option(help='Opening time, Asia/Shanghai: "2022-07-02 10:00".')],
    stock: Annotated[list[str], typer.Option(help="BATCH=COUNT, once per batch.")],
    hours: Annotated[int, typer.Option(help="How long the round stays open.")] = 12,
    mode: Annotated[str, typer.Option(help="first_come or lottery.")] = "first_come",
) -> None:
    """Add an extra round (加场), checked like the campaign file."""
    from datetime import datetime

    from huimin.campaigns import service
    from huimin.campaigns.domain import ClaimMode
    from huimin.kit.clock import LOCAL_TZ

    try:
        opens_at = datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=LOCAL_TZ)
    except ValueError:
        raise typer.BadParameter(
            'write the time as "YYYY-MM-DD HH:MM" (Asia/Shanghai)', param_hint="--at"
        ) from None
    quantities: dict[str, int] = {}
    for item in stock:
        code, _, count = item.partition("=")
        if not code or not count.isdigit():
            raise typer.BadParameter(
                f"{item!r}: write BATCH=COUNT, e.g. general-100-30=5000", param_hint="--stock"
            )
        quantities[code] = int(count)
    if mode not in {item.value for item in ClaimMode}:
        raise typer.BadParameter("must be first_come or lottery", param_hint="--mode")
    settings = _settings()
    row = _run(
        lambda session: service.add_round(
            session,
            campaign_code=campaign,
            opens_at=opens_at,
            hours=hours,
            stock=quantities,
            mode=ClaimMode(mode),
            clock=SystemClock(),
        ),
        settings,
    )
    out.print(f"round added: {row.code} (id {row.id}), {to_local(row.opens_at):%Y-%m-%d %H:%M} for {hours} h")


@claims_app.command("expire")
def claims_expire() -> None:
    """Expire vouchers past their validity and roll expired and unclaimed stock into the next round."""
    from huimin.claims.flows import expire_and_recycle

    report = _run(lambda session: expire_and_recycle(session, clock=SystemClock()), _settings())
    out.print(
        f"expired {report.expired}; recycled {report.expired_recycled} expired and {report.unclaimed_recycled} "
        f"unclaimed into later rounds; {report.left_for_recovery} expired with no later round (recovered at the end)"
    )


@claims_app.command("reconcile")
def claims_reconcile() -> None:
    """Rebuild the Redis claim gate from PostgreSQL (after a Redis restart or failover); claims of each
    round are paused while it is rebuilt and resume when it is done."""
    from huimin.claims.gate import RedisGate
    from huimin.claims.service import reconcile_gate
    from huimin.redis_client import connect_redis

    settings = _settings()
    if settings.claims_ack == "redis":
        out.print(
            f"express claims rebuilt from the database for {asyncio.run(_reconcile_express(settings))} "
            "campaigns with a round not yet closed (their streams persisted first)"
        )
        return

    async def job(session: Any) -> int:
        redis = connect_redis(settings)
        try:
            return await reconcile_gate(session, gate=RedisGate(redis), clock=SystemClock())
        finally:
            await redis.aclose()

    out.print(f"claim gate rebuilt from the database for {_run(job, settings)} rounds not yet closed")


async def _draw_with_express_paused(
    settings: Any, round_ref: str, campaign: str | None, job: Callable[[Any], Awaitable[Any]]
) -> Any:
    from huimin.campaigns.models import RoundRow
    from huimin.claims.express import ExpressGate, ExpressPersister, paused_for_the_database
    from huimin.db import create_engine, create_sessionmaker, unit_of_work
    from huimin.redis_client import connect_redis

    engine = create_engine(settings.database_url)
    redis = connect_redis(settings)
    try:
        sessions = create_sessionmaker(engine)
        async with unit_of_work(sessions) as session:
            round_ = await session.get(RoundRow, await _round_id(session, round_ref, campaign))
            if round_ is None:
                raise HuiminError(f"no round {round_ref!r}", code="unknown_round", status=404)
        async with (
            paused_for_the_database(
                sessions,
                gate=ExpressGate(redis),
                persister=ExpressPersister(redis, sessions, publish_to=redis),
                clock=SystemClock(),
                campaign_id=round_.campaign_id,
            ),
            unit_of_work(sessions) as session,
        ):
            return await job(session)
    finally:
        await redis.aclose()
        await engine.dispose()


async def _reconcile_express(settings: Any) -> int:
    from huimin.claims.express import ExpressGate, ExpressPersister, reconcile_express
    from huimin.db import create_engine, create_sessionmaker
    from huimin.redis_client import connect_redis

    engine = create_engine(settings.database_url)
    redis = connect_redis(settings)
    try:
        sessions = create_sessionmaker(engine)
        return await reconcile_express(
            sessions,
            gate=ExpressGate(redis),
            persister=ExpressPersister(redis, sessions, publish_to=redis),
            clock=SystemClock(),
        )
    finally:
        await redis.aclose()
        await engine.dispose()


def _round_id(session: Any, round_ref: str, campaign: str | None) -> Awaitable[str]:
    from sqlalchemy import select

    from huimin.campaigns.models import CampaignRow, RoundRow

    async def resolve() -> str:
        if round_ref.startswith("rnd_"):
            return round_ref
        query = select(RoundRow.id).where(RoundRow.code == round_ref)
        if campaign:
            query = query.join(CampaignRow, CampaignRow.id == RoundRow.campaign_id).where(
                CampaignRow.code == campaign
            )
        found = (await session.scalars(query)).all()
        if len(found) != 1:
            raise HuiminError(
                f"round {round_ref!r} {'is ambiguous: give --campaign' if found else 'not found'}",
                code="unknown_round",
            )
        return str(found[0])

    return resolve()


RoundArg = Annotated[str, typer.Argument(help="Round id (rnd_…) or round code.")]
CampaignOpt = Annotated[str | None, typer.Option(help="Campaign code, when a round code is ambiguous.")]


@lottery_app.command("commit")
def lottery_commit(round_ref: RoundArg, campaign: CampaignOpt = None) -> None:
    """Fix the seed of a lottery round and print its SHA-256 for publication."""
    from huimin.claims.lottery import lottery_sealer
    from huimin.claims.service import commit_seed

    settings = _settings()
    sealer = lottery_sealer(settings.secret_key.get_secret_value())

    async def job(session: Any) -> str:
        draw = await commit_seed(
            session,
            round_id=await _round_id(session, round_ref, campaign),
            sealer=sealer,
            clock=SystemClock(),
        )
        return draw.seed_sha256

    out.print(f"seed committed; publish its SHA-256: {_run(job, settings)}")


@lottery_app.command("draw")
def lottery_draw(round_ref: RoundArg, campaign: CampaignOpt = None) -> None:
    """Draw a lottery round after registration closed: reveal the seed and issue the winners' vouchers."""
    from huimin.claims.flows import draw_lottery
    from huimin.claims.lottery import lottery_sealer

    settings = _settings()
    sealer = lottery_sealer(settings.secret_key.get_secret_value())

    async def job(session: Any) -> Any:
        round_id = await _round_id(session, round_ref, campaign)
        return await draw_lottery(session, round_id=round_id, sealer=sealer, clock=SystemClock())

    if settings.claims_ack == "redis":  # the winners' vouchers count against limits express claims check
        report = asyncio.run(_draw_with_express_paused(settings, round_ref, campaign, job))
    else:
        report = _run(job, settings)
    out.print(
        f"{report.round_code}: {report.entries} entries, {report.winners} winners, {report.vouchers} vouchers issued\n"
        f"seed {report.seed} (SHA-256 {report.seed_sha256})"
    )


@lottery_app.command("verify")
def lottery_verify(round_ref: RoundArg, campaign: CampaignOpt = None) -> None:
    """Recompute a drawn lottery from its revealed seed and entries; exit 1 if anything differs."""
    from huimin.claims.flows import verify_lottery

    async def job(session: Any) -> Any:
        return await verify_lottery(session, round_id=await _round_id(session, round_ref, campaign))

    report = _run(job, _settings())
    if report.matches:
        out.print(
            f"{report.round_code}: the draw is reproduced exactly from the revealed seed and the entries"
        )
        return
    for problem in report.problems:
        err.print(f"  - {problem}", markup=False)
    err.print(f"{report.round_code}: the recorded draw does NOT match", markup=False)
    raise typer.Exit(1)


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
