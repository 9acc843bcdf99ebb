"""Visualisations: drawn regions lie on their exact boundaries, perturbations stay inside the anisotropic
certificate and outside the isotropic one, and every command writes PNG/PDF files of the expected size."""

import dataclasses
import json
import shutil
import sqlite3
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
import typer
from typer.testing import CliRunner

from anisocert.core.regions import Region
from anisocert.core.verify import verify_regions
from anisocert.errors import InvalidParameterError, ModelLoadError, UnknownNameError
from anisocert.models import create_model
from anisocert.models.checkpoint import save_checkpoint
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset
from anisocert.run.store import RunStore
from anisocert.viz.plots import COLUMN_FIGSIZE, plot_runtime, runtime_summary, runtime_table
from anisocert.viz.report import Results, load_results
from anisocert.viz.toy import (
    ToyPanel,
    memory_pass,
    region_boundary,
    toy_figsize,
    toy_figure,
    toy_model,
    toy_panel,
)
from anisocert.viz.visualize import (
    IMAGE_FIGSIZE,
    PERTURBATION_FIGSIZE,
    ToySettings,
    demo_figures,
    largest_theta_perturbation,
    perturb_input,
)

DPI = 300
P = {"l2": 2, "l1": 1}


def _png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header; also checks the signature and a non-trivial file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    return struct.unpack(">II", data[16:24])


def _expect_figure(stem, figsize) -> None:
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    assert _png_size(png) == (round(figsize[0] * DPI), round(figsize[1] * DPI))
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 2_000


def _gauge(points, region: Region) -> np.ndarray:
    """||(z - center) / theta||_p for each row z, computed here (not by the code under test)."""
    q = (points - region.center) / region.theta
    return np.sqrt((q * q).sum(axis=1)) if region.norm == "l2" else np.abs(q).sum(axis=1)


def _app():
    from anisocert.cli.visualize import visualize

    app = typer.Typer()
    app.command()(visualize)
    app.command("noop")(lambda: None)  # two commands: typer keeps `visualize` as a sub-command
    return app


# ------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_boundary_points_satisfy_the_region_equation(norm):
    rng = np.random.default_rng(3)
    for _ in range(5):
        region = Region(rng.normal(size=2), rng.uniform(0.01, 3.0, size=2), rng.uniform(0.1, 4.0), norm)
        points = region_boundary(region)
        assert np.allclose(_gauge(points, region), region.gap, rtol=1e-9, atol=0)
        # the curve reaches the extreme points center +- gap * theta_i e_i (not a smaller region)
        d = points - region.center
        assert np.allclose(np.abs(d).max(axis=0), region.gap * region.theta, rtol=1e-9)
        # just outside / inside by a relative 1e-6 is outside / inside by the library's own test
        assert not region.contains(region.center + 1.000001 * d).any()
        assert region.contains(region.center + 0.999999 * d).all()


def _synthetic_panel(norm: str) -> ToyPanel:
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1, size=(4, 2))
    iso = [Region(c, np.full(2, 0.05), 1.5, norm) for c in centers]
    ancer = [Region(c, np.array([0.3, 0.04]), 1.2, norm) for c in centers[:3]]
    ancer.append(Region(centers[3], np.array([0.3, 0.04]), 0.0, norm))  # abstained: nothing drawn
    return ToyPanel(
        data="band",
        noise="gaussian" if norm == "l2" else "uniform",
        norm=norm,
        sigma=0.05,
        settings=ToySettings(grid=5, draws=4),
        extent=(0.0, 1.0, 0.0, 1.0),
        prob=rng.uniform(size=(5, 5)),
        points=rng.uniform(size=(20, 2)),
        point_labels=rng.integers(0, 2, 20),
        centers=centers,
        labels=np.zeros(4, dtype=int),
        iso=iso,
        ancer=ancer,
        iso_prediction=np.zeros(4, dtype=int),
        ancer_prediction=np.array([0, 0, 0, -1]),
    )


def _check_drawn_regions(fig, panels) -> int:
    """Every region line of the figure lies on its region's boundary; returns how many were checked."""
    checked = 0
    for ax, panel in zip(fig.axes, panels):
        lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
        drawn = [(f"iso-{j}", r) for j, r in enumerate(panel.iso) if r.gap > 0]
        drawn += [(f"ancer-{j}", r) for j, r in enumerate(panel.ancer) if r.gap > 0]
        assert set(lines) == {gid for gid, _ in drawn}
        for gid, region in drawn:
            xy = np.asarray(lines[gid].get_xydata(), dtype=np.float64)
            assert np.allclose(_gauge(xy, region), region.gap, rtol=1e-9, atol=0), gid
            checked += 1
    return checked


