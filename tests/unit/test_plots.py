"""Certified-accuracy figures: PNG and PDF written headless, of the expected size, with the right content."""

import numpy as np
import pytest

from anisocert.errors import InvalidParameterError
from anisocert.viz.plots import COLUMN_FIGSIZE, plot_certified_accuracy
from anisocert.viz.report import Results, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(name: str, scale: float, seed: int, noise: str = "gaussian") -> Results:
    rng = np.random.default_rng(seed)
    radius = rng.exponential(scale, 200)
    columns = {
        "idx": np.arange(200),
        "label": np.zeros(200, dtype=int),
        "predict": np.zeros(200, dtype=int),
        "radius": radius,
        "radius_proxy": 1.5 * radius,
        "correct": (rng.random(200) < 0.8).astype(int),
        "time": np.full(200, 0.1),
    }
    return Results(name, columns, meta={"noise": noise})


def _read_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)


def test_png_and_pdf_written(tmp_path):
    runs = [_run("fixed", 0.3, 0), _run("ancer", 0.6, 1)]
    paths = plot_certified_accuracy(runs, tmp_path / "figs" / "ca_0.25")
    assert [p.name for p in paths] == ["ca_0.25.png", "ca_0.25.pdf"]
    image = _read_png(paths[0])
    # 300 dpi at paper column width: (2.6 in x 300, 3.5 in x 300) pixels
    assert image.shape[:2] == (round(COLUMN_FIGSIZE[1] * 300), round(COLUMN_FIGSIZE[0] * 300))
    assert image[..., :3].std() > 0.05  # not a blank canvas
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_proxy_plot_and_labels(tmp_path):
    runs = [_run("a", 0.3, 0, "uniform")]
    png, _ = plot_certified_accuracy(runs, tmp_path / "proxy", proxy=True, max_radius=2.0)
    _read_png(png)
    # the same data without proxy gives another picture (the curves use radius_proxy)
    plain, _ = plot_certified_accuracy(runs, tmp_path / "plain", proxy=False, max_radius=2.0)
    assert not np.array_equal(_read_png(png), _read_png(plain))


def test_axis_labels_and_curve_values(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda self, *a, **k: saved.append(self) or original(self, *a, **k),
    )
    run = _run("a", 0.3, 0)
    plot_certified_accuracy([run], tmp_path / "x", max_radius=1.0)
    ax = saved[0].axes[0]
    assert (
        ax.get_xlabel() == "radius (l2, input units)"
        and ax.get_ylabel() == "certified accuracy (fraction of inputs)"
    )
    assert ax.get_title() and ax.get_legend().get_texts()[0].get_text() == "a"
    x, y = ax.lines[0].get_data()
    assert x[0] == 0 and x[-1] == 1.0
    assert y[0] == pytest.approx(np.mean(run.correct)) and np.all(np.diff(y) <= 0)


def test_write_report_with_plots(tmp_path):
    runs = [_run("fixed", 0.3, 0), _run("ancer", 0.6, 1)]
    paths = write_report(runs, tmp_path, grid="l2-cifar")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "certified_accuracy.png",
            "certified_accuracy.pdf",
            "certified_accuracy_proxy.png",
            "certified_accuracy_proxy.pdf",
            "report.md",
            "report.tex",
            "runtime.png",
            "runtime.pdf",
        ]
    )
    assert "![certified_accuracy](certified_accuracy.png)" in (tmp_path / "report.md").read_text()
    assert (
        "\\includegraphics[width=\\columnwidth]{certified_accuracy.pdf}"
        in (tmp_path / "report.tex").read_text()
    )


def test_no_runs_raises(tmp_path):
    with pytest.raises(InvalidParameterError):
        plot_certified_accuracy([], tmp_path / "x")
