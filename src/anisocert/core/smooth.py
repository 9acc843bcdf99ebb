"""The smoothed classifier g(x) = argmax_c P(f(x + e) = c) and its Monte Carlo certificate (Cohen et al.)."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .bounds import pA_lower as _pA_lower
from .bounds import top_two_pvalue
from .certificates import ABSTAIN, Certificates
from .noise import NoiseFamily, get_noise
from .sampling import Phase, count_predictions, per_input
from .sequential import LookSchedule, parse_radii, run_looks
from .settings import RADII_ON

__all__ = [
    "ABSTAIN",
    "RADII_ON",
    "Certificates",
    "Smoothed",
    "certificate_from_counts",
    "predicted_radius",
    "settling_misses",
    "BaseForward",
    "base_forward",
    "theta_summary",
]


def theta_summary(theta: torch.Tensor, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(min, geometric mean) of each input's theta, in float64 through logs (no underflow)."""
    flat = theta.detach().reshape(batch, -1).double()
    return flat.min(dim=1).values.cpu().numpy(), flat.log().mean(dim=1).exp().cpu().numpy()


class Smoothed:
    """A base classifier smoothed by a noise family; certifies and predicts many inputs at once.

    model maps (batch, *D) inputs in the data's space to (batch, C) scores (logits or probabilities:
    only the argmax is used). theta is given per call: a scalar, one value per input, or a tensor of
    shape (B, *D). Everything runs on ``device`` (default: the model's, else CUDA when present).
    """

    def __init__(
        self,
        model,
        noise: str | NoiseFamily,
        *,
        batch_size: int = 1000,
        device=None,
        channels_last: bool = False,
        bf16: bool = False,
        compile: bool = False,
        sampler=None,
    ):
        """channels_last, bf16, compile: faster forward passes, mainly on CUDA (see BaseForward).
        sampler: None for float noise x + theta * u, or an ExactSampler (core/exact.py) for noise rounded
        to the inputs' grid, made in integers (sound in floating point; its table error is subtracted
        from pA_lower)."""
        self.noise = get_noise(noise)
        self.sampler = sampler
        self.batch_size = _checks.check_int("batch_size", batch_size)
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.model = base_forward(model, channels_last=channels_last, bf16=bf16, compile=compile)

    def _prepare(self, x, theta, idx):
        x = _checks.check_inputs(x).to(self.device, torch.float32)
        B = x.shape[0]
        theta = per_input(_checks.check_theta(theta).to(self.device), x.shape)
        idx = np.arange(B) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
        assert idx.shape == (B,), f"idx must name each of the {B} inputs"
        return x, theta, idx

    def certify(
        self,
        x,
        theta,
        *,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        seed: int = 0,
        idx=None,
        early_stop: bool = True,
        radii=None,
        radii_on: str = "radius",
    ) -> Certificates:
        """CERTIFY for each input: with probability >= 1 - alpha over the n fresh draws (per input),
        if the prediction is not ABSTAIN then g(x + d) = prediction for every d in the region.

        x: (B, *D); theta: scalar, (B,) or (B, *D), > 0; idx: the inputs' data-set indices that
        name their noise streams (default 0..B-1). alpha is one-sided.

        early_stop: stop an input's draws once it must abstain whatever the remaining draws say
        (same prediction, gap and radius as drawing all n; pA_lower then counts the undrawn as misses).

        radii: sequential certification for this grid of radii (sequential.py): the n fresh draws come
        in rounds and an input stops once its place on {0} + radii is settled (radii_on "radius":
        min(theta) * gap; "proxy": the proxy radius). The certificate is the lower bound's at the
        stopping look, at that look's alpha_k (sum over looks <= alpha): the guarantee above holds
        whatever the stopping look. The early stop does not apply.
        """
        n0, n, alpha = _checks.check_budget(n0, n, alpha)
        if radii is not None:  # sequential: the selection draws, then the fresh draws in rounds
            select = self.selection_counts(x, theta, n0=n0, seed=seed, idx=idx)
            return self.certify_selected(
                x, theta, select, n=n, alpha=alpha, seed=seed, idx=idx, radii=radii, radii_on=radii_on
            )
        x, theta, idx = self._prepare(x, theta, idx)
        common = dict(idx=idx, seed=seed, batch_size=self.batch_size, sampler=self.sampler)
        # 1. n0 selection draws choose the candidate class cA
        select = count_predictions(self.model, self.noise, x, theta, n0, phase=Phase.SELECT, **common)
        cA = select.argmax(dim=1)
        # 2. n fresh draws (another stream) count how often f returns cA; stop once abstaining is settled
        min_theta, geo_theta = theta_summary(theta, x.shape[0])
        stop = settling_misses(self.noise, n, alpha, min_theta) if early_stop else None
        kw = dict(num_classes=select.shape[1], target=cA, stop_misses=stop, **common)
        counts = count_predictions(self.model, self.noise, x, theta, n, phase=Phase.ESTIMATE, **kw)
        # 3.-4. one-sided Clopper-Pearson bound on pA; abstain below 1/2, else the region's gap
        args = (cA.cpu().numpy(), select.cpu().numpy(), counts.cpu().numpy(), n, alpha, min_theta, geo_theta)
        return certificate_from_counts(self.noise, *args, slack=self.pA_slack(theta))

    def certify_selected(
        self,
        x,
        theta,
        select_counts,
        *,
        n: int = 100_000,
        alpha: float = 0.001,
        seed: int = 0,
        idx=None,
        early_stop: bool = True,
        radii=None,
        radii_on: str = "radius",
        settle_radius=None,
        keep_ties: bool = False,
        schedule=None,
    ) -> Certificates:
        """Steps 2-4 of CERTIFY for inputs whose n0 selection draws are counted already
        (``selection_counts`` (B, C): they choose cA, never the bound). Same guarantee as ``certify``.

        For the ANCER fallback (core/ancer.py), which only needs to know whether this certificate beats
        another: settle_radius (B,) also stops an input once its radius can no longer exceed
        settle_radius[i] (keep_ties: can no longer reach it); with radii, it is a grid level the input
        need not beat. schedule: the looks of the sequential certification (default
        LookSchedule.geometric(n, alpha)).
        """
        n, alpha = _checks.check_budget(1, n, alpha)[1:]
        x, theta, idx = self._prepare(x, theta, idx)
        B = x.shape[0]
        common = dict(idx=idx, seed=seed, batch_size=self.batch_size, sampler=self.sampler)
        min_theta, geo_theta = theta_summary(theta, B)
        select = torch.as_tensor(np.asarray(select_counts), device=self.device)
        if select.ndim != 2 or select.shape[0] != B:
            raise ValueError(f"select_counts must hold the selection counts of each of {B} inputs")
        cA = select.argmax(dim=1)
        if radii is not None:  # 2'. fresh draws in rounds until the input's grid place is settled
            scale = (
                min_theta if _checks.check_choice("radii_on", radii_on, RADII_ON) == "radius" else geo_theta
            )
            seq = self._sequential(
                x, theta, cA, select.shape[1], radii, scale, settle_radius, schedule, n, alpha, common
            )
            counts, n, alpha = seq.counts, seq.n, seq.alpha
        else:  # 2. n fresh draws count how often f returns cA, until the outcome or the comparison is settled
            stop = None
            if early_stop or settle_radius is not None:
                stop = settling_misses(self.noise, n, alpha, min_theta, settle_radius, keep_ties=keep_ties)
            kw = dict(num_classes=select.shape[1], target=cA, stop_misses=stop, **common)
            counts = count_predictions(self.model, self.noise, x, theta, n, phase=Phase.ESTIMATE, **kw)
            counts = counts.cpu().numpy()
        # 3.-4. one-sided Clopper-Pearson bound on pA; abstain below 1/2, else the gap
        args = (cA.cpu().numpy(), select.cpu().numpy(), counts, n, alpha, min_theta, geo_theta)
        return certificate_from_counts(self.noise, *args, slack=self.pA_slack(theta))

    def pA_slack(self, theta: torch.Tensor):
        """(B,) bound on how far the sampler's table law moves any probability from the rounded law
        (0 for float noise, which is not sound in floating point in the first place: docs/soundness.md)."""
        if self.sampler is None:
            return 0.0
        return self.sampler.pA_slack(self.noise.name, theta)

    def _sequential(self, x, theta, cA, classes, radii, scale, settle_radius, schedule, n, alpha, common):
        """run_looks with this classifier's estimation stream: each round continues the inputs' streams."""
        grid = parse_radii(radii)
        schedule = LookSchedule.geometric(n, alpha) if schedule is None else schedule
        assert schedule.n == n and schedule.alpha <= alpha, "the schedule spends this call's n and alpha"
        floor = None
        if settle_radius is not None:  # levels the other certificate holds (radius: the isotropic one)
            floor = np.searchsorted(grid, np.asarray(settle_radius, dtype=np.float64), side="right") - 1
        idx = common["idx"]

        def draw(rows: np.ndarray, start: int, end: int) -> np.ndarray:
            at = torch.as_tensor(rows, device=x.device)
            kw = {**common, "idx": idx[rows]}
            counts = count_predictions(
                self.model,
                self.noise,
                x[at],
                theta[at],
                end,
                phase=Phase.ESTIMATE,
                num_classes=classes,
                start=start,
                **kw,
            )
            return counts.cpu().numpy()

        return run_looks(draw, cA.cpu().numpy(), classes, self.noise, schedule, scale, grid, floor)

    def selection_counts(self, x, theta, *, n0: int = 100, seed: int = 0, idx=None) -> np.ndarray:
        """(B, C) counts of CERTIFY's n0 selection draws: they choose the class (and may choose the
        noise, see predicted_radius), never the bound. certify_selected takes them back."""
        n0 = _checks.check_int("n0", n0)
        x, theta, idx = self._prepare(x, theta, idx)
        common = dict(idx=idx, seed=seed, batch_size=self.batch_size, sampler=self.sampler)
        return (
            count_predictions(self.model, self.noise, x, theta, n0, phase=Phase.SELECT, **common)
            .cpu()
            .numpy()
        )

    def predict(
        self, x, theta, *, n: int = 100_000, alpha: float = 0.001, seed: int = 0, idx=None
    ) -> np.ndarray:
        """PREDICT: the top class, or ABSTAIN unless the two-sided binomial test of the top-two counts
        has p-value <= alpha (then the answer differs from g(x) with probability at most alpha)."""
        n = _checks.check_int("n", n)
        alpha = _checks.check_alpha(alpha)
        x, theta, idx = self._prepare(x, theta, idx)
        counts = (
            count_predictions(
                self.model,
                self.noise,
                x,
                theta,
                n,
                phase=Phase.PREDICT,
                idx=idx,
                seed=seed,
                batch_size=self.batch_size,
                sampler=self.sampler,
            )
            .cpu()
            .numpy()
        )
        top2 = np.argsort(-counts, axis=1, kind="stable")[:, :2]
        n1 = np.take_along_axis(counts, top2[:, :1], 1)[:, 0]
        n2 = np.take_along_axis(counts, top2[:, 1:2], 1)[:, 0] if counts.shape[1] > 1 else 0 * n1
        pvalues = np.array([top_two_pvalue(a, b) for a, b in zip(n1, n2)])
        return np.where(pvalues <= alpha, top2[:, 0], ABSTAIN).astype(np.int64)