def test_toy_figure_draws_the_exact_boundaries():
    panels = [_synthetic_panel("l2"), _synthetic_panel("l1")]
    fig = toy_figure(panels)
    assert tuple(fig.get_size_inches()) == toy_figsize(2)
    assert _check_drawn_regions(fig, panels) == 2 * (4 + 3)
    assert fig.axes[0].get_title() and fig.axes[0].get_xlabel().endswith("(input units)")
    assert fig.legends, "the figure needs a legend"


def test_regions_wider_than_the_view_are_drawn_whole_in_an_inset():
    small = dataclasses.replace(_synthetic_panel("l2"), extent=(-1.0, 2.0, -1.0, 2.0))
    assert not toy_figure([small]).axes[0].child_axes  # every region inside the view: no inset
    panel = _synthetic_panel("l2")
    panel.ancer[0] = Region(panel.centers[0], np.array([3.0, 0.5]), 1.2, "l2")  # 7 units wide
    inset = toy_figure([panel]).axes[0].child_axes[0]
    lines = {line.get_gid(): line for line in inset.get_lines()}
    drawn = [f"whole-iso-{j}" for j in range(4)] + [f"whole-ancer-{j}" for j in range(3)]
    assert set(lines) == set(drawn)  # every region with a certificate, the abstained one left out
    (x0, x1), (y0, y1) = inset.get_xlim(), inset.get_ylim()
    for line in lines.values():
        xy = np.asarray(line.get_xydata())
        assert (xy[:, 0] >= x0).all() and (xy[:, 0] <= x1).all() and (xy[:, 1] >= y0).all()
        assert (xy[:, 1] <= y1).all()
    assert inset.get_xlabel().endswith("(input units)") and inset.get_title()


def test_every_text_of_a_toy_figure_with_an_inset_lies_inside_the_figure():
    panel = _synthetic_panel("l1")
    panel.ancer[0] = Region(panel.centers[0], np.array([3.0, 0.5]), 1.2, "l1")  # an inset beside the panel
    fig = toy_figure([panel, _synthetic_panel("l2")])
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)  # constrained layout places the axes at draw time
    width, height = fig.bbox.width, fig.bbox.height
    texts = [ax.title for ax in fig.axes if ax.title.get_text()]
    texts += [ax.title for ax in fig.axes[0].child_axes] + [fig.legends[0].get_title()]
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, text.get_text()


def test_real_toy_panel_certifies_and_draws_its_regions(tmp_path):
    settings = ToySettings(
        inputs=4, grid=12, draws=20, n=500, epochs=4, ancer_iterations=10, ancer_samples=16
    )
    model = toy_model("band", "gaussian", 0.05, cache_dir=tmp_path, epochs=4)
    panel = toy_panel("band", "gaussian", settings, model=model)
    assert panel.prob.shape == (12, 12) and 0 <= panel.prob.min() and panel.prob.max() <= 1
    for iso, ancer in zip(panel.iso, panel.ancer):
        assert np.array_equal(iso.center, ancer.center)
        assert iso.theta[0] == iso.theta[1]  # isotropic: one sigma_x
        assert (ancer.theta >= iso.theta - 1e-6).all()  # ANCER starts at sigma_x and projects onto >= it
    # the gaps are those of CERTIFY: Phi^-1(pA_lower) <= the (n, alpha) ceiling
    ceiling = scipy.stats.norm.ppf(settings.alpha ** (1 / settings.n))
    assert all(0 <= r.gap <= ceiling + 1e-12 for r in panel.iso + panel.ancer)
    assert _check_drawn_regions(toy_figure([panel]), [panel]) >= 1


