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

from .. import _checks
from ..core.certificates import ABSTAIN, MEMORY_CHANGED, Certificate, Certificates
from ..core.noise import get_noise
from ..errors import InputError
from .config import CertifyConfig
from .progress import Progress
from .reuse import load_reused
from .store import RunStore, versions
from .views import export
from .worker import ChunkWorker

__all__ = ["certify_dataset", "RunSummary", "check_model_fits", "verify_run"]


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
        copied = f"{s['copied'][0]} copied from {s['copied'][1]}, " if "copied" in s else ""
        return (
            f"{s['label']}: {s['inputs']} inputs certified ({copied}{s['abstained']} abstained, "
            f"{s['fallbacks']} isotropic fallbacks, {s['memory_changed']} changed by memory{cost}) -> "
            f"{self.run_dir / 'certify.tsv'}"
        )


def check_model_fits(model, dataset, device, input_shape=None) -> int:
    """The model's declared input shape (`input_shape`, else its ``input_shape`` attribute) must be the
    data's, with no broadcasting (a 3-channel model would silently spread 1-channel data); then one clean
    input runs through it: a clear error for any other shape problem or a wrong class count."""
    declared = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if declared is not None and tuple(int(d) for d in declared) != tuple(dataset.input_shape):
        name = getattr(model, "arch", None) or type(model).__name__
        raise InputError(
            f"the model ({name}) takes inputs of shape {tuple(int(d) for d in declared)} but --data "
            f"{dataset.spec} has inputs of shape {tuple(dataset.input_shape)}; check that --model and "
            "--data belong together"
        )
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
    distributed = config.execution.workers > 1 or bool(config.execution.ray_address)
    if distributed:  # fail before loading anything when Ray is missing or the address is dead
        _check_ray(config.execution.ray_address)
    config, loaded, data, device, indices = _load(config, model, dataset, distributed)
    store = RunStore.open(out, config, command=command, versions=versions())
    memory, taken = None, 0
    try:
        reused = load_reused(config, config.model_sha256)
        worker = ChunkWorker(config, loaded.module, data, device, reused=reused)
        memory = _MemoryCertifier(config, data, store) if config.uses_memory and not optimise_only else None
        done = {cert.idx: cert for cert in store.certificates().rows()}
        taken = 0 if optimise_only else _take_certificates(config, store, done, reused, indices)
        pending, optimised = _pending(config, indices, done, store, reused, optimise_only)
        step = config.execution.inputs_per_batch
        chunks = [pending[s : s + step] for s in range(0, len(pending), step)]
        with Progress(progress, len(indices), len(indices) - len(pending)) as bar:
            worker.on_phase = bar.phase
            commit = _Commit(store, done, memory, indices, bar)
            if (
                distributed and chunks
            ):  # workers return optimisation rows and certificates; this process commits
                bar.phase("Ray workers")
                _on_ray(config, chunks, optimised, model, dataset, reused, optimise_only, commit)
            for chunk in [] if distributed else chunks:  # optimisation rows are committed before certifying
                known = {i: optimised[i] for i in chunk if i in optimised}
                commit(chunk, [], worker.run(chunk, known, store.add_optimised, not optimise_only)[1])
    finally:
        try:
            files = export(store)
            summary = {**store.summary(), "optimised": len(store.optimised())}
        finally:  # closed (checkpointed, no -wal/-shm left) even when the views cannot be written
            store.close()
    if memory is not None:
        summary["memory_seconds"] = memory.seconds  # the driver's sequential share of the run
    if taken:
        summary["copied"] = (taken, str(config.execution.reuse))
    return RunSummary(Path(out), summary, files, optimised_only=optimise_only)


def _check_ray(address: str | None) -> None:
    """Ray is installed, and the cluster at address (if given) answers."""
    from .distributed import check_address, import_ray

    import_ray()
    if address:
        check_address(address)