def certificate_from_counts(
    noise: NoiseFamily, cA, counts_select, counts, n: int, alpha: float, min_theta, geo_theta, *, slack=0.0
) -> Certificates:
    """Steps 3-4 of CERTIFY from the counts: one-sided Clopper-Pearson bound on pA, abstain below 1/2,
    else the noise family's gap. counts (B, C) are the fresh draws of a budget of n (fewer where an
    early stop settled the outcome: the undrawn count as misses). slack (scalar or (B,)): subtracted
    from the bound (the exact sampler's table error: P_rounded >= P_table - slack)."""
    cA = np.asarray(cA, dtype=np.int64)
    nA = np.take_along_axis(np.asarray(counts), cA[:, None], 1)[:, 0]
    lower = _pA_lower(nA, n, alpha)
    if np.any(np.asarray(slack) > 0):
        lower = np.maximum(lower - slack, 0.0)
    certified = lower >= 0.5
    gap = np.where(certified, noise.gap(np.where(certified, lower, 0.5)), 0.0)
    counts = np.asarray(counts)
    return Certificates.from_gap(
        np.where(certified, cA, ABSTAIN),
        lower,
        gap,
        min_theta,
        geo_theta,
        counts,
        counts_select=counts_select,
    )


def predicted_radius(noise: NoiseFamily, counts_select, n: int, alpha: float, min_theta) -> np.ndarray:
    """The radius CERTIFY would report if the top class's probability were its share of the selection
    draws: min_theta * gap(pA_lower(share * n, n, alpha)), 0 where that bound is below 1/2.

    A forecast from draws the bound never uses, so choosing a noise by it keeps the certificate sound."""
    counts = np.asarray(counts_select, dtype=np.float64)
    share = counts.max(axis=1) / counts.sum(axis=1)
    lower = _pA_lower(share * n, n, alpha)
    gap = np.where(lower >= 0.5, noise.gap(np.maximum(lower, 0.5)), 0.0)
    return np.asarray(min_theta, dtype=np.float64) * gap


