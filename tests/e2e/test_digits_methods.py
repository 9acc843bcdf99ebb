"""The paper's comparison on the embedded digits data with the shipped models (fixed seeds, reduced budget).

Average proxy radius: ancer > isotropic > fixed (memory on), l2 and l1; certified accuracy of ancer is at
least the isotropic one at every radius of the standard grid (l2: 0 to 1.5 step 0.25; l1: 0 to 4 step 0.5,
and the l2 grid too, since radii of the half-width 0.5 model stay below 1). ancer runs at its defaults
(the certified objective, fallback select: one certificate at alpha) and takes the isotropic run's sigma_x
with --reuse (identical records, tested in test_reuse.py), so only theta and its certificate cost extra.
Issue 15's promise at this scale: the anisotropic certificate is kept (not fallen back to the isotropic
one) on most inputs, and its proxy radius is well above the isotropic run's radius.
"""

import numpy as np
import pytest

from anisocert.core.metrics import L1_GRID, L2_CIFAR_GRID
from anisocert.run.config import CertifyConfig
from anisocert.run.runner import certify_dataset, verify_run
from anisocert.run.store import RunStore
from anisocert.viz.report import load_results

BUDGET = dict(
    n0=50,
    n=10_000,
    alpha=0.001,
    skip=18,
    seed=0,
    iso_method="votes",
    iso_samples=200,
    batch_size=2000,
    inputs_per_batch=10,
    # KEPT and GAIN below are issue 15's figures, measured with the float sampler (2 % margins); with the
    # exact sampler (issue 22, the default on digits) the same seeds gave kept 0.867 and gain 1.249
    # (gaussian; the threshold is 1.25) and passed every assertion for uniform
    sampler="float",
)

# the anisotropic certificate's kept share and the proxy gain over the isotropic run's ACR, measured with
# these seeds: gaussian 0.900 (27 of 30) and 1.277x, uniform 0.867 (26 of 30) and 1.195x (issue 15); before
# it (public objective, fallback both) about 0.15 and 1.07x
KEPT = {"gaussian": 0.85, "uniform": 0.8}
GAIN = {"gaussian": 1.25, "uniform": 1.15}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("noise", "model", "sigma"),
    [
        ("gaussian", "builtin:digits-gaussian", 0.25),
        ("uniform", "builtin:digits-uniform", 0.5),
    ],
)
def test_ancer_beats_isotropic_beats_fixed(tmp_path, noise, model, sigma):
    runs = {}
    for method in ("fixed", "isotropic", "ancer"):
        reuse = str(tmp_path / "isotropic") if method == "ancer" else None
        config = CertifyConfig.from_flat(
            model=model, data="digits", noise=noise, method=method, sigma=sigma, reuse=reuse, **BUDGET
        )
        certify_dataset(config, tmp_path / method, progress=False)
        runs[method] = load_results(tmp_path / method)
    proxy = {m: float(np.mean(r.radius_proxy * r.correct)) for m, r in runs.items()}
    assert proxy["ancer"] > proxy["isotropic"] > proxy["fixed"], proxy
    grid = L2_CIFAR_GRID if noise == "gaussian" else np.union1d(L1_GRID, L2_CIFAR_GRID)
    accuracy = {m: [np.mean((r.radius >= g) & (r.correct == 1)) for g in grid] for m, r in runs.items()}
    assert all(a >= i for a, i in zip(accuracy["ancer"], accuracy["isotropic"])), accuracy
    store = RunStore.read(tmp_path / "ancer")
    kept = 1 - np.mean(store.certificates().fallback)
    store.close()
    gain = proxy["ancer"] / float(np.mean(runs["isotropic"].radius * runs["isotropic"].correct))
    assert kept >= KEPT[noise] and gain >= GAIN[noise], (kept, gain)
    for method in ("isotropic", "ancer"):
        assert verify_run(tmp_path / method, raw=False).conflicts == []
