"""The run store: one SQLite database per run directory (WAL while written), the single source of truth.

Rows are committed as they finish, so a crash, Ctrl-C or a full disk loses at most the batch in
flight; a re-run of the same configuration resumes and skips finished inputs; another configuration
or anisocert version is refused. Reading (report, verify, visualize, the resume check) opens the
database read-only, so a run directory from someone else is never written to. TSV files and reports
are views rebuilt from the store.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..core.certificates import MEMORY_CHANGED, Certificates
from ..core.exact import EXACT_ACCOUNTING
from ..errors import AnisocertError, RunStoreError, one_line
from ._sqlite import is_empty_database, open_for_writing, open_read_only, write_error
from .config import CertifyConfig
from .records import MEMORY_COLUMNS, RECORD_COLUMNS, blob, from_records, memory_rows, record_rows, unblob

__all__ = ["RunStore", "DB_NAME"]

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1
_TABLES = ("meta", "optimised", "records", "memory")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS optimised (
    idx INTEGER PRIMARY KEY, sigma REAL NOT NULL, theta BLOB, sigma_time REAL NOT NULL,
    theta_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY, label INTEGER NOT NULL, predict INTEGER NOT NULL, radius REAL NOT NULL,
    radius_proxy REAL NOT NULL, correct INTEGER NOT NULL, min_sigma REAL NOT NULL, time REAL NOT NULL,
    pA_lower REAL NOT NULL, gap REAL NOT NULL, counts TEXT NOT NULL, sigma REAL NOT NULL,
    theta BLOB, fallback INTEGER NOT NULL DEFAULT 0, opt_time REAL NOT NULL DEFAULT 0, draws INTEGER);
CREATE TABLE IF NOT EXISTS memory (
    seq INTEGER PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, predict INTEGER NOT NULL, gap REAL NOT NULL,
    radius REAL NOT NULL, radius_proxy REAL NOT NULL, correct INTEGER NOT NULL, status TEXT NOT NULL,
    conflicts INTEGER NOT NULL);
"""