def settling_misses(
    noise: NoiseFamily, n: int, alpha: float, min_theta, settle_radius=None, *, keep_ties: bool = False
) -> np.ndarray:
    """Per input, the fewest misses (draws other than cA) after which the outcome is settled:
    even if every remaining draw were cA, the input abstains, or (with settle_radius) its radius
    min_theta * gap could not exceed settle_radius (keep_ties: could only fall below it). 0 means
    settled before any draw."""
    min_theta = np.asarray(min_theta, dtype=np.float64).reshape(-1)
    limit = np.full(min_theta.shape, -np.inf) if settle_radius is None else np.asarray(settle_radius, float)

    def settled(misses: np.ndarray) -> np.ndarray:
        lower = _pA_lower(n - misses, n, alpha)
        radius = min_theta * noise.gap(np.maximum(lower, 0.5))
        return (lower < 0.5) | ((radius < limit) if keep_ties else (radius <= limit))

    lo, hi = np.zeros(min_theta.shape, dtype=np.int64), np.full(min_theta.shape, n, dtype=np.int64)
    while np.any(lo < hi):  # smallest m in [0, n] with settled(m); settled(n) holds (pA_lower = 0)
        open_ = lo < hi
        mid = (lo + hi) // 2
        ok = settled(mid)
        hi, lo = np.where(open_ & ok, mid, hi), np.where(open_ & ~ok, mid + 1, lo)
    return lo


