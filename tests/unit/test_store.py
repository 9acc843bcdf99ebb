"""The run store: reading never writes, broken stores and full disks are one-line errors, nothing is lost."""

import errno
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from anisocert.core.certificates import Certificate, Certificates
from anisocert.errors import RunStoreError
from anisocert.run.config import CertifyConfig
from anisocert.run.store import DB_NAME, RunStore
from anisocert.run.views import export, views

CONFIG = CertifyConfig.from_flat(model="builtin:digits-gaussian", method="ancer", n=100, max_count=16)
VERSIONS = {"anisocert": "0.1.0"}


def _record(idx: int, dim: int = 64, draws: int = 100) -> Certificate:
    theta = np.random.default_rng(idx).uniform(0.1, 0.5, dim).astype(np.float32)
    return Certificate(
        idx=idx,
        label=idx % 10,
        prediction=idx % 10,
        radius=0.25,
        proxy_radius=0.3,
        min_theta=0.1,
        geo_mean_theta=0.25,
        time=0.01,
        pA_lower=0.9,
        gap=1.2,
        counts=(90, 10),
        draws=draws,
        sigma=0.25,
        theta=theta,
        fallback=0,
        opt_time=0.0,
    )


def _records(indices, dim: int = 64) -> Certificates:
    return Certificates.from_rows([_record(i, dim) for i in indices])


def _make_run(run_dir, records=range(4), dim=64) -> Path:
    store = RunStore.open(run_dir, CONFIG, command="test", versions=VERSIONS)
    store.add_certificates(_records(records, dim))
    export(store)
    store.close()
    return Path(run_dir)