class RunStore:
    """A run directory: RUN_DIR/run.sqlite plus exported views (certify.tsv, run.json)."""

    def __init__(
        self, run_dir: Path, connection: sqlite3.Connection, config: CertifyConfig, *, writable: bool = False
    ):
        self.run_dir = Path(run_dir)
        self.db = connection
        self.config = config
        self.writable = writable
        self._wal = False  # switched to WAL by this connection (at its first write): switched back on close

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, run_dir, config: CertifyConfig, *, command: str = "", versions: dict | None = None
    ) -> RunStore:
        """Create RUN_DIR, or reopen it for the same configuration and version (resume); refuse others.

        An existing store is checked through a read-only connection first, so a run of another
        configuration (or a foreign database) is refused without a byte written to it.
        """
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunStoreError(f"--out {run_dir} is a file; give a directory for the run")
        path = run_dir / DB_NAME
        if run_dir.exists() and any(run_dir.iterdir()) and not path.exists():
            raise RunStoreError(f"{run_dir} exists and is not an anisocert run; choose an empty or new --out")
        if path.exists() and not is_empty_database(path):
            existing = cls.read(run_dir)
            try:
                existing._check_same(config)
                existing._check_version(versions)
            finally:
                existing.close()
            store = cls(run_dir, open_for_writing(path), config, writable=True)
            store._check_writable("the resumed run")
            return store
        run_dir.mkdir(parents=True, exist_ok=True)
        store = cls(run_dir, open_for_writing(path), config, writable=True)
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "config": json.dumps(config.to_dict(), sort_keys=True),
            "config_hash": config.result_hash(),
            "model_sha256": config.model_sha256,
            "theta_unit": config.theta_unit,
            "alpha_convention": "one-sided, per input",
            "command": command,
            "versions": json.dumps(versions or {}, sort_keys=True),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with store._saving("the new run's metadata"):
            store.db.execute("BEGIN")  # tables and metadata in one transaction: all or nothing
            for statement in filter(str.strip, _SCHEMA.split(";")):
                store.db.execute(statement)
            store.db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        return store

    @classmethod
    def read(cls, run_dir) -> RunStore:
        """Open an existing run read-only (report, verify, visualize, the resume check).

        The database is opened with SQLite's ``mode=ro`` and ``query_only``: it is never switched to
        WAL, migrated or written, whoever made it. Anything that is not a store of this schema is a
        one-line RunStoreError.
        """
        path = Path(run_dir) / DB_NAME
        if not path.is_file():
            raise RunStoreError(
                f"{run_dir} is not an anisocert run (no {DB_NAME}); run `anisocert certify` first"
            )
        db = None
        try:
            db = open_read_only(path)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [t for t in _TABLES if t not in tables]
            if missing:
                raise ValueError(f"no table {missing[0]!r}")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            schema = meta.get("schema_version")
            if schema == str(SCHEMA_VERSION):
                config = _stored_config(json.loads(meta["config"]))
                json.loads(meta.get("versions", "{}")).get("anisocert")
        except (sqlite3.Error, KeyError, ValueError, TypeError, AttributeError, AnisocertError) as err:
            if db is not None:
                db.close()
            raise RunStoreError(
                f"{path} is corrupt or not an anisocert store ({one_line(err)}); certify into a new --out"
            ) from None
        if schema != str(SCHEMA_VERSION):
            db.close()
            raise RunStoreError(
                f"{path} has store schema {schema}, this anisocert reads {SCHEMA_VERSION}; "
                "re-run into a new --out"
            )
        return cls(run_dir, db, config)

    def _check_same(self, config: CertifyConfig) -> None:
        if config.sampler is None:  # not resolved yet: the sampler the data's grid gave, as stored
            config = config.with_grid(self.config.levels)
        old, new = self.config.result_dict(), config.result_dict()
        diff = [
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        ]
        stored_model = self.meta().get("model_sha256", "")
        if stored_model and config.model_sha256 and stored_model != config.model_sha256:
            diff.append("model file contents changed")
        if diff:
            raise RunStoreError(
                f"{self.run_dir} holds a run of another configuration ({'; '.join(diff)}); "
                "use a new --out or the original options to resume"
            )

    def _check_version(self, versions: dict | None) -> None:
        """Records of two anisocert versions are never mixed in one run (their code may differ)."""
        stored = json.loads(self.meta().get("versions", "{}")).get("anisocert")
        current = (versions or {}).get("anisocert")
        if stored and current and stored != current:
            raise RunStoreError(
                f"{self.run_dir} was made by anisocert {stored}, this is anisocert {current}; resume it with "
                f"anisocert {stored} or certify into a new --out"
            )

    def meta(self) -> dict:
        return dict(self._rows("SELECT key, value FROM meta"))

    def _rows(self, sql: str) -> list[tuple]:
        """All rows of a fixed query; a damaged database is a one-line RunStoreError."""
        try:
            return self.db.execute(sql).fetchall()
        except sqlite3.DatabaseError as err:
            raise RunStoreError(
                f"{self.run_dir / DB_NAME} is corrupt ({one_line(err)}); certify into a new --out"
            ) from None

    @contextmanager
    def _saving(self, what: str):
        """One transaction; a full disk or another failed write becomes a one-line RunStoreError.

        SQLite rolls the transaction back, so every row committed before stays intact and the same
        command resumes after the cause is fixed. The first write switches the store to WAL (a resume
        that writes nothing leaves its file as it was, byte for byte); close switches it back.
        """
        try:
            if self.writable and not self._wal:  # a store opened by read() is never switched
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._wal = True
            with self.db:
                yield
        except sqlite3.OperationalError as err:
            raise write_error(self.run_dir / DB_NAME, what, err) from None

    def _check_writable(self, what: str) -> None:
        """Fail now, in one line, when another process holds the store or it cannot be written: an
        empty write transaction takes the write lock and writes nothing."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            raise write_error(self.run_dir / DB_NAME, what, err) from None

    def close(self) -> None:
        """Close the store. One opened for writing is first checkpointed and switched back from WAL to a
        rollback journal: a finished (or interrupted) run directory is then one database file plus its
        views, with no -wal/-shm files, and reading it later (mode=ro) creates none either. A resume
        switches it to WAL again. Where another process still has it open, the switch is skipped (the
        store stays WAL, as valid; its -wal/-shm files remain until that reader is done)."""
        if self._wal:
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error:
                pass  # busy or read-only: every committed row is in the store or its WAL either way
        self.db.close()

    # -- optimisation results --------------------------------------------------------------------
    def add_optimised(self, rows) -> None:
        """Commit (idx, sigma, theta or None, sigma_time, theta_time) rows atomically."""
        if not rows:  # nothing to save: the store is not touched
            return
        with self._saving(f"the optimised noise scales of {len(rows)} inputs"):
            self.db.executemany(
                "INSERT INTO optimised VALUES (?, ?, ?, ?, ?)",
                [(int(i), float(s), blob(t), float(a), float(b)) for i, s, t, a, b in rows],
            )

    def optimised(self) -> dict[int, tuple[float, np.ndarray | None, float, float]]:
        rows = self._rows("SELECT idx, sigma, theta, sigma_time, theta_time FROM optimised")
        return {i: (s, unblob(t), a, b) for i, s, t, a, b in rows}

    # -- certificates ----------------------------------------------------------------------------
    def add_certificates(self, certs: Certificates) -> None:
        """Commit a batch of raw certificates (with the run's context: idx, label, sigma...) in one
        transaction."""
        if not len(certs):  # nothing to save: the store is not touched
            return
        with self._saving(f"the certificates of {len(certs)} inputs"):
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(records)")}
            if "draws" not in columns:  # a store made before the draws column, resumed: add it
                self.db.execute("ALTER TABLE records ADD COLUMN draws INTEGER")
            self.db.executemany(
                f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join('?' * 16)})",
                record_rows(certs),
            )

    def done(self) -> set[int]:
        return {i for (i,) in self._rows("SELECT idx FROM records")}

    def certificates(self, *, theta: bool = True) -> Certificates:
        """The raw certificates (before memory), by index. theta False: without the regions' theta (the
        tables and counts need none; an ImageNet theta is 600 kB an input)."""
        return from_records(self._rows(f"SELECT {self._record_columns(theta)} FROM records r ORDER BY idx"))

    def add_memory(self, certs: Certificates, first_seq: int) -> None:
        """Commit memory-based certificates, the k-th processed as number first_seq + k."""
        if not len(certs):  # nothing to save: the store is not touched
            return
        with self._saving(f"the memory-based certificates of {len(certs)} inputs"):
            self.db.executemany(
                "INSERT INTO memory VALUES (?,?,?,?,?,?,?,?,?)", memory_rows(certs, first_seq)
            )

    def memory_certificates(self, order: str = "seq", *, theta: bool = True) -> Certificates:
        """The memory-based certificates: in the order memory processed them ("seq"), or by "idx"."""
        assert order in ("seq", "idx"), "a fixed SQL text: never built from outside input"
        columns = self._record_columns(theta)
        outcome = ", ".join(f"m.{c}" for c in MEMORY_COLUMNS)
        return from_records(
            self._rows(
                f"SELECT {columns}, {outcome} FROM memory m JOIN records r ON r.idx = m.idx ORDER BY m.{order}"
            )
        )

    def _record_columns(self, theta: bool = True) -> str:
        """RECORD_COLUMNS of table ``records r``; NULL draws in a store made before that column, NULL theta
        where it is not wanted."""
        stored = {row[1] for row in self._rows("PRAGMA table_info(records)")}
        if not theta:
            stored.discard("theta")
        return ", ".join(f"r.{c}" if c in stored else f"NULL AS {c}" for c in RECORD_COLUMNS)

    def reported(self, *, theta: bool = True) -> Certificates:
        """The certificates the run reports, by index: memory-based when memory is on, else the raw ones."""
        if self.config.uses_memory:
            return self.memory_certificates("idx", theta=theta)
        return self.certificates(theta=theta)

    def summary(self) -> dict:
        """Run metadata and counts, for reports (written to run.json)."""
        meta = self.meta()
        config = json.loads(meta["config"])
        raw = self.certificates(theta=False)
        statuses = [status for (status,) in self._rows("SELECT status FROM memory")]
        label = config.get("label") or f"{config['method']} {config['noise']} sigma={config['sigma']}"
        return {
            "label": label,
            "config": config,
            "config_hash": meta["config_hash"],
            "theta_unit": meta["theta_unit"],
            "alpha_convention": meta["alpha_convention"],
            "certificate_alpha": self.config.effective_alpha,
            "versions": json.loads(meta.get("versions", "{}")),
            "command": meta.get("command", ""),
            "inputs": len(raw),
            "abstained": int(np.sum(raw.prediction < 0)),
            "fallbacks": int(np.sum(raw.fallback)),
            "memory_changed": sum(status in MEMORY_CHANGED for status in statuses),
            "memory_processed": len(statuses),
            "mean_draws": float(np.mean(raw.draws)) if len(raw) else 0.0,
            "mean_time": float(np.mean(raw.time)) if len(raw) else 0.0,
            **({"looks": self.config.schedule.to_dict()} if self.config.budget.radii is not None else {}),
            **({"exact_sampler": EXACT_ACCOUNTING} if self.config.sampler == "exact" else {}),
        }


def _stored_config(stored: dict) -> CertifyConfig:
    """A run's configuration as read back, with its device left out (None): the device names the machine
    that ran it (a GPU run may be reported, verified or visualized on a laptop) and no record depends
    on it; run.json keeps the stored value."""
    return CertifyConfig.from_dict({**stored, "device": None})


def versions() -> dict:
    """Versions recorded with every run."""
    import scipy
    import torch

    from .. import __version__

    return {
        "anisocert": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }
