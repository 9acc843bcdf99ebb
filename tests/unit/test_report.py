"""Reading TSV logs and run directories, tables and their Markdown/LaTeX text, Cohen et al.'s tables."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from anisocert.errors import DataLoadError, InvalidParameterError, RunStoreError
from anisocert.viz.report import (
    Results,
    Table,
    cohen_table,
    load_all,
    load_results,
    read_tsv,
    side_by_side_table,
    summary_table,
    to_latex,
    to_markdown,
    write_report,
    write_tsv,
)


def _cohen_root() -> Path | None:
    """Cohen et al.'s published logs and tables (data/certify, analysis/markdown of their repository)."""
    for candidate in [
        os.environ.get("ANISOCERT_COHEN_REFERENCE", ""),
        Path(__file__).parents[1] / "data" / "cohen2019",
        Path(__file__).parents[3] / "shared" / "reference" / "cohen2019",
    ]:
        if candidate and (Path(candidate) / "analysis" / "markdown").is_dir():
            return Path(candidate)
    return None


COHEN = _cohen_root()
needs_cohen = pytest.mark.skipif(
    COHEN is None, reason="Cohen et al. reference logs not available"
)  # shipped in tests/data

# (reference table, model folder, noise levels, grid): analyze.py's markdown_table_certified_accuracy calls.
# Each row is the model trained at noise S and certified at the same sigma S (noise_S/test/sigma_S).
COHEN_TABLES = [
    ("vary_noise_cifar10", "cifar10/resnet110", ["0.12", "0.25", "0.50", "1.00"], np.arange(1, 7) * 0.25),
    ("vary_noise_imagenet", "imagenet/resnet50", ["0.25", "0.50", "1.00"], np.arange(1, 7) * 0.5),
]


@needs_cohen
@pytest.mark.parametrize(("table", "model", "sigmas", "grid"), COHEN_TABLES)
def test_cohen_tables_reproduced_byte_for_byte(table, model, sigmas, grid):
    runs = [read_tsv(COHEN / "certify" / model / f"noise_{s}" / "test" / f"sigma_{s}") for s in sigmas]
    text = cohen_table(runs, grid, [f"&sigma; = {s}" for s in sigmas])
    assert (
        text == (COHEN / "analysis" / "markdown" / table).read_text()
    )  # exact, trailing whitespace included


@needs_cohen
def test_cohen_table_detects_wrong_logs():
    # certifying every model at sigma = 0.50 (the off-diagonal logs) gives a different table
    sigmas = ["0.12", "0.25", "0.50", "1.00"]
    root = COHEN / "certify" / "cifar10" / "resnet110"
    runs = [read_tsv(root / f"noise_{s}" / "test" / "sigma_0.50") for s in sigmas]
    text = cohen_table(runs, np.arange(1, 7) * 0.25, [f"&sigma; = {s}" for s in sigmas])
    assert text != (COHEN / "analysis" / "markdown" / "vary_noise_cifar10").read_text()


@needs_cohen
def test_cohen_logs_both_time_formats():
    root = COHEN / "certify" / "cifar10" / "resnet110"
    seconds = read_tsv(root / "noise_0.25" / "test" / "sigma_0.25")  # '15.4'
    clock = read_tsv(root / "noise_0.12" / "test" / "sigma_0.12")  # '0:00:13.736080'
    assert len(seconds) == len(clock) == 500
    assert seconds.columns["time"][0] == 15.4 and clock.columns["time"][0] == pytest.approx(13.73608)
    assert seconds.meta["format"] == "cohen"
    np.testing.assert_array_equal(seconds.radius_proxy, seconds.radius)


def _tiny() -> Results:
    return Results(
        "a",
        {
            "idx": np.array([0, 1, 2, 3]),
            "label": np.array([1, 2, 3, 4]),
            "predict": np.array([1, 2, -1, 0]),
            "radius": np.array([0.6, 0.49961, 0.0, 1.0]),
            "correct": np.array([1, 1, 0, 0]),
            "time": np.array([1.0, 2.0, 3.0, 4.0]),
        },
    )


COHEN_TSV = (
    "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t3\t0.378\t1\t15.4\n20\t7\t-1\t0.0\t0\t0:01:02.5\n"
)
ANCER_TSV = (
    "idx\tlabel\tpredict\tradius\tradius_proxy\tcorrect\tmin_sigma\ttime\tmethod\tmemory_status\topt_time\n"
    "0\t3\t3\t0.4996123456789\t0.9\t1\t0.25\t1 day, 0:00:01.5\tancer\tunchanged\t2.0\n"
    "1\t5\t-1\t0.0\t0.0\t0\t0.3\t0:00:02\tancer\tabstain_inside\t4.0\n"
    "2\t5\t5\t1.25\t2.5\t1\t0.5\t3\tancer\tshrunk\t9.0\n"
)


def test_read_cohen_and_ancer_formats(tmp_path):
    (tmp_path / "cohen.tsv").write_text(COHEN_TSV)
    (tmp_path / "ancer.tsv").write_text(ANCER_TSV + "\n")  # a trailing blank line is ignored
    cohen = read_tsv(tmp_path / "cohen.tsv")
    assert cohen.name == "cohen.tsv" and cohen.meta["format"] == "cohen"
    np.testing.assert_array_equal(cohen.columns["idx"], [0, 20])
    np.testing.assert_array_equal(cohen.columns["time"], [15.4, 62.5])
    np.testing.assert_array_equal(cohen.radius_proxy, [0.378, 0.0])
    ancer = read_tsv(tmp_path / "ancer.tsv", name="mine")
    assert ancer.name == "mine" and ancer.meta["format"] == "ancer"
    assert ancer.radius[0] == 0.4996123456789  # full precision
    np.testing.assert_array_equal(ancer.radius_proxy, [0.9, 0.0, 2.5])
    np.testing.assert_array_equal(ancer.columns["min_sigma"], [0.25, 0.3, 0.5])
    np.testing.assert_array_equal(ancer.columns["time"], [86401.5, 2.0, 3.0])
    assert ancer.columns["memory_status"].tolist() == ["unchanged", "abstain_inside", "shrunk"]
    assert ancer.columns["opt_time"].dtype == np.float64 and ancer.columns["predict"].dtype == np.int64


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("idx\tlabel\tpredict\tradius\tcorrect\n0\t1\t1\t0.5\t1\n", "header"),
        (COHEN_TSV + "21\t7\t7\t0.5\t1\n", "tmp"),  # ragged line (a partial write)
        (COHEN_TSV + "0\t7\t7\t0.5\t1\t1.0\n", "appears more than once"),
        (COHEN_TSV + "21\t7\t7\tbig\t1\t1.0\n", "radius"),
        (COHEN_TSV + "21\t7\t7\t0.5\t2\t1.0\n", "correct"),
        ("", "empty"),
    ],
)
def test_read_tsv_errors(tmp_path, text, match):
    (tmp_path / "bad.tsv").write_text(text)
    with pytest.raises(DataLoadError, match=match):
        read_tsv(tmp_path / "bad.tsv")


def test_missing_file_and_bad_run_dir(tmp_path):
    with pytest.raises(DataLoadError, match="cannot read"):
        load_results(tmp_path / "nope.tsv")
    with pytest.raises(RunStoreError, match="certify.tsv"):
        load_results(tmp_path)
    (tmp_path / "certify.tsv").write_text(ANCER_TSV)
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(RunStoreError, match="JSON object"):
        load_results(tmp_path)


