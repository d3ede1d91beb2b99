"""Backup and restore (备份与恢复) of the system of record, and the checks a restored database must pass.

PostgreSQL: `pg_dump --format=custom` of the configured database, restored with `pg_restore --clean
--if-exists --no-owner --single-transaction`, so a damaged archive changes nothing. SQLite: the online
backup API (a consistent copy while the API keeps writing), restored by writing a checked copy next to
the database file and renaming it into place. Every backup gets a `<file>.sha256` beside it
(`sha256sum -c` reads it); restore refuses a file that no longer matches it.

After a restore the ledger's invariants (`huimin ledger check`) and the audit chain (`huimin audit
verify`) are checked on the restored data; the CLI reports them and exits 1 when either fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from huimin.audit import service as audit
from huimin.audit.domain import Verdict
from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal
from huimin.config import Settings
from huimin.db import create_engine, create_sessionmaker, unit_of_work
from huimin.errors import HuiminError
from huimin.kit.clock import Clock, ManualClock, SystemClock
from huimin.ledger import checks
from huimin.ledger import service as ledger

__all__ = [
    "BackupError",
    "BackupReport",
    "PostgresTarget",
    "RestoreChecks",
    "backup",
    "check_restored",
    "libpq_target",
    "restore",
]

PG_MAGIC = b"PGDMP"  # the first bytes of a pg_dump custom-format archive
SQLITE_MAGIC = b"SQLite format 3\x00"
CHECKSUM_SUFFIX = ".sha256"

# Connection parameters libpq understands; the URL's other query parameters are asyncpg's own
# (statement caches and the like) and mean nothing to pg_dump.
_LIBPQ_PARAMETERS = frozenset(
    {
        "host",
        "port",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "application_name",
        "connect_timeout",
        "options",
        "target_session_attrs",
        "passfile",
    }
)
# asyncpg spells TLS `ssl=...`; libpq `sslmode=...`.
_SSL_MODES = {"true": "require", "false": "disable", "1": "require", "0": "disable"}


class BackupError(HuiminError):
    status = 400
    code = "backup_failed"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    sha256: str
    backend: str  # "postgresql" or "sqlite"


@dataclass
class RestoreChecks:
    """What a restored database was checked for: the ledger's invariants per campaign, the audit chain."""

    ledger: list[checks.CampaignChecks] = field(default_factory=list)
    audit: Verdict | None = None

    @property
    def ledger_ok(self) -> bool:
        return all(report.ok for report in self.ledger)

    @property
    def ok(self) -> bool:
        return self.ledger_ok and self.audit is not None and self.audit.ok


# --- PostgreSQL connection for the client tools ----------------------------------------------------


@dataclass(frozen=True)
class PostgresTarget:
    """The configured database as pg_dump and pg_restore take it: a libpq URL without the password,
    and the password in the environment (PGPASSWORD), so it never shows in the process list."""

    url: str
    env: dict[str, str]
    database: str


