"""Memory-based certification: an order-dependent certifier whose issued regions never overlap across classes.

theta depends on the input, so a region certified at x says nothing about g elsewhere with another theta.
CertificateMemory (DDRS, generalised to anisotropic regions by ANCER; spec section 6) remembers every
region it reports and, for each new certificate in a recorded order:

1. keeps the stored regions of other (non-abstain) classes whose enclosing l_p balls meet the new one;
2. if x lies in such a foreign region: abstains, or (``on_inside="adopt"``) adopts that class with the
   largest region around x, of x's theta, inside the foreign region;
3. else, if the new region meets foreign regions (exact tests): scales its gap by the largest t that
   makes it disjoint from all of them (same shape);
4. stores exactly the region it reports.

Speed: stored centers and axes live in preallocated float64 arrays that double in capacity. The
enclosing-ball pre-filter works on a float32 mirror of the stored centers (shifted by the first center):
first a matrix-vector product over every 8th dimension (the "head": a squared distance over some
dimensions bounds the full one from below), then, only if many rows survive, over all dimensions. Both
carry a rigorous round-off slack, so the pre-filter may keep extra candidates but never drops one.
Survivors get exact float64 distances, and only those get the exact region tests. Storage: about
20.5 * dim bytes per region (float64 centers and axes, float32 mirror and head), times up to 2 for the
spare capacity. Measured (`python benchmarks/memory_bench.py`): 10,000 regions in 3,072 dimensions,
one certify each, take about 9 s in total on 2 shared cores, for l2 and for l1.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from .._checks import check_int
from ..errors import InputError, InvalidParameterError, UnknownNameError
from . import certificates, regions
from .certificates import ABSTAIN, MEMORY_CHANGED, MEMORY_STATUSES, Certificates, geometric_mean

__all__ = ["ABSTAIN", "MemoryDecision", "CertificateMemory", "STATUSES", "ON_INSIDE"]

STATUSES = MEMORY_STATUSES
ON_INSIDE = ("abstain", "adopt")

_INITIAL_CAPACITY = 64
_HEAD_STRIDE = 8  # the head holds dimensions 0, 8, 16, ... (when dim >= 256)
_U32 = 2.0**-24  # unit round-off of float32
_REL = 1e-10  # relative inflation of the exact float64 pre-filter thresholds (keeps extra, drops none)


@dataclass(frozen=True)
class MemoryDecision:
    """What memory makes of one certificate.

    prediction: the class to report (ABSTAIN = -1 when memory abstains); gap: the gap to report, in
    theta units (the reported region is {||(z - x) / (gap theta)||_p <= 1}); status: one of
    "unchanged" (no foreign region met), "shrunk" (gap scaled down), "abstain_inside" (x lies in a
    foreign region), "adopted" (x lies in a foreign region whose class it took), "abstain" (the input
    arrived as ABSTAIN and passes through); conflicts: how many foreign stored regions contain x
    (abstain_inside, adopted) or meet the new region (shrunk).
    """

    prediction: int
    gap: float
    status: str
    conflicts: int

    @property
    def changed(self) -> bool:
        """Whether memory changed the certificate (what the report counts)."""
        return self.status in MEMORY_CHANGED


class CertificateMemory:
    """The stateful certifier of spec section 6 for regions of one norm in dim dimensions.

    Parameters
    ----------
    norm : {"l2", "l1"}
        "l2" for gaussian noise (ellipsoids), "l1" for uniform noise (generalized cross-polytopes).
    dim : int
        Number of input dimensions; centers of any shape with dim entries are flattened.
    on_inside : {"abstain", "adopt"}, default "abstain"
        What to do when x lies in a stored region of another class.

    The result depends on the order of the calls; the same order gives the same decisions. Invariant:
    stored regions of different classes are pairwise disjoint under the exact tests of
    `anisocert.core.regions` (regions added with `add` are trusted as they are).

    Examples
    --------
    >>> memory = CertificateMemory("l2", 2)
    >>> memory.certify([0.0, 0.0], [1.0, 1.0], 1.0, 0).status
    'unchanged'
    >>> decision = memory.certify([1.5, 0.0], [1.0, 1.0], 1.0, 1)
    >>> decision.status, round(decision.gap, 6)
    ('shrunk', 0.5)
    """

    def __init__(self, norm: str, dim: int, *, on_inside: str = "abstain"):
        self.norm = regions.check_norm(norm)
        self.dim = check_int("dim", dim)
        if on_inside not in ON_INSIDE:
            raise UnknownNameError(f"on_inside={on_inside!r} is not known; use 'abstain' or 'adopt'")
        self.on_inside = on_inside
        self.status_counts: Counter[str] = Counter()  # statuses of the certify calls so far
        self._size = 0
        self._ref: np.ndarray | None = None  # the first stored center: the float32 mirror is shifted by it
        self._stride = _HEAD_STRIDE if self.dim >= 256 else 1
        self._kappa = _dot_error_bound(self.dim)
        self._kappa_head = _dot_error_bound(len(range(0, self.dim, self._stride)))
        self._allocate(0)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        state = f"norm={self.norm!r}, dim={self.dim}, on_inside={self.on_inside!r}, size={len(self)}"
        return f"CertificateMemory({state})"

    def stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read-only views (centers (M, dim), axes (M, dim) = gap * theta, predictions (M,)) of the store."""
        views = (self._centers[: self._size], self._axes[: self._size], self._pred[: self._size])
        for view in views:
            view.setflags(write=False)
        return views

    # -- public steps ---------------------------------------------------------------------------------

    def decide(self, center, theta, gap, prediction) -> MemoryDecision:
        """The decision for a fresh certificate (prediction, region (center, theta, gap)); stores nothing.

        center: dim values (any shape); theta: a scalar or dim values > 0; gap >= 0 in theta units;
        prediction: a class >= 0 or ABSTAIN. An ABSTAIN passes through unchanged (status "abstain").
        """
        x, theta, gap, prediction = self._prepare(center, theta, gap, prediction)
        if prediction == ABSTAIN:
            return MemoryDecision(ABSTAIN, gap, "abstain", 0)
        idx = self._candidates(x, gap * theta.max(), prediction)
        holders = idx[regions.inside(x, self._centers[idx], self._axes[idx], self.norm)]
        if holders.size:
            return self._inside(x, theta, holders)
        return self._resolve(x, theta, gap, prediction, idx, "unchanged")

    def add(self, center, theta, gap, prediction) -> bool:
        """Store a region exactly as reported, without checks (to rebuild memory on resume).

        ABSTAIN and gap-0 certificates hold no region and are not stored (as in `certify`); returns
        whether the region was stored.
        """
        x, theta, gap, prediction = self._prepare(center, theta, gap, prediction)
        if prediction == ABSTAIN or gap <= 0:
            return False
        if self._size == self._centers.shape[0]:
            self._allocate(max(_INITIAL_CAPACITY, 2 * self._size))
        if self._ref is None:
            self._ref = x.copy()
        j = self._size
        y = x - self._ref
        self._centers[j] = x
        self._axes[j] = gap * theta
        self._mirror[j] = y
        self._ynorm[j] = np.sqrt(y @ y)
        head = y[:: self._stride]
        self._head[j] = head
        self._head_norm[j] = np.sqrt(head @ head)
        self._radius[j] = self._axes[j].max()
        self._pred[j] = prediction
        self._size += 1
        return True

    def certify(self, center, theta, gap, prediction) -> MemoryDecision:
        """`decide`, then `add` the decided region (ABSTAIN and gap 0 are not stored)."""
        decision = self.decide(center, theta, gap, prediction)
        self.add(center, theta, decision.gap, decision.prediction)
        self.status_counts[decision.status] += 1
        return decision

    def certify_all(self, centers, certs: Certificates) -> Certificates:
        """`certify` each certificate in order (centers: (B, dim) float64): the certificates memory reports,
        with their status and conflicts (radii recomputed from the reported gap and the region's theta)."""
        if not len(certs):
            return certs
        rows = []
        for k, cert in enumerate(certs.rows()):
            theta = cert.full_theta(self.dim)
            decision = self.certify(centers[k], theta, cert.gap, cert.prediction)
            gap = float(decision.gap) if decision.prediction != ABSTAIN else 0.0
            geo = geometric_mean(theta)
            rows.append((decision.prediction, gap, theta.min(), geo, decision.status, decision.conflicts))
        prediction, gap, min_theta, geo, status, conflicts = (np.array(column) for column in zip(*rows))
        return certs.replace(
            prediction=prediction.astype(np.int64),
            gap=gap.astype(np.float64),
            radius=certificates.radius(min_theta, gap),
            proxy_radius=certificates.proxy_radius(geo, gap),
            geo_mean_theta=geo.astype(np.float64),
            status=status,
            conflicts=conflicts.astype(np.int64),
        )

    def replay(self, centers, certs: Certificates) -> None:
        """`add` certificates exactly as they were reported (memory rebuilt on resume)."""
        for k, cert in enumerate(certs.rows()):
            self.add(centers[k], cert.full_theta(self.dim), cert.gap, cert.prediction)

    # -- steps of decide ------------------------------------------------------------------------------

    def _inside(self, x, theta, holders) -> MemoryDecision:
        """x lies in the foreign regions `holders`: abstain, or adopt their class (step 2)."""
        classes = np.unique(self._pred[holders])
        if self.on_inside == "abstain" or classes.size > 1:
            return MemoryDecision(ABSTAIN, 0.0, "abstain_inside", int(holders.size))
        gap = float(
            regions._inner_gaps(x, theta, self._centers[holders], self._axes[holders], self.norm).max()
        )
        adopted = int(classes[0])
        # inside a region of class `adopted`, so disjoint from the other classes while memory is consistent;
        # check anyway, so that regions added without checks cannot make an adopted region unsound
        idx = self._candidates(x, gap * theta.max(), adopted)
        if regions.inside(x, self._centers[idx], self._axes[idx], self.norm).any():
            return MemoryDecision(ABSTAIN, 0.0, "abstain_inside", int(holders.size))
        decision = self._resolve(x, theta, gap, adopted, idx, "adopted")
        return MemoryDecision(adopted, decision.gap, "adopted", int(holders.size))

    def _resolve(self, x, theta, gap, prediction, idx, status) -> MemoryDecision:
        """Shrink the region (x, gap * theta) until it meets none of the candidate regions idx (step 3)."""
        if gap <= 0 or idx.size == 0:
            return MemoryDecision(prediction, gap, status, 0)
        centers, axes = self._centers[idx], self._axes[idx]
        hit = regions.intersects(x, gap * theta, centers, axes, self.norm)
        if not hit.any():
            return MemoryDecision(prediction, gap, status, 0)
        centers, axes = centers[hit], axes[hit]
        new_gap = gap * regions.largest_disjoint_scale(x, gap * theta, centers, axes, self.norm)
        # the stored axes are new_gap * theta, which may differ from t * (gap * theta) in the last bit
        for _ in range(100):
            if new_gap <= 0 or not regions.intersects(x, new_gap * theta, centers, axes, self.norm).any():
                break
            new_gap *= 1.0 - 1e-12
        else:
            new_gap = 0.0
        return MemoryDecision(prediction, float(new_gap), "shrunk", int(hit.sum()))

    def _candidates(self, x: np.ndarray, radius: float, prediction: int) -> np.ndarray:
        """Indices of stored regions of another class whose enclosing ball meets the ball (x, radius).

        Region j lies in the l_p ball of radius max(axes_j) around its center, so j is skipped only when
        ||x - x_j||_p > radius + max(axes_j). The float32 levels bound ||x - x_j||_2 (<= ||.||_1) from
        below, first over the head dimensions, then (if more than 1/8 of the rows survive) over all;
        survivors get exact float64 l_p distances.
        """
        m = self._size
        if m == 0:
            return np.empty(0, dtype=np.int64)
        y = x - self._ref
        reach = radius + self._radius[:m]
        bound = reach * reach * (1.0 + _REL)
        keep = self._pred[:m] != prediction
        with _single_thread_blas():
            keep = self._maybe_near_rows(keep, y, bound)
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return idx
        diff = self._centers[idx] - x
        if self.norm == "l2":
            near = np.einsum("ij,ij->i", diff, diff) <= (reach[idx] * (1.0 + _REL)) ** 2
        else:
            near = np.abs(diff).sum(axis=1) <= reach[idx] * (1.0 + _REL)
        return idx[near]

    def _maybe_near_rows(self, keep: np.ndarray, y: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """keep, and-ed with the float32 levels: the head first, then all dimensions if many survive."""
        m = self._size
        if self._stride > 1:
            keep &= _maybe_near(
                self._head[:m], self._head_norm[:m], y[:: self._stride], bound, self._kappa_head
            )
        if self._stride == 1 or np.count_nonzero(keep) > m // 8:
            keep &= _maybe_near(self._mirror[:m], self._ynorm[:m], y, bound, self._kappa)
        return keep

    # -- storage and validation -----------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        """(Re)allocate the stores with room for capacity regions, keeping the first len(self)."""
        m, dim = self._size, self.dim
        layout = {
            "_centers": (np.float64, (dim,)),
            "_axes": (np.float64, (dim,)),
            "_mirror": (np.float32, (dim,)),  # y_j = x_j - ref
            "_head": (np.float32, (len(range(0, dim, self._stride)),)),  # y_j[::stride]
            "_ynorm": (np.float64, ()),  # ||y_j||
            "_head_norm": (np.float64, ()),  # ||y_j[::stride]||
            "_radius": (np.float64, ()),  # max(axes_j)
            "_pred": (np.int64, ()),
        }
        for name, (dtype, width) in layout.items():
            new = np.empty((capacity, *width), dtype=dtype)
            if m:
                new[:m] = getattr(self, name)[:m]
            setattr(self, name, new)

    def _prepare(self, center, theta, gap, prediction) -> tuple[np.ndarray, np.ndarray, float, int]:
        """Validate one certificate: (x (dim,), theta (dim,), gap, prediction) as float64 / int."""
        x = np.asarray(center, dtype=np.float64).reshape(-1)
        if x.size != self.dim:
            raise InputError(f"center has {x.size} values but memory holds {self.dim}-dimensional regions")
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size == 1:
            theta = np.full(self.dim, theta[0])
        if theta.size != self.dim:
            raise InputError(
                f"theta has {theta.size} values; give one per dimension ({self.dim}) or a scalar"
            )
        if not (np.isfinite(x).all() and np.isfinite(theta).all() and (theta > 0).all()):
            raise InvalidParameterError("center must be finite and theta finite and > 0, e.g. theta=0.25")
        if isinstance(gap, bool) or not np.isfinite(gap) or gap < 0:
            raise InvalidParameterError(f"gap={gap!r} must be finite and >= 0 (0 for an abstention)")
        if isinstance(prediction, bool) or not isinstance(prediction, Integral) or prediction < ABSTAIN:
            raise InvalidParameterError(f"prediction={prediction!r} must be a class >= 0 or ABSTAIN (-1)")
        return x, theta, float(gap), int(prediction)


def _dot_error_bound(length: int) -> float:
    """kappa: |computed - exact| of 2 y.y_j in float32 is <= kappa ||y|| ||y_j|| for vectors of this length.

    gamma_{length+1} bounds a float32 dot product in any summation order (Higham, Thm 3.1), 2 u more the
    rounding of both float64 operands to float32; doubled for the factor 2, plus 1 % (inf: keep all rows).
    """
    k = (length + 1) * _U32
    gamma = k / (1.0 - k) if k < 0.5 else np.inf
    return 2.0 * 1.01 * (gamma * (1 + _U32) ** 2 + 2 * _U32 + _U32**2)


def _maybe_near(mirror: np.ndarray, norms: np.ndarray, y: np.ndarray, bound: np.ndarray, kappa: float):
    """Rows j with ||y||^2 + ||y_j||^2 - 2 y.y_j <= bound_j up to the float32 error: bool (M,).

    mirror (M, k) float32 holds the y_j, norms (M,) their exact float64 norms; the dot products come
    from one float32 matrix-vector product and the slack kappa ||y|| ||y_j|| covers their error, so a
    row whose exact squared distance is <= bound_j is always kept.
    """
    ny2 = float(y @ y)
    dots = (mirror @ y.astype(np.float32)).astype(np.float64)
    slack = kappa * np.sqrt(ny2) * norms + 1e-12 * (ny2 + norms * norms)
    return ny2 + norms * norms - 2.0 * dots <= bound + slack


_BLAS = None  # threadpoolctl's handle on the BLAS libraries, created on first use (False: unavailable)


def _single_thread_blas():
    """Context running BLAS on one thread: the pre-filter's matrix-vector products are memory-bound, so
    threads gain little, and they stall badly when other processes share the cores (measured: 5x
    slower on 2 busy cores). Limits the process-wide BLAS pool while it is open; a no-op without
    threadpoolctl (a dependency of scikit-learn)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController().select(user_api="blas")
        except ImportError:  # pragma: no cover
            _BLAS = False
    return _BLAS.limit(limits=1) if _BLAS else contextlib.nullcontext()
