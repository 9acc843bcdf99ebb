"""Certified regions on the 2-D toy sets: the smoothed classifier's landscape with isotropic and ANCER regions.

For each data set (moons, band) and noise family (gaussian -> l2 circles vs ellipses, uniform -> l1 diamonds
vs generalized cross-polytopes) a small seeded MLP is trained under noise, a few test inputs get a
data-dependent sigma_x (DDRS) and an anisotropic theta_x (ANCER), and both are certified for real with
``Smoothed.certify`` on fresh draws. The regions are the raw per-input certificates (no memory pass) and
are drawn from their exact equations ``||d / theta||_p = gap``. The landscape behind them is a Monte Carlo
estimate of P(f(x + e) = 1) at the training scale sigma0, with the same draws at every grid point.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import _checks
from .errors import InvalidParameterError, UnknownNameError
from .noise import get_noise
from .regions import Region

__all__ = [
    "TOY_DATA",
    "TOY_NOISES",
    "TOY_SIGMA",
    "ToyPanel",
    "class_probability",
    "confidence_landscape",
    "plot_toy",
    "region_boundary",
    "toy_figure",
    "toy_figsize",
    "toy_model",
    "toy_panel",
    "visualize_toy",
]

TOY_DATA = ("moons", "band")
TOY_NOISES = ("gaussian", "uniform")
# Training / starting scale sigma0 per (data, noise), in theta units (std for gaussian, half-width for
# uniform): about a quarter of the gap between the moons, half the band's half-width 0.1.
TOY_SIGMA = {
    ("moons", "gaussian"): 0.12,
    ("moons", "uniform"): 0.2,
    ("band", "gaussian"): 0.05,
    ("band", "uniform"): 0.1,
}
_PANEL_HEIGHT = 2.45  # inches per panel at column width (3.5 in)
_LEGEND_HEIGHT = 0.45


@dataclass(frozen=True, eq=False)
class ToyPanel:
    """What one panel shows: the landscape, the data and the certified regions of k inputs.

    prob has shape (grid, grid): P(f(x + e) = 1) at sigma0, rows along x_1 (bottom to top), columns along
    x_0, over ``extent`` = (x0_min, x0_max, x1_min, x1_max). centers (k, 2) and labels (k,) are the
    certified inputs; iso[j] and ancer[j] are their regions (gap 0 when the certificate abstained),
    iso_prediction / ancer_prediction the certified classes (-1 = abstain).
    """

    data: str
    noise: str
    norm: str
    sigma: float
    extent: tuple[float, float, float, float]
    prob: np.ndarray
    draws: int
    points: np.ndarray
    point_labels: np.ndarray
    centers: np.ndarray
    labels: np.ndarray
    iso: list[Region]
    ancer: list[Region]
    iso_prediction: np.ndarray
    ancer_prediction: np.ndarray
    n: int
    alpha: float


def region_boundary(region: Region, num: int = 2001) -> np.ndarray:
    """Points (num, 2) on the boundary ||(z - center) / theta||_p = gap of a 2-D region, as a closed curve.

    l2: center + gap * theta * (cos t, sin t). l1: center + gap * theta * (sgn(c) c^2, sgn(s) s^2) with
    c = cos t, s = sin t, so |d_0| / theta_0 + |d_1| / theta_1 = gap (c^2 + s^2) = gap exactly; it runs
    along the edges of the cross-polytope through its four vertices (t = 0, pi/2, pi, 3 pi / 2).
    """
    if region.dim != 2:
        raise InvalidParameterError(f"region has {region.dim} dimensions; only 2-D regions can be drawn")
    t = np.linspace(0.0, 2.0 * np.pi, num)
    t[-1] = 0.0  # close the curve exactly
    c, s = np.cos(t), np.sin(t)
    if region.norm == "l1":
        c, s = np.sign(c) * c * c, np.sign(s) * s * s
    return region.center + region.axes * np.stack([c, s], axis=1)


def toy_model(
    data: str, noise: str, sigma: float, *, cache_dir=None, epochs: int = 30, seed: int = 0
) -> torch.nn.Module:
    """A seeded mlp2d trained under `noise` at `sigma` on `data` (a second or so on a CPU), in eval mode.

    With cache_dir the checkpoint is kept as CACHE_DIR/toy_DATA_NOISE_SIGMA and reused by later calls
    with the same configuration; without, it is trained in a temporary folder.
    """
    from .models import load_model
    from .train import TrainConfig, train_model

    config = TrainConfig(arch="mlp2d", data=data, method=noise, sigma=sigma, epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(cache_dir) if cache_dir is not None else Path(tmp)
        weights = train_model(config, folder / f"toy_{data}_{noise}_{sigma:g}", progress=False)
        return load_model(str(weights)).module


@torch.inference_mode()
def class_probability(
    model, noise, points, sigma: float, *, draws: int = 100, seed: int = 0, cls: int = 1
) -> np.ndarray:
    """P(f(x + e) = cls) at each of the points (k, 2), with e = sigma * u: shape (k,).

    The same `draws` unit draws u (seeded by `seed`) serve every point (common random numbers), so
    the estimate is a smooth function of x; its standard error is at most 0.5 / sqrt(draws).
    """
    noise = get_noise(noise)
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32).reshape(-1, 2)
    e = sigma * noise.unit((draws, 2), torch.Generator().manual_seed(seed), "cpu")
    chunk = max(1, 200_000 // draws)
    hits = []
    for start in range(0, points.shape[0], chunk):
        noisy = points[start : start + chunk, None, :] + e[None]
        labels = model(noisy.reshape(-1, 2)).argmax(dim=1).view(-1, draws)
        hits.append((labels == cls).double().mean(dim=1))
    return torch.cat(hits).numpy()


def confidence_landscape(
    model, noise, extent, sigma: float, *, grid: int = 100, draws: int = 100, seed: int = 0, cls: int = 1
) -> np.ndarray:
    """class_probability on a grid x grid lattice over extent = (x0_min, x0_max, x1_min, x1_max).

    Returns shape (grid, grid), rows along x_1 (bottom to top), columns along x_0.
    """
    x0 = np.linspace(extent[0], extent[1], grid)
    x1 = np.linspace(extent[2], extent[3], grid)
    points = np.stack(np.meshgrid(x0, x1), axis=-1).reshape(-1, 2)
    prob = class_probability(model, noise, points, sigma, draws=draws, seed=seed, cls=cls)
    return prob.reshape(grid, grid)


def _extent(points: np.ndarray, margin: float = 0.08) -> tuple[float, float, float, float]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * (hi - lo)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def _spread(points: np.ndarray, k: int) -> list[int]:
    """k indices of points chosen by farthest-point sampling (deterministic, from the first point)."""
    if k <= 0 or len(points) == 0:
        return []
    chosen = [0]
    dist = np.linalg.norm(points - points[0], axis=1)
    for _ in range(1, min(k, len(points))):
        chosen.append(int(dist.argmax()))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def _pick_inputs(x: np.ndarray, labels: np.ndarray, p_own: np.ndarray, k: int) -> np.ndarray:
    """k test indices, as many of each class as possible, spread out by farthest-point sampling.

    Preferred: inputs near the smoothed boundary but on their side (P(own class) in [0.7, 0.995]),
    where the certified regions are small and ANCER's elongation along the boundary shows.
    """
    near = np.flatnonzero((p_own >= 0.7) & (p_own <= 0.995))
    right = np.flatnonzero(p_own > 0.5)
    pool = near if near.size >= k else right if right.size >= k else np.arange(len(labels))
    classes = np.unique(labels[pool])
    picked = []
    for j, cls in enumerate(classes):
        members = pool[labels[pool] == cls]
        share = k // len(classes) + (j < k % len(classes))
        picked += [int(members[i]) for i in _spread(x[members], share)]
    return np.array(sorted(picked), dtype=np.int64)


def toy_panel(
    data: str,
    noise: str,
    *,
    sigma: float | None = None,
    model=None,
    inputs: int = 6,
    grid: int = 100,
    draws: int = 100,
    n0: int = 100,
    n: int = 2000,
    alpha: float = 0.001,
    seed: int = 0,
    epochs: int = 30,
    ancer_iterations: int = 100,
    ancer_samples: int = 100,
    cache_dir=None,
) -> ToyPanel:
    """Train (or take) a model, pick `inputs` spread-out test inputs, optimise and certify them.

    sigma_x: ``optimise_sigma(method="search")`` from sigma0 = `sigma` (default TOY_SIGMA) within
    [sigma0 / 2, 2 sigma0], so that the regions stay near the landscape's scale. theta_x:
    ``optimise_theta`` from sigma_x with Adam's lr scaled to the data (0.16 * sigma0, i.e. the public
    0.04 at sigma0 = 0.25). Both are certified with n0 + n fresh draws (Smoothed.certify, seed `seed`);
    with probability >= 1 - alpha per input and certificate, the smoothed classifier (with that theta)
    is constant on the drawn region.
    """
    from .data import load_data
    from .optimise import optimise_sigma, optimise_theta
    from .smooth import Smoothed

    if data not in TOY_DATA:
        raise UnknownNameError(f"data={data!r} is not a 2-D toy set; choose one of {list(TOY_DATA)}")
    noise_family = get_noise(noise)
    if noise_family.name not in TOY_NOISES:
        raise UnknownNameError(f"noise={noise!r} is unknown; choose one of {list(TOY_NOISES)}")
    sigma = TOY_SIGMA[(data, noise_family.name)] if sigma is None else _checks.check_real("sigma", sigma)
    inputs = _checks.check_int("inputs", inputs, hint="; e.g. 6")
    grid = _checks.check_int("grid", grid, min_value=2, hint="; e.g. 100")
    draws = _checks.check_int("draws", draws, hint="; e.g. 100")
    n0, n, alpha = _checks.check_budget(n0, n, alpha)
    if model is None:
        model = toy_model(data, noise_family.name, sigma, cache_dir=cache_dir, epochs=epochs, seed=seed)
    train, test = load_data(data, "train"), load_data(data, "test")
    points = train.get(np.arange(len(train))).numpy()
    extent = _extent(np.concatenate([points, test.get(np.arange(len(test))).numpy()]))
    prob = confidence_landscape(model, noise_family, extent, sigma, grid=grid, draws=draws, seed=seed)
    x_test = test.get(np.arange(len(test)))
    p1 = class_probability(model, noise_family, x_test, sigma, draws=draws, seed=seed)
    pick = _pick_inputs(x_test.numpy(), test.labels, np.where(test.labels == 1, p1, 1.0 - p1), inputs)
    x, idx = x_test[pick], [int(i) for i in pick]
    sigma_x = optimise_sigma(
        model, noise_family, x, sigma, method="search", sigma_min=sigma / 2, sigma_max=2 * sigma, seed=seed, idx=idx
    ).sigma
    theta_x = optimise_theta(
        model,
        noise_family,
        x,
        sigma_x,
        iterations=ancer_iterations,
        samples=ancer_samples,
        lr=0.16 * sigma,
        seed=seed,
        idx=idx,
    ).theta
    smoothed = Smoothed(model, noise_family, batch_size=10_000, device="cpu")
    common = dict(n0=n0, n=n, alpha=alpha, seed=seed, idx=idx)
    iso, aniso = smoothed.certify(x, sigma_x, **common), smoothed.certify(x, theta_x, **common)
    centers = x.double().numpy()
    sigma_np, theta_np = sigma_x.double().numpy(), theta_x.double().numpy()
    norm = noise_family.norm
    return ToyPanel(
        data=data,
        noise=noise_family.name,
        norm=norm,
        sigma=float(sigma),
        extent=extent,
        prob=prob,
        draws=draws,
        points=points,
        point_labels=train.labels,
        centers=centers,
        labels=test.labels[pick],
        iso=[Region(c, np.full(2, s), g, norm) for c, s, g in zip(centers, sigma_np, iso.gap)],
        ancer=[Region(c, t, g, norm) for c, t, g in zip(centers, theta_np, aniso.gap)],
        iso_prediction=iso.prediction,
        ancer_prediction=aniso.prediction,
        n=n,
        alpha=alpha,
    )


def toy_figsize(panels: int) -> tuple[float, float]:
    """(width, height) in inches of a toy figure with `panels` stacked panels: paper column width."""
    return (3.5, _PANEL_HEIGHT * panels + _LEGEND_HEIGHT)


_SHAPES = {"l2": ("circles", "ellipses"), "l1": ("diamonds", "cross-polytopes")}
_NAMES = {"l2": ("circle", "ellipse"), "l1": ("diamond", "cross-polytope")}


def _draw_panel(ax, panel: ToyPanel, fig):
    """Landscape, data, inputs and regions on one axis; region lines carry gid 'iso-j' / 'ancer-j'.

    Returns the landscape image (for the colorbar)."""
    image = ax.imshow(
        panel.prob,
        origin="lower",
        extent=panel.extent,
        cmap="RdBu_r",
        vmin=0.0,
        vmax=1.0,
        alpha=0.55,
        interpolation="bilinear",
    )
    x0 = np.linspace(panel.extent[0], panel.extent[1], panel.prob.shape[1])
    x1 = np.linspace(panel.extent[2], panel.extent[3], panel.prob.shape[0])
    ax.contour(x0, x1, panel.prob, levels=[0.5], colors="0.25", linewidths=0.6, linestyles="--")
    colors = np.where(panel.point_labels == 1, "tab:red", "tab:blue")
    ax.scatter(panel.points[:, 0], panel.points[:, 1], s=0.6, c=colors, alpha=0.35, linewidths=0)
    for j, (iso, ancer) in enumerate(zip(panel.iso, panel.ancer)):
        if iso.gap > 0:
            pts = region_boundary(iso)
            ax.plot(pts[:, 0], pts[:, 1], "-", color="k", lw=0.9, gid=f"iso-{j}")
        if ancer.gap > 0:
            pts = region_boundary(ancer)
            ax.plot(pts[:, 0], pts[:, 1], "-", color="tab:green", lw=1.1, gid=f"ancer-{j}")
    certified = (panel.iso_prediction >= 0) | (panel.ancer_prediction >= 0)
    c = panel.centers
    ax.plot(c[certified, 0], c[certified, 1], "o", ms=2.5, mfc="yellow", mec="k", mew=0.5)
    if (~certified).any():
        ax.plot(c[~certified, 0], c[~certified, 1], "x", ms=3.5, color="k", mew=0.8)
    ax.set_xlim(panel.extent[:2])
    ax.set_ylim(panel.extent[2:])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_0$ (input units)")
    ax.set_ylabel("$x_1$ (input units)")
    iso_shape, aniso_shape = _SHAPES[panel.norm]
    unit = "std" if panel.noise == "gaussian" else "half-width"
    ax.set_title(
        f"{panel.data}, {panel.noise} ({panel.norm}): {iso_shape} vs {aniso_shape}\n"
        f"$\\sigma_0$ = {panel.sigma:g} ({unit}), n = {panel.n}, $\\alpha$ = {panel.alpha:g}"
    )
    return image


def toy_figure(panels: Sequence[ToyPanel]):
    """A matplotlib Figure (Agg canvas, no pyplot) with the panels stacked; see plot_toy."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .plots import _STYLE

    panels = list(panels)
    if not panels:
        raise InvalidParameterError("no panels to draw; pass at least one ToyPanel")
    with rc_context(_STYLE):
        fig = Figure(figsize=toy_figsize(len(panels)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        images = [_draw_panel(ax, panel, fig) for ax, panel in zip(axes, panels)]
        bar = fig.colorbar(images[0], ax=list(axes), fraction=0.05, pad=0.02, shrink=0.8)
        bar.set_label(f"P(f(x+e) = 1) at $\\sigma_0$ ({panels[0].draws} draws)")
        norms = {p.norm for p in panels}
        iso_name = " / ".join(_NAMES[nm][0] for nm in sorted(norms, reverse=True))
        aniso_name = " / ".join(_NAMES[nm][1] for nm in sorted(norms, reverse=True))
        handles = [
            Line2D([], [], color="k", lw=0.9, label=f"isotropic DDRS ({iso_name})"),
            Line2D([], [], color="tab:green", lw=1.1, label=f"ANCER ({aniso_name})"),
            Line2D([], [], ls="--", color="0.25", lw=0.6, label="smoothed boundary (P = 1/2)"),
            Line2D([], [], ls="", marker="o", ms=2.5, mfc="yellow", mec="k", mew=0.5, label="certified input"),
            Line2D([], [], ls="", marker="x", ms=3.5, color="k", label="abstained input"),
            Line2D([], [], ls="", marker="o", ms=2, color="tab:blue", label="class 0 (train)"),
            Line2D([], [], ls="", marker="o", ms=2, color="tab:red", label="class 1 (train)"),
        ]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=2,
            frameon=False,
            title="raw certificates, each with its input's own theta (no memory pass)",
            title_fontsize=6,
        )
    return fig


def plot_toy(panels: Sequence[ToyPanel], path_stem: str | os.PathLike) -> list[Path]:
    """Draw the panels stacked (toy_figsize) and save PATH_STEM.png (300 dpi) and PATH_STEM.pdf."""
    from matplotlib import rc_context

    from .plots import _STYLE

    fig = toy_figure(panels)
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    with rc_context(_STYLE):
        fig.savefig(paths[0], dpi=300)
        fig.savefig(paths[1])
    return paths


def visualize_toy(
    out,
    *,
    data: Sequence[str] = TOY_DATA,
    noises: Sequence[str] = TOY_NOISES,
    inputs: int = 6,
    grid: int = 100,
    draws: int = 100,
    n0: int = 100,
    n: int = 2000,
    alpha: float = 0.001,
    seed: int = 0,
    epochs: int = 30,
    ancer_iterations: int = 100,
    ancer_samples: int = 100,
    log=None,
) -> list[Path]:
    """For each toy data set, OUT/toy_DATA.png and .pdf: one panel per noise family (see toy_panel).

    Trained models are cached in OUT/models, so a second call only re-certifies. Returns the paths.
    """
    log = log or (lambda text: None)
    out = Path(out)
    written: list[Path] = []
    for name in data:
        t0 = time.perf_counter()
        panels = [
            toy_panel(
                name,
                noise,
                inputs=inputs,
                grid=grid,
                draws=draws,
                n0=n0,
                n=n,
                alpha=alpha,
                seed=seed,
                epochs=epochs,
                ancer_iterations=ancer_iterations,
                ancer_samples=ancer_samples,
                cache_dir=out / "models",
            )
            for noise in noises
        ]
        written += plot_toy(panels, out / f"toy_{name}")
        for p in panels:
            better = sum(a.radius >= i.radius and a.gap > 0 for a, i in zip(p.ancer, p.iso))
            log(
                f"{name} {p.noise}: {len(p.iso)} inputs, ANCER radius >= isotropic radius for {better}, "
                f"mean proxy radius {np.mean([a.proxy_radius for a in p.ancer]):.3g} (ANCER) vs "
                f"{np.mean([i.proxy_radius for i in p.iso]):.3g} (isotropic)"
            )
        log(f"{name}: {time.perf_counter() - t0:.1f} s -> {written[-2]}")
    return written