def test_run_directories_and_names(tmp_path):
    for run, label in [("ancer", "ANCER l2"), ("fixed", None)]:
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "certify.tsv").write_text(ANCER_TSV)
        meta = {"method": run, "sigma": 0.25} | ({"label": label} if label else {})
        (tmp_path / "runs" / run / "run.json").write_text(json.dumps(meta))
    (tmp_path / "runs" / "extra").mkdir()
    (tmp_path / "runs" / "extra" / "log.tsv").write_text(COHEN_TSV)
    ancer = load_results(tmp_path / "runs" / "ancer")
    assert ancer.name == "ANCER l2" and ancer.meta["method"] == "ancer" and ancer.meta["sigma"] == 0.25
    assert load_results(tmp_path / "runs" / "fixed").name == "fixed"
    paths = [
        tmp_path / "runs" / "ancer",
        tmp_path / "runs" / "fixed",
        tmp_path / "runs" / "extra" / "log.tsv",
    ]
    assert [r.name for r in load_all(paths)] == ["ANCER l2", "fixed", "extra/log.tsv"]
    assert [r.name for r in load_all(paths[1:2])] == ["fixed"]


def test_write_tsv_round_trip_full_precision(tmp_path):
    (tmp_path / "a.tsv").write_text(ANCER_TSV)
    original = read_tsv(tmp_path / "a.tsv")
    again = read_tsv(write_tsv(original, tmp_path / "b.tsv"))
    assert list(again.columns) == list(original.columns)
    for column, values in original.columns.items():
        np.testing.assert_array_equal(again.columns[column], values)


def test_summary_values_and_markdown_exact():
    other = _tiny()
    other.name, other.columns["correct"] = "b|c", np.array([0, 1, 0, 1])
    table = summary_table([_tiny(), other], [0.0, 0.5])
    np.testing.assert_allclose(table.values[0], [4, 0.5, 0.25, (0.6 + 0.49961) / 4])
    assert to_markdown(table) == (
        "| run | n | r = 0 | r = 0.5 | ACR |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| a | 4 | **0.500** | **0.250** | 0.275 |\n"
        "| b\\|c | 4 | **0.500** | **0.250** | **0.375** |\n"
    )


def _small_radii_runs() -> list[Results]:
    """Two runs whose radii stay under 0.5, as the digits' l1 runs: the published l1 grid (0 to 4 in
    steps of 0.5) is 0 for both past its first column."""
    rng = np.random.default_rng(1)
    runs = []
    for name, scale in (("fixed", 0.3), ("ancer", 0.45)):
        radius = rng.uniform(0, scale, 40)
        columns = dict(idx=np.arange(40), label=np.zeros(40, int), predict=np.zeros(40, int))
        runs.append(Results(name, {**columns, "radius": radius, "correct": np.ones(40, int), "time": radius}))
    return runs


def test_the_auto_grid_fits_the_runs_and_the_published_grids_stay_available():
    runs = _small_radii_runs()
    largest = max(r.radius.max() for r in runs)
    table = summary_table(runs, "auto")
    radii = [float(c.split("= ")[1]) for c in table.columns if c.startswith("r = ")]
    assert 6 <= len(radii) <= 10 and radii[0] == 0 and radii[-1] <= largest
    accuracy = table.values[:, 1 : 1 + len(radii)]
    assert (accuracy.max(axis=0) > 0).all()  # no column is 0 for every run
    published = summary_table(runs, "l1")
    assert [c for c in published.columns if c.startswith("r = ")] == [
        f"r = {r:g}" for r in np.arange(9) * 0.5
    ]


def test_a_column_where_every_run_is_zero_is_not_bold():
    markdown = to_markdown(summary_table(_small_radii_runs(), "l1"))
    rows = [line.split("|")[2:-1] for line in markdown.splitlines()[2:]]
    zero_columns = [j for j in range(len(rows[0])) if all(row[j].strip() == "0.000" for row in rows)]
    assert len(zero_columns) == 8  # r = 0.5 ... 4
    assert "**0.000**" not in markdown and "**" in markdown  # the best non-zero entries still are bold
    latex = to_latex(summary_table(_small_radii_runs(), "l1"))
    assert "\\textbf{0.000}" not in latex


def test_report_command_defaults_to_the_fitted_grid(tmp_path):
    from typer.testing import CliRunner

    from anisocert.cli import app

    paths = [str(write_tsv(run, tmp_path / f"{run.name}.tsv")) for run in _small_radii_runs()]
    result = CliRunner().invoke(app, ["report", *paths, "--out", str(tmp_path / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "r = 0.05 |" in result.output and "r = 0.5 |" not in result.output
    assert "**0.000**" not in result.output
    assert "r = 0.05 |" in (tmp_path / "out" / "report.md").read_text()
    published = CliRunner().invoke(app, ["report", *paths, "--grid", "l1"])
    assert published.exit_code == 0 and "r = 4 |" in published.output


def test_latex_exact():
    table = Table(
        rows=["fixed_0.25", "ancer"],
        columns=["n", "r = 0.5", "time (s)"],
        values=np.array([[10, 0.5, 1.5], [10, 0.625, np.nan]]),
        formats=["d", ".2f", ".3g"],
        best=[None, "max", "min"],
    )
    assert to_latex(table) == (
        "\\begin{tabular}{lrrr}\n"
        "\\toprule\n"
        "run & n & r = 0.5 & time (s) \\\\\n"
        "\\midrule\n"
        "fixed\\_0.25 & 10 & 0.50 & \\textbf{1.5} \\\\\n"
        "ancer & 10 & \\textbf{0.62} & - \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def test_proxy_and_side_by_side(tmp_path):
    (tmp_path / "a.tsv").write_text(ANCER_TSV)
    run = read_tsv(tmp_path / "a.tsv")
    proxy = summary_table([run], [1.0, 2.5], proxy=True)
    assert proxy.columns == ["n", "r = 1", "r = 2.5", "ACR", "ACR proxy"]
    np.testing.assert_allclose(proxy.values[0], [3, 1 / 3, 1 / 3, (0.4996123456789 + 1.25) / 3, 3.4 / 3])
    side = side_by_side_table([run, _tiny()])
    np.testing.assert_allclose(
        side.values[0, :6], [3, (0.4996123456789 + 1.25) / 3, 3.4 / 3, 2 / 3, 4.0, 86406.5 / 3]
    )
    assert np.isnan(side.values[1, 3]) and np.isnan(side.values[1, 4]) and side.values[1, 5] == 2.5
    assert np.isnan(side.values[0, 6])  # no draws column
    (tmp_path / "d.tsv").write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\tdraws\n0\t1\t1\t0.5\t1\t1.0\t300\n1\t1\t1\t0.5\t1\t1.0\t1000\n"
    )
    assert side_by_side_table([read_tsv(tmp_path / "d.tsv")]).values[0, 6] == 650
    assert "| a.tsv | 3 |" in to_markdown(side)


def test_side_by_side_kept_share_and_proxy_gain_over_the_isotropic_run(tmp_path):
    (tmp_path / "a.tsv").write_text(ANCER_TSV.replace("\topt_time\n", "\topt_time\tfallback\n"))
    text = (tmp_path / "a.tsv").read_text().splitlines()
    (tmp_path / "a.tsv").write_text(
        "\n".join([text[0]] + [line + f"\t{k == 1:d}" for k, line in enumerate(text[1:])])
    )
    ancer = read_tsv(tmp_path / "a.tsv")
    iso = _tiny()
    iso.columns["method"] = np.array(["isotropic"] * 4)
    side = side_by_side_table([iso, ancer])
    # inputs 0, 1, 2 in both: isotropic ACR on them (0.6 + 0.49961) / 3, ancer's ACR proxy (0.9 + 2.5) / 3
    np.testing.assert_allclose(side.values[1, 7], 3.4 / (0.6 + 0.49961))
    np.testing.assert_allclose(side.values[1, 8], 2 / 3)  # input 1 fell back
    assert side.values[0, 7] == pytest.approx(1.0)
    assert np.isnan(side.values[0, 8])  # not an ancer run


def test_cohen_table_ties_mark_first_row():
    a, b = _tiny(), _tiny()
    text = cohen_table([a, b], [0.5, 1.0], ["x", "y"])
    assert text.splitlines()[2:] == ["<b> x </b>| 0.25<b>*</b> |0.00<b>*</b> |", "<b> y </b>| 0.25 |0.00 |"]
    with pytest.raises(InvalidParameterError, match="labels"):
        cohen_table([a, b], [0.5], ["x"])


def test_write_report_files(tmp_path):
    (tmp_path / "a.tsv").write_text(ANCER_TSV)
    runs = [read_tsv(tmp_path / "a.tsv"), _tiny()]
    paths = write_report(runs, tmp_path / "out", grid="l2-cifar", plots=False)
    assert [p.name for p in paths] == ["report.md", "report.tex"]
    markdown = paths[0].read_text()
    assert "## Certified accuracy (proxy radius)" in markdown and "| r = 1.5 |" in markdown
    assert "\\begin{tabular}" in paths[1].read_text() and "a.tsv" in paths[1].read_text()
    assert (
        write_report(runs, tmp_path / "md", grid=[0, 1], formats=("md",), plots=False)[0].name == "report.md"
    )
    with pytest.raises(InvalidParameterError, match="html"):
        write_report(runs, tmp_path / "x", grid=[0, 1], formats=("html",), plots=False)


def test_results_requires_columns():
    with pytest.raises(InvalidParameterError, match="time"):
        Results("x", {k: np.zeros(2) for k in ["idx", "label", "predict", "radius", "correct"]})
    with pytest.raises(InvalidParameterError, match="one length"):
        Results(
            "x",
            {
                k: np.zeros(2 if k != "time" else 3)
                for k in ["idx", "label", "predict", "radius", "correct", "time"]
            },
        )


def test_a_run_directory_is_read_from_its_store_not_its_exported_files(tmp_path):
    """report reads run.sqlite (read-only): an edited certify.tsv or a deleted run.json changes nothing."""
    from anisocert.core.certificates import Certificate, Certificates
    from anisocert.run.config import CertifyConfig
    from anisocert.run.store import RunStore
    from anisocert.run.views import export

    config = CertifyConfig.from_flat(model="builtin:digits-gaussian", n=100, label="stored run")
    store = RunStore.open(tmp_path / "run", config, versions={"anisocert": "0.1.0"})
    radii = [0.1, 0.2, 0.30000000000000004]
    rows = [
        Certificate(i, 0.9, r / 0.25, r, r, 0.25, 0.25, (90, 10), 100, idx=i, label=i, sigma=0.25, time=0.5)
        for i, r in enumerate(radii)
    ]
    store.add_certificates(
        Certificates.from_rows(rows).replace(fallback=np.zeros(3, int), opt_time=np.zeros(3))
    )
    export(store)
    store.close()
    before = (tmp_path / "run" / "run.sqlite").read_bytes()
    (tmp_path / "run" / "certify.tsv").write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t0\t0\t9.0\t1\t1\n"
    )
    (tmp_path / "run" / "run.json").unlink()
    results = load_results(tmp_path / "run")
    assert results.name == "stored run" and results.meta["config"]["n"] == 100
    assert results.radius.tolist() == radii and results.columns["idx"].tolist() == [0, 1, 2]
    assert (tmp_path / "run" / "run.sqlite").read_bytes() == before


def test_the_report_command_prints_the_runtime_comparison(tmp_path):
    from typer.testing import CliRunner

    from anisocert.cli import app

    run = _tiny()
    run.columns["opt_time"] = np.linspace(0.0, 1.0, len(run))
    path = write_tsv(run, tmp_path / "tiny.tsv")
    result = CliRunner().invoke(app, ["report", str(path), "--latex"])
    assert result.exit_code == 0, result.output
    assert "runtime per input:" in result.output and "| opt time median (s) |" in result.output
    assert "cert time IQR (s) & ACR proxy" in result.output  # the LaTeX runtime table too
