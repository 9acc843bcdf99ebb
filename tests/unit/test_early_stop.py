"""The sound early stop of certification: the same certificates as drawing all n, fewer draws.

An input stops drawing once it must abstain whatever its remaining draws say (or, with settle_radius,
once its radius can no longer exceed the given one). The outcome must not depend on it, nor on the
batch size.
"""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from anisocert.core.bounds import pA_lower
from anisocert.core.noise import get_noise
from anisocert.core.smooth import ABSTAIN, Smoothed, settling_misses
from tests.linear import Linear2

W = torch.tensor([1.0, -2.0, 0.5, 1.5])


def _inputs():
    """Margins from clear cases to coin flips: some inputs certify, some abstain."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 4, generator=g) * 0.3
    x[:4] *= 0.02  # near the hyperplane: smoothed probability close to 1/2
    return x


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_early_stop_gives_the_full_runs_certificates_with_fewer_draws(noise):
    model, x = Linear2(W, 0.0), _inputs()
    theta = torch.full((12, 4), 0.6)
    smoothed = Smoothed(model, noise, batch_size=700)
    common = dict(n0=50, n=4000, alpha=0.001, seed=5)
    full = smoothed.certify(x, theta, early_stop=False, **common)
    fast = smoothed.certify(x, theta, early_stop=True, **common)
    np.testing.assert_array_equal(fast.prediction, full.prediction)
    np.testing.assert_array_equal(fast.gap, full.gap)
    np.testing.assert_array_equal(fast.radius, full.radius)
    np.testing.assert_array_equal(fast.counts_select, full.counts_select)
    certified = full.prediction != ABSTAIN
    assert certified.any() and (~certified).any()  # both outcomes are exercised
    # a certified input draws all n, identically; an abstaining coin flip stops early
    np.testing.assert_array_equal(fast.counts[certified], full.counts[certified])
    assert np.all(full.drawn == 4000)
    coin_flips = ~certified & (np.abs(full.counts[:, 1] / 4000 - 0.5) < 0.05)
    assert coin_flips.any() and np.all(fast.drawn[coin_flips] < 4000)
    # the undrawn count as misses, so the reported lower bound never exceeds the full run's
    assert np.all(fast.pA_lower <= full.pA_lower + 1e-15)


def test_early_stopped_counts_do_not_depend_on_the_batch_size():
    model, x = Linear2(W, 0.0), _inputs()
    theta = torch.full((12, 4), 0.6)
    runs = [
        Smoothed(model, "gaussian", batch_size=b).certify(x, theta, n0=50, n=3000, alpha=0.001, seed=2)
        for b in (97, 1000, 40000)
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.counts, runs[0].counts)
        np.testing.assert_array_equal(other.radius, runs[0].radius)


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
@pytest.mark.parametrize("n", [200, 5000])
def test_settling_misses_is_the_exact_threshold(noise, n):
    family, alpha = get_noise(noise), 0.001
    m = int(settling_misses(family, n, alpha, [1.0])[0])
    assert pA_lower(n - m, n, alpha) < 0.5 <= pA_lower(n - m + 1, n, alpha)
    # with a radius to beat: m misses make the radius at most it, m - 1 do not
    beat = 0.8 * family.gap(pA_lower(n, n, alpha))
    m = int(settling_misses(family, n, alpha, [1.0], settle_radius=[beat])[0])
    radius = family.gap(np.maximum(pA_lower(np.array([n - m, n - m + 1]), n, alpha), 0.5))
    assert radius[0] <= beat < radius[1]
    # keep_ties: stop only once the radius must fall below it; a reachable tie keeps drawing
    tie = family.gap(pA_lower(n - 3, n, alpha))
    m = int(settling_misses(family, n, alpha, [1.0], settle_radius=[tie], keep_ties=True)[0])
    assert m == 4
    assert int(settling_misses(family, n, alpha, [1.0], settle_radius=[tie])[0]) == 3


def test_settle_radius_stops_the_fallback_without_changing_the_comparison():
    model, x = Linear2(W, 0.0), _inputs()
    theta = torch.full((12, 4), 0.6)
    smoothed = Smoothed(model, "gaussian", batch_size=1000)
    common = dict(n0=50, n=4000, alpha=0.001, seed=1)
    full = smoothed.certify(x, theta, early_stop=False, **common)
    beat = np.full(12, float(np.median(full.radius[full.radius > 0])))
    select = smoothed.selection_counts(x, theta, n0=50, seed=1)
    settled = smoothed.certify_selected(x, theta, select, n=4000, alpha=0.001, seed=1, settle_radius=beat)
    # whatever was stopped, the question "does this radius exceed beat?" has the full run's answer
    np.testing.assert_array_equal(settled.radius > beat, full.radius > beat)
    np.testing.assert_array_equal(settled.radius[full.radius > beat], full.radius[full.radius > beat])
    assert settled.drawn.sum() < full.drawn.sum()


BAND_MODULE = """
import torch

