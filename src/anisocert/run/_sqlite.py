"""Opening the run store's SQLite file for writing or read-only, and the one-line errors of a failed write."""

from __future__ import annotations

import errno
import sqlite3
import urllib.parse
from pathlib import Path

from ..errors import RunStoreError, one_line

__all__ = ["is_empty_database", "open_for_writing", "open_read_only", "write_error"]


def open_for_writing(path: Path) -> sqlite3.Connection:
    """A read-write connection; the caller switches it to WAL inside RunStore._saving."""
    try:
        return sqlite3.connect(path, timeout=30)
    except sqlite3.OperationalError as err:
        raise write_error(path, "the run", err) from None


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: ``mode=ro`` and ``query_only``.

    Reading a WAL-mode store needs its -shm index; SQLite creates empty -wal/-shm scratch files beside
    the store when they are missing (never touching the store itself). Where the folder is read-only
    it cannot, and no writer can be active there, so the file is opened as immutable instead.
    """
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as err:
        if "unable to open" not in str(err):
            raise
        db = sqlite3.connect(uri + "&immutable=1", uri=True)
    db.execute("PRAGMA query_only = ON")
    return db


def is_empty_database(path: Path) -> bool:
    """A store file without any table: left by a creation that failed before its first commit."""
    if path.stat().st_size == 0:
        return True
    try:
        db = open_read_only(path)
        try:
            return db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        finally:
            db.close()
    except sqlite3.Error:
        return False


def write_error(path: Path, what: str, err: Exception) -> RunStoreError:
    """The one-line error for a failed write (sqlite3.OperationalError or OSError)."""
    text = one_line(err)
    if getattr(err, "errno", None) == errno.ENOSPC or "full" in text or "No space left" in text:
        return RunStoreError(
            f"disk full while saving {what} to {path}; free space and re-run the same command to resume "
            "(finished inputs are kept)"
        )
    if "locked" in text or "busy" in text:
        return RunStoreError(
            f"{path} is locked by another process while saving {what}; let it finish (one command per run "
            "directory), then re-run the same command to resume"
        )
    if (
        "readonly" in text
        or "read-only" in text
        or getattr(err, "errno", None) in (errno.EACCES, errno.EROFS)
    ):
        return RunStoreError(f"cannot save {what} to {path}: it is read-only; certify into a writable --out")
    return RunStoreError(
        f"cannot save {what} to {path} ({text}); fix that and re-run the same command to resume"
    )
