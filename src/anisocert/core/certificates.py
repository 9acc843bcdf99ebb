"""What a certificate is, in one place: the abstain value, the two radii of a region, memory's statuses and
``Certificates``, the one certificate type from certification to the report.

A certificate (prediction, theta, gap) is the region {d : ||d / theta||_p <= gap} around its input on which
the smoothed classifier returns prediction. Torch-free, so memory, verify and the report import it cheaply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSTAIN",
    "MEMORY_CHANGED",
    "MEMORY_STATUSES",
    "Certificate",
    "Certificates",
    "geometric_mean",
    "proxy_radius",
    "radius",
]

ABSTAIN = -1  # the prediction of an input that is not certified (gap = radius = proxy radius = 0)
MEMORY_STATUSES = ("unchanged", "shrunk", "abstain_inside", "adopted", "abstain")
MEMORY_CHANGED = ("shrunk", "abstain_inside", "adopted")  # the statuses where memory changed the certificate


def radius(min_theta, gap) -> np.ndarray:
    """The largest isotropic l_p ball inside the region: min(theta) * gap (full precision, never rounded)."""
    return np.asarray(min_theta, dtype=np.float64) * np.asarray(gap, dtype=np.float64)


def proxy_radius(geo_mean_theta, gap) -> np.ndarray:
    """The radius of the l_p ball of the region's volume: gap * exp(mean(log theta)) (the n-th root of the
    volume up to the ball's constant)."""
    return np.asarray(geo_mean_theta, dtype=np.float64) * np.asarray(gap, dtype=np.float64)


