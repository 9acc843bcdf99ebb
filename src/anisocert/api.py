"""One function per CLI command; the CLI only parses, builds a config and calls these.

certify_dataset is the pipeline: choose theta (fixed / isotropic / ancer) -> certify with fresh
draws -> commit raw records -> memory-based certification in the recorded order -> export views.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import _checks
from .config import CertifyConfig
from .errors import InputError
from .noise import get_noise
from .progress import Progress
from .reuse import Reused, load_reused
from .smooth import (
    ABSTAIN,
    CertifyResult,
    Smoothed,
    certificate_from_counts,
    predicted_radius,
    theta_summary,
)
from .store import MemoryRecord, Record, RunStore, versions

__all__ = ["certify_dataset", "ChunkWorker", "RunSummary", "check_model_fits"]


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    summary: dict
    files: list[Path]

    optimised_only: bool = False

    def text(self) -> str:
        s = self.summary
        if self.optimised_only:
            return (
                f"{s['label']}: noise optimised for {s['optimised']} inputs -> {self.run_dir}; certify "
                "them with the same options and --out (or --reuse)"
            )
        # memory runs on the driver, sequentially: its cost is what more workers cannot cut
        cost = f" in {s['memory_seconds']:.1f} s" if "memory_seconds" in s else ""
        return (
            f"{s['label']}: {s['inputs']} inputs certified ({s['abstained']} abstained, "
            f"{s['fallbacks']} isotropic fallbacks, {s['memory_changed']} changed by memory{cost}) -> "
            f"{self.run_dir / 'certify.tsv'}"
        )


def check_model_fits(model, dataset, device) -> int:
    """Run one clean input through the model: a clear error for a wrong input shape or class count."""
    x = dataset.get(np.array([0])).to(device)
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as err:  # the model's own error says little to a user: name both shapes
        raise InputError(
            f"the model cannot take inputs of shape {tuple(x.shape[1:])} from --data "
            f"{dataset.spec} ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
            "check that --model and --data belong together"
        ) from None
    if out.ndim != 2 or out.shape[1] != dataset.num_classes:
        raise InputError(
            f"the model returns scores of shape {tuple(out.shape[1:])} but --data {dataset.spec} "
            f"has {dataset.num_classes} classes; check that --model and --data belong together"
        )
    return int(out.shape[1])


def certify_dataset(
    config: CertifyConfig,
    out,
    *,
    model=None,
    dataset=None,
    progress: bool = True,
    command: str = "",
    optimise_only: bool = False,
) -> RunSummary:
    """Certify the selected inputs of config.data into the run directory ``out`` (resumable).

    model / dataset may be passed in (a LoadedModel and a Dataset) to skip loading by name.
    optimise_only: store sigma_x (and theta_x) only (`anisocert optimize`); the same call without it
    on the same ``out`` then certifies with the stored results.
    """
    if optimise_only and config.method == "fixed":
        raise InputError("optimize chooses noise per input: use --method isotropic or ancer")
    from contextlib import nullcontext

    from .data import load_data, select_indices
    from .models import load_model

    distributed = config.workers > 1 or bool(config.ray_address)
    if distributed:  # fail before loading anything when Ray is missing or the address is dead
        from .distributed import certify_chunks, check_address, import_ray, ray_cluster

        import_ray()
        if config.ray_address:
            check_address(config.ray_address)
    # with Ray the driver only checks the model (on the CPU: the GPUs are the workers')
    device = config.device or ("cuda" if torch.cuda.is_available() and not distributed else "cpu")
    given = (model, dataset)
    loaded = model if model is not None else load_model(config.model, device=device)
    dataset = dataset if dataset is not None else load_data(config.data, config.split)
    device = _device_of(loaded.module, config.device)
    if config.compile and device.type != "cuda" and not distributed:
        raise InputError(f"--compile runs on CUDA only and the device is {device.type}: drop --compile")
    config = replace(config, model_sha256=getattr(loaded, "sha256", "") or "", outputs=loaded.outputs)
    check_model_fits(loaded.module, dataset, device)
    indices = [
        int(i)
        for i in select_indices(
            len(dataset), skip=config.skip, max_count=config.max_count, indices=config.indices
        )
    ]
    store = RunStore.open(out, config, command=command, versions=versions())
    try:
        reused = load_reused(config, config.model_sha256)
        worker = ChunkWorker(config, loaded.module, dataset, device, reused=reused)
        memory = (
            _MemoryCertifier(config, dataset, store) if config.uses_memory and not optimise_only else None
        )
        records = {r.idx: r for r in store.records()}
        pending = [int(i) for i in indices if int(i) not in records]
        store.add_optimised(reused.rows_for(pending, store.optimised(), need_theta=config.method == "ancer"))
        optimised = store.optimised()
        if optimise_only:
            pending = [i for i in pending if i not in optimised]
        step = config.inputs_per_batch
        chunks = [pending[s : s + step] for s in range(0, len(pending), step)]
        distributed = distributed and bool(chunks)  # nothing left: no cluster to start
        cluster = ray_cluster(config.workers, config.ray_address) if distributed else nullcontext()
        with cluster, Progress(progress, len(indices), len(indices) - len(pending)) as bar:
            worker.on_phase = bar.phase
            t0 = time.perf_counter()
            if memory is not None:
                bar.phase("memory")
                memory.advance(indices, records)
            memory_seconds = time.perf_counter() - t0
            if distributed:  # workers return optimisation rows and records; this process commits them
                bar.phase("Ray workers")
                done = certify_chunks(
                    config,
                    chunks,
                    optimised,
                    model=given[0],
                    dataset=given[1],
                    reused=reused,
                    certify=not optimise_only,
                )
            else:

                def in_process():  # optimisation rows are committed inside worker.run, before certification
                    for c in chunks:
                        known = {i: optimised[i] for i in c if i in optimised}
                        yield c, [], worker.run(c, known, store.add_optimised, not optimise_only)[1]

                done = in_process()
            for chunk, new_optimised, new in done:
                if new_optimised:
                    store.add_optimised(new_optimised)
                store.add_records(new)
                records.update((r.idx, r) for r in new)
                t0 = time.perf_counter()
                if memory is not None:
                    bar.phase("memory")
                    memory.advance(indices, records)
                memory_seconds += time.perf_counter() - t0
                bar(len(chunk))
    finally:
        try:
            files = store.export()
            summary = store.summary()
            summary["optimised"] = len(store.optimised())
        finally:  # closed (checkpointed, no -wal/-shm left) even when the views cannot be written
            store.close()
    if memory is not None:
        summary["memory_seconds"] = memory_seconds  # the driver's sequential share of the run
    return RunSummary(Path(out), summary, files, optimised_only=optimise_only)


# One optimisation result, as RunStore.add_optimised takes it:
# (idx, sigma, theta flattened float32 or None, sigma_time, theta_time).
OptimisedRow = tuple


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
            batch_size=config.batch_size,
            device=device,
            channels_last=config.channels_last,
            bf16=config.bf16,
            compile=config.compile,
        )
        self.reused = reused if reused is not None else load_reused(config, config.model_sha256)
        self.on_phase = lambda name: None  # told "sigma search", "theta search", "certification"

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
        from .optimise import optimise_sigma, optimise_theta

        c, B = self.config, len(idx)
        partial = self.reused.partial(idx, {})
        sigma = np.array([partial[i][0] if i in partial else np.nan for i in idx])
        sigma_time = np.array([partial[i][2] if i in partial else 0.0 for i in idx])
        need = [k for k, i in enumerate(idx) if i not in partial]
        common = dict(seed=c.seed, outputs=c.outputs, batch_size=c.batch_size)
        if need:
            self.on_phase("sigma search")
            t0 = time.perf_counter()
            found = optimise_sigma(
                self.model,
                self.noise,
                x[need],
                c.sigma,
                iterations=c.iso_iterations,
                lr=c.iso_lr,
                samples=c.iso_samples,
                method=c.iso_method,
                idx=[idx[k] for k in need],
                sigma_min=c.iso_sigma_min,
                sigma_max=c.iso_sigma_max,
                grid_points=c.iso_grid_points,
                refine_steps=c.iso_refine_steps,
                certify_n=c.n,
                certify_alpha=c.alpha,  # not alpha/2 of the fallback: --reuse across methods must agree
                **common,
            ).sigma
            sigma[need] = found.detach().double().cpu().numpy()
            sigma_time[need] = (time.perf_counter() - t0) / len(need)
        thetas, theta_time = [None] * B, 0.0
        if c.method == "ancer":
            self.on_phase("theta search")
            t1 = time.perf_counter()
            theta = optimise_theta(
                self.model,
                self.noise,
                x,
                torch.as_tensor(sigma, dtype=x.dtype, device=x.device),
                iterations=c.ancer_iterations,
                lr=c.ancer_lr,
                samples=c.ancer_samples,
                kappa=c.kappa,
                tol=c.ancer_tol,
                patience=c.ancer_patience,
                idx=idx,
                **common,
            ).theta
            thetas = list(theta.detach().reshape(B, -1).float().cpu().numpy())
            theta_time = (time.perf_counter() - t1) / B
        return [(i, float(sigma[k]), thetas[k], float(sigma_time[k]), theta_time) for k, i in enumerate(idx)]

    # -- certification ---------------------------------------------------------------------------
    def certify(self, chunk: list[int], x: torch.Tensor, known: dict) -> list[Record]:
        c = self.config
        labels = self.dataset.labels[np.asarray(chunk)]
        sigma, theta, opt_time = self.noise_scales(chunk, x, known)
        t0 = time.perf_counter()
        iso_theta = torch.as_tensor(sigma, dtype=torch.float32, device=self.device)
        kw = dict(n0=c.n0, n=c.n, alpha=c.effective_alpha, seed=c.seed, idx=chunk, early_stop=c.early_stop)
        if theta is not None and c.fallback == "select":
            use, fallback = self._selected(
                chunk, x, iso_theta, torch.as_tensor(theta, device=self.device), kw
            )
        else:
            use, fallback = self._certify_then_compare(chunk, x, iso_theta, theta, kw)
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

    def _certify_then_compare(self, chunk, x, iso_theta, theta, kw) -> tuple[CertifyResult, np.ndarray]:
        """The isotropic certificate (and, for ancer with fallback 'both' or 'off', the anisotropic one);
        with both, the anisotropic one is reported only where its radius reaches the isotropic one (it
        then contains it). Returns (what is reported, where the isotropic one was the larger)."""
        iso = aniso = None
        if theta is None or self.config.fallback == "both":
            iso = self._isotropic(chunk, x, iso_theta, kw)
        if theta is None:
            return iso, np.zeros(len(chunk), dtype=bool)
        # With the early stop the anisotropic draws end as soon as it cannot reach the isotropic radius:
        # the same choice, and most of its draws saved where the isotropic certificate is the larger.
        settle = iso.radius if iso is not None and kw["early_stop"] else None
        theta_t = torch.as_tensor(theta, device=self.device)
        aniso = self.smoothed.certify(x, theta_t, settle_radius=settle, keep_ties=True, **kw)
        if iso is None:
            return aniso, np.zeros(len(chunk), dtype=bool)
        fallback = aniso.radius < iso.radius
        return _rows_where(fallback, iso, aniso), fallback

    def _selected(self, chunk, x, iso_theta, theta, kw) -> tuple[CertifyResult, np.ndarray]:
        """Fallback 'select': the n0 selection draws, taken at sigma_x and at theta_x, forecast both
        radii (smooth.predicted_radius); only the larger forecast is certified, with its own fresh
        draws at alpha. The choice, like theta_x itself, never sees the draws of the bound: sound."""
        sel = dict(n0=kw["n0"], seed=kw["seed"], idx=chunk)
        iso_select = self.smoothed.selection_counts(x, iso_theta, **sel)
        aniso_select = self.smoothed.selection_counts(x, theta, **sel)
        n, alpha = kw["n"], kw["alpha"]
        forecast_iso = predicted_radius(self.noise, iso_select, n, alpha, iso_theta.double().cpu().numpy())
        min_theta = theta.reshape(len(chunk), -1).min(dim=1).values.double().cpu().numpy()
        forecast_aniso = predicted_radius(self.noise, aniso_select, n, alpha, min_theta)
        # ties go to theta_x (at an equal radius its region contains the isotropic ball); where theta_x
        # is forecast to abstain, the isotropic noise is certified
        fallback = (forecast_aniso < forecast_iso) | (forecast_aniso == 0)
        parts = []
        iso_k, aniso_k = np.flatnonzero(fallback), np.flatnonzero(~fallback)
        if len(iso_k):
            sub, rows = [chunk[k] for k in iso_k], torch.as_tensor(iso_k, device=x.device)
            parts.append((iso_k, self._isotropic(sub, x[rows], iso_theta[rows], kw, iso_select[iso_k])))
        if len(aniso_k):
            rows = torch.as_tensor(aniso_k, device=x.device)
            kw_a = {**kw, "idx": [chunk[k] for k in aniso_k], "select_counts": aniso_select[aniso_k]}
            parts.append((aniso_k, self.smoothed.certify(x[rows], theta[rows], **kw_a)))
        return _combine(len(chunk), parts), fallback

    def _isotropic(self, chunk, x, iso_theta, kw, select_counts=None) -> CertifyResult:
        """The isotropic certificates of the chunk; those of a reused isotropic run come from its counts.
        select_counts: the chunk's selection draws at sigma_x, when already drawn."""
        reused = [
            k for k, i in enumerate(chunk) if i in self.reused.iso_records and self.config.method == "ancer"
        ]
        fresh = [k for k in range(len(chunk)) if k not in reused]
        parts = []
        if fresh:
            kw = {**kw, "idx": [chunk[k] for k in fresh]}
            if select_counts is not None:
                kw["select_counts"] = select_counts[fresh]
            parts.append((fresh, self.smoothed.certify(x[fresh], iso_theta[fresh], **kw)))
        if reused:
            records = [self.reused.iso_records[chunk[k]] for k in reused]
            # theta's summary exactly as a fresh certificate computes it (bit-identical records)
            shape = (len(reused), *x.shape[1:])
            expanded = iso_theta[reused].reshape(-1, *([1] * (x.ndim - 1))).expand(shape)
            min_theta, geo_theta = theta_summary(expanded, len(reused))
            counts = np.array([r.counts for r in records])
            cA = np.array([r.predict if r.predict >= 0 else int(np.argmax(r.counts)) for r in records])
            result = certificate_from_counts(
                self.noise, cA, np.zeros_like(counts), counts, kw["n"], kw["alpha"], min_theta, geo_theta
            )
            parts.append((reused, result))
        return _combine(len(chunk), parts)