def _on_ray(config, chunks, optimised, model, dataset, reused, optimise_only: bool, commit) -> None:
    """Certify the chunks on Ray workers, committing each as it comes back."""
    from .distributed import certify_chunks, ray_cluster

    with ray_cluster(config.execution.workers, config.execution.ray_address):
        kw = dict(model=model, dataset=dataset, reused=reused, certify=not optimise_only)
        for chunk, new_optimised, certs in certify_chunks(config, chunks, optimised, **kw):
            commit(chunk, new_optimised, certs)


def _load(config: CertifyConfig, model, dataset, distributed: bool):
    """(config with the model's hash and output kind, the model, the data set, the device, the indices)."""
    from ..data import load_data, select_indices
    from ..models import load_model

    # with Ray the driver only checks the model (on the CPU: the GPUs are the workers')
    device = config.execution.device or ("cuda" if torch.cuda.is_available() and not distributed else "cpu")
    loaded = model if model is not None else load_model(config.model, device=device)
    dataset = dataset if dataset is not None else load_data(config.data, config.split)
    device = _device_of(loaded.module, config.execution.device)
    if config.execution.compile and device.type != "cuda" and not distributed:
        raise InputError(f"--compile runs on CUDA only and the device is {device.type}: drop --compile")
    config = replace(config, model_sha256=getattr(loaded, "sha256", "") or "", outputs=loaded.outputs)
    config = config.with_grid(dataset.levels)  # the exact sampler whenever the data are on a grid
    dataset = grid_dataset(config, dataset)
    check_model_fits(loaded.module, dataset, device, loaded.input_shape)
    selected = select_indices(
        len(dataset), skip=config.skip, max_count=config.max_count, indices=config.indices
    )
    if config.sampler == "exact" and not config.round_inputs and not dataset.decoded:
        _check_on_grid(
            dataset, selected, config.levels
        )  # before the store opens (decoded sets: at draw time)
    return config, loaded, dataset, device, [int(i) for i in selected]


def grid_dataset(config: CertifyConfig, dataset):
    """The data as certified: rounded to the grid with --round (the centres of the regions), else as is."""
    if config.sampler == "exact" and config.round_inputs:
        return dataset.rounded_to_grid(config.levels)
    return dataset


def _check_on_grid(dataset, selected, levels: int) -> None:
    """An input off the grid is refused, naming it, before anything is written."""
    from ..core.exact import check_on_grid

    for start in range(0, len(selected), 4096):
        part = selected[start : start + 4096]
        check_on_grid(dataset.get(part), part, levels)


def _pending(config: CertifyConfig, indices, done: dict, store: RunStore, reused, optimise_only: bool):
    """(the inputs still to do, in order; the stored optimisation results), after taking what --reuse gives."""
    pending = [int(i) for i in indices if int(i) not in done]
    store.add_optimised(reused.rows_for(pending, store.optimised(), need_theta=config.method == "ancer"))
    optimised = store.optimised()
    if optimise_only:
        pending = [i for i in pending if i not in optimised]
    return pending, optimised


def _take_certificates(config: CertifyConfig, store: RunStore, done: dict, reused, indices) -> int:
    """Store the certificates --reuse holds for selected inputs (the same run on another selection: exactly
    what this run would compute), with their optimisation rows; memory then processes them in order.
    Returns how many were copied."""
    taken = reused.certificates_for(indices, done)
    if taken is None:
        return 0
    rows = reused.rows_for(taken.idx.tolist(), store.optimised(), need_theta=config.method == "ancer")
    store.add_optimised(rows)
    store.add_certificates(taken)
    done.update((cert.idx, cert) for cert in taken.rows())
    return len(taken)


class _Commit:
    """Stores each finished chunk, then advances memory-based certification as far as it can go."""

    def __init__(self, store: RunStore, done: dict, memory, indices, bar):
        self.store, self.done, self.memory, self.indices, self.bar = store, done, memory, indices, bar
        if memory is not None:  # memory rebuilt, and the stored certificates it has not seen processed
            memory.advance(indices, done, bar)

    def __call__(self, chunk: list[int], new_optimised: list, certs: Certificates | None) -> None:
        self.store.add_optimised(new_optimised)
        if certs is not None:
            self.store.add_certificates(certs)
            self.done.update((cert.idx, cert) for cert in certs.rows())
            if self.memory is not None:
                self.memory.advance(self.indices, self.done, self.bar)
        self.bar(len(chunk))


