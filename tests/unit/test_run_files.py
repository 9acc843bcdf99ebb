"""What a run directory holds: one database file plus its views, whatever way the run ended."""

from pathlib import Path

import pytest

from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset, verify_run
from anisocert.run.store import DB_NAME, RunStore
from anisocert.run.worker import ChunkWorker
from anisocert.viz.report import load_results

SCRATCH = ("-wal", "-shm", "-journal")


def _config(method: str = "fixed", **kw) -> CertifyConfig:
    return CertifyConfig.from_flat(
        model="builtin:digits-gaussian", method=method, n0=10, n=100, max_count=4, inputs_per_batch=2, **kw
    )


def _scratch(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.endswith(SCRATCH))


def _journal_mode(run: Path) -> bytes:
    """Bytes 18-19 of the SQLite header: 1 1 for a rollback journal, 2 2 for WAL."""
    return (run / DB_NAME).read_bytes()[18:20]


def test_a_finished_run_leaves_no_wal_or_shm_files_and_reading_it_adds_none(tmp_path):
    run = tmp_path / "run"
    certify_dataset(_config(), run, progress=False)
    assert _scratch(run) == [] and _journal_mode(run) == b"\x01\x01"
    verify_run(run)
    assert len(load_results(run)) == 4
    assert _scratch(run) == []  # a read of a WAL store would have left empty -wal/-shm files
    finished = (run / DB_NAME).read_bytes()
    certify_dataset(_config(), run, progress=False)  # a resume with nothing left to do
    assert _scratch(run) == [] and (run / DB_NAME).read_bytes() == finished  # not even switched to WAL


def test_an_interrupted_run_leaves_no_wal_or_shm_files_and_resumes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real, calls = ChunkWorker.run, []

    def interrupted(self, chunk, *args, **kwargs):
        calls.append(chunk)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second chunk
        return real(self, chunk, *args, **kwargs)

    monkeypatch.setattr(ChunkWorker, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        certify_dataset(_config(), run, progress=False)
    assert _scratch(run) == [] and _journal_mode(run) == b"\x01\x01"
    store = RunStore.read(run)
    assert store.certificates().idx.tolist() == [0, 1]  # the first chunk was committed
    store.close()
    monkeypatch.setattr(ChunkWorker, "run", real)
    certify_dataset(_config(), run, progress=False)
    assert _scratch(run) == []
    assert len(load_results(run)) == 4


def test_a_store_still_read_by_another_process_is_closed_cleanly(tmp_path):
    """The writer cannot leave WAL while a reader has the store open: it closes without an error, and
    every row is readable afterwards."""
    run = tmp_path / "run"
    certify_dataset(_config(), run, progress=False)
    writer = RunStore.open(run, _config())  # a resume: WAL again
    reader = RunStore.read(run)
    writer.close()
    assert len(reader.certificates()) == 4
    reader.close()
    assert len(load_results(run)) == 4


@pytest.mark.parametrize("method, memory", [("fixed", True), ("isotropic", False)])
def test_every_run_writes_the_same_files_and_without_memory_the_raw_view_is_the_reported_one(
    tmp_path, method, memory
):
    run = tmp_path / "run"
    extra = {} if method == "fixed" else dict(iso_method="search", iso_samples=20, iso_grid_points=3)
    certify_dataset(_config(method, memory=memory, **extra), run, progress=False)
    assert sorted(p.name for p in run.iterdir()) == [
        "certify.tsv",
        "certify_nomemory.tsv",
        "run.json",
        DB_NAME,
    ]
    raw = (run / "certify_nomemory.tsv").read_text()
    assert raw == (run / "certify.tsv").read_text() and len(raw.splitlines()) == 1 + 4