class Band(torch.nn.Module):  # class 1 inside |x_0| < 0.5: theta may grow freely along x_1
    def forward(self, x):
        t = 30.0 * (0.5 - x[:, 0].abs())
        return torch.stack([torch.zeros_like(t), t], dim=1)

def factory():
    return Band()
"""


def _ancer_records(tmp_path, budget):
    from anisocert.run.config import CertifyConfig
    from anisocert.run.runner import certify_dataset
    from anisocert.run.store import RunStore

    runs = {}
    for early in (True, False):
        out = tmp_path / f"{budget['model']}-{early}".replace(":", "_")
        certify_dataset(
            CertifyConfig.from_flat(method="ancer", early_stop=early, **budget), out, progress=False
        )
        store = RunStore.read(out)
        runs[early] = [
            (r.idx, r.prediction, r.radius, r.proxy_radius, r.gap, r.fallback)
            for r in store.certificates().rows()
        ]
        store.close()
    return runs


def test_an_ancer_run_with_the_early_stop_has_the_records_of_one_without(tmp_path, monkeypatch):
    # the anisotropic draws stop once its radius cannot reach the isotropic one: the same choice
    common = dict(
        n0=20, n=1000, seed=2, iso_iterations=5, iso_samples=16, ancer_iterations=10, ancer_samples=16
    )
    # the fallback that draws both certificates, on the paper's procedure (what this test was written for)
    common.update(iso_method="gradient", ancer_objective="paper", fallback="both")
    # (the float sampler: the note below on which certificate is kept is a figure of its draws)
    digits = _ancer_records(
        tmp_path, dict(model="builtin:digits-gaussian", skip=45, sampler="float", **common)
    )
    assert digits[True] == digits[False]
    assert all(r[5] == 1 for r in digits[True])  # here the isotropic certificate is kept everywhere ...
    (tmp_path / "early_band_mod.py").write_text(BAND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    x = np.array([[a, 0.0] for a in (0.0, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9)], dtype=np.float32)
    np.savez(tmp_path / "band.npz", x=x, y=(np.abs(x[:, 0]) < 0.5).astype(int))
    band = _ancer_records(
        tmp_path,
        dict(model="early_band_mod:factory", data=f"npz:{tmp_path / 'band.npz'}", sigma=0.1, **common),
    )
    assert band[True] == band[False]
    kept = [r for r in band[True] if r[5] == 0]  # ... here mostly the anisotropic one, larger by volume
    assert 0 < len(kept) < len(band[True]) and all(r[3] > r[2] for r in kept)


def test_selection_counts_are_the_draws_certify_selects_with():
    model, x = Linear2(W, 0.0), _inputs()
    smoothed = Smoothed(model, "gaussian", batch_size=1000)
    common = dict(n0=64, seed=2, idx=list(range(3, 15)))
    select = smoothed.selection_counts(x, 0.6, **common)
    full = smoothed.certify(x, 0.6, n=3000, **common)
    again = smoothed.certify_selected(x, 0.6, select, n=3000, seed=2, idx=common["idx"])
    np.testing.assert_array_equal(select, full.counts_select)
    for name in ("prediction", "radius", "counts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(full, name))


def test_predicted_radius_is_the_certificate_of_the_selection_share():
    from anisocert.core.smooth import predicted_radius

    family = get_noise("gaussian")
    counts = np.array([[90, 10], [100, 0], [40, 60], [51, 49]])
    n, alpha, scale = 10_000, 0.001, np.array([0.5, 0.25, 1.0, 2.0])
    got = predicted_radius(family, counts, n, alpha, scale)
    share = counts.max(axis=1) / 100
    lower = pA_lower(share * n, n, alpha)
    expect = np.where(lower >= 0.5, scale * family.gap(np.maximum(lower, 0.5)), 0.0)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    assert got[1] == pytest.approx(0.25 * norm.ppf(alpha ** (1 / n)), rel=1e-9)  # all agree: the ceiling
    assert got[2] > 0 and got[3] == 0  # 60 of 100 forecast a certificate; 51 of 100 at n = 10,000 do not
