"""`anisocert verify` on a run whose data-dependent certificates overlap by construction.

The base classifier says class 1 inside the thin band |x_0| < 0.1 and class 0 outside. At the band's
centre A the best isotropic sigma is small (about 0.04: radius about 0.09). At B = (0.35, 0), outside,
a large sigma mostly lands outside the band, so B's data-dependent certificate is a ball of radius
above 1 that swallows A's: two regions with different predictions intersect (the unsoundness of
data-dependent sigma that memory-based certification removes).
"""

import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from anisocert.cli import app

FACTORY = textwrap.dedent(
    """
    import torch

    class Band(torch.nn.Module):
        def forward(self, x):
            t = 40.0 * (0.1 - x[:, 0].abs())
            return torch.stack([torch.zeros_like(t), t], dim=1)

    def factory():
        return Band()
    """
)


@pytest.fixture
def band_run_args(tmp_path, monkeypatch):
    (tmp_path / "verify_band_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    x = np.array([[0.0, 0.0], [0.35, 0.0]], dtype=np.float32)
    np.savez(tmp_path / "ab.npz", x=x, y=np.array([1, 0]))
    return [
        "certify",
        "--model",
        "verify_band_mod:factory",
        "--data",
        f"npz:{tmp_path / 'ab.npz'}",
        "--method",
        "isotropic",
        "--iso-method",
        "votes",
        "--iso-samples",
        "400",
        "--sigma",
        "0.1",
        "--n0",
        "50",
        "--n",
        "2000",
        "--no-progress",
    ]


def _run(args):
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_verify_finds_the_overlap_without_memory_and_none_with_it(tmp_path, band_run_args):
    code, out = _run([*band_run_args, "--no-memory", "--out", str(tmp_path / "raw")])
    assert code == 0, out
    code, out = _run(["verify", str(tmp_path / "raw")])
    assert code == 1 and "1 intersecting pairs with different predictions" in out, out
    assert "conflict: inputs 0 and 1" in out, out

    code, out = _run([*band_run_args, "--out", str(tmp_path / "mem")])
    assert code == 0, out
    code, out = _run(["verify", str(tmp_path / "mem")])
    # the raw certificates (kept beside the memory-based ones) still overlap; the reported ones do not
    assert code == 0, out
    assert "0 intersecting pairs with different predictions" in out, out
    assert "memory changed 1 certificates (without memory: 1 intersecting pairs)" in out, out
    rows = (tmp_path / "mem" / "certify.tsv").read_text().splitlines()[1:]
    a, b = (line.split("\t") for line in rows)
    assert a[2] == "1" and b[2] == "0"  # both still certified, with their own classes
    assert float(a[3]) + float(b[3]) <= 0.35  # and B's ball now stops short of A's
