"""Registry, architectures and load_model: saved programs, factories, foreign checkpoint layouts, refusals."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import warnings

import pytest
import torch
import torchvision
from torch import nn

from anisocert.errors import InvalidParameterError, ModelLoadError, UnknownNameError
from anisocert.models import LoadedModel, create_model, is_model, list_models, load_model

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
EXPECTED = {
    "digits_cnn": ((1, 8, 8), 10),
    "lenet": ((1, 28, 28), 10),
    "mlp2d": ((2,), 2),
    "cifar_resnet20": ((3, 32, 32), 10),
    "cifar_resnet110": ((3, 32, 32), 10),
    "cifar_resnet18": ((3, 32, 32), 10),
    "ancer_resnet18": ((3, 32, 32), 10),
    "wrn40_2": ((3, 32, 32), 10),
    "imagenet_resnet50": ((3, 224, 224), 1000),
}


def _seeded(name: str, num_classes: int | None = None, **kw) -> nn.Module:
    """A model with random weights and random BN statistics (so buffers matter), in eval mode."""
    torch.manual_seed(0)
    model = create_model(name, num_classes, **kw)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without our normalisation buffers: what the public code bases save."""
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("normalize.")}


# ------------------------------------------------------------------------------------------ registry


def test_registry_lists_every_architecture():
    assert set(EXPECTED) <= set(list_models())
    assert list_models("cifar_*") == ["cifar_resnet110", "cifar_resnet18", "cifar_resnet20"]
    assert is_model("wrn40_2") and not is_model("resnet50")


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(UnknownNameError, match="cifar_resnet110.*wrn40_2"):
        create_model("resnet1000")


def test_unknown_option_is_refused_with_the_accepted_ones():
    with pytest.raises(InvalidParameterError, match="hidden"):
        create_model("mlp2d", widht=3)
    with pytest.raises(InvalidParameterError, match="num_classes"):
        create_model("mlp2d", num_classes=0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_architecture_forwards_a_batch(name):
    shape, classes = EXPECTED[name]
    model = _seeded(name)
    batch = 1 if name == "imagenet_resnet50" else 2
    with torch.no_grad():
        out = model(torch.rand(batch, *shape))
    assert out.shape == (batch, classes) and torch.isfinite(out).all()
    assert model.outputs == "logits" and model.input_shape == shape and model.num_classes == classes
    assert model.arch == name


@pytest.mark.parametrize(
    "name, mean, std",
    [
        ("cifar_resnet20", CIFAR_MEAN, CIFAR_STD),
        ("wrn40_2", CIFAR_MEAN, CIFAR_STD),
        ("ancer_resnet18", CIFAR_MEAN, CIFAR_STD),
        ("imagenet_resnet50", IMAGENET_MEAN, IMAGENET_STD),
    ],
)
def test_normalisation_is_the_first_layer(name, mean, std):
    """f(x) with the built-in normalisation == f with an identity first layer applied to (x - mean) / std."""
    model = _seeded(name, num_classes=3)
    assert model.normalisation == {"mean": pytest.approx(mean), "std": pytest.approx(std)}
    side = 64 if name == "imagenet_resnet50" else 32
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        out = model(x)
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        model.normalize.mean.zero_()
        model.normalize.std.fill_(1.0)
        torch.testing.assert_close(model((x - m) / s), out, rtol=1e-4, atol=1e-5)


def test_parameter_layouts_match_the_reference_code():
    """Parameter counts and key names of the public implementations (Cohen, RS4A/ANCER, DDRS, torchvision)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    r110 = create_model("cifar_resnet110")
    keys = set(r110.state_dict())
    assert count(r110) == 1_730_714  # 16/32/64 channels, 3 x 18 basic blocks, B-projection shortcuts
    assert {
        "conv1.weight",
        "bn1.running_var",
        "layer3.17.bn2.weight",
        "layer2.0.downsample.0.weight",
        "fc.bias",
    } <= keys
    assert "layer1.0.downsample.0.weight" not in keys  # first stage keeps 16 channels: identity shortcut
    wrn = create_model("wrn40_2")
    assert count(wrn) == 2_243_546
    assert {"block1.layer.0.convShortcut.weight", "block3.layer.5.bn2.bias", "bn1.weight"} <= set(
        wrn.state_dict()
    )
    assert "block1.layer.1.convShortcut.weight" not in wrn.state_dict()
    ancer = create_model("ancer_resnet18").state_dict()
    assert ancer["conv1.weight"].shape == (64, 3, 7, 7) and "bn1.weight" not in ancer
    cifar18 = create_model("cifar_resnet18").state_dict()
    assert cifar18["conv1.weight"].shape == (64, 3, 3, 3) and "bn1.weight" in cifar18
    with torch.device("meta"):
        tv = torchvision.models.resnet50(weights=None)
        r50 = create_model("imagenet_resnet50")
    assert set(r50.state_dict()) == {"net." + k for k in tv.state_dict()} | {
        "normalize.mean",
        "normalize.std",
    }


def _normalised(model, x):
    return (x - model.normalize.mean) / model.normalize.std


def test_resnets_compute_what_torchvision_blocks_compute():
    """Our weights in networks assembled from torchvision's ResNet parts give the same logits."""
    from torchvision.models.resnet import BasicBlock, resnet18

    x = torch.rand(2, 3, 32, 32)
    for name, stem in (("cifar_resnet18", "cifar"), ("ancer_resnet18", "ancer")):
        ours = _seeded(name)
        ref = resnet18(num_classes=10)
        if stem == "cifar":  # 3x3 stride-1 stem, no max-pool
            ref.conv1, ref.maxpool = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity()
        else:  # DDRS/ANCER: torchvision's stem without its BN
            ref.bn1 = nn.Identity()
        ref.load_state_dict(_body_state(ours))
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref.eval()(_normalised(ours, x)))
    ours = _seeded("cifar_resnet20")

    def stage(c_in, c_out, stride):
        down = None
        if stride != 1 or c_in != c_out:
            down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        return nn.Sequential(
            BasicBlock(c_in, c_out, stride, down), BasicBlock(c_out, c_out), BasicBlock(c_out, c_out)
        )

    ref = nn.Module()
    ref.conv1, ref.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
    ref.layer1, ref.layer2, ref.layer3 = stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2)
    ref.fc = nn.Linear(64, 10)
    ref.load_state_dict(_body_state(ours))
    ref.eval()
    with torch.no_grad():
        h = torch.relu(ref.bn1(ref.conv1(_normalised(ours, x))))
        h = ref.layer3(ref.layer2(ref.layer1(h))).mean(dim=(2, 3))
        torch.testing.assert_close(ours(x), ref.fc(h))


