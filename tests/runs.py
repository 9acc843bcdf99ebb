"""Reading finished runs in tests (shared by the e2e and Ray tests)."""

TIMING = ("time", "opt_time")  # wall-clock columns: the only ones that may differ between equal runs


def tsv_rows(out, name="certify.tsv") -> list[list[str]]:
    """The run's TSV rows (header first) without the wall-clock columns."""
    lines = (out / name).read_text().splitlines()
    header = lines[0].split("\t")
    drop = {header.index(c) for c in TIMING}
    return [[c for k, c in enumerate(line.split("\t")) if k not in drop] for line in lines]


def stored_records(path) -> dict:
    """{idx: Certificate} of the raw certificates stored in a run directory."""
    from anisocert.run.store import RunStore

    store = RunStore.read(path)
    try:
        return {c.idx: c for c in store.certificates().rows()}
    finally:
        store.close()
