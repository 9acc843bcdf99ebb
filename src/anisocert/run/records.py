"""The rows of the run store: one raw certificate per input (Record) and its memory-based outcome
(MemoryRecord), plus the binary form of theta."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MemoryRecord", "Record", "blob", "unblob"]


@dataclass(frozen=True)
class Record:
    """One raw certificate (before memory). theta is None when it is the constant `sigma`."""

    idx: int
    label: int
    predict: int
    radius: float
    radius_proxy: float
    correct: int
    min_sigma: float
    time: float
    pA_lower: float
    gap: float
    counts: tuple[int, ...]
    sigma: float
    theta: np.ndarray | None = None
    fallback: int = 0  # 1: the isotropic certificate reported (both: it was larger; select: forecast larger)
    opt_time: float = 0.0
    # estimation draws spent on the input (ancer 'both': of both certificates); None: sum of counts
    draws: int | None = None

    @property
    def draws_spent(self) -> int:
        return int(sum(self.counts)) if self.draws is None else int(self.draws)


@dataclass(frozen=True)
class MemoryRecord:
    """The certificate reported after memory-based certification (exactly the stored region)."""

    seq: int
    idx: int
    predict: int
    gap: float
    radius: float
    radius_proxy: float
    correct: int
    status: str
    conflicts: int


def blob(theta) -> bytes | None:
    return None if theta is None else np.ascontiguousarray(theta, dtype=np.float32).tobytes()


def unblob(blob) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()