@dataclass(frozen=True)
class Certificates:
    """B certificates, one row per input: what certification returns, memory and verify take, the store
    keeps and the report reads (numpy arrays of length B, float64 where real, never rounded).

    The region of row k is {d : ||d / theta_k||_p <= gap[k]}; prediction is ABSTAIN (and gap = radius =
    proxy_radius = 0) where pA_lower < 1/2. radius and proxy_radius come from ``radius`` and
    ``proxy_radius`` above, through ``from_gap`` (certification) or as stored (a run read back).
    The run's context (idx, label, sigma, theta, fallback, times) is filled by the runner; memory-based
    certification adds status and conflicts. None where a field does not apply.
    """

    prediction: np.ndarray
    pA_lower: np.ndarray
    gap: np.ndarray
    radius: np.ndarray
    proxy_radius: np.ndarray
    min_theta: np.ndarray
    geo_mean_theta: np.ndarray | None  # not stored: None in a run read back (proxy_radius is)
    counts: np.ndarray  # (B, C) the fresh estimation draws (rows sum to n unless stopped early)
    draws: np.ndarray  # (B,) estimation draws spent on the input (ancer 'both': of both certificates)
    counts_select: np.ndarray | None = None  # (B, C) the n0 selection draws (not stored)
    idx: np.ndarray | None = None  # the data-set indices (they name the noise streams)
    label: np.ndarray | None = None
    sigma: np.ndarray | None = None  # the isotropic scale: fixed sigma or sigma_x
    theta: tuple | None = None  # per input: its flattened theta_x (float32), or None where it is sigma
    fallback: np.ndarray | None = None  # ancer: the isotropic certificate reported instead of theta_x's
    time: np.ndarray | None = None  # certification seconds per input
    opt_time: np.ndarray | None = None  # sigma_x and theta_x search seconds per input
    status: np.ndarray | None = None  # memory-based certification's status (MEMORY_STATUSES)
    conflicts: np.ndarray | None = None

    @classmethod
    def from_gap(cls, prediction, pA_lower, gap, min_theta, geo_mean_theta, counts, **rest) -> Certificates:
        """Certificates whose radii are computed here, from the gap (the one place they are)."""
        return cls(
            prediction=np.asarray(prediction, dtype=np.int64),
            pA_lower=np.asarray(pA_lower, dtype=np.float64),
            gap=np.asarray(gap, dtype=np.float64),
            radius=radius(min_theta, gap),
            proxy_radius=proxy_radius(geo_mean_theta, gap),
            min_theta=np.asarray(min_theta, dtype=np.float64),
            geo_mean_theta=np.asarray(geo_mean_theta, dtype=np.float64),
            counts=np.asarray(counts),
            **{"draws": np.asarray(counts).sum(axis=1), **rest},
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Certificate]) -> Certificates:
        """One batch from per-input views (the runner gathers finished inputs this way)."""
        columns = {}
        for name in _FIELDS:
            values = [getattr(r, name) for r in rows]
            if name != "theta" and any(v is None for v in values):  # not known for every row (e.g. a
                columns[name] = None  # resumed run's stored rows beside fresh ones): left out
            elif all(v is None for v in values):
                columns[name] = None
            elif name == "theta":
                columns[name] = tuple(values)
            else:
                columns[name] = np.array(values).reshape(len(rows), *np.shape(values[0]))
        return cls(**columns)

    def __len__(self) -> int:
        return int(self.prediction.shape[0])

    @property
    def drawn(self) -> np.ndarray:
        """Estimation draws behind each certificate: n, or fewer where an early or sequential stop settled
        the outcome."""
        return self.counts.sum(axis=1)

    @property
    def correct(self) -> np.ndarray:
        """1 where the certified prediction is the label."""
        return (self.prediction == self.label).astype(np.int64)

    def with_noise(self, sigma, theta=None, fallback=None) -> Certificates:
        """These certificates with the noise of their regions: sigma (B,) the isotropic scale; theta (B, ...)
        theta_x where the anisotropic region was reported (not where fallback[k])."""
        B = len(self)
        fallback = np.zeros(B, dtype=bool) if fallback is None else np.asarray(fallback, dtype=bool)
        if theta is not None:
            flat = np.asarray(theta).reshape(B, -1)
            theta = tuple(None if fell else flat[k] for k, fell in enumerate(fallback))
        sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (B,)).copy()
        return self.replace(sigma=sigma, theta=theta, fallback=fallback.astype(np.int64))

    def theta_rows(self, dim: int) -> np.ndarray:
        """(B, dim) float64: each reported region's theta (sigma where the region is isotropic), as memory
        and verify take it."""
        return np.stack([_full_theta(self.sigma[k], self.theta_of(k), dim) for k in range(len(self))])

    def theta_of(self, k: int) -> np.ndarray | None:
        return None if self.theta is None else self.theta[k]

    def replace(self, **changes) -> Certificates:
        return dataclasses.replace(self, **changes)

    def take(self, rows) -> Certificates:
        """The certificates of rows (positions)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Certificates(**{name: _take(getattr(self, name), rows) for name in _FIELDS})

    def where(self, mask, other: Certificates) -> Certificates:
        """Row k of self where mask[k], else row k of other (certificates of the same B inputs)."""
        mask = np.asarray(mask, dtype=bool)
        out = {}
        for name in _FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if a is None or b is None:
                out[name] = a if b is None else b
            elif isinstance(a, tuple):
                out[name] = tuple(x if m else y for m, x, y in zip(mask, a, b, strict=True))
            else:
                out[name] = np.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)
        return Certificates(**out)

    @staticmethod
    def combine(size: int, parts: Sequence[tuple[Sequence[int], Certificates]]) -> Certificates:
        """One batch of `size` rows from certificates of subsets [(positions, certificates), ...]."""
        if len(parts) == 1 and len(parts[0][0]) == size:
            return parts[0][1]
        out = {}
        for name in _FIELDS:
            first = getattr(parts[0][1], name)
            if first is None:
                out[name] = None
                continue
            values = (
                [None] * size if isinstance(first, tuple) else np.zeros((size, *first.shape[1:]), first.dtype)
            )
            for positions, certs in parts:
                for k, value in zip(positions, getattr(certs, name), strict=True):
                    values[k] = value
            out[name] = tuple(values) if isinstance(first, tuple) else values
        return Certificates(**out)

    def row(self, k: int) -> Certificate:
        """Row k as a per-input view (plain Python numbers)."""
        values = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None or name == "theta":
                values[name] = None if value is None else value[k]
            elif value.ndim > 1:
                values[name] = tuple(int(v) for v in value[k])
            else:
                values[name] = value[k].item()
        return Certificate(**values)

    def rows(self) -> list[Certificate]:
        return [self.row(k) for k in range(len(self))]


@dataclass(frozen=True)
class Certificate:
    """One row of ``Certificates``: the same fields, as plain numbers (counts as a tuple)."""

    prediction: int
    pA_lower: float
    gap: float
    radius: float
    proxy_radius: float
    min_theta: float
    geo_mean_theta: float | None
    counts: tuple[int, ...]
    draws: int
    counts_select: tuple[int, ...] | None = None
    idx: int | None = None
    label: int | None = None
    sigma: float | None = None
    theta: np.ndarray | None = None
    fallback: int | None = None
    time: float | None = None
    opt_time: float | None = None
    status: str | None = None
    conflicts: int | None = None

    @property
    def correct(self) -> int:
        return int(self.prediction == self.label)

    def full_theta(self, dim: int) -> np.ndarray:
        """(dim,) float64: this region's theta (sigma where it is isotropic)."""
        return _full_theta(self.sigma, self.theta, dim)


_FIELDS = tuple(f.name for f in dataclasses.fields(Certificates))


def _full_theta(sigma, theta, dim: int) -> np.ndarray:
    return np.full(dim, float(sigma)) if theta is None else np.asarray(theta, dtype=np.float64)


def geometric_mean(theta: np.ndarray) -> float:
    """exp(mean(log theta)) of one region's theta, in float64 (memory's proxy radius)."""
    return float(np.exp(np.mean(np.log(theta))))


def _take(value, rows: np.ndarray):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(value[k] for k in rows)
    return value[rows]