def _state(path: Path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _rows(run_dir) -> list:
    with sqlite3.connect(run_dir / DB_NAME) as db:
        return db.execute("SELECT * FROM records ORDER BY idx").fetchall()


def _one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text
    return text


# ---------------------------------------------------------------------------------------- read-only


def test_reading_a_run_changes_no_byte_of_its_store(tmp_path):
    run = _make_run(tmp_path / "run")
    db_file = run / DB_NAME
    before = _state(db_file)
    os.utime(db_file, ns=(before[1] - 10**9, before[1] - 10**9))  # an mtime a write would move
    before = _state(db_file)
    store = RunStore.read(run)
    assert store.certificates().idx.tolist() == [0, 1, 2, 3]
    assert store.config == CONFIG and store.summary()["inputs"] == 4
    store.close()
    assert _state(db_file) == before


def test_reading_never_switches_a_foreign_store_to_wal_or_writes_to_it(tmp_path):
    run = _make_run(tmp_path / "run")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(run / DB_NAME) as src, sqlite3.connect(foreign / DB_NAME) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a store made by someone else, without WAL
    # a trigger that would fire on any write to the records
    with sqlite3.connect(foreign / DB_NAME) as db:
        db.execute("CREATE TABLE fired (n INTEGER)")
        db.execute("CREATE TRIGGER t AFTER INSERT ON records BEGIN INSERT INTO fired VALUES (1); END")
    before = _state(foreign / DB_NAME)
    store = RunStore.read(foreign)
    assert len(store.certificates()) == 4
    with pytest.raises(RunStoreError, match="read-only") as excinfo:
        store.add_certificates(_records([9]))  # query_only: a read store cannot write, triggers never fire
    _one_line_error(excinfo)
    store.close()
    assert _state(foreign / DB_NAME) == before
    assert (foreign / DB_NAME).read_bytes()[18:20] == b"\x01\x01"  # still a rollback-journal database
    assert sorted(p.name for p in foreign.iterdir()) == [DB_NAME]


def _corrupt_stores(root: Path) -> dict[str, Path]:
    """Folders whose run.sqlite is not a readable store of this schema."""
    cases = {}

    def folder(name):
        path = root / name
        path.mkdir()
        cases[name] = path
        return path / DB_NAME

    folder("text").write_text("this is not a database\n")
    folder("zeros").write_bytes(b"\0" * 5000)
    with sqlite3.connect(folder("no tables")) as db:
        db.execute("CREATE TABLE other (a)")
    with sqlite3.connect(folder("bad config")) as db:
        db.executescript(
            "CREATE TABLE meta (key TEXT, value TEXT); CREATE TABLE optimised (a); "
            "CREATE TABLE records (a); CREATE TABLE memory (a);"
            "INSERT INTO meta VALUES ('schema_version', '1'), ('config', '{\"model\": 3, \"n\": -1}');"
        )
    good = _make_run(root / "good")
    data = (good / DB_NAME).read_bytes()
    folder("truncated").write_bytes(data[: len(data) // 3])
    return cases


def test_a_corrupt_or_foreign_store_is_a_one_line_error(tmp_path):
    for name, run in _corrupt_stores(tmp_path).items():
        before = _state(run / DB_NAME)
        with pytest.raises(RunStoreError) as excinfo:
            store = RunStore.read(run)
            store.certificates(), store.memory_certificates(), store.optimised()  # a damaged page shows here
        text = _one_line_error(excinfo)
        assert "new --out" in text, name
        assert _state(run / DB_NAME) == before, name
    with pytest.raises(RunStoreError, match="not an anisocert run"):
        RunStore.read(tmp_path / "missing")


def test_another_schema_or_version_is_refused_without_writing(tmp_path):
    run = _make_run(tmp_path / "run")
    with sqlite3.connect(run / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '{\"anisocert\": \"0.0.1\"}' WHERE key = 'versions'")
    before = _state(run / DB_NAME)
    with pytest.raises(RunStoreError, match="made by anisocert 0.0.1, this is anisocert 0.1.0") as excinfo:
        RunStore.open(run, CONFIG, versions=VERSIONS)
    assert "new --out" in _one_line_error(excinfo)
    assert _state(run / DB_NAME) == before
    RunStore.read(run).close()  # reading (report, verify) still works
    with sqlite3.connect(run / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(RunStoreError, match="schema 2"):
        RunStore.read(run)


def test_a_run_made_on_a_device_absent_here_is_read_and_resumed(tmp_path):
    """The stored device names the machine that ran the run: reading it elsewhere (a GPU run reported
    on a laptop) and resuming it on another device both work; the stored value stays in the store."""
    import json

    run = _make_run(tmp_path / "run")
    with sqlite3.connect(run / DB_NAME) as db:
        stored = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        stored["device"] = "cuda:7"
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(stored, sort_keys=True),))
    before = _state(run / DB_NAME)
    store = RunStore.read(run)
    assert store.config.execution.device is None and len(store.certificates()) == 4
    assert json.loads(store.meta()["config"])["device"] == "cuda:7"
    store.close()
    assert _state(run / DB_NAME) == before
    RunStore.open(run, CONFIG, versions=VERSIONS).close()  # a resume here, on this machine's device


def test_an_empty_store_left_by_a_failed_creation_is_started_afresh(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / DB_NAME).write_bytes(b"")
    _make_run(run)
    assert len(_rows(run)) == 4


# ------------------------------------------------------------------------------------------ full disk


def _fill_disk(store: RunStore) -> None:
    """The database may not grow by a single page any more: SQLite then fails with SQLITE_FULL."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def test_full_disk_during_a_commit_keeps_every_record_and_resumes(tmp_path):
    dim = 4096  # 16 kB of theta per record: every batch needs new pages
    run = _make_run(tmp_path / "run", records=range(8), dim=dim)
    before = _rows(run)
    store = RunStore.open(run, CONFIG, versions=VERSIONS)
    _fill_disk(store)
    with pytest.raises(RunStoreError) as excinfo:
        store.add_certificates(_records(range(8, 16), dim))
    text = _one_line_error(excinfo)
    assert text.startswith("disk full while saving the certificates of 8 inputs")
    assert "free space and re-run the same command to resume" in text
    with pytest.raises(RunStoreError, match="disk full while saving the optimised"):
        store.add_optimised([(i, 0.25, np.ones(dim, np.float32), 0.0, 0.0) for i in range(8, 16)])
    assert store.done() == set(range(8))  # the failed transactions were rolled back
    store.close()
    assert _rows(run) == before  # every committed record intact, byte for byte
    # space is back: the same configuration resumes and finishes
    store = RunStore.open(run, CONFIG, versions=VERSIONS)
    store.add_certificates(_records(range(8, 16), dim))
    store.close()
    rows = _rows(run)
    assert rows[:8] == before and [r[0] for r in rows] == list(range(16))


def test_full_disk_while_writing_the_views_keeps_the_old_ones(tmp_path, monkeypatch):
    run = _make_run(tmp_path / "run")
    tsv = (run / "certify_nomemory.tsv").read_text()  # the raw records (memory is on for ancer)
    store = RunStore.open(run, CONFIG, versions=VERSIONS)
    store.add_certificates(_records([4]))

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(RunStoreError, match="disk full while saving the views") as excinfo:
        export(store)
    _one_line_error(excinfo)
    monkeypatch.undo()
    assert (run / "certify_nomemory.tsv").read_text() == tsv
    assert not list(run.glob("*.tmp"))
    export(store)
    store.close()
    assert len((run / "certify_nomemory.tsv").read_text().splitlines()) == 1 + 5


def test_full_disk_while_creating_a_run_is_one_line(tmp_path, monkeypatch):
    import anisocert.run.store as store_module

    real = store_module.open_for_writing

    def tiny_disk(path):
        db = real(path)
        db.execute("PRAGMA max_page_count = 2")  # room for the header and one table, not the schema
        return db

    monkeypatch.setattr(store_module, "open_for_writing", tiny_disk)
    with pytest.raises(RunStoreError, match="disk full while saving the new run's metadata") as excinfo:
        RunStore.open(tmp_path / "run", CONFIG, versions=VERSIONS)
    _one_line_error(excinfo)
    monkeypatch.undo()
    assert len(_make_run(tmp_path / "run").joinpath(DB_NAME).read_bytes()) > 0  # the same command works


def test_a_store_made_before_the_draws_column_reads_and_resumes(tmp_path):
    run = _make_run(tmp_path / "old", records=range(2))
    with sqlite3.connect(run / DB_NAME) as db:  # the records table as stores had it before --radii
        db.execute("ALTER TABLE records DROP COLUMN draws")
    store = RunStore.read(run)
    assert store.certificates().draws.tolist() == [100, 100]  # the sum of the counts
    store.close()
    store = RunStore.open(run, CONFIG, command="test", versions=VERSIONS)  # resume: the column is added
    store.add_certificates(Certificates.from_rows([_record(2, draws=170)]))
    assert store.certificates().draws.tolist() == [100, 100, 170]
    lines = views(store)["certify_nomemory.tsv"].splitlines()  # raw records (no memory pass here)
    assert lines[0].split("\t")[-1] == "draws" and [line.split("\t")[-1] for line in lines[1:]] == [
        "100",
        "100",
        "170",
    ]
    store.close()
