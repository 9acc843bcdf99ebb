"""The per-chunk work of a run, free of any run store: choose the noise, then certify with fresh draws.

Used in this process by the runner and inside Ray workers by run/distributed.py.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..core.ancer import certify_with_fallback, optimise_sigma_x, optimise_theta_x
from ..core.noise import get_noise
from ..core.smooth import Smoothed
from .config import CertifyConfig
from .reuse import Reused, load_reused

__all__ = ["ChunkWorker", "OptimisedRow"]

# One optimisation result, as RunStore.add_optimised takes it:
# (idx, sigma, theta flattened float32 or None, sigma_time, theta_time).
OptimisedRow = tuple


def _quiet(phase: str) -> None:
    """The default phase listener: no progress to tell (a Ray worker, a worker used from Python)."""


class ChunkWorker:
    """The per-chunk work of a run, free of any run store: choose theta, then certify with fresh draws.

    Pure given (config, model, data): a chunk's records depend only on its indices and on the
    optimisation results passed in, so any process (the driver, a Ray worker) can run any chunk.
    """

    def __init__(self, config: CertifyConfig, model, dataset, device, reused: Reused | None = None):
        if config.sampler is None:  # not resolved by the runner: exact whenever the data have a grid
            config = config.with_grid(dataset.levels)
        if config.sampler == "exact" and config.round_inputs:  # the centres are the rounded inputs
            dataset = dataset.rounded_to_grid(config.levels)
        self.config, self.model, self.dataset, self.device = config, model, dataset, device
        self.noise = get_noise(config.noise)
        self.sampler = config.exact_sampler()
        self.smoothed = Smoothed(
            model,
            self.noise,
            batch_size=config.execution.batch_size,
            device=device,
            channels_last=config.execution.channels_last,
            bf16=config.execution.bf16,
            compile=config.execution.compile,
            sampler=self.sampler,
        )
        self.reused = reused if reused is not None else load_reused(config, config.model_sha256)
        self.on_phase = _quiet  # told "sigma search", "theta search", "certification" (the run's progress)

    def run(self, chunk: list[int], known: dict, commit_optimised=None, certify: bool = True):
        """(new optimisation rows, the chunk's Certificates or None) for the chunk. ``known`` maps idx ->
        stored optimisation result (RunStore.optimised() values); the missing ones are optimised here and
        handed to ``commit_optimised`` before certification starts (so a crash in certification keeps
        them). certify False: optimise only.

        Certification uses fresh draws: the fixed sigma or sigma_x alone (Smoothed.certify), or theta_x
        with the ANCER fallback (core/ancer.py)."""
        c = self.config
        x = self.dataset.get(np.asarray(chunk)).to(self.device, torch.float32)
        new: list = []
        if c.method != "fixed":
            todo = [k for k, i in enumerate(chunk) if i not in known]
            if todo:
                new = self.optimise([chunk[k] for k in todo], x[todo])
                if commit_optimised is not None:
                    commit_optimised(new)
                known = {**known, **{row[0]: row[1:] for row in new}}
        if not certify:
            return new, None
        self.on_phase("certification")
        sigma, theta, opt_time = self.noise_scales(chunk, x, known)
        t0 = time.perf_counter()
        if theta is None:
            iso_theta = torch.as_tensor(sigma, dtype=torch.float32, device=self.device)
            b = c.budget
            kw = dict(n0=b.n0, n=b.n, alpha=b.alpha, seed=b.seed, early_stop=b.early_stop, radii=b.radii)
            certs = self.smoothed.certify(x, iso_theta, idx=chunk, **kw)
            fallback = np.zeros(len(chunk), dtype=bool)
        else:
            certs, fallback = certify_with_fallback(
                self.smoothed, x, chunk, sigma, theta, c.budget, c.fallback, self._iso_known()
            )
        elapsed = (time.perf_counter() - t0) / len(chunk)
        return new, certs.with_noise(sigma, theta, fallback).replace(
            idx=np.asarray(chunk, dtype=np.int64),
            label=np.asarray(self.dataset.labels[np.asarray(chunk)], dtype=np.int64),
            time=np.full(len(chunk), elapsed),
            opt_time=np.asarray(opt_time, dtype=np.float64),
        )

    # -- theta -----------------------------------------------------------------------------------
    def noise_scales(self, chunk: list[int], x: torch.Tensor, known: dict):
        """(sigma (B,), theta (B,*D) or None, opt_time (B,)) for the chunk from the optimisation results."""
        c = self.config
        B = len(chunk)
        if c.method == "fixed":
            return np.full(B, c.sigma), None, np.zeros(B)
        sigma = np.array([known[i][0] for i in chunk], dtype=np.float64)
        opt_time = np.array([known[i][2] + known[i][3] for i in chunk])
        theta = None if c.method == "isotropic" else np.stack([known[i][1] for i in chunk]).reshape(x.shape)
        if self.sampler is not None:  # one table per theta: certify on the menu (rounded down)
            sigma = self.sampler.menu(sigma).astype(np.float64)
            theta = None if theta is None else self.sampler.menu(theta)
        return sigma, theta, opt_time

    def optimise(self, idx: list[int], x: torch.Tensor) -> list[OptimisedRow]:
        """sigma_x (DDRS), then theta_x for ancer; a sigma_x reused from --reuse is not recomputed."""
        c, B = self.config, len(idx)
        partial = self.reused.partial(idx, {})
        sigma = np.array([partial[i][0] if i in partial else np.nan for i in idx])
        sigma_time = np.array([partial[i][2] if i in partial else 0.0 for i in idx])
        need = [k for k, i in enumerate(idx) if i not in partial]
        common = dict(outputs=c.outputs, batch_size=c.execution.batch_size)
        if need:
            self.on_phase("sigma search")
            t0 = time.perf_counter()
            sigma[need] = optimise_sigma_x(
                self.model,
                self.noise,
                x[need],
                [idx[k] for k in need],
                c.sigma,
                c.sigma_search,
                c.budget,
                **common,
            )
            sigma_time[need] = (time.perf_counter() - t0) / len(need)
        thetas, theta_time = [None] * B, 0.0
        if c.method == "ancer":
            self.on_phase("theta search")
            t1 = time.perf_counter()
            theta = optimise_theta_x(
                self.model, self.noise, x, idx, sigma, c.theta_search, c.budget, **common
            )
            thetas = list(theta.reshape(B, -1))
            theta_time = (time.perf_counter() - t1) / B
        return [(i, float(sigma[k]), thetas[k], float(sigma_time[k]), theta_time) for k, i in enumerate(idx)]

    def _iso_known(self) -> dict:
        """{idx: (cA, counts)} of a reused isotropic run: its fresh counts at sigma_x, not drawn again."""
        return {
            i: (r.prediction if r.prediction >= 0 else int(np.argmax(r.counts)), np.asarray(r.counts))
            for i, r in self.reused.iso_records.items()
        }