def _conflicts(regions, predictions) -> list:
    """Pairs of regions with different classes that intersect (core/verify.py, exact)."""
    centers = np.stack([r.center for r in regions])
    thetas = np.stack([r.theta for r in regions])
    gaps = np.array([r.gap for r in regions])
    return verify_regions(centers, thetas, gaps, np.asarray(predictions), regions[0].norm).conflicts


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_the_memory_pass_leaves_no_overlap_of_different_classes(norm):
    raw = [
        Region([0.0, 0.0], [0.3, 0.1], 2.0, norm),
        Region([0.7, 0.0], [0.1, 0.1], 2.0, norm),  # class 1, outside the first region but meets it
        Region([0.0, 0.0001], [0.1, 0.1], 1.0, norm),  # class 1, inside the first region: abstains
        Region([3.0, 3.0], [0.1, 0.1], 1.0, norm),  # far away: unchanged
    ]
    predictions = [0, 1, 1, 1]
    assert _conflicts(raw, predictions)
    reported, classes, changed = memory_pass(raw, predictions)
    assert not _conflicts(reported, classes)
    assert changed == 2 and classes.tolist() == [0, 1, -1, 1]
    assert 0 < reported[1].gap < raw[1].gap and reported[2].gap == 0.0
    assert [r.gap for r in reported[::3]] == [2.0, 1.0]
    assert all(np.array_equal(r.theta, q.theta) for r, q in zip(reported, raw))  # only the gaps change