def _rows_where(mask: np.ndarray, first: CertifyResult, second: CertifyResult) -> CertifyResult:
    """Row k of first where mask[k], else row k of second (results for the same B inputs)."""
    out = {}
    for name in CertifyResult.__dataclass_fields__:
        a, b = getattr(first, name), getattr(second, name)
        out[name] = np.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)
    return CertifyResult(**out)


def _combine(B: int, parts) -> CertifyResult:
    """One CertifyResult for B inputs from results of subsets [(positions, result), ...]."""
    if len(parts) == 1 and len(parts[0][0]) == B:
        return parts[0][1]
    out = {}
    for name in CertifyResult.__dataclass_fields__:
        first = getattr(parts[0][1], name)
        values = np.zeros((B, *first.shape[1:]), dtype=first.dtype)
        for positions, result in parts:
            values[positions] = getattr(result, name)
        out[name] = values
    return CertifyResult(**out)


class _MemoryCertifier:
    """Memory-based certification on the driver: sequential by nature, in the recorded order."""

    def __init__(self, config: CertifyConfig, dataset, store: RunStore):
        self.config, self.dataset, self.store = config, dataset, store
        self.noise = get_noise(config.noise)
        self.memory = None
        self.memory_done: set[int] = set()

    def advance(self, order: Sequence[int], records: dict[int, Record]) -> None:
        """Process raw records in the recorded order, as far as they are contiguous from the start.

        On the first call the memory is rebuilt by replaying the stored (reported) regions.
        """
        from .memory import CertificateMemory

        dim = int(np.prod(self.dataset.input_shape))
        if self.memory is None:
            self.memory = CertificateMemory(self.noise.norm, dim, on_inside=self.config.on_inside)
            stored = self.store.memory_records()
            self.memory_done = {m.idx for m in stored}
            replay = [m for m in stored if m.predict != ABSTAIN and m.gap > 0]
            for part in _batches(replay, 256):
                for m, center in zip(part, self._centers([m.idx for m in part])):
                    self.memory.add(center, _theta_of(records[m.idx], dim), m.gap, m.predict)
        todo = []
        for i in order:
            if i in self.memory_done:
                continue
            if i not in records:
                break
            todo.append(i)
        for part in _batches(todo, 256):
            rows = []
            for i, center in zip(part, self._centers(part)):
                r = records[i]
                theta = _theta_of(r, dim)
                decision = self.memory.certify(center, theta, r.gap, r.predict)
                gap = float(decision.gap) if decision.prediction != ABSTAIN else 0.0
                geo = float(np.exp(np.mean(np.log(theta))))
                rows.append(
                    MemoryRecord(
                        seq=len(self.memory_done) + len(rows),
                        idx=i,
                        predict=int(decision.prediction),
                        gap=gap,
                        radius=float(theta.min()) * gap,
                        radius_proxy=geo * gap,
                        correct=int(decision.prediction == r.label),
                        status=decision.status,
                        conflicts=int(decision.conflicts),
                    )
                )
            self.store.add_memory(rows)
            self.memory_done.update(part)

    def _centers(self, idx: list[int]) -> np.ndarray:
        """Flattened float64 inputs: the centres of their regions."""
        return self.dataset.get(np.asarray(idx)).reshape(len(idx), -1).double().numpy()


