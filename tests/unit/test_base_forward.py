"""Faster forward passes for certification (channels_last, bfloat16 autocast): same certificates up to
the classifier's own arithmetic, recorded with the run."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

from anisocert import Smoothed, load_data, load_model
from anisocert.cli import app
from anisocert.core.smooth import BaseForward


def _setup():
    model = load_model("builtin:digits-gaussian").module
    x = load_data("digits").get(np.arange(0, 540, 60))
    return model, x


def test_channels_last_gives_the_same_certificates():
    model, x = _setup()
    common = dict(n0=50, n=2000, alpha=0.001, seed=3)
    plain = Smoothed(model, "gaussian", batch_size=1000).certify(x, 0.25, **common)
    fast = Smoothed(
        load_model("builtin:digits-gaussian").module, "gaussian", batch_size=1000, channels_last=True
    )
    result = fast.certify(x, 0.25, **common)
    np.testing.assert_array_equal(result.prediction, plain.prediction)
    # the same draws through a differently laid out convolution: a count may move by a rounding flip
    assert np.abs(result.counts - plain.counts).max() <= 2
    np.testing.assert_allclose(result.radius, plain.radius, rtol=0.02)


def test_bf16_autocast_returns_float32_scores_and_keeps_confident_predictions():
    model, x = _setup()
    forward = BaseForward(model, bf16=True)
    with torch.inference_mode():
        out, ref = forward(x), model(x)
    assert out.dtype == torch.float32 and torch.equal(out.argmax(1), ref.argmax(1))
    common = dict(n0=50, n=2000, alpha=0.001, seed=3)
    plain = Smoothed(model, "gaussian").certify(x, 0.25, **common)
    half = Smoothed(model, "gaussian", bf16=True).certify(x, 0.25, **common)
    np.testing.assert_array_equal(half.prediction, plain.prediction)


def test_the_run_records_the_options_and_compile_needs_cuda(tmp_path):
    fast = ["--max", "1", "--n0", "10", "--n", "100", "--no-progress", "--device", "cpu"]
    result = CliRunner().invoke(
        app, ["certify", *fast, "--bf16", "--channels-last", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert config["bf16"] is True and config["channels_last"] is True and config["compile"] is False
    result = CliRunner().invoke(app, ["certify", *fast, "--compile", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "--compile runs on CUDA only" in result.output
    assert not (tmp_path / "c").exists()