def test_wide_resnet_follows_the_reference_block_rule():
    """RS4A/ANCER block: if in != out, x <- relu(bn1(x)) feeds both conv1 and convShortcut; else x + branch."""
    import torch.nn.functional as F  # noqa: N812

    model = _seeded("wrn40_2")
    sd = model.state_dict()

    def bn(prefix, h):
        return F.batch_norm(
            h,
            sd[f"{prefix}.running_mean"],
            sd[f"{prefix}.running_var"],
            sd[f"{prefix}.weight"],
            sd[f"{prefix}.bias"],
            training=False,
            eps=1e-5,
        )

    x = torch.rand(2, 3, 32, 32)
    h = F.conv2d(_normalised(model, x), sd["conv1.weight"], padding=1)
    for b, first_stride in ((1, 1), (2, 2), (3, 2)):
        for i in range(6):
            p = f"block{b}.layer.{i}"
            stride = first_stride if i == 0 else 1
            if f"{p}.convShortcut.weight" in sd:
                h = F.relu(bn(f"{p}.bn1", h))
                out = F.relu(bn(f"{p}.bn2", F.conv2d(h, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
                h = F.conv2d(h, sd[f"{p}.convShortcut.weight"], stride=stride) + F.conv2d(
                    out, sd[f"{p}.conv2.weight"], padding=1
                )
            else:
                out = F.relu(
                    bn(f"{p}.bn2", F.conv2d(F.relu(bn(f"{p}.bn1", h)), sd[f"{p}.conv1.weight"], padding=1))
                )
                h = h + F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1)
    h = F.avg_pool2d(F.relu(bn("bn1", h)), 8).flatten(1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.linear(h, sd["fc.weight"], sd["fc.bias"]))


# --------------------------------------------------------------------------------- saved programs


def test_exported_program_round_trip(tmp_path):
    model = _seeded("cifar_resnet20")
    x = torch.rand(5, 3, 32, 32)
    program = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "m.pt2")
    loaded = load_model(str(tmp_path / "m.pt2"))
    assert (
        isinstance(loaded, LoadedModel) and loaded.input_shape == (3, 32, 32) and loaded.outputs == "logits"
    )
    assert len(loaded.sha256) == 64
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=1e-5, atol=1e-6)