class _MemoryCertifier:
    """Memory-based certification on the driver: sequential by nature, in the recorded order."""

    def __init__(self, config: CertifyConfig, dataset, store: RunStore):
        self.config, self.dataset, self.store = config, dataset, store
        self.noise = get_noise(config.noise)
        self.memory = None
        self.memory_done: set[int] = set()
        self.seconds = 0.0  # time spent in advance: the driver's sequential share of the run

    def advance(self, order: Sequence[int], done: dict[int, Certificate], bar=None) -> None:
        """Process the raw certificates in the recorded order, as far as they are contiguous from the
        start (timed into ``seconds``; ``bar`` hears the phase).

        On the first call the memory is rebuilt by replaying the stored (reported) regions.
        """
        t0 = time.perf_counter()
        if bar is not None:
            bar.phase("memory")
        try:
            self._advance(order, done)
        finally:
            self.seconds += time.perf_counter() - t0

    def _advance(self, order: Sequence[int], done: dict[int, Certificate]) -> None:
        from ..core.memory import CertificateMemory

        if self.memory is None:
            dim = int(np.prod(self.dataset.input_shape))
            self.memory = CertificateMemory(self.noise.norm, dim, on_inside=self.config.on_inside)
            stored = self.store.memory_certificates()
            self.memory_done = set(stored.idx.tolist())
            for part in _batches(list(range(len(stored))), 256):
                replay = stored.take(part)
                self.memory.replay(self._centers(replay.idx), replay)
        todo = []
        for i in order:
            if i in self.memory_done:
                continue
            if i not in done:
                break
            todo.append(i)
        for part in _batches(todo, 256):
            reported = self.memory.certify_all(
                self._centers(part), Certificates.from_rows([done[i] for i in part])
            )
            self.store.add_memory(reported, first_seq=len(self.memory_done))
            self.memory_done.update(part)

    def _centers(self, idx) -> np.ndarray:
        """Flattened float64 inputs: the centres of their regions."""
        return self.dataset.get(np.asarray(idx, dtype=np.int64)).reshape(len(idx), -1).double().numpy()


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
    from ..core.verify import verify_certificates
    from ..data import load_data

    store = RunStore.read(run_dir)
    try:
        config = store.config
        dataset = grid_dataset(
            config, dataset if dataset is not None else load_data(config.data, config.split)
        )
        issued = store.certificates()
        norm = get_noise(config.noise).norm
        dim = int(np.prod(dataset.input_shape))
        idx = issued.idx.tolist()
        centers = (
            dataset.get(issued.idx).reshape(len(idx), -1).double().numpy() if idx else np.zeros((0, dim))
        )
        final = issued
        if config.uses_memory:  # the reported certificates; an input memory has not processed abstains
            reported = store.memory_certificates("idx")
            at = np.searchsorted(issued.idx, reported.idx)
            prediction, gap = np.full(len(idx), ABSTAIN), np.zeros(len(idx))
            prediction[at], gap[at] = reported.prediction, reported.gap
            final = issued.replace(prediction=prediction, gap=gap, status=None)
        report = verify_certificates(final, centers, norm)
        before = verify_certificates(issued, centers, norm) if raw and config.uses_memory else None
        changed = int(np.sum(np.isin(reported.status, MEMORY_CHANGED))) if config.uses_memory else 0
        return VerifyOutcome(
            Path(run_dir),
            int(np.sum(final.prediction != ABSTAIN)),
            [(idx[i], idx[j]) for i, j in report.conflicts],
            None if before is None else [(idx[i], idx[j]) for i, j in before.conflicts],
            changed,
            report.pairs_checked,
        )
    finally:
        store.close()
