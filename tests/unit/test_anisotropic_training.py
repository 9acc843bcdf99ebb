"""Issue 23: the anisotropic training method (random per-pixel noise scales) and the clamp input stage.

The scale fields' laws (seeded statistical checks), the isotropic share of a batch, the noise actually fed to
the model, the loss's gradient, the clamp (exact, off by default, recorded and reloaded), the sidecar, resume
and the CLI options.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from anisocert.errors import InputError, InvalidParameterError, UnknownNameError
from anisocert.models import create_model
from anisocert.models._registry import InputClamp
from anisocert.train import OBJECTIVES, Step, TrainConfig, reproduce_command
from anisocert.train.anisotropic import anisotropic_loss, anisotropic_theta, isotropic_count, scale_field


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _digit_like(B: int = 4, size: int = 12) -> torch.Tensor:
    """Images (B, 1, size, size): black, with one white vertical stroke in column 5 (rows 3-8)."""
    x = torch.zeros(B, 1, size, size)
    x[:, :, 3:9, 5] = 1.0
    return x


# -- the scale fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [2.0, 8.0, 30.0])
def test_pixel_field_is_log_uniform_in_one_to_k(K):
    """log(s) / log(K) ~ U[0, 1] independently per pixel: Kolmogorov-Smirnov on 40,000 values (seed fixed;
    p > 1e-3), and the range [1, K]."""
    x = torch.rand(100, 1, 20, 20, generator=_gen(1))
    s = scale_field(x, field="pixel", max_scale=K, generator=_gen(2))
    assert s.shape == x.shape and s.dtype == x.dtype
    assert float(s.min()) >= 1.0 and float(s.max()) <= K
    u = (s.log() / math.log(K)).flatten().double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # a wrong law is caught by the same check: s uniform on [1, K] instead of log-uniform
    wrong = (1 + (K - 1) * torch.rand(40_000, generator=_gen(3))).log() / math.log(K)
    assert stats.kstest(wrong.double().numpy(), "uniform").pvalue < 1e-3
    # independence between neighbouring pixels: correlation within 5 standard errors of 0
    a, b = u.reshape(100, 20, 20)[:, :, :-1].ravel(), u.reshape(100, 20, 20)[:, :, 1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)


def test_scale_one_gives_isotropic_noise_for_every_field():
    x = _digit_like()
    for field in ("pixel", "smooth", "background"):
        s = scale_field(x, field=field, max_scale=1.0, generator=_gen(0))
        assert torch.equal(s, torch.ones_like(x)), field


def test_smooth_field_lies_in_one_to_k_and_is_smooth():
    """Upsampled from a 4 x 4 grid: in [1, K], equal to K ** u at the grid's corners, and neighbouring
    pixels differ far less than in the pixel field."""
    K = 8.0
    x = torch.zeros(200, 1, 28, 28)
    s = scale_field(x, field="smooth", max_scale=K, generator=_gen(4), grid=4)
    assert float(s.min()) >= 1.0 and float(s.max()) <= K
    corners = (s[:, 0, 0, 0].log() / math.log(K)).double().numpy()  # align_corners: the grid value itself
    assert stats.kstest(corners, "uniform").pvalue > 1e-3
    rough = scale_field(x, field="pixel", max_scale=K, generator=_gen(4))
    step = (s[..., 1:] - s[..., :-1]).abs().mean()
    assert float(step) < 0.2 * float((rough[..., 1:] - rough[..., :-1]).abs().mean())


def test_background_field_keeps_sigma_near_the_strokes_and_grows_away_from_them():
    K = 8.0
    x = _digit_like(B=400)
    for margin in (0, 1, 2):
        s = scale_field(x, field="background", max_scale=K, generator=_gen(5), margin=margin)
        near = torch.zeros_like(x, dtype=torch.bool)
        near[:, :, max(0, 3 - margin) : 9 + margin, 5 - margin : 6 + margin] = True
        assert torch.equal(s[near], torch.ones_like(s[near])), margin  # on and within margin of the stroke
        far = s[~near]
        assert float(far.min()) >= 1.0 and float(far.max()) <= K
        assert stats.kstest((far.log() / math.log(K)).double().numpy(), "uniform").pvalue > 1e-3
    # grey pixels (value v) scale the exponent by 1 - v: s <= K ** (1 - v)
    grey = torch.full((50, 1, 6, 6), 0.5)
    s = scale_field(grey, field="background", max_scale=K, generator=_gen(6))
    assert float(s.max()) <= math.sqrt(K) + 1e-5 and float(s.max()) > 0.9 * math.sqrt(K)


def test_fields_that_need_images_refuse_vectors_in_one_line():
    with pytest.raises(InputError, match="--aniso-field smooth needs image inputs"):
        scale_field(torch.zeros(4, 2), field="smooth", max_scale=4.0, generator=_gen())
    assert scale_field(torch.zeros(4, 2), field="pixel", max_scale=4.0, generator=_gen()).shape == (4, 2)


# -- the isotropic share and the noise fed to the model -----------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "B", "expected"), [(0.5, 64, 32), (0.25, 10, 3), (0.0, 7, 0), (1.0, 7, 7)]
)
def test_isotropic_fraction_of_each_batch(fraction, B, expected):
    config = TrainConfig(method="anisotropic", sigma=0.25, aniso_iso_fraction=fraction, aniso_max_scale=8.0)
    x = torch.zeros(B, 1, 8, 8)
    theta = anisotropic_theta(x, 0.25, config, _gen(7))
    assert isotropic_count(B, fraction) == expected
    assert torch.equal(theta[:expected], torch.full_like(theta[:expected], 0.25))
    rest = theta[expected:]
    assert bool((rest >= 0.25).all()) and bool((rest <= 2.0 + 1e-6).all())
    # the anisotropic rows are not isotropic: every one has a pixel above 1.5 sigma (64 log-uniform draws)
    assert all(float(r.max()) > 1.5 * 0.25 for r in rest)


def test_isotropic_share_scale_is_one_per_input_and_log_uniform_in_one_to_c():
    """--aniso-iso-max-scale C: each isotropic row is sigma * c, constant over the row, with log(c) / log(C)
    uniform on [0, 1] (Kolmogorov-Smirnov over 4,000 rows)."""
    from scipy import stats

    sigma, C = 0.5, 1.8
    base = TrainConfig(method="anisotropic", sigma=sigma, aniso_iso_fraction=0.5, aniso_max_scale=8.0)
    scaled = TrainConfig(**{**base.to_dict(), "aniso_iso_max_scale": C})
    x = torch.zeros(8000, 1, 4, 4)
    theta = anisotropic_theta(x, sigma, scaled, _gen(3))
    iso = theta[:4000].flatten(1)
    assert torch.equal(iso, iso[:, :1].expand_as(iso))  # one scale per input
    c = (iso[:, 0] / sigma).double()
    assert float(c.min()) >= 1.0 and float(c.max()) <= C + 1e-6
    assert stats.kstest((c.log() / math.log(C)).numpy(), "uniform").pvalue > 1e-3
    assert float(c.std()) > 0.1  # not all at one end
    # C = 1 draws nothing extra: the same stream, so models trained before the option are reproduced
    assert torch.equal(
        anisotropic_theta(x, sigma, base, _gen(3))[:4000], torch.full_like(iso, sigma).view(4000, 1, 4, 4)
    )
    assert torch.equal(
        anisotropic_theta(x, sigma, base, _gen(3)),
        anisotropic_theta(x, sigma, TrainConfig(**{**base.to_dict(), "aniso_iso_max_scale": 1.0}), _gen(3)),
    )


class _Recorder(nn.Module):
    """Records its input and returns fixed logits (linear in the input so the loss has a gradient)."""

    def __init__(self, dim: int, classes: int = 3):
        super().__init__()
        self.seen = None
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        self.seen = x.detach().clone()
        return self.fc(x.flatten(1))


def test_the_loss_adds_gaussian_noise_with_theta_sigma_times_s():
    """Iso rows: (noisy - x) / sigma ~ N(0, 1); anisotropic rows (pixel field, K): variance
    sigma^2 E[s^2] with E[s^2] = (K^2 - 1) / (2 ln K) for log-uniform s. 64 x 400 values per half; the
    tolerances are 5 standard errors of the sample variance."""
    sigma, K = 0.3, 4.0
    config = TrainConfig(method="anisotropic", sigma=sigma, aniso_max_scale=K, aniso_iso_fraction=0.5)
    x = torch.rand(128, 1, 20, 20, generator=_gen(8))
    model = _Recorder(400)
    anisotropic_loss(model, x, torch.zeros(128, dtype=torch.long), Step(sigma, _gen(9), 0, config))
    d = (model.seen - x).double()
    iso, aniso = d[:64].flatten(), d[64:].flatten()
    assert float(iso.mean()) == pytest.approx(0.0, abs=5 * sigma / math.sqrt(iso.numel()))
    assert float(iso.var() / sigma**2) == pytest.approx(1.0, abs=5 * math.sqrt(2 / iso.numel()))
    es2 = (K**2 - 1) / (2 * math.log(K))
    es4 = 3 * (K**4 - 1) / (4 * math.log(K))  # E[e^4 s^4] = 3 E[s^4]
    se = math.sqrt((es4 - es2**2) / aniso.numel())
    assert float(aniso.var() / sigma**2) == pytest.approx(es2, abs=5 * se)


def test_the_loss_is_differentiable_and_one_step_lowers_it():
    torch.manual_seed(0)
    model = create_model("digits_cnn", clamp_input=True)
    config = TrainConfig(method="anisotropic", sigma=0.25, aniso_field="background", clamp_input=True)
    from anisocert.data import load_data

    train = load_data("digits", "train")
    idx = np.arange(64)
    x, y = train.get(idx), torch.as_tensor(train.labels[idx])
    loss = OBJECTIVES["anisotropic"].loss(model, x, y, Step(0.25, _gen(10), 0, config))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = float(OBJECTIVES["anisotropic"].loss(model, x, y, Step(0.25, _gen(11), 0, config)).detach())
    for i in range(5):
        opt.zero_grad()
        OBJECTIVES["anisotropic"].loss(model, x, y, Step(0.25, _gen(20 + i), 0, config)).backward()
        opt.step()
    after = float(OBJECTIVES["anisotropic"].loss(model, x, y, Step(0.25, _gen(11), 0, config)).detach())
    assert after < before


# -- the clamp input stage ----------------------------------------------------------------------------


def test_input_clamp_clamps_exactly():
    x = torch.tensor([-3.0, -1e-7, 0.0, 0.25, 1.0, 1.0 + 1e-7, 7.5])
    assert torch.equal(InputClamp()(x), torch.tensor([0.0, 0.0, 0.0, 0.25, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize("arch", ["lenet", "digits_cnn"])
def test_clamp_is_off_by_default_and_changes_only_inputs_outside_the_range(arch):
    torch.manual_seed(0)
    plain = create_model(arch).eval()
    clamped = create_model(arch, clamp_input=True).eval()
    assert plain.arch_options == {} and clamped.arch_options == {"clamp_input": True}
    assert plain.state_dict().keys() == clamped.state_dict().keys()  # no new weights: old files still load
    clamped.load_state_dict(plain.state_dict())
    shape = plain.input_shape
    inside = torch.rand(6, *shape, generator=_gen(12))
    noisy = inside + 0.8 * torch.randn(6, *shape, generator=_gen(13))
    with torch.no_grad():
        assert torch.equal(plain(inside), clamped(inside))
        assert torch.equal(clamped(noisy), plain(noisy.clamp(0, 1)))
        assert not torch.allclose(plain(noisy), clamped(noisy))  # the comparison above can fail


def test_shipped_models_load_without_the_clamp():
    from anisocert.models import load_model

    for name in ("builtin:mnist-gaussian-0.25", "builtin:digits-gaussian"):
        loaded = load_model(name)
        module = getattr(loaded, "module", loaded)
        stages = [m for m in module.modules() if isinstance(m, InputClamp)]
        assert stages == [], name


def test_clamp_input_must_be_a_bool():
    with pytest.raises(InvalidParameterError, match="clamp_input"):
        create_model("lenet", clamp_input=1)


# -- configuration, sidecar, resume --------------------------------------------------------------------


def test_config_refuses_bad_anisotropic_values_in_one_line():
    with pytest.raises(UnknownNameError, match="aniso-field='blobs'"):
        TrainConfig(method="anisotropic", aniso_field="blobs")
    with pytest.raises(InvalidParameterError, match="aniso-max-scale=0.5"):
        TrainConfig(method="anisotropic", aniso_max_scale=0.5)
    with pytest.raises(InvalidParameterError, match="aniso-iso-fraction=1.5"):
        TrainConfig(method="anisotropic", aniso_iso_fraction=1.5)
    with pytest.raises(InvalidParameterError, match="aniso-iso-max-scale=0.9"):
        TrainConfig(method="anisotropic", aniso_iso_max_scale=0.9)
    with pytest.raises(InvalidParameterError, match="aniso-grid=0"):
        TrainConfig(method="anisotropic", aniso_grid=0)
    with pytest.raises(InvalidParameterError, match="aniso-margin=-1"):
        TrainConfig(method="anisotropic", aniso_margin=-1)


def test_other_methods_record_the_same_configuration_as_before():
    """The new fields are left out of result_dict unless used, so the sidecars and resume states written
    before them (the shipped models') still match their configuration."""
    from importlib import resources

    from anisocert.train._state import finished

    weights = resources.files("anisocert") / "weights"
    for name in ("mnist_gaussian_0.25.json", "mnist_uniform_0.50.json"):
        side = json.loads((weights / name).read_text())
        config = TrainConfig.from_dict(side["training"])
        assert config.result_dict() == side["training"]
        assert finished(weights / name, config)
    assert "clamp_input" in TrainConfig(clamp_input=True).result_dict()
    assert "aniso_max_scale" in TrainConfig(method="gaussian", aniso_max_scale=4.0).result_dict()
    assert "aniso_max_scale" in TrainConfig(method="anisotropic").result_dict()
    # added after the first anisotropic models shipped: recorded only when used, so their sidecars (and
    # resume states) still match; both shipped ones use it now (C = 4 at sigma 0.25, 2.0 at 0.50)
    for name, scale in (("mnist_anisotropic_0.25.json", 4.0), ("mnist_anisotropic_0.50.json", 2.0)):
        side = json.loads((weights / name).read_text())
        config = TrainConfig.from_dict(side["training"])
        assert config.result_dict() == side["training"] and finished(weights / name, config)
        assert side["training"]["aniso_iso_max_scale"] == scale
    old = json.loads((weights / "mnist_anisotropic_0.50.json").read_text())["training"]
    del old["aniso_iso_max_scale"]
    old["aniso_iso_fraction"] = 0.5  # the first shipped sidecar's training block: no scale range recorded
    assert TrainConfig.from_dict(old).result_dict() == old
    assert "aniso_iso_max_scale" not in TrainConfig(method="anisotropic").result_dict()
    assert (
        TrainConfig(method="anisotropic", aniso_iso_max_scale=1.5).result_dict()["aniso_iso_max_scale"] == 1.5
    )


def test_sidecar_records_method_hyper_parameters_and_clamp_and_reloads_it(tmp_path):
    from anisocert.models.checkpoint import load_checkpoint
    from anisocert.train import train_model

    config = TrainConfig(
        arch="digits_cnn",
        clamp_input=True,
        data="digits",
        method="anisotropic",
        sigma=0.25,
        epochs=1,
        batch_size=128,
        aniso_field="smooth",
        aniso_max_scale=6.0,
        aniso_iso_fraction=0.25,
        aniso_grid=3,
    )
    path = train_model(config, tmp_path / "aniso", progress=False)
    model, side = load_checkpoint(path)
    assert side["method"] == "anisotropic" and side["noise"] == "gaussian" and side["sigma"] == 0.25
    assert side["hyper_parameters"] == {
        "aniso_field": "smooth",
        "aniso_max_scale": 6.0,
        "aniso_iso_fraction": 0.25,
        "aniso_grid": 3,
        "aniso_margin": 1,
    }
    assert side["arch_options"] == {"clamp_input": True} and side["training"]["clamp_input"] is True
    assert side["training"] == config.result_dict()
    assert "--clamp-input" in side["command"] and "--aniso-field smooth" in side["command"]
    assert any(isinstance(m, InputClamp) for m in model.modules())


def test_resume_after_one_epoch_gives_the_same_weights_as_one_run(tmp_path):
    from safetensors.torch import load_file

    from anisocert.train import train_model

    config = TrainConfig(
        arch="digits_cnn",
        clamp_input=True,
        data="digits",
        method="anisotropic",
        sigma=0.25,
        epochs=2,
        batch_size=256,
        aniso_field="background",
        seed=1,
    )
    whole = train_model(config, tmp_path / "whole", progress=False)
    state = train_model(config, tmp_path / "parts", progress=False, stop_after=1)
    assert state.is_file()
    parts = train_model(config, tmp_path / "parts", progress=False)
    a, b = load_file(str(whole)), load_file(str(parts))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = train_model(
        TrainConfig(**{**config.to_dict(), "aniso_max_scale": 4.0}), tmp_path / "o", progress=False
    )
    assert not all(torch.equal(a[k], load_file(str(other))[k]) for k in a)  # K decides the weights


def test_reproduce_command_parses_back_with_the_anisotropic_options():
    import shlex

    import typer

    from anisocert.cli.train import train

    config = TrainConfig(
        arch="lenet",
        clamp_input=True,
        data="mnist",
        method="anisotropic",
        aniso_field="background",
        aniso_max_scale=16.0,
        aniso_iso_fraction=0.3,
        aniso_iso_max_scale=1.5,
        aniso_margin=2,
    )
    words = shlex.split(reproduce_command(config, "runs/a"))[2:]
    app = typer.Typer()
    app.command()(train)
    params = typer.main.get_command(app).make_context("train", words).params
    parsed = TrainConfig(**{k: v for k, v in params.items() if k not in ("out", "progress")})
    assert parsed.result_dict() == config.result_dict()


def test_cli_trains_the_anisotropic_method_and_refuses_bad_options_with_exit_2(tmp_path):
    import typer
    from typer.testing import CliRunner

    from anisocert.cli.train import train

    app = typer.Typer(add_completion=False)
    app.command()(train)
    args = ["--method", "anisotropic", "--epochs", "1", "--batch-size", "256", "--no-progress"]
    ok = CliRunner().invoke(
        app, [*args, "--clamp-input", "--aniso-max-scale", "4", "--out", str(tmp_path / "m")]
    )
    assert ok.exit_code == 0, ok.output
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["hyper_parameters"]["aniso_max_scale"] == 4.0 and side["arch_options"] == {
        "clamp_input": True
    }
    bad = CliRunner().invoke(app, [*args, "--aniso-max-scale", "0.5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "aniso-max-scale=0.5 must be a finite number >= 1" in bad.output
    vec = [
        *args,
        "--arch",
        "mlp2d",
        "--data",
        "moons",
        "--aniso-field",
        "smooth",
        "--out",
        str(tmp_path / "y"),
    ]
    bad = CliRunner().invoke(app, vec)
    assert bad.exit_code == 2 and "needs image inputs" in bad.output