def libpq_target(database_url: str) -> PostgresTarget:
    """`postgresql+asyncpg://user:pass@host:5432/db?ssl=require` → `postgresql://user@host:5432/db?sslmode=require`."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(f"{_shown(parsed)} is not a PostgreSQL URL", code="not_postgresql")
    if not parsed.database:
        raise BackupError("HUIMIN_DATABASE_URL names no database", code="not_postgresql")
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in parsed.query.items():
        if key == "ssl":
            key, value = "sslmode", _SSL_MODES.get(str(value).lower(), value)
        if key in _LIBPQ_PARAMETERS:
            query[key] = value
    # URL.create, not URL.set: set(password=None) keeps the password.
    libpq = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return PostgresTarget(libpq.render_as_string(hide_password=False), env, parsed.database)


# --- backup ----------------------------------------------------------------------------------------


def backup(settings: Settings, *, out: Path) -> BackupReport:
    """Write a consistent backup of the configured database to `out` (and `out.sha256`), replacing
    them only once the new backup is complete."""
    out = out.resolve()
    if out.is_dir():
        raise BackupError(f"{out} is a directory: name the backup file", code="bad_backup_path")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(out) as temporary:
        if settings.is_sqlite:
            _sqlite_backup(_sqlite_path(settings.database_url), temporary)
            backend = "sqlite"
        else:
            _pg_dump(settings.database_url, temporary)
            backend = "postgresql"
        digest = _sha256(temporary)
        _durable(temporary)
        os.replace(temporary, out)
    _write_checksum(out, digest)
    return BackupReport(out, out.stat().st_size, digest, backend)


def _sqlite_backup(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}", code="no_database")
    reader = sqlite3.connect(source)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)  # pages copied under a read transaction: consistent while others write
        # One self-contained file: the live database runs in WAL mode, the backup needs no -wal beside it.
        writer.execute("PRAGMA journal_mode=DELETE")
    finally:
        writer.close()
        reader.close()


def _pg_dump(database_url: str, out: Path) -> None:
    target = libpq_target(database_url)
    tool = _tool("pg_dump")
    client = _major(_tool_run(tool, "--version", env={}))
    server = asyncio.run(_server_major(database_url))
    if client is not None and client < server:
        raise BackupError(
            f"pg_dump is version {client}, the server {server}: install the PostgreSQL {server} client tools",
            code="pg_dump_version",
        )
    _tool_run(tool, "--format=custom", f"--file={out}", f"--dbname={target.url}", env=target.env)


# --- restore ---------------------------------------------------------------------------------------


def restore(settings: Settings, *, file: Path, force: bool = False) -> None:
    """Replace the configured database's content with the backup in `file`.

    Refused, changing nothing: a file that does not match its `.sha256`, a file that is not a backup
    of this backend or cannot be read, a database that already holds tables (unless `force`), and on
    SQLite a database file still open by another process."""
    file = file.resolve()
    if not file.is_file():
        raise BackupError(f"no backup file at {file}", code="no_backup")
    _verify_checksum(file)
    with file.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if settings.is_sqlite:
        if not head.startswith(SQLITE_MAGIC):
            raise BackupError(_wrong_kind(file, head, expected="a SQLite database"), code="bad_backup")
        _sqlite_restore(file, _sqlite_path(settings.database_url), force)
        return
    if not head.startswith(PG_MAGIC):
        raise BackupError(
            _wrong_kind(file, head, expected="a pg_dump custom-format archive"), code="bad_backup"
        )
    target = libpq_target(settings.database_url)
    tool = _tool("pg_restore")
    _tool_run(tool, "--list", str(file), env=target.env, what=f"{file} is not a readable pg_dump archive")
    if not force and asyncio.run(_postgres_tables(settings.database_url)):
        raise _not_empty(target.database)
    _tool_run(
        tool,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",  # all or nothing: a damaged archive leaves the database as it was
        "--exit-on-error",
        f"--dbname={target.url}",
        str(file),
        env=target.env,
        what=f"restoring {file} failed; the database is unchanged",
    )


def _sqlite_restore(file: Path, target: Path, force: bool) -> None:
    if target.exists() and not force and _sqlite_tables(target):
        raise _not_empty(str(target))
    if target.exists() and _sqlite_in_use(target):
        raise BackupError(
            f"{target} is in use (its -wal file stays while another process has it open): "
            "stop huimin serve and huimin worker first",
            code="database_in_use",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(target) as temporary:
        shutil.copyfile(file, temporary)
        if target.exists():
            shutil.copymode(target, temporary)  # the service's user must still be able to open it
        _check_sqlite_copy(temporary, file)
        _durable(temporary)
        os.replace(temporary, target)  # atomic: readers see the old database or the restored one
    for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)  # belonged to the old file (none exist unless it crashed)
    _durable(target.parent)


def _check_sqlite_copy(copy: Path, original: Path) -> None:
    try:
        connection = sqlite3.connect(copy)
        try:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            migrated = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(
            f"{original} is not a readable SQLite database: {error}", code="bad_backup"
        ) from None
    if verdict != "ok":
        raise BackupError(f"{original} is damaged: integrity check says {verdict}", code="bad_backup")
    if not migrated:
        raise BackupError(
            f"{original} is not a Huimin database (no alembic_version table)", code="bad_backup"
        )


def _sqlite_tables(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(
            connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        )
    finally:
        connection.close()


def _sqlite_in_use(path: Path) -> bool:
    """In WAL mode the last connection to close checkpoints the log and deletes the -wal file; if it is
    still there after ours closed, another connection holds the database open."""
    connection = sqlite3.connect(path, timeout=0.5)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError:
        return True  # locked by a writer
    finally:
        connection.close()
    return Path(f"{path}-wal").exists()


async def _postgres_tables(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_catalog.pg_class c"
                    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'"
                    " AND n.nspname NOT LIKE 'pg\\_%'"
                )
            )
    finally:
        await engine.dispose()
    return int(count or 0)


def _not_empty(database: str) -> BackupError:
    return BackupError(
        f"{database} is not empty: restore into an empty database, or give --force to replace its content",
        code="database_not_empty",
    )


# --- the checks of a restored database -------------------------------------------------------------


async def check_restored(settings: Settings) -> RestoreChecks:
    """The ledger's invariants and the audit chain, on the database as restored. The chain is verified
    as of its newest record (the moment of the backup): records written in the last hour before the
    backup had not all been sealed yet, and that is not tampering."""
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        async with unit_of_work(sessions) as session:
            found = RestoreChecks(ledger=await ledger.check(session, principal=Principal.system()))
        async with unit_of_work(sessions) as session:
            newest = await session.scalar(select(func.max(AuditRecordRow.at)))
            clock: Clock = ManualClock(newest) if newest is not None else SystemClock()
            found.audit = await audit.verify_chain(session, clock=clock)
    finally:
        await engine.dispose()
    return found


# --- checksums -------------------------------------------------------------------------------------


def checksum_path(backup_file: Path) -> Path:
    return backup_file.with_name(backup_file.name + CHECKSUM_SUFFIX)


def _write_checksum(backup_file: Path, digest: str) -> None:
    sidecar = checksum_path(backup_file)
    with _temporary_beside(sidecar) as temporary:
        temporary.write_text(f"{digest}  {backup_file.name}\n", encoding="ascii")
        os.replace(temporary, sidecar)


def _verify_checksum(backup_file: Path) -> None:
    sidecar = checksum_path(backup_file)
    if not sidecar.exists():
        return  # a file copied without its checksum: the format checks below still apply
    expected = sidecar.read_text(encoding="ascii").split()[0].lower() if sidecar.stat().st_size else ""
    if _sha256(backup_file) != expected:
        raise BackupError(
            f"{backup_file} does not match {sidecar.name}: the file was changed or damaged after the backup",
            code="backup_checksum_mismatch",
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- small helpers ---------------------------------------------------------------------------------


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up", code="no_database")
    return Path(database).resolve()


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A temporary file in `path`'s directory (so that os.replace is a rename on one file system),
    removed unless it was renamed away."""
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def _durable(path: Path) -> None:
    """fsync a file or directory, so that a rename after it survives a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found on PATH: install the PostgreSQL client tools of the server's version "
            "(Debian: apt-get install postgresql-client-15)",
            code="missing_tool",
        )
    return found


def _tool_run(tool: str, *args: str, env: dict[str, str], what: str | None = None) -> str:
    done = subprocess.run(  # noqa: S603 (a PostgreSQL client tool found on PATH, our arguments)
        [tool, *args], env={**os.environ, **env}, capture_output=True, check=False
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        if lines:
            detail = lines[0]
        elif done.returncode < 0:
            detail = f"{Path(tool).name} died of signal {-done.returncode}"
        else:
            detail = f"exit status {done.returncode}"
        name = Path(tool).name
        raise BackupError(f"{what}: {detail}" if what else f"{name} failed: {detail}", code=f"{name}_failed")
    return done.stdout.decode(errors="replace")


def _major(version_text: str) -> int | None:
    # "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" → 15
    for word in version_text.split():
        head = word.split(".")[0]
        if head.isdigit():
            return int(head)
    return None


async def _server_major(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            number = await connection.scalar(text("SHOW server_version_num"))  # e.g. 150020
    except (OSError, SQLAlchemyError) as error:
        raise BackupError(
            f"cannot connect to {_shown(make_url(database_url))}: {error}", code="database_unreachable"
        ) from None
    finally:
        await engine.dispose()
    return int(str(number)) // 10_000


def _wrong_kind(file: Path, head: bytes, *, expected: str) -> str:
    if head.startswith(PG_MAGIC):
        found = "a PostgreSQL (pg_dump) backup"
    elif head.startswith(SQLITE_MAGIC):
        found = "a SQLite backup"
    else:
        found = "neither a pg_dump archive nor a SQLite database"
    return f"{file} is {found}, but HUIMIN_DATABASE_URL needs {expected}"


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)