def _theta_of(record: Record, dim: int) -> np.ndarray:
    if record.theta is not None:
        return record.theta.astype(np.float64)
    return np.full(dim, float(record.sigma))


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
    )


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _device_of(module, requested) -> torch.device:
    if requested:
        return _checks.check_device(requested)
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


@dataclass(frozen=True)
class VerifyOutcome:
    run_dir: Path
    regions: int
    conflicts: list
    raw_conflicts: list | None
    memory_changed: int
    pairs_checked: int

    def text(self) -> str:
        head = (
            f"{self.run_dir}: {self.regions} certified regions, {self.pairs_checked} foreign pairs checked "
            f"exactly, {len(self.conflicts)} intersecting pairs with different predictions"
        )
        if self.raw_conflicts is not None:
            head += (
                f"; memory changed {self.memory_changed} certificates (without memory: "
                f"{len(self.raw_conflicts)} intersecting pairs)"
            )
        return head


def verify_run(run_dir, *, dataset=None, raw: bool = True) -> VerifyOutcome:
    """Check independently, over all pairs, that no two reported regions with different predictions
    intersect (verify.py shares no code path with memory.py). Also checks the raw certificates."""
    from .data import load_data
    from .verify import verify_regions

    store = RunStore.read(run_dir)
    try:
        config = store.config
        dataset = dataset if dataset is not None else load_data(config.data, config.split)
        records = store.records()
        memory = {m.idx: m for m in store.memory_records()}
        norm = get_noise(config.noise).norm
        dim = int(np.prod(dataset.input_shape))
        idx = [r.idx for r in records]
        centers = (
            dataset.get(np.asarray(idx, dtype=np.int64)).reshape(len(idx), -1).double().numpy()
            if idx
            else np.zeros((0, dim))
        )
        thetas = np.stack([_theta_of(r, dim) for r in records]) if idx else np.zeros((0, dim))
        raw_gaps = np.array([r.gap for r in records])
        raw_pred = np.array([r.predict for r in records])
        if config.uses_memory:
            gaps = np.array([memory[i].gap if i in memory else 0.0 for i in idx])
            pred = np.array([memory[i].predict if i in memory else ABSTAIN for i in idx])
        else:
            gaps, pred = raw_gaps, raw_pred
        final = verify_regions(centers, thetas, gaps, pred, norm)
        before = (
            verify_regions(centers, thetas, raw_gaps, raw_pred, norm) if raw and config.uses_memory else None
        )
        changed = sum(m.status in ("shrunk", "abstain_inside", "adopted") for m in memory.values())
        return VerifyOutcome(
            Path(run_dir),
            int(np.sum(pred != ABSTAIN)),
            [(idx[i], idx[j]) for i, j in final.conflicts],
            None if before is None else [(idx[i], idx[j]) for i, j in before.conflicts],
            changed,
            final.pairs_checked,
        )
    finally:
        store.close()
