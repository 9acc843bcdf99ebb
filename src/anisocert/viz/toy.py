"""Certified regions on the 2-D toy sets: the smoothed classifier's landscape with isotropic and ANCER regions.

For each data set (moons, band) and noise family (gaussian -> l2 circles vs ellipses, uniform -> l1 diamonds
vs generalized cross-polytopes) a small seeded MLP is trained under noise, a few test inputs get a
data-dependent sigma_x (DDRS) and an anisotropic theta_x (ANCER), and both are certified for real with
``Smoothed.certify`` on fresh draws. The regions are, by default, the memory-based certificates (each
method's certificates through ``CertificateMemory`` in input order, as a run reports them: regions of
different classes never overlap); ``ToySettings(memory=False)`` draws the raw per-input ones. They are drawn from their exact equations ``||d / theta||_p = gap``. The landscape behind them is a Monte Carlo
estimate of P(f(x + e) = 1) at the training scale sigma0, with the same draws at every grid point.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import _checks
from ..core.noise import get_noise
from ..core.regions import Region
from ..errors import UnknownNameError
from .figures import plot_toy, region_boundary, toy_figsize, toy_figure
from .plots import check_out_dir

__all__ = [
    "TOY_DATA",
    "TOY_NOISES",
    "TOY_SIGMA",
    "ToyPanel",
    "ToySettings",
    "memory_pass",
    "one_thread",
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


@dataclass(frozen=True, eq=False)
class ToyPanel:
    """What one panel shows: the landscape, the data and the certified regions of k inputs.

    prob has shape (grid, grid): P(f(x + e) = 1) at sigma0, rows along x_1 (bottom to top), columns along
    x_0, over ``extent`` = (x0_min, x0_max, x1_min, x1_max). centers (k, 2) and labels (k,) are the
    certified inputs; iso[j] and ancer[j] are their regions (gap 0 when the certificate abstained),
    iso_prediction / ancer_prediction the certified classes (-1 = abstain). settings.memory says whether
    they are memory-based (memory_changed: how many certificates memory changed) or raw.
    """

    data: str
    noise: str
    norm: str
    sigma: float
    settings: ToySettings
    extent: tuple[float, float, float, float]
    prob: np.ndarray
    points: np.ndarray
    point_labels: np.ndarray
    centers: np.ndarray
    labels: np.ndarray
    iso: list[Region]
    ancer: list[Region]
    iso_prediction: np.ndarray
    ancer_prediction: np.ndarray
    memory_changed: int = 0


def toy_model(
    data: str, noise: str, sigma: float, *, cache_dir=None, epochs: int = 30, seed: int = 0
) -> torch.nn.Module:
    """A seeded mlp2d trained under `noise` at `sigma` on `data` (a second or so on a CPU), in eval mode.

    With cache_dir the checkpoint is kept as CACHE_DIR/toy_DATA_NOISE_SIGMA and reused by later calls
    with the same configuration; without, it is trained in a temporary folder.
    """
    from ..models import load_model
    from ..train import TrainConfig, train_model

    config = TrainConfig(arch="mlp2d", data=data, method=noise, sigma=sigma, epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(cache_dir) if cache_dir is not None else Path(tmp)
        weights = train_model(config, folder / f"toy_{data}_{noise}_{sigma:g}", progress=False)
        return load_model(str(weights)).module


@contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block (restored after): the toy MLP and the 8x8 digits
    model are too small to gain from threads, and on shared cores the threads' spinning costs 4x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


@dataclass(frozen=True)
class ToySettings:
    """How much work a toy panel does; the defaults take about 7 s per data set on one CPU core.

    inputs: certified test inputs per panel; grid, draws: landscape lattice size and draws per point;
    n0, n, alpha: CERTIFY's selection draws, fresh estimation draws and one-sided alpha per certificate;
    seed: training, landscape, optimisation and certification streams; epochs: model training;
    ancer_iterations, ancer_samples: Adam steps and draws per step of optimise_theta; memory: draw the
    memory-based certificates (True, what a run reports) or the raw per-input ones (False).
    """

    inputs: int = 6
    grid: int = 100
    draws: int = 100
    n0: int = 100
    n: int = 2000
    alpha: float = 0.001
    seed: int = 0
    epochs: int = 30
    ancer_iterations: int = 100
    ancer_samples: int = 100
    memory: bool = True

    def __post_init__(self):
        for name in ("inputs", "draws", "epochs", "ancer_iterations", "ancer_samples"):
            _checks.check_int(name.replace("_", "-"), getattr(self, name))
        _checks.check_int("grid", self.grid, min_value=2, hint="; e.g. 100")
        _checks.check_int("seed", self.seed, min_value=0)
        _checks.check_budget(self.n0, self.n, self.alpha)


def toy_panel(
    data: str, noise: str, settings: ToySettings = ToySettings(), *, sigma=None, model=None, cache_dir=None
) -> ToyPanel:
    """Train (or take) a model, pick spread-out test inputs near the boundary, optimise and certify them.

    sigma_x: ``optimise_sigma(method="search")`` from sigma0 = `sigma` (default TOY_SIGMA) within
    [sigma0 / 2, 2 sigma0], so that the regions stay near the landscape's scale. theta_x:
    ``optimise_theta`` from sigma_x with Adam's lr scaled to the data (0.16 * sigma0, i.e. the public
    0.04 at sigma0 = 0.25). Both are certified with n0 + n fresh draws (Smoothed.certify); with
    probability >= 1 - alpha per input and certificate, the smoothed classifier with that input's theta
    is constant on the drawn region. With settings.memory (the default) each method's certificates then
    go through memory-based certification in input order (see memory_pass), as a run reports them.
    """
    from ..data import load_data

    if data not in TOY_DATA:
        raise UnknownNameError(f"data={data!r} is not a 2-D toy set; choose one of {list(TOY_DATA)}")
    family = get_noise(noise)
    sigma = TOY_SIGMA[(data, family.name)] if sigma is None else _checks.check_real("sigma", sigma)
    s = settings
    if model is None:
        model = toy_model(data, family.name, sigma, cache_dir=cache_dir, epochs=s.epochs, seed=s.seed)
    train, test = load_data(data, "train"), load_data(data, "test")
    points, x_test = train.get(np.arange(len(train))).numpy(), test.get(np.arange(len(test)))
    extent = _extent(np.concatenate([points, x_test.numpy()]))
    prob = confidence_landscape(model, family, extent, sigma, grid=s.grid, draws=s.draws, seed=s.seed)
    p1 = class_probability(model, family, x_test, sigma, draws=s.draws, seed=s.seed)
    pick = _pick_inputs(x_test.numpy(), test.labels, np.where(test.labels == 1, p1, 1.0 - p1), s.inputs)
    x = x_test[pick]
    iso, ancer = _certify_both(model, family, x, [int(i) for i in pick], sigma, s)
    iso, ancer, changed = _through_memory(iso, ancer) if s.memory else (iso, ancer, 0)
    return ToyPanel(
        data=data,
        noise=family.name,
        norm=family.norm,
        sigma=float(sigma),
        settings=s,
        extent=extent,
        prob=prob,
        points=points,
        point_labels=train.labels,
        centers=x.double().numpy(),
        labels=test.labels[pick],
        iso=iso.regions,
        ancer=ancer.regions,
        iso_prediction=np.asarray(iso.prediction),
        ancer_prediction=np.asarray(ancer.prediction),
        memory_changed=changed,
    )


class _Certified(NamedTuple):
    """One method's certificates of a panel's inputs: their regions and classes (-1 = abstain)."""

    regions: list[Region]
    prediction: np.ndarray


def _certify_both(model, family, x, idx: list[int], sigma: float, s: ToySettings):
    """The isotropic and the ANCER certificates of x, as two _Certified (see toy_panel).

    sigma_x is searched within [sigma / 2, 2 sigma]; theta_x starts from sigma_x with Adam's lr
    0.16 * sigma; each is then certified on n0 + n fresh draws.
    """
    from ..core.optimise import optimise_sigma, optimise_theta
    from ..core.smooth import Smoothed

    common = dict(seed=s.seed, idx=idx)
    bounds = dict(sigma_min=sigma / 2, sigma_max=2 * sigma)
    sigma_x = optimise_sigma(model, family, x, sigma, method="search", **bounds, **common).sigma
    theta_x = optimise_theta(
        model,
        family,
        x,
        sigma_x,
        iterations=s.ancer_iterations,
        samples=s.ancer_samples,
        lr=0.16 * sigma,
        **common,
    ).theta
    smoothed = Smoothed(model, family, batch_size=10_000, device="cpu")
    iso = smoothed.certify(x, sigma_x, n0=s.n0, n=s.n, alpha=s.alpha, **common)
    aniso = smoothed.certify(x, theta_x, n0=s.n0, n=s.n, alpha=s.alpha, **common)
    centers, sigma_np, theta_np = x.double().numpy(), sigma_x.double().numpy(), theta_x.double().numpy()
    iso_regions = [Region(c, np.full(2, v), g, family.norm) for c, v, g in zip(centers, sigma_np, iso.gap)]
    ancer_regions = [Region(c, t, g, family.norm) for c, t, g in zip(centers, theta_np, aniso.gap)]
    return _Certified(iso_regions, iso.prediction), _Certified(ancer_regions, aniso.prediction)


def _through_memory(iso: _Certified, ancer: _Certified) -> tuple[_Certified, _Certified, int]:
    """Each method's certificates after memory_pass, as a run reports them, and how many memory changed."""
    iso_regions, iso_prediction, iso_changed = memory_pass(*iso)
    ancer_regions, ancer_prediction, ancer_changed = memory_pass(*ancer)
    reported = _Certified(iso_regions, iso_prediction), _Certified(ancer_regions, ancer_prediction)
    return *reported, iso_changed + ancer_changed


