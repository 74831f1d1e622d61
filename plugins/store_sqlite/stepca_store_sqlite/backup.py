"""``stepca-store-sqlite backup|restore``: copies of the SQLite store through SQLite's online
backup API (``sqlite3.Connection.backup``).

A backup reads one snapshot while the CA keeps issuing (WAL readers do not block writers) and
is written as one self-contained file (no -wal beside it), 0600, under a temporary name that is
renamed only once complete and checked. A restore copies a backup into the database a ca.json
names, page by page through SQLite, so a -wal file left there cannot mix with the new pages.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.request import pathname2url

import click

from stepca_store_sqlite.store import database_path


def _database_of(ca_json: str) -> Path:
    from stepca.config import Config, ConfigError

    try:
        config = Config.load(ca_json)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    db = config.db or {}
    if str(db.get("type", "")).lower() != "sqlite":
        raise click.ClickException(f"{ca_json}: db.type is '{db.get('type')}', not 'sqlite'")
    return database_path(db, steppath=config.steppath)


def _open_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise click.ClickException(f"{path} does not exist")
    return sqlite3.connect(f"file:{pathname2url(str(path))}?mode=ro", uri=True, timeout=30)


def _check(conn: sqlite3.Connection, what: Path) -> None:
    """An intact stepca database: SQLite's integrity check, and our schema's version table."""
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise click.ClickException(f"{what} is not a usable SQLite database: {exc}") from None
    if result != "ok":
        raise click.ClickException(f"{what} fails SQLite's integrity check: {result}")
    if "stepca_schema" not in tables:
        raise click.ClickException(f"{what} is not a stepca database (no stepca_schema table)")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Back up and restore the SQLite store of a stepca CA."""


@main.command()
@click.argument("ca_json", metavar="CA-JSON", type=click.Path(dir_okay=False))
@click.argument("target", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("-f", "--force", is_flag=True, help="Replace FILE if it exists.")
def backup(ca_json: str, target: str, force: bool) -> None:
    """Copy the database CA-JSON names into FILE (0600), while the CA runs."""
    source = _database_of(ca_json)
    final = Path(target).absolute()
    if final.exists() and not force:
        raise click.ClickException(f"{final} exists; pass --force to replace it")
    if not final.parent.is_dir():
        raise click.ClickException(f"{final.parent} is not a folder")
    partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with closing(_open_read_only(source)) as reader, closing(sqlite3.connect(partial)) as copy:
            try:
                reader.backup(copy)  # all pages in one step: one consistent snapshot
            except sqlite3.DatabaseError as exc:
                raise click.ClickException(f"cannot back up {source}: {exc}") from None
            copy.execute("PRAGMA journal_mode=DELETE")  # one file, whatever the source's mode
            _check(copy, source)
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
        _fsync_dir(final.parent)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"✔ Backup: {final}", err=True)


@main.command()
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False))
@click.argument("ca_json", metavar="CA-JSON", type=click.Path(dir_okay=False))
@click.option("-f", "--force", is_flag=True,
              help="Replace the content of an existing database (stop its CA first).")
def restore(source: str, ca_json: str, force: bool) -> None:
    """Copy the backup FILE into the database CA-JSON names; its CA must not be running."""
    target = _database_of(ca_json)
    with closing(_open_read_only(Path(source))) as reader:
        _check(reader, Path(source))
        if target.exists() and target.stat().st_size > 0 and not force:
            raise click.ClickException(f"{target} exists; pass --force to replace its content")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
        with closing(sqlite3.connect(target, timeout=30)) as database:
            try:
                reader.backup(database)
            except sqlite3.DatabaseError as exc:  # e.g. locked: a CA still runs on it
                raise click.ClickException(f"cannot restore into {target}: {exc}") from None
            database.execute("PRAGMA journal_mode=WAL")  # as the store runs it
            _check(database, target)
    click.echo(f"✔ Restored: {target}", err=True)
