"""Checkpoints: safetensors + JSON sidecar round trips, sidecar contents and validation, builtin lookup."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

import anisocert
from anisocert.errors import InvalidParameterError, ModelLoadError, UnknownNameError
from anisocert.models import _loading, create_model, load_model
from anisocert.models.checkpoint import checkpoint_paths, load_checkpoint, read_sidecar, save_checkpoint

META = {
    "method": "gaussian",
    "hyper_parameters": {"lr": 0.1, "batch_size": 64},
    "noise": "gaussian",
    "sigma": 0.25,
    "data": "digits",
    "epochs": 30,
    "held_out_accuracy": 0.9611,
}


def _trained_like(name: str, num_classes: int | None = None) -> nn.Module:
    """Random weights and random BN statistics, so that every buffer has to survive the round trip."""
    torch.manual_seed(0)
    model = create_model(name, num_classes)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(17)
    return model.eval()


@pytest.mark.parametrize(
    "name, shape", [("digits_cnn", (1, 8, 8)), ("mlp2d", (2,)), ("cifar_resnet20", (3, 32, 32))]
)
def test_round_trip_is_bit_exact(tmp_path, name, shape):
    model = _trained_like(name)
    weights = save_checkpoint(
        tmp_path / "run" / "m", model, arch=name, num_classes=model.num_classes, meta=META
    )
    assert weights == tmp_path / "run" / "m.safetensors" and (tmp_path / "run" / "m.json").is_file()
    loaded, sidecar = load_checkpoint(weights)
    assert not loaded.training and sidecar["arch"] == name
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    x = torch.rand(4, *shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_sidecar_records_what_the_weights_are(tmp_path):
    model = _trained_like("digits_cnn")
    weights = save_checkpoint(tmp_path / "d.safetensors", model, arch="digits_cnn", num_classes=10, meta=META)
    side = json.loads((tmp_path / "d.json").read_text())
    assert side["arch"] == "digits_cnn" and side["num_classes"] == 10 and side["outputs"] == "logits"
    assert side["input_shape"] == [1, 8, 8]
    assert side["normalisation"] == {"mean": [0.3076], "std": [0.3748]}
    assert side["theta_convention"] == "standard deviation" and side["sigma"] == 0.25
    assert side["hyper_parameters"] == {"lr": 0.1, "batch_size": 64} and side["held_out_accuracy"] == 0.9611
    assert side["code_version"] == anisocert.__version__
    assert side["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert read_sidecar(tmp_path / "d") == side == read_sidecar(tmp_path / "d.json")
    uniform = save_checkpoint(
        tmp_path / "u", model, arch="digits_cnn", num_classes=10, meta={"noise": "uniform"}
    )
    assert read_sidecar(uniform)["theta_convention"] == "half-width"


def test_architecture_options_and_normalisation_survive(tmp_path):
    torch.manual_seed(0)
    model = create_model("mlp2d", hidden=16, depth=3, mean=(0.5, 0.2), std=(0.9, 0.5)).eval()
    weights = save_checkpoint(tmp_path / "m", model, arch="mlp2d", num_classes=2)
    assert read_sidecar(weights)["arch_options"] == {"hidden": 16, "depth": 3}
    loaded, side = load_checkpoint(weights)
    assert side["normalisation"] == loaded.normalisation == {"mean": [0.5, 0.2], "std": [0.9, 0.5]}
    x = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoint_paths():
    assert checkpoint_paths("a/m") == checkpoint_paths("a/m.safetensors") == checkpoint_paths("a/m.json")
    assert checkpoint_paths("a/m.v2")[0].name == "m.v2.safetensors"


def test_load_model_reads_a_checkpoint_through_its_sidecar(tmp_path):
    model = _trained_like("mlp2d")
    weights = save_checkpoint(tmp_path / "toy", model, arch="mlp2d", num_classes=2, meta=META)
    for spec in (str(weights), str(tmp_path / "toy.json"), f"mlp2d:{weights}"):
        loaded = load_model(spec)
        assert loaded.arch == "mlp2d" and loaded.num_classes == 2 and loaded.input_shape == (2,)
        assert loaded.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        x = torch.randn(6, 2)
        with torch.no_grad():
            assert torch.equal(loaded.module(x), model(x))
    assert load_model(str(weights)).sidecar["epochs"] == 30
    with pytest.raises(ModelLoadError, match="has 2 classes, not num_classes=3"):
        load_model(str(weights), num_classes=3)


def test_sidecar_problems_are_load_errors(tmp_path):
    model = _trained_like("mlp2d")
    weights = save_checkpoint(tmp_path / "m", model, arch="mlp2d", num_classes=2)
    side = tmp_path / "m.json"
    good = side.read_text()
    side.unlink()
    with pytest.raises(ModelLoadError, match=r"no sidecar .*m\.json.*ARCH:"):
        load_model(str(weights))
    side.write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(str(weights))
    side.write_text(json.dumps({**json.loads(good), "arch": "resnet1000"}))
    with pytest.raises(ModelLoadError, match="resnet1000.*not registered"):
        load_model(str(weights))
    side.write_text(good)
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(ModelLoadError, match="sha256 differs"):
        load_checkpoint(weights)


def test_save_validates_before_writing(tmp_path):
    model = _trained_like("mlp2d")
    with pytest.raises(ModelLoadError, match="missing keys"):
        save_checkpoint(tmp_path / "x", model, arch="digits_cnn", num_classes=10)
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidParameterError, match="not registered"):
        save_checkpoint(tmp_path / "x", model, arch="nope", num_classes=2)
    with pytest.raises(InvalidParameterError, match="arch"):
        save_checkpoint(tmp_path / "x", model, arch="mlp2d", num_classes=2, meta={"arch": "other"})
    with pytest.raises(InvalidParameterError, match="laplace"):
        save_checkpoint(tmp_path / "x", model, arch="mlp2d", num_classes=2, meta={"noise": "laplace"})
    with pytest.raises(InvalidParameterError, match="contradicts"):
        save_checkpoint(
            tmp_path / "x",
            model,
            arch="mlp2d",
            num_classes=2,
            meta={"noise": "uniform", "theta_convention": "std"},
        )
    with pytest.raises(InvalidParameterError, match="finite"):
        save_checkpoint(
            tmp_path / "x", model, arch="mlp2d", num_classes=2, meta={"held_out_accuracy": float("nan")}
        )
    with pytest.raises(InvalidParameterError, match="JSON"):
        save_checkpoint(tmp_path / "x", model, arch="mlp2d", num_classes=2, meta={"data": object()})
    assert not list(tmp_path.glob("x.*"))


def test_builtin_lookup(monkeypatch):
    with pytest.raises(UnknownNameError, match="digits-gaussian, digits-uniform"):
        load_model("builtin:cifar")
    monkeypatch.setitem(_loading.BUILTIN_WEIGHTS, "absent", "no_such_weights_file")
    with pytest.raises(ModelLoadError, match=r"no_such_weights_file\.safetensors is missing"):
        load_model("builtin:absent")


@pytest.mark.parametrize("name", sorted(_loading.BUILTIN_WEIGHTS))
def test_shipped_builtin_weights_load(name):
    from importlib import resources

    stem = _loading.BUILTIN_WEIGHTS[name]
    if not (resources.files("anisocert") / "weights" / f"{stem}.safetensors").is_file():
        pytest.skip(f"{stem}.safetensors is not shipped yet")
    loaded = load_model(f"builtin:{name}")
    arch, shape = ("lenet", (1, 28, 28)) if name.startswith("mnist") else ("digits_cnn", (1, 8, 8))
    assert loaded.arch == arch and loaded.input_shape == shape and not loaded.module.training
    # the name's second word is the training method; the noise is the method's family
    from anisocert.train import OBJECTIVES

    method = name.split("-")[1]
    assert loaded.sidecar["method"] == method and loaded.sidecar["noise"] == OBJECTIVES[method].noise
