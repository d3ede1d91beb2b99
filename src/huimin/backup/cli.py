"""`huimin backup OUT` and `huimin restore FILE` (备份与恢复), registered as top-level commands in
huimin.cli. Restore checks the restored data (the ledger's invariants, the audit chain) and exits 1 when
a check fails; a refused restore changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from huimin.backup import service
from huimin.jobs import checked_settings

__all__ = ["backup_command", "restore_command"]

out = Console()
err = Console(stderr=True)


def backup_command(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (and FILE.sha256 beside it).")],
) -> None:
    """Back up the configured database while it serves: pg_dump (custom format) on PostgreSQL, the
    SQLite online backup API on SQLite."""
    settings = checked_settings()
    report = service.backup(settings, out=file)
    out.print(
        f"{report.backend} backup written: {report.path} ({report.size:,} bytes, sha256 {report.sha256})",
        highlight=False,
    )


def restore_command(
    file: Annotated[Path, typer.Argument(help="A backup written by `huimin backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the content of a database that is not empty.")
    ] = False,
) -> None:
    """Restore a backup into the configured database, then check the ledger and the audit chain.
    Stop `huimin serve` and `huimin worker` first."""
    settings = checked_settings()
    service.restore(settings, file=file, force=force)
    out.print(f"restored {file.resolve()}", highlight=False)
    checks = asyncio.run(service.check_restored(settings))
    for report in checks.ledger:
        failed = [result.name for result in report.results if not result.ok]
        if failed:
            err.print(f"ledger check FAILED for {report.campaign_code}: {'; '.join(failed)}", markup=False)
        else:
            out.print(
                f"ledger check ok for {report.campaign_code} ({len(report.results)} checks)", markup=False
            )
    if not checks.ledger:
        out.print("ledger check: no campaigns in the restored database")
    verdict = checks.audit
    if verdict is not None and verdict.ok:
        out.print(f"audit chain intact: {verdict.sealed} records sealed and verified")
    elif verdict is not None:
        err.print(f"audit chain broken after {verdict.sealed} good records: {verdict.reason}", markup=False)
    if settings.redis_url:
        out.print(
            "Before serving again: Redis still holds the state of before the restore. Empty Huimin's Redis "
            "database (FLUSHDB on it, never on a Redis shared with others) and run `huimin claims reconcile` "
            "to rebuild the claim gate from the restored database; then start huimin serve and huimin worker.",
            highlight=False,
        )
    else:
        out.print("Start huimin serve (and huimin worker) again.", highlight=False)
    if not checks.ok:
        err.print("restored, but the checks FAILED: see above (huimin ledger check, huimin audit verify)")
        raise typer.Exit(1)