def test_exported_program_with_a_fixed_batch_runs_any_batch(tmp_path):
    model = _seeded("mlp2d")
    program = torch.export.export(model, (torch.rand(2, 2),))
    torch.export.save(
        program, tmp_path / "fixed.pt2", extra_files={"anisocert.json": '{"outputs": "probabilities"}'}
    )
    loaded = load_model(str(tmp_path / "fixed.pt2"))
    assert loaded.outputs == "probabilities" and "fixed batch of 2" in loaded.description
    x = torch.rand(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x))


def test_torchscript_round_trip_keeps_attributes(tmp_path):
    model = _seeded("cifar_resnet20")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(tmp_path / "m.pt"))
    loaded = load_model(str(tmp_path / "m.pt"))
    assert loaded.outputs == "logits" and loaded.input_shape == (3, 32, 32) and loaded.num_classes == 10
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))
    assert not loaded.module.training


def test_a_weights_file_alone_is_not_a_program(tmp_path):
    torch.save(create_model("mlp2d").state_dict(), tmp_path / "w.pt")
    with pytest.raises(ModelLoadError, match=r"ARCH:.*w\.pt"):
        load_model(str(tmp_path / "w.pt"))


# ------------------------------------------------------------------------------------------ factory


def test_module_factory(tmp_path, monkeypatch):
    (tmp_path / "anisocert_test_factory.py").write_text(
        textwrap.dedent(
            """
            import torch

            def make():
                torch.manual_seed(1)
                net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
                net.outputs = "probabilities"
                return net

            def not_a_module():
                return 3

            def broken():
                raise RuntimeError("no weights here")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "anisocert_test_factory", raising=False)
    loaded = load_model("anisocert_test_factory:make")
    assert loaded.outputs == "probabilities" and "factory" in loaded.description and len(loaded.sha256) == 64
    assert loaded.module(torch.ones(1, 2, 2)).shape == (1, 3) and not loaded.module.training
    with pytest.raises(ModelLoadError, match="returned int"):
        load_model("anisocert_test_factory:not_a_module")
    with pytest.raises(ModelLoadError, match="no weights here"):
        load_model("anisocert_test_factory:broken")
    with pytest.raises(ModelLoadError, match="no callable 'missing'"):
        load_model("anisocert_test_factory:missing")
    with pytest.raises(ModelLoadError, match="cannot import"):
        load_model("anisocert_no_such_module:make")


# ------------------------------------------------------------------------------- foreign checkpoints


def test_cohen_layout_with_dataparallel_prefix_loads_and_matches(tmp_path):
    """Cohen et al.: {'state_dict': Sequential(normalize, DataParallel(net)).state_dict(), 'arch', 'optimizer'}."""
    model = _seeded("cifar_resnet20")
    state = {f"1.module.{k}": v for k, v in _body_state(model).items()}
    torch.save(
        {"epoch": 90, "arch": "cifar_resnet20", "state_dict": state, "optimizer": {"state": {}}},
        tmp_path / "c.pth.tar",
    )
    loaded = load_model(f"cifar_resnet20:{tmp_path / 'c.pth.tar'}")
    assert "removed prefix '1.'" in loaded.description and "removed prefix 'module.'" in loaded.description
    assert loaded.module.normalisation["std"] == pytest.approx(CIFAR_STD)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))


def test_macer_layout_has_no_normalisation(tmp_path):
    """MACER saves {'net': base_model.state_dict(), 'epoch'} and trains on raw [0, 1] pixels."""
    raw = _seeded("cifar_resnet20", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    torch.save({"net": _body_state(raw), "epoch": 440}, tmp_path / "440.pth")
    loaded = load_model(f"cifar_resnet20:{tmp_path / '440.pth'}")
    assert "MACER" in loaded.description
    assert loaded.module.normalisation == {"mean": [0.0] * 3, "std": [1.0] * 3}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), raw(x))


def test_rs4a_layout_takes_normalisation_from_the_file(tmp_path):
    """RS4A: model.module.* for the network, norm.module.mu / log_sig for the normalisation."""
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    model = _seeded("wrn40_2", mean=mean, std=std)
    state = {f"model.module.{k}": v for k, v in _body_state(model).items()}
    state["norm.module.mu"] = torch.tensor(mean).view(3, 1, 1)
    state["norm.module.log_sig"] = torch.tensor(std).log().view(3, 1, 1)
    torch.save(state, tmp_path / "rs4a.pt")
    loaded = load_model(f"wrn40_2:{tmp_path / 'rs4a.pt'}")
    assert "normalisation from the file" in loaded.description
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=1e-5, atol=1e-6)


def test_ddrs_resnet18_layout_points_to_ancer_resnet18(tmp_path):
    model = _seeded("ancer_resnet18")
    torch.save({"state_dict": _body_state(model)}, tmp_path / "ddrs.pth")
    loaded = load_model(f"ancer_resnet18:{tmp_path / 'ddrs.pth'}")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))
    with pytest.raises(ModelLoadError, match=r"does not fit cifar_resnet18: .*these keys fit ancer_resnet18"):
        load_model(f"cifar_resnet18:{tmp_path / 'ddrs.pth'}")


def test_torchvision_and_cohen_imagenet_layouts_map_under_net(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None, num_classes=10).eval()
    save_file(tv.state_dict(), str(tmp_path / "tv.safetensors"))
    loaded = load_model(f"imagenet_resnet50:{tmp_path / 'tv.safetensors'}")
    assert loaded.num_classes == 10 and "torchvision keys moved under 'net.'" in loaded.description
    x = torch.rand(1, 3, 64, 64)
    m, s = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), tv((x - m) / s), rtol=1e-5, atol=1e-6)
    torch.save(
        {"state_dict": {f"1.module.{k}": v for k, v in tv.state_dict().items()}}, tmp_path / "cohen.pth.tar"
    )
    cohen = load_model(f"imagenet_resnet50:{tmp_path / 'cohen.pth.tar'}", num_classes=10)
    with torch.no_grad():
        assert torch.equal(cohen.module(x), loaded.module(x))


def test_number_of_classes_is_read_from_the_classifier(tmp_path):
    model = _seeded("cifar_resnet20", num_classes=7)
    torch.save({"state_dict": _body_state(model)}, tmp_path / "c7.pth")
    assert load_model(f"cifar_resnet20:{tmp_path / 'c7.pth'}").num_classes == 7
    with pytest.raises(ModelLoadError, match=r"differ in shape: fc\.weight \(7, 64\).*7 classes"):
        load_model(f"cifar_resnet20:{tmp_path / 'c7.pth'}", num_classes=10)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = _body_state(_seeded("cifar_resnet20"))
    state["extra.weight"] = torch.zeros(1)
    del state["fc.bias"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(
        ModelLoadError, match=r"1 missing keys \(fc\.bias\) and 1 unexpected keys \(extra\.weight\)"
    ):
        load_model(f"cifar_resnet20:{tmp_path / 'bad.pt'}")
    with pytest.raises(
        ModelLoadError, match=r"does not fit cifar_resnet110: 540 missing keys .*fit cifar_resnet20"
    ):
        torch.save(_body_state(_seeded("cifar_resnet20")), tmp_path / "r20.pt")
        load_model(f"cifar_resnet110:{tmp_path / 'r20.pt'}")


def test_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(f"cifar_resnet20:{tmp_path / 'nothing.pth'}")
    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet9'.*cifar_resnet110"):
        load_model(f"resnet9:{tmp_path / 'x.pth'}")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nothing.pt2"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError, match="cannot read checkpoint"):
        load_model(f"cifar_resnet20:{tmp_path / 'junk.pth'}")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot read safetensors file"):
        load_model(f"mlp2d:{tmp_path / 'junk.safetensors'}")
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_model(str(tmp_path))
    with pytest.raises(UnknownNameError, match="digits-gaussian"):
        load_model("builtin:nope")


# ---------------------------------------------------------------------------------- code-running pickles


class _Evil:
    """Unpickling this runs a shell command that creates the file `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "payload": _Evil(marker)}, path)
    torch.load(path, weights_only=False)  # the payload is live: an unrestricted load runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ModelLoadError, match=r"refused .*system"):
        load_model(f"cifar_resnet20:{path}")
    with pytest.raises(ModelLoadError):
        load_model(str(path))
    raw = tmp_path / "evil_raw.pt"
    raw.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(ModelLoadError, match="refused|cannot read"):
        load_model(f"cifar_resnet20:{raw}")
    assert not marker.exists()


def test_numpy_values_in_a_checkpoint_are_allowed(tmp_path):
    import numpy as np

    model = _seeded("mlp2d")
    torch.save(
        {"state_dict": _body_state(model), "best_acc": np.float64(0.93), "hist": np.arange(3)},
        tmp_path / "n.pth",
    )
    loaded = load_model(f"mlp2d:{tmp_path / 'n.pth'}")
    x = torch.rand(4, 2)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))
