"""The red-team base classifier of issue 22 (Voracek & Hein's construction): it reads the last mantissa bit
of its float32 inputs. The float sampler certifies two inputs 1.7e-6 apart with different classes and
overlapping regions; the exact sampler never does (its inputs are a function of the grid index alone)."""

import numpy as np
import pytest
import torch

from anisocert.core.exact import ExactSampler
from anisocert.core.smooth import Smoothed
from anisocert.errors import InputError

SHAPE = (1, 28, 28)


class LastBit(torch.nn.Module):
    """Class 0 iff more than 0.6875 of the inputs in [2, 3) have a float32 last mantissa bit of 0."""

    def forward(self, x):
        flat = x.reshape(x.shape[0], -1)
        band = (flat >= 2) & (flat < 3)
        even = (flat.contiguous().view(torch.int32) & 1) == 0
        share = (band & even).sum(1).float() / band.sum(1).clamp(min=1).float()
        return torch.stack([share - 0.6875, 0.6875 - share], dim=1)


def _certify(x, sampler):
    smoothed = Smoothed(LastBit(), "gaussian", batch_size=4000, device="cpu", sampler=sampler)
    return smoothed.certify(x, 1.0, n0=100, n=2000, alpha=0.001, idx=np.arange(x.shape[0]))


def _conflicts(x, certs) -> list:
    """Pairs of certified inputs with different predictions whose balls intersect."""
    flat = x.reshape(x.shape[0], -1).double()
    out = []
    for a in range(x.shape[0]):
        for b in range(a + 1, x.shape[0]):
            if (
                min(certs.prediction[a], certs.prediction[b]) < 0
                or certs.prediction[a] == certs.prediction[b]
            ):
                continue
            if float(torch.linalg.norm(flat[a] - flat[b])) <= certs.radius[a] + certs.radius[b]:
                out.append((a, b))
    return out


def test_the_float_sampler_issues_the_false_certificate():
    ones = torch.ones(1, *SHAPE)
    below = torch.full((1, *SHAPE), float(np.nextafter(np.float32(1), np.float32(0))))
    x = torch.cat([ones, below])
    certs = _certify(x, None)
    assert certs.prediction.tolist() == [0, 1] and min(certs.radius) > 1.0
    assert _conflicts(x, certs) == [(0, 1)]


def test_the_exact_sampler_certifies_no_conflict_on_the_grid():
    ones = torch.ones(1, *SHAPE)
    lowered = []
    for count in (1, 4, 16):
        z = ones.clone().reshape(1, -1)
        z[0, torch.randperm(z.shape[1], generator=torch.Generator().manual_seed(count))[:count]] = 254 / 255
        lowered.append(z.reshape(1, *SHAPE))
    x = torch.cat([ones, *lowered])
    certs = _certify(x, ExactSampler(255))
    assert (certs.prediction >= 0).all()  # every input certified: the check below is not vacuous
    assert _conflicts(x, certs) == []
    below = torch.full((1, *SHAPE), float(np.nextafter(np.float32(1), np.float32(0))))
    with pytest.raises(InputError, match="input 0 is not on the grid k/255"):
        _certify(below, ExactSampler(255))