def test_the_toy_figure_shows_memory_based_regions_by_default(tmp_path, monkeypatch):
    """ToySettings and `visualize toy` default to the memory-based certificates; the titles say which."""
    assert ToySettings().memory is True
    seen = []
    monkeypatch.setattr(
        "anisocert.viz.visualize.visualize_toy", lambda out, settings, **k: seen.append(settings) or []
    )
    for extra in ([], ["--no-memory"]):
        result = CliRunner().invoke(_app(), ["visualize", "toy", "--out", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
    assert [s.memory for s in seen] == [True, False]
    settings = ToySettings(
        inputs=6, grid=12, draws=20, n=500, epochs=4, ancer_iterations=10, ancer_samples=16
    )
    model = toy_model("moons", "gaussian", 0.12, cache_dir=tmp_path, epochs=4)
    panel = toy_panel("moons", "gaussian", settings, model=model)
    raw = toy_panel("moons", "gaussian", dataclasses.replace(settings, memory=False), model=model)
    for regions, predictions in ((panel.iso, panel.iso_prediction), (panel.ancer, panel.ancer_prediction)):
        assert not _conflicts(regions, predictions)
    for shown, before in zip(panel.iso + panel.ancer, raw.iso + raw.ancer):
        assert shown.gap <= before.gap and np.array_equal(shown.center, before.center)
    changed = sum(a.gap != b.gap for a, b in zip(panel.iso + panel.ancer, raw.iso + raw.ancer))
    assert panel.memory_changed >= changed and raw.memory_changed == 0
    fig = toy_figure([panel])
    assert (
        "memory-based" in fig.axes[0].get_title() and "memory-based" in fig.legends[0].get_title().get_text()
    )
    raw_fig = toy_figure([raw])
    assert (
        "raw" in raw_fig.axes[0].get_title() and "no memory pass" in raw_fig.legends[0].get_title().get_text()
    )


def test_toy_command_writes_png_and_pdf(tmp_path):
    out = tmp_path / "toy"
    args = ["visualize", "toy", "--out", str(out), "--data", "band", "--inputs", "2", "--grid", "16"]
    result = CliRunner().invoke(_app(), args + ["--draws", "10", "--n", "200", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    _expect_figure(out / "toy_band", toy_figsize(2))
    assert f"wrote {out / 'toy_band.pdf'}" in result.output


def test_toy_errors_are_one_line_exit_2(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(_app(), ["visualize", "toy", "--data", "spiral", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "spiral" in bad.output and "moons" in bad.output
    bad = runner.invoke(_app(), ["visualize", "toy", "--idx", "3", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--idx" in bad.output
    with pytest.raises(InvalidParameterError):
        ToySettings(n=5)  # can never certify at alpha = 0.001
    with pytest.raises(UnknownNameError):
        toy_panel("digits", "gaussian")


# ------------------------------------------------------------------------------------- perturbations


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_largest_theta_perturbation_is_inside_and_beyond(norm):
    rng = np.random.default_rng(1 if norm == "l2" else 2)
    p = P[norm]
    ks = set()
    for _ in range(30):
        # mostly near-constant theta with a few large entries: the margin decides k
        theta = rng.uniform(1.0, 1.2, size=(1, 8, 8)) * np.where(rng.random((1, 8, 8)) < 0.15, 5.0, 1.0)
        x, gap, margin = rng.uniform(0, 1, size=theta.shape), rng.uniform(0.2, 3.0), rng.uniform(1.2, 6.0)
        iso = theta.min() * gap
        d, k = largest_theta_perturbation(x, theta, gap, norm, iso, fraction=0.99, margin=margin)
        assert k >= 1
        ks.add(k)
        scaled = np.linalg.norm((d / theta).ravel(), ord=p)
        assert scaled == pytest.approx(0.99 * gap, rel=1e-12) and scaled <= gap
        assert np.linalg.norm(d.ravel(), ord=p) > iso
        # independent checks with the library's regions: inside the anisotropic region, outside the ball
        center = x.ravel()
        assert Region(center, theta.ravel(), gap, norm).contains(center + d.ravel())[0]
        assert not Region(center, np.full(center.size, 1.0), iso, norm).contains(center + d.ravel())[0]
        # support: exactly the k largest theta; signs point into [0, 1]
        support = np.flatnonzero(d.ravel())
        assert support.size == k and theta.ravel()[support].min() >= np.sort(theta.ravel())[-k]
        assert (np.sign(d.ravel()[support]) == np.where(center[support] > 0.5, -1, 1)).all()
        # k is the largest count reaching margin x the isotropic radius (brute force), else 1
        top = np.sort(theta.ravel())[::-1]
        reach = [0.99 * gap * np.mean(top[:j] ** p) ** (1 / p) for j in range(1, top.size + 1)]
        good = [j + 1 for j, r in enumerate(reach) if r >= margin * iso]
        assert k == (good[-1] if good else 1)
    assert len(ks) > 5 and 1 in ks  # the margin did decide k, including the fallback to one pixel


def test_isotropic_theta_has_no_perturbation():
    d, k = largest_theta_perturbation(np.zeros(16), np.full(16, 0.5), 2.0, "l2", 1.0)
    assert k == 0 and not d.any()


# ------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny ANCER run, its isotropic twin and a fixed run on digits with a seeded untrained CNN."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    model = save_checkpoint(root / "cnn", create_model("digits_cnn"), arch="digits_cnn", num_classes=10)
    common = dict(model=str(model), data="digits", n=200, max_count=3, iso_method="search", iso_samples=32)
    ancer = dict(ancer_iterations=5, ancer_samples=16, ancer_lr=0.5)
    paths = {}
    for method, extra in (("ancer", ancer), ("isotropic", {}), ("fixed", {})):
        config = CertifyConfig.from_flat(method=method, label=method, **common, **extra)
        paths[method] = certify_dataset(config, root / method, progress=False).run_dir
    return paths


def test_visualize_run_writes_figures_and_the_perturbation_is_sound(runs, tmp_path):
    out = tmp_path / "figs"
    args = ["visualize", str(runs["ancer"]), "--idx", "0", "--idx", "2", "--out", str(out)]
    result = CliRunner().invoke(_app(), args + ["--iso-run", str(runs["isotropic"]), "--n", "200"])
    assert result.exit_code == 0, result.output
    for i in (0, 2):  # input 1 fell back to its isotropic certificate (no perturbation)
        _expect_figure(out / f"theta_{i}", IMAGE_FIGSIZE)
        _expect_figure(out / f"perturbation_{i}", PERTURBATION_FIGSIZE)
    assert "holds" in result.output

    # the perturbation against the stored certificate, read here from the store and the iso run's TSV
    store = RunStore.read(runs["ancer"])
    record = {c.idx: c for c in store.certificates().rows()}[0]
    gap = {c.idx: c.gap for c in store.memory_certificates().rows()}.get(0, record.gap)
    store.close()
    iso_tsv = load_results(runs["isotropic"])
    iso_radius = float(iso_tsv.radius[iso_tsv.columns["idx"] == 0][0])
    pert = perturb_input(runs["ancer"], 0, iso_run=runs["isotropic"], n=200)
    theta = record.theta.astype(np.float64).reshape(pert.d.shape)
    assert np.linalg.norm((pert.d / theta).ravel(), ord=2) <= gap
    assert np.linalg.norm(pert.d.ravel(), ord=2) > max(iso_radius, theta.min() * gap)
    assert pert.check_seed != 0 and pert.check_n == 200  # fresh draws: the run used seed 0
    assert pert.holds == (pert.check_prediction == record.prediction)


def test_fixed_run_has_no_anisotropic_theta(runs, tmp_path):
    result = CliRunner().invoke(
        _app(), ["visualize", str(runs["fixed"]), "--idx", "2", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "no anisotropic theta" in result.output
    _expect_figure(tmp_path / "theta_2", IMAGE_FIGSIZE)
    assert not (tmp_path / "perturbation_2.png").exists()
    bad = CliRunner().invoke(_app(), ["visualize", str(runs["fixed"]), "--idx", "99", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "99" in bad.output


# ------------------------------------------------------------------------------- foreign run directories


def _foreign_copy(run, dest, **changes):
    """A copy of `run` whose stored configuration says something else (a run directory from someone else)."""
    shutil.copytree(run, dest)
    with sqlite3.connect(dest / "run.sqlite") as db:
        config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        config.update(changes)
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
        if "model_sha256" in changes:
            db.execute("UPDATE meta SET value = ? WHERE key = 'model_sha256'", (changes["model_sha256"],))
    return dest


def _code_specs(tmp_path) -> dict[str, str]:
    """Model specs whose loading would run code or unpickle: a factory (its module writes a marker when
    imported), a .pt2 program, a TorchScript file and a pickle checkpoint."""
    package = tmp_path / "pkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "evil_factory_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef factory(): pass\n")
    for name in ("prog.pt2", "script.pt", "weights.pt"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really")
    return {
        "factory": "evil_factory_mod:factory",
        "pt2": str(tmp_path / "prog.pt2"),
        "torchscript": str(tmp_path / "script.pt"),
        "pickle": f"digits_cnn:{tmp_path / 'weights.pt'}",
    }


@pytest.mark.parametrize("kind", ["factory", "pt2", "torchscript", "pickle"])
def test_a_run_naming_code_is_refused_without_loading_it(kind, runs, tmp_path, monkeypatch):
    spec = _code_specs(tmp_path)[kind]
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    foreign = _foreign_copy(runs["ancer"], tmp_path / "foreign", model=spec)
    out = tmp_path / "figs"
    result = CliRunner().invoke(_app(), ["visualize", str(foreign), "--idx", "0", "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "--model" in lines[0] and "code or a pickle" in lines[0], result.output
    assert not (tmp_path / "imported").exists() and "evil_factory_mod" not in sys.modules
    assert not out.exists()  # refused before anything was drawn
    with pytest.raises(ModelLoadError, match="pass --model"):
        perturb_input(foreign, 0, n=200)


def test_the_users_model_replaces_a_refused_one_and_must_be_the_runs(runs, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    spec = _code_specs(tmp_path)["factory"]
    with sqlite3.connect(runs["ancer"] / "run.sqlite") as db:
        weights = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])["model"]
    foreign = _foreign_copy(runs["ancer"], tmp_path / "foreign", model=spec)
    out = tmp_path / "figs"
    args = ["visualize", str(foreign), "--idx", "0", "--out", str(out), "--n", "200"]
    result = CliRunner().invoke(_app(), [*args, "--model", weights])
    assert result.exit_code == 0, result.output
    assert (out / "perturbation_0.png").exists() and not (tmp_path / "imported").exists()
    # another model than the one the run certified (different weights) is refused: sha256 differs
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "other", create_model("digits_cnn"), arch="digits_cnn", num_classes=10)
    result = CliRunner().invoke(_app(), [*args, "--model", str(other)])
    assert result.exit_code == 2 and "is not the model" in result.output, result.output
    # the run's own safetensors weights, but the run recorded another sha256: refused
    tampered = _foreign_copy(runs["ancer"], tmp_path / "tampered", model_sha256="0" * 64)
    result = CliRunner().invoke(_app(), ["visualize", str(tampered), "--idx", "0", "--out", str(out)])
    assert result.exit_code == 2 and "is not the model" in result.output, result.output
    bad = CliRunner().invoke(_app(), ["visualize", "toy", "--model", weights, "--out", str(out)])
    assert bad.exit_code == 2 and "--model is for" in bad.output


def test_demo_figures_draw_ancer_inputs_and_runtimes(runs, tmp_path, monkeypatch):
    monkeypatch.setattr("anisocert.viz.visualize.visualize_toy", lambda *a, **k: [])  # covered above
    written = demo_figures(tmp_path, list(runs.values()), inputs=1, log=lambda text: None)
    names = {p.name for p in written}
    assert {"theta_0.png", "perturbation_0.pdf", "runtime_gaussian.png", "runtime.md"} <= names
    _expect_figure(tmp_path / "runtime_gaussian", COLUMN_FIGSIZE)
    assert "| ancer |" in (tmp_path / "runtime.md").read_text()


# ----------------------------------------------------------------------------------------- runtime


def _timed(name, opt, cert, proxy, method):
    k = len(cert)
    columns = {
        "idx": np.arange(k),
        "label": np.zeros(k, dtype=int),
        "predict": np.zeros(k, dtype=int),
        "radius": np.asarray(proxy) / 2,
        "radius_proxy": np.asarray(proxy, dtype=float),
        "correct": np.ones(k, dtype=int),
        "time": np.asarray(cert, dtype=float),
        "opt_time": np.asarray(opt, dtype=float),
    }
    return Results(name, columns, meta={"config": {"method": method}})


def test_runtime_table_values_and_chart(tmp_path):
    iso = _timed("iso", [1, 2, 3, 4, 10], [0.5] * 5, [0.4] * 5, "isotropic")
    fixed = _timed("fix", [0] * 5, [0.1, 0.2, 0.3, 0.4, 0.5], [0.2] * 5, "fixed")
    ancer = _timed("anc", [2, 4, 6, 8, 20], [0.5] * 5, [1.0] * 5, "ancer")
    table = runtime_summary([iso, fixed, ancer])
    assert table.corner == "method" and table.rows == ["iso", "fix", "anc"]
    v = table.values
    np.testing.assert_allclose(v[0, :5], [3, 2, 0.5, 0, 0.4])  # medians and IQRs (numpy's percentiles)
    np.testing.assert_allclose(v[1, :5], [0, 0, 0.3, 0.2, 0.2])
    # mean time per input and ACR proxy as ratios to the fixed run's (0.3 s, 0.2)
    np.testing.assert_allclose(v[:, 5], [(4 + 0.5) / 0.3, 1, (8 + 0.5) / 0.3])
    np.testing.assert_allclose(v[:, 6], [0.4 / 0.2, 1, 1.0 / 0.2])
    # a run that is not slower than the reference still has both ratios (it had "-" before)
    quick = _timed("quick", [0] * 5, [0.1] * 5, [1.0] * 5, "ancer")
    np.testing.assert_allclose(runtime_summary([fixed, quick]).values[1, 5:], [0.1 / 0.3, 5])
    text = runtime_table([iso, fixed, ancer])
    assert text.startswith("| method |") and "vs fix" in text and "| fix | 0 | 0 | 0.3 | 0.2 |" in text
    paths = plot_runtime([iso, fixed, ancer], tmp_path / "rt")
    _expect_figure(tmp_path / "rt", COLUMN_FIGSIZE)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    with pytest.raises(InvalidParameterError):
        plot_runtime([], tmp_path / "none")


# ------------------------------------------------------------------------------------------ every figure


def _labelled(text: str) -> bool:
    """A label with its unit in parentheses, e.g. 'time per input (s)' or 'column (px)'."""
    return bool(text) and "(" in text and text.rstrip().endswith(")")


def test_every_figure_has_a_title_axis_labels_with_units_and_a_legend(runs, tmp_path, monkeypatch):
    """Theta map, perturbation, toy regions, certified accuracy and runtime: each figure saved has a title,
    x and y labels with units, and a legend (a heat map's legend is its labelled colorbar)."""
    from matplotlib.figure import Figure

    from anisocert.viz.plots import plot_certified_accuracy
    from anisocert.viz.toy import plot_toy
    from anisocert.viz.visualize import visualize_run

    saved = {}
    real_savefig = Figure.savefig

    def recording(fig, path, *args, **kwargs):
        saved.setdefault(Path(path).stem, fig)
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    visualize_run(runs["ancer"], [0], tmp_path, iso_run=runs["isotropic"], n=200)
    plot_toy([_synthetic_panel("l2"), _synthetic_panel("l1")], tmp_path / "toy")
    results = [load_results(runs[name]) for name in ("ancer", "isotropic", "fixed")]
    plot_certified_accuracy(results, tmp_path / "accuracy")
    plot_runtime(results, tmp_path / "runtime")
    assert set(saved) == {"theta_0", "perturbation_0", "toy", "accuracy", "runtime"}
    for name, fig in saved.items():
        bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
        data = [ax for ax in fig.axes if ax not in bars]
        title = fig._suptitle.get_text() if fig._suptitle else ""
        assert title or all(ax.get_title() for ax in data), f"{name}: no title"
        assert all(_labelled(ax.get_xlabel()) for ax in data), f"{name}: an x label without a unit"
        assert any(_labelled(ax.get_ylabel()) for ax in data), f"{name}: no y label with a unit"
        legends = fig.legends + [ax.get_legend() for ax in data if ax.get_legend()]
        colorbars = [ax.get_xlabel() or ax.get_ylabel() for ax in bars]
        assert legends or (colorbars and all(colorbars)), f"{name}: no legend"
