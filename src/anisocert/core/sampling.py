"""Monte Carlo counting: f(x + e) over fresh draws, many inputs per forward pass.

Reproducibility contract: the draws of input ``idx`` in phase ``phase`` come in blocks of BLOCK
draws, and block b is generated from a seed that depends only on (seed, idx, phase, b). So an
input's counts do not depend on which other inputs share its forward passes, on batch_size, on
the order of inputs, or on how a run is split over workers or resumed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .noise import NoiseFamily

__all__ = ["BLOCK", "Phase", "block_seed", "count_predictions", "unit_noise"]

BLOCK = 100  # draws per independently seeded block


class Phase:
    """Independent noise streams: the bound never sees the draws that chose the class or theta."""

    SELECT = 0  # n0 draws that choose the top class
    ESTIMATE = 1  # n fresh draws that bound pA
    SIGMA = 2  # draws used to optimise the isotropic sigma
    THETA = 3  # draws used to optimise the anisotropic theta
    PREDICT = 4
    THETA_CHECK = 5  # hard-vote checks of the certified ANCER objective (core/theta_search.py)


_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def block_seed(seed: int, idx: int, phase: int, block: int) -> int:
    """Seed of one block of draws; a function of (seed, idx, phase, block) only. Fits in 63 bits."""
    z = _mix(int(seed) & _MASK)
    for part in (idx, phase, block):
        z = _mix(z ^ (int(part) & _MASK))
    return z >> 1


def unit_noise(
    noise: NoiseFamily,
    shape,
    *,
    seed: int,
    idx: int,
    phase: int,
    block: int,
    generator: torch.Generator,
    device,
    dtype=torch.float32,
) -> torch.Tensor:
    """The unit draws u of one block (shape (m, *D)) for input idx; e = theta * u."""
    generator.manual_seed(block_seed(seed, idx, phase, block))
    return noise.unit(shape, generator, device, dtype)


def per_input(theta: torch.Tensor, shape) -> torch.Tensor:
    """theta as one scale per coordinate of B inputs of `shape` (B, *D): from a scalar, one value per input
    (B,) or (B, 1, ...), or (B, *D) itself. A view (no copy)."""
    B = shape[0]
    if theta.numel() == 1:
        theta = theta.reshape(1).expand(B)
    if theta.shape == (B,):
        theta = theta.reshape(B, *([1] * (len(shape) - 1)))
    return theta.expand(*shape)


def _blocks(n: int, start: int = 0):
    """(block, draws) of the stream's draws start..n-1; start is a multiple of BLOCK."""
    return [(b, min(BLOCK, n - b * BLOCK)) for b in range(start // BLOCK, (n + BLOCK - 1) // BLOCK)]


@torch.inference_mode()
def count_predictions(
    model,
    noise: NoiseFamily,
    x: torch.Tensor,
    theta: torch.Tensor,
    n: int,
    *,
    idx,
    seed: int,
    phase: int,
    batch_size: int,
    num_classes: int | None = None,
    target=None,
    stop_misses=None,
    start: int = 0,
    sampler=None,
) -> torch.Tensor:
    """Counts of f(x + theta * u) over n fresh draws per input (with an exact ``sampler``
    (core/exact.py): f of the grid value of x + the rounded noise, made in integers).

    x: (B, *D) on the model's device; theta: (B, *D) or broadcastable per input (e.g. (B, 1, ...));
    idx: B data-set indices that name each input's noise stream. Returns int64 counts (B, C) on
    x's device; every row sums to exactly n. Blocks are taken round-robin over inputs (block 0 of
    every input first), at most ``batch_size`` draws per forward pass.

    Early stop (sound, deterministic): with ``target`` (B,) classes and ``stop_misses`` (B,) ints,
    input i stops drawing after the first block at which its draws other than target[i] reach
    stop_misses[i] (0: draw nothing); its row then sums to the draws made. The stopping block
    depends only on the input's own stream, never on batch_size or on the other inputs.

    start (a multiple of BLOCK): count only the stream's draws start..n-1, so that rounds of draws
    (sequential certification) continue each input's stream: the rows then sum to n - start.
    """
    assert start % BLOCK == 0 and 0 <= start < n, "a round starts at a block boundary before n"
    B = x.shape[0]
    early = _EarlyStop(target, stop_misses, B) if stop_misses is not None else None
    work = [
        (i, b, m) for b, m in _blocks(n, start) for i in range(B) if early is None or not early.stopped[i]
    ]
    cap = max(min(batch_size, sum(w[2] for w in work)), BLOCK)  # no larger than the draws left
    buffer = torch.empty((cap, *x.shape[1:]), device=x.device, dtype=x.dtype)
    rows = torch.empty(cap, dtype=torch.int64, device=x.device)
    streams = _Streams(noise, x, theta, idx, seed=seed, phase=phase, sampler=sampler)
    tally = early if early is not None else _Tally(B, num_classes, x.device)
    done = 0
    while done < len(work):
        used, done, slots = _fill_pass(work, done, cap, streams, buffer, rows, early)
        if not used:
            continue
        labels = []
        for chunk in buffer[:used].split(batch_size):  # the forward passes, at most batch_size draws each
            scores = _checked(model(chunk), chunk)
            num_classes = scores.shape[1] if num_classes is None else num_classes
            labels.append(scores.argmax(dim=1))
        tally.add_pass(slots, rows[:used], torch.cat(labels), num_classes)
    return tally.totals(num_classes or 1, x.device)


class _Streams:
    """The noise streams of a batch of inputs: block b of input i is x[i] + theta[i] * u, u seeded by
    (seed, idx[i], phase, b) only (unit_noise), written straight into a slice of the pass buffer.
    With an exact sampler the block is the grid values of k[i] + m, m drawn from integers seeded the
    same way."""

    def __init__(
        self,
        noise: NoiseFamily,
        x: torch.Tensor,
        theta: torch.Tensor,
        idx,
        *,
        seed: int,
        phase: int,
        sampler=None,
    ):
        self.dims = tuple(x.shape[1:])
        self.theta = per_input(theta.to(device=x.device, dtype=x.dtype), x.shape)
        self.noise, self.x, self.idx, self.seed, self.phase = noise, x, [int(i) for i in idx], seed, phase
        self.generator = torch.Generator(device=x.device)
        self.exact = None if sampler is None else sampler.batch(noise.name, x, self.theta, self.idx)

    def write(self, i: int, block: int, m: int, out: torch.Tensor) -> None:
        """The m draws of block `block` of input i into out (m rows of x's shape)."""
        if self.exact is not None:
            self.generator.manual_seed(block_seed(self.seed, self.idx[i], self.phase, block))
            self.exact.write(i, self.exact.random((m, *self.dims), self.generator), out)
            return
        u = unit_noise(
            self.noise,
            (m, *self.dims),
            seed=self.seed,
            idx=self.idx[i],
            phase=self.phase,
            block=block,
            generator=self.generator,
            device=self.x.device,
            dtype=self.x.dtype,
        )
        torch.addcmul(self.x[i], self.theta[i], u, out=out)


def _fill_pass(work, first: int, cap: int, streams: _Streams, buffer, rows, early):
    """Write the blocks work[first:] into buffer until cap draws (at least one block): (draws, next, slots).

    rows[k] names the count row of draw k: its input, or with early stop its slot (one per block, in
    `slots` as (input, draws)) so that each block is counted on its own. Blocks of inputs that early
    stop has already stopped are skipped.
    """
    used, stop, slots = 0, first, []
    while stop < len(work) and (used + work[stop][2] <= cap or used == 0):
        i, b, m = work[stop]
        stop += 1
        if early is not None and early.stopped[i]:
            continue
        streams.write(i, b, m, buffer[used : used + m])
        rows[used : used + m] = len(slots) if early is not None else i
        slots.append((i, m))
        used += m
    return used, stop, slots


class _Tally:
    """Plain counting for count_predictions: one int64 count per (input, class), on x's device."""

    def __init__(self, B: int, num_classes: int | None, device):
        self.B, self.device = B, device
        self.counts = None if num_classes is None else self._zeros(num_classes)

    def _zeros(self, classes: int) -> torch.Tensor:
        return torch.zeros(self.B * classes, dtype=torch.int64, device=self.device)

    def add_pass(self, slots, row_of_draw: torch.Tensor, labels: torch.Tensor, classes: int) -> None:
        """Add one forward pass's labels; row_of_draw names each draw's input."""
        if self.counts is None:
            self.counts = self._zeros(classes)
        self.counts.index_add_(0, row_of_draw * classes + labels, torch.ones_like(labels))

    def totals(self, classes: int, device) -> torch.Tensor:
        """The (B, classes) counts (already on the device)."""
        return self.counts.view(self.B, classes)


class _EarlyStop:
    """Per-input block-level stopping for count_predictions: exact, whatever the batch layout."""

    def __init__(self, target, stop_misses, B: int):
        self.target = np.asarray(target.cpu() if torch.is_tensor(target) else target, dtype=np.int64)
        self.limit = np.asarray(stop_misses, dtype=np.int64).reshape(-1)
        if self.target.shape != (B,) or self.limit.shape != (B,):
            raise InputError(f"target and stop_misses need one entry per input ({B})")
        self.misses = np.zeros(B, dtype=np.int64)
        self.stopped = self.limit <= 0
        self.rows: list[tuple[int, np.ndarray]] = []

    def add_pass(self, slots, slot_of_draw: torch.Tensor, labels: torch.Tensor, classes: int) -> None:
        """Count one forward pass block by block (one host copy per pass), in each input's block order."""
        per_slot = torch.zeros(len(slots) * classes, dtype=torch.int64, device=labels.device)
        per_slot.index_add_(0, slot_of_draw * classes + labels, torch.ones_like(labels))
        per_slot = per_slot.view(len(slots), classes).cpu().numpy()
        for (i, m), block_counts in zip(slots, per_slot):
            if self.stopped[i]:
                continue  # a later block of an input that stopped earlier in this pass
            self.rows.append((i, block_counts))
            self.misses[i] += m - int(block_counts[self.target[i]])
            self.stopped[i] = self.misses[i] >= self.limit[i]

    def totals(self, classes: int, device) -> torch.Tensor:
        """The (B, classes) counts of the blocks each input drew before it stopped, on `device`."""
        out = np.zeros((self.target.size, classes), dtype=np.int64)
        for i, block_counts in self.rows:
            out[i] += block_counts
        return torch.as_tensor(out, device=device)


def _checked(scores: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
    """The model's scores for chunk, or a one-line error naming what is wrong with them."""
    if scores.ndim != 2 or scores.shape[0] != chunk.shape[0]:
        raise InputError(
            f"model returned shape {tuple(scores.shape)} for a batch of {chunk.shape[0]} "
            "inputs; it must return (batch, num_classes) scores"
        )
    if not bool(torch.isfinite(scores).all()):
        raise InputError("model returned NaN or Inf scores on noisy inputs; check the model and data")
    return scores
