"""The per-chunk work of a run, free of any run store: choose the noise, then certify with fresh draws.

Used in this process by the runner and inside Ray workers by run/distributed.py.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..core.ancer import certify_with_fallback, optimise_sigma_x, optimise_theta_x
from ..core.noise import get_noise
from ..core.smooth import CertifyResult, Smoothed
from .config import CertifyConfig
from .records import Record
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
        self.config, self.model, self.dataset, self.device = config, model, dataset, device
        self.noise = get_noise(config.noise)
        self.smoothed = Smoothed(
            model,
            self.noise,
            batch_size=config.execution.batch_size,
            device=device,
            channels_last=config.execution.channels_last,
            bf16=config.execution.bf16,
            compile=config.execution.compile,
        )
        self.reused = reused if reused is not None else load_reused(config, config.model_sha256)
        self.on_phase = _quiet  # told "sigma search", "theta search", "certification" (the run's progress)

    def run(
        self, chunk: list[int], known: dict, commit_optimised=None, certify: bool = True
    ) -> tuple[list, list[Record]]:
        """(new optimisation rows, records) for the chunk. ``known`` maps idx -> stored optimisation
        result (RunStore.optimised() values); the missing ones are optimised here and handed to
        ``commit_optimised`` before certification starts (so a crash in certification keeps them).
        certify False: optimise only (no records)."""
        x = self.dataset.get(np.asarray(chunk)).to(self.device, torch.float32)
        new: list = []
        if self.config.method != "fixed":
            todo = [k for k, i in enumerate(chunk) if i not in known]
            if todo:
                new = self.optimise([chunk[k] for k in todo], x[todo])
                if commit_optimised is not None:
                    commit_optimised(new)
                known = {**known, **{row[0]: row[1:] for row in new}}
        if certify:
            self.on_phase("certification")
        return new, self.certify(chunk, x, known) if certify else []

    # -- theta -----------------------------------------------------------------------------------
    def noise_scales(self, chunk: list[int], x: torch.Tensor, known: dict):
        """(sigma (B,), theta (B,*D) or None, opt_time (B,)) for the chunk from the optimisation results."""
        c = self.config
        B = len(chunk)
        if c.method == "fixed":
            return np.full(B, c.sigma), None, np.zeros(B)
        sigma = np.array([known[i][0] for i in chunk], dtype=np.float64)
        opt_time = np.array([known[i][2] + known[i][3] for i in chunk])
        if c.method == "isotropic":
            return sigma, None, opt_time
        theta = np.stack([known[i][1] for i in chunk]).reshape(x.shape)
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

    # -- certification ---------------------------------------------------------------------------
    def certify(self, chunk: list[int], x: torch.Tensor, known: dict) -> list[Record]:
        """Certify with fresh draws: sigma (fixed or sigma_x) alone, or the ANCER steps 3-4 (core/ancer.py)."""
        c = self.config
        labels = self.dataset.labels[np.asarray(chunk)]
        sigma, theta, opt_time = self.noise_scales(chunk, x, known)
        t0 = time.perf_counter()
        if theta is None:
            iso_theta = torch.as_tensor(sigma, dtype=torch.float32, device=self.device)
            use = self.smoothed.certify(
                x,
                iso_theta,
                n0=c.budget.n0,
                n=c.budget.n,
                alpha=c.budget.alpha,
                seed=c.budget.seed,
                idx=chunk,
                early_stop=c.budget.early_stop,
                radii=c.budget.radii,
            )
            fallback = np.zeros(len(chunk), dtype=bool)
        else:
            use, fallback = certify_with_fallback(
                self.smoothed, x, chunk, sigma, theta, c.budget, c.fallback, self._iso_known()
            )
        elapsed = (time.perf_counter() - t0) / len(chunk)
        return [
            _record(
                i,
                int(labels[k]),
                use,
                k,
                sigma[k],
                None if theta is None or fallback[k] else theta[k].reshape(-1),
                int(fallback[k]),
                elapsed,
                opt_time[k],
            )
            for k, i in enumerate(chunk)
        ]

    def _iso_known(self) -> dict:
        """{idx: (cA, counts)} of a reused isotropic run: its fresh counts at sigma_x, not drawn again."""
        return {
            i: (r.predict if r.predict >= 0 else int(np.argmax(r.counts)), np.asarray(r.counts))
            for i, r in self.reused.iso_records.items()
        }


def _record(idx, label, res: CertifyResult, k, sigma, theta, fallback, elapsed, opt_time) -> Record:
    predict = int(res.prediction[k])
    return Record(
        idx=int(idx),
        label=label,
        predict=predict,
        radius=float(res.radius[k]),
        radius_proxy=float(res.proxy_radius[k]),
        correct=int(predict == label),
        min_sigma=float(res.min_theta[k]),
        time=float(elapsed),
        pA_lower=float(res.pA_lower[k]),
        gap=float(res.gap[k]),
        counts=tuple(int(v) for v in res.counts[k]),
        sigma=float(sigma),
        theta=theta,
        fallback=fallback,
        opt_time=float(opt_time),
        draws=int(res.draws[k]),
    )