class BaseForward(torch.nn.Module):
    """The base classifier as certification evaluates it.

    channels_last: 4-D inputs (and the model's weights, converted in place) in channels-last memory
    layout, which convolutions run faster in on recent GPUs. bf16: the forward pass under bfloat16
    autocast. Both change the arithmetic, so the certificates are those of the classifier so evaluated
    (still sound for it; the run records the options); argmax flips against float32 are rare.
    """

    def __init__(self, model, *, channels_last: bool = False, bf16: bool = False):
        super().__init__()
        self.model, self.channels_last, self.bf16 = model, channels_last, bf16
        if channels_last and isinstance(model, torch.nn.Module):
            model.to(memory_format=torch.channels_last)

    def forward(self, x):
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.bf16:
            return self.model(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.model(x).float()


def base_forward(model, *, channels_last: bool = False, bf16: bool = False, compile: bool = False):
    """model itself, or wrapped in BaseForward and compiled (torch.compile) as asked."""
    if channels_last or bf16:
        model = BaseForward(model, channels_last=channels_last, bf16=bf16)
    return torch.compile(model) if compile else model


def _model_device(model) -> torch.device:
    for tensor in list(getattr(model, "parameters", lambda: [])()) + list(
        getattr(model, "buffers", lambda: [])()
    ):
        return tensor.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
