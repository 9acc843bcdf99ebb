"""The run store's rows of certificates: ``Certificates`` to SQLite rows and back (run/store.py).

Table ``records`` holds each input's raw certificate, table ``memory`` its memory-based outcome; both at
full precision (SQLite REAL is float64), theta as float32 bytes (None where the region is isotropic).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..core.certificates import Certificate, Certificates

__all__ = ["MEMORY_COLUMNS", "RECORD_COLUMNS", "blob", "from_records", "memory_rows", "record_rows", "unblob"]

RECORD_COLUMNS = (
    *("idx", "label", "predict", "radius", "radius_proxy", "correct", "min_sigma", "time", "pA_lower", "gap"),
    *("counts", "sigma", "theta", "fallback", "opt_time", "draws"),
)
MEMORY_COLUMNS = ("predict", "gap", "radius", "radius_proxy", "status", "conflicts")


def blob(theta) -> bytes | None:
    return None if theta is None else np.ascontiguousarray(theta, dtype=np.float32).tobytes()


def unblob(blob) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


def record_rows(certs: Certificates) -> list[tuple]:
    """The ``records`` rows of a run's raw certificates (idx, label, sigma and times filled)."""
    return [
        (
            r.idx,
            r.label,
            r.prediction,
            r.radius,
            r.proxy_radius,
            r.correct,
            r.min_theta,
            r.time,
            r.pA_lower,
            r.gap,
            json.dumps(list(r.counts)),
            r.sigma,
            blob(r.theta),
            r.fallback,
            r.opt_time,
            r.draws,
        )
        for r in certs.rows()
    ]


def memory_rows(certs: Certificates, first_seq: int) -> list[tuple]:
    """The ``memory`` rows (seq, idx, predict, gap, radius, radius_proxy, correct, status, conflicts)."""
    return [
        (
            first_seq + k,
            r.idx,
            r.prediction,
            r.gap,
            r.radius,
            r.proxy_radius,
            r.correct,
            r.status,
            r.conflicts,
        )
        for k, r in enumerate(certs.rows())
    ]


def from_records(rows: list[tuple]) -> Certificates:
    """Certificates from ``records`` rows in RECORD_COLUMNS order, each optionally followed by its memory
    outcome in MEMORY_COLUMNS order (which then replaces the raw prediction, gap and radii).
    geo_mean_theta is not stored: memory recomputes it from theta (core/memory.py)."""
    out = []
    for row in rows:
        i, label, predict, rad, proxy, _, min_sigma, secs, lower, gap, counts, sigma = row[:12]
        theta, fallback, opt_time, draws = row[12:16]
        counts = tuple(json.loads(counts))
        cert = Certificate(
            prediction=predict,
            pA_lower=lower,
            gap=gap,
            radius=rad,
            proxy_radius=proxy,
            min_theta=min_sigma,
            geo_mean_theta=None,
            counts=counts,
            draws=sum(counts) if draws is None else draws,  # stores made before the draws column
            idx=i,
            label=label,
            sigma=sigma,
            theta=unblob(theta),
            fallback=fallback,
            time=secs,
            opt_time=opt_time,
            status="none",
            conflicts=0,
        )
        if len(row) > 16:  # the memory-based outcome
            names = ("prediction", "gap", "radius", "proxy_radius", "status", "conflicts")
            cert = dataclasses.replace(cert, **dict(zip(names, row[16:22], strict=True)))
        out.append(cert)
    return Certificates.from_rows(out) if out else _empty()


def _empty() -> Certificates:
    nothing = np.zeros(0)
    return Certificates(
        prediction=np.zeros(0, dtype=np.int64),
        pA_lower=nothing,
        gap=nothing,
        radius=nothing,
        proxy_radius=nothing,
        min_theta=nothing,
        geo_mean_theta=None,
        counts=np.zeros((0, 0), dtype=np.int64),
        draws=np.zeros(0, dtype=np.int64),
        idx=np.zeros(0, dtype=np.int64),
        label=np.zeros(0, dtype=np.int64),
        sigma=nothing,
        theta=(),
        fallback=np.zeros(0, dtype=np.int64),
        time=nothing,
        opt_time=nothing,
        status=np.zeros(0, dtype=object),
        conflicts=np.zeros(0, dtype=np.int64),
    )