def memory_pass(regions: Sequence[Region], predictions) -> tuple[list[Region], np.ndarray, int]:
    """Memory-based certification of one method's certificates, in the given (input) order, as a run
    reports them: (the reported regions, their classes (-1 = abstain), how many memory changed).

    A region that would meet a stored region of another class is shrunk until it does not; an input
    inside one abstains (gap 0). Regions of different classes in the result never intersect.
    """
    from ..core.memory import ABSTAIN, CertificateMemory

    if not regions:
        return [], np.zeros(0, dtype=np.int64), 0
    memory = CertificateMemory(regions[0].norm, regions[0].center.size)
    reported, classes, changed = [], [], 0
    for region, prediction in zip(regions, predictions):
        decision = memory.certify(region.center, region.theta, region.gap, int(prediction))
        gap = float(decision.gap) if decision.prediction != ABSTAIN else 0.0
        reported.append(Region(region.center, region.theta, gap, region.norm))
        classes.append(int(decision.prediction))
        changed += decision.changed
    return reported, np.array(classes, dtype=np.int64), changed


def visualize_toy(
    out, settings: ToySettings = ToySettings(), *, data: Sequence[str] = TOY_DATA, noises=TOY_NOISES, log=None
) -> list[Path]:
    """For each toy data set, OUT/toy_DATA.png and .pdf: one panel per noise family (see toy_panel).

    Trained models are cached in OUT/models, so a second call only re-certifies. Returns the paths.
    """
    log = log or (lambda text: None)
    unknown = [name for name in data if name not in TOY_DATA]
    if unknown or not data:
        raise UnknownNameError(
            f"data={unknown or list(data)} is not a 2-D toy set; choose from {list(TOY_DATA)}"
        )
    noises = [get_noise(noise).name for noise in noises]
    out = check_out_dir(out)
    written: list[Path] = []
    for name in data:
        t0 = time.perf_counter()
        with one_thread():
            panels = [toy_panel(name, noise, settings, cache_dir=out / "models") for noise in noises]
        written += plot_toy(panels, out / f"toy_{name}")
        for p in panels:
            better = sum(a.radius >= i.radius and a.gap > 0 for a, i in zip(p.ancer, p.iso))
            log(
                f"{name} {p.noise}: {len(p.iso)} inputs, ANCER radius >= isotropic radius for {better}; "
                f"mean proxy radius {np.mean([a.proxy_radius for a in p.ancer]):.3g} (ANCER) vs "
                f"{np.mean([i.proxy_radius for i in p.iso]):.3g} (isotropic); "
                + (
                    f"memory changed {p.memory_changed}"
                    if p.settings.memory
                    else "raw certificates (no memory)"
                )
            )
        log(f"{name}: {time.perf_counter() - t0:.1f} s -> {written[-2]}")
    return written
