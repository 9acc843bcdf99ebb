"""`load_model(spec)`: saved programs, factories, and architecture + weights files (never a code-running pickle).

Specs, tried in this order:

- ``builtin:NAME``: weights shipped in ``anisocert/weights/`` (``digits-gaussian``, ``digits-uniform``,
  ``mnist-gaussian-0.25/0.50/1.00``, ``mnist-uniform-0.25/0.50``).
- an existing file: ``*.pt2`` (torch.export program), ``*.safetensors`` (its JSON sidecar ``*.json``
  names the architecture), or a TorchScript archive (any other suffix).
- ``ARCH:CHECKPOINT``: a registered architecture and a ``.safetensors`` or ``.pt/.pth/.tar`` file; the
  latter is read with ``torch.load(weights_only=True)`` only, so a pickle that would import code
  (``os.system``, any class) is refused with ModelLoadError before anything runs.
- ``package.module:factory``: imports the module and calls ``factory()`` with no arguments.

State dicts are matched to the architecture by key name (`anisocert.models._state_dict.map_state_dict`): nestings ``state_dict``,
``net`` (MACER), ``model_state_dict`` and ``model``; the wrapper prefixes ``module.`` (DataParallel),
``1.`` (Cohen et al. and SmoothAdv's ``Sequential(normalize, model)``) and ``model.`` (RS4A); and
torchvision's ResNet-50 keys, which go under ``net.`` of ``imagenet_resnet50``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidParameterError, ModelLoadError, UnknownNameError, one_line
from . import _state_dict, _weights
from . import checkpoint as _ckpt  # a module object: checkpoint imports models._registry
from ._registry import create_model, is_model, list_models

__all__ = ["LoadedModel", "load_model", "load_arch_checkpoint", "training_noise", "BUILTIN_WEIGHTS"]

# builtin:NAME -> file stem in anisocert/weights/
BUILTIN_WEIGHTS = {
    "digits-gaussian": "digits_gaussian_0.25",
    "digits-uniform": "digits_uniform_0.5",
    # LeNets trained on the 4,000 mnist training digits (commands: README, "Shipped models")
    "mnist-gaussian-0.25": "mnist_gaussian_0.25",
    "mnist-gaussian-0.50": "mnist_gaussian_0.50",
    "mnist-gaussian-1.00": "mnist_gaussian_1.00",
    "mnist-uniform-0.25": "mnist_uniform_0.25",  # sigma = std 0.25: half-width sqrt(3) * 0.25
    "mnist-uniform-0.50": "mnist_uniform_0.50",
    "mnist-macer-0.25": "mnist_macer_0.25",  # Jeong & Shin's MACER recipe for MNIST (lambda 16, deferred)
    "mnist-macer-0.50": "mnist_macer_0.50",
    "mnist-smoothadv-0.25": "mnist_smoothadv_0.25",  # SmoothAdv fine-tuning of mnist-gaussian-0.25 (5 epochs)
    "mnist-smoothadv-0.50": "mnist_smoothadv_0.50",
    # trained for anisotropic certificates (issue 23): background-field noise scales, inputs clamped to [0, 1]
    "mnist-anisotropic-0.25": "mnist_anisotropic_0.25",
    "mnist-anisotropic-0.50": "mnist_anisotropic_0.50",
}
OUTPUTS = ("logits", "probabilities")


@dataclass
class LoadedModel:
    """A model ready for inference: `module` is in eval mode on the requested device.

    outputs is "logits" or "probabilities"; input_shape (D, without the batch) and num_classes are
    None when the file does not say. sha256 is the hex digest of the weights or program file (of the
    module's source file for a factory). sidecar is the JSON sidecar of an anisocert checkpoint.
    """

    module: nn.Module
    outputs: str
    input_shape: tuple[int, ...] | None
    num_classes: int | None
    description: str
    sha256: str | None
    arch: str | None = None
    sidecar: dict | None = field(default=None, repr=False)


def load_model(spec: str, *, device=None, num_classes: int | None = None) -> LoadedModel:
    """Load a classifier from a spec string (see the module docstring), in eval mode on `device`.

    Parameters
    ----------
    spec : str
        ``builtin:digits-gaussian``, ``ARCH:WEIGHTS``, ``WEIGHTS.safetensors`` (+ sidecar), ``FILE.pt2``,
        a TorchScript file, or ``package.module:factory``.
    device : str or torch.device, optional
        Where the module goes; CPU when None.
    num_classes : int, optional
        For ``ARCH:WEIGHTS``: the number of outputs (inferred from the classifier's weights when None).
        For other specs: checked against what the file records, if it records it.

    Raises
    ------
    ModelLoadError
        A missing or unreadable file, a pickle that would run code, weights that do not fit the
        architecture (missing/unexpected keys or shapes are listed).
    UnknownNameError
        An unregistered architecture or builtin name.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(
            f"model={spec!r} must be a non-empty string such as builtin:digits-gaussian"
        )
    device = torch.device("cpu" if device is None else device)
    loaded = _dispatch(spec.strip(), num_classes)
    if num_classes is not None and loaded.num_classes is not None and loaded.num_classes != num_classes:
        raise ModelLoadError(f"{spec} has {loaded.num_classes} classes, not num_classes={num_classes}")
    if loaded.outputs not in OUTPUTS:
        raise ModelLoadError(f"{spec} declares outputs={loaded.outputs!r}; it must be one of {OUTPUTS}")
    loaded.module = _to_eval(loaded.module, device)
    return loaded


def _dispatch(spec: str, num_classes: int | None) -> LoadedModel:
    if spec.startswith("builtin:"):
        return _load_builtin(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_file(path)
    if path.is_dir():
        raise ModelLoadError(f"model {spec} is a folder; give a model file (.pt2, TorchScript, .safetensors)")
    if ":" in spec:
        left, right = spec.split(":", 1)
        if is_model(left):
            return load_arch_checkpoint(left, Path(right).expanduser(), num_classes=num_classes)
        if re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*", left) and right.isidentifier():
            return _load_factory(left, right)
        if re.fullmatch(r"[A-Za-z_][\w-]*", left):
            raise UnknownNameError(
                f"unknown architecture {left!r} in {spec!r}; choose one of: {', '.join(list_models())}"
            )
    raise ModelLoadError(
        f"model file {spec} does not exist; give a .pt2/TorchScript file, ARCH:WEIGHTS, "
        "WEIGHTS.safetensors with its .json sidecar, package.module:factory or builtin:digits-gaussian"
    )


def training_noise(spec: str) -> tuple[str, float] | None:
    """(noise, sigma) a checkpoint was trained with, from its sidecar, without loading its weights.

    sigma is in the noise's theta convention (standard deviation or half-width). None when the spec
    has no sidecar (a factory, a program file, ARCH:WEIGHTS) or the sidecar does not say.
    """
    from .checkpoint import read_sidecar

    spec = spec.strip() if isinstance(spec, str) else ""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in BUILTIN_WEIGHTS:
            return None
        path = Path(str(resources.files("anisocert") / "weights" / f"{BUILTIN_WEIGHTS[name]}.json"))
    elif spec.lower().endswith((".safetensors", ".json")) and Path(spec).is_file():
        path = Path(spec)
    else:
        return None
    try:
        sidecar = read_sidecar(path)
    except ModelLoadError:
        return None  # loading the model reports the problem properly
    noise, sigma = sidecar.get("noise"), sidecar.get("sigma")
    if not isinstance(noise, str) or isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        return None
    return noise, float(sigma)


# ----------------------------------------------------------------------------------------------- files


def _load_builtin(name: str) -> LoadedModel:
    if name not in BUILTIN_WEIGHTS:
        raise UnknownNameError(
            f"unknown builtin model {name!r}; choose one of: {', '.join(sorted(BUILTIN_WEIGHTS))}"
        )
    path = Path(str(resources.files("anisocert") / "weights" / f"{BUILTIN_WEIGHTS[name]}.safetensors"))
    if not path.is_file():
        raise ModelLoadError(
            f"builtin model {name}: {path} is missing from this installation; reinstall anisocert "
            "(pip install -e .) or train one and pass it as WEIGHTS.safetensors"
        )
    loaded = _load_sidecar_checkpoint(path)
    loaded.description = f"builtin:{name} ({loaded.description})"
    return loaded


def _load_file(path: Path) -> LoadedModel:
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        return _load_exported(path)
    if suffix == ".safetensors":
        return _load_sidecar_checkpoint(path)
    if suffix == ".json" and path.with_suffix(".safetensors").is_file():
        return _load_sidecar_checkpoint(path.with_suffix(".safetensors"))
    kind = _zip_kind(path)
    if kind == "torchscript":
        return _load_torchscript(path)
    if kind == "weights" or suffix in (".pth", ".tar", ".ckpt", ".bin"):
        raise ModelLoadError(
            f"{path} holds weights, not a saved program; name its architecture as ARCH:{path} "
            f"(architectures: {', '.join(list_models())})"
        )
    raise ModelLoadError(f"{path} is neither a TorchScript archive nor a .pt2/.safetensors file")


def _zip_kind(path: Path) -> str:
    """'torchscript' (has code/), 'weights' (a torch.save archive), or '' (not a zip)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return ""
    if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "weights" if any(n.endswith("data.pkl") for n in names) else ""


def _program_meta(extra: Mapping, path: Path) -> dict:
    raw = extra.get("anisocert.json") or b""
    if not raw:
        return {}
    try:
        meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path}: its anisocert.json extra file is not valid JSON ({err})") from None
    return meta if isinstance(meta, dict) else {}


def _load_exported(path: Path) -> LoadedModel:
    """A torch.export program; its train/eval mode is the one it was exported in."""
    extra = {"anisocert.json": ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as err:  # the loader raises many types on a damaged archive
        raise ModelLoadError(f"cannot read exported program {path}: {one_line(err)}") from None
    meta = _program_meta(extra, path)
    module = program.module()
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [n.meta["val"].shape for n in placeholders if n.name in user_inputs and "val" in n.meta]
    input_shape, batch = None, None
    if len(shapes) == 1:
        dims = shapes[0]
        if all(isinstance(d, int) for d in dims[1:]):
            input_shape = tuple(int(d) for d in dims[1:])
        if len(dims) and isinstance(dims[0], int):
            batch = int(dims[0])
            module = _FixedBatch(module, batch)
    note = f", exported with a fixed batch of {batch} (run in chunks)" if batch else ""
    return LoadedModel(
        module=module,
        outputs=meta.get("outputs", "logits"),
        input_shape=tuple(meta["input_shape"]) if "input_shape" in meta else input_shape,
        num_classes=meta.get("num_classes"),
        description=f"exported program {path}{note}",
        sha256=_ckpt.sha256_file(path),
    )


class _FixedBatch(nn.Module):
    """Runs a program exported for exactly `batch` inputs on any batch: chunks, the last one zero-padded."""

    def __init__(self, program: nn.Module, batch: int):
        super().__init__()
        self.program = program
        self.batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, x.shape[0], self.batch):
            chunk = x[start : start + self.batch]
            real = chunk.shape[0]
            if real < self.batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.batch - real, *chunk.shape[1:]))])
            outs.append(self.program(chunk)[:real])
        return torch.cat(outs)


def _load_torchscript(path: Path) -> LoadedModel:
    extra = {"anisocert.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still loadable
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:
        raise ModelLoadError(f"cannot read TorchScript file {path}: {one_line(err)}") from None
    meta = _program_meta(extra, path)
    shape = getattr(module, "input_shape", meta.get("input_shape"))
    return LoadedModel(
        module=module,
        outputs=str(getattr(module, "outputs", meta.get("outputs", "logits"))),
        input_shape=tuple(int(d) for d in shape) if shape is not None else None,
        num_classes=getattr(module, "num_classes", meta.get("num_classes")),
        description=f"TorchScript {path}",
        sha256=_ckpt.sha256_file(path),
    )


def _load_factory(module_name: str, attr: str) -> LoadedModel:
    spec = f"{module_name}:{attr}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelLoadError(f"cannot import {module_name} for {spec}: {err}; is it on PYTHONPATH?") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelLoadError(f"{module_name} has no callable {attr!r} (from {spec})")
    try:
        net = factory()
    except Exception as err:
        raise ModelLoadError(f"{spec}() raised {type(err).__name__}: {one_line(err)}") from err
    if not isinstance(net, nn.Module):
        raise ModelLoadError(f"{spec}() returned {type(net).__name__}, not a torch.nn.Module")
    try:
        source = Path(inspect.getsourcefile(module) or "")
    except TypeError:
        source = Path("")
    shape = getattr(net, "input_shape", None)
    return LoadedModel(
        module=net,
        outputs=str(getattr(net, "outputs", "logits")),
        input_shape=tuple(shape) if shape is not None else None,
        num_classes=getattr(net, "num_classes", None),
        description=f"factory {spec}",
        sha256=_ckpt.sha256_file(source) if source.is_file() else None,
        arch=getattr(net, "arch", None),
    )


def _load_sidecar_checkpoint(path: Path) -> LoadedModel:
    module, sidecar = _ckpt.load_checkpoint(path)
    return LoadedModel(
        module=module,
        outputs=sidecar.get("outputs", "logits"),
        input_shape=tuple(sidecar["input_shape"]) if sidecar.get("input_shape") else None,
        num_classes=sidecar["num_classes"],
        description=f"{sidecar['arch']} from {path}",
        sha256=_ckpt.sha256_file(path),
        arch=sidecar["arch"],
        sidecar=sidecar,
    )


def load_arch_checkpoint(arch: str, path: Path, *, num_classes: int | None = None) -> LoadedModel:
    """ARCH:CHECKPOINT: build `arch`, map the file's state dict onto it by key name, load it strictly."""
    raw = _weights.read_weights(path)
    state, nesting = _state_dict.unwrap_state_dict(raw, path)
    model = create_model(arch, num_classes)
    mapped, notes = _state_dict.map_state_dict(model, state, source=str(path), nesting=nesting)
    classifier = _state_dict.classifier_key(model)
    if num_classes is None and classifier in mapped and mapped[classifier].shape[0] != model.num_classes:
        model = create_model(arch, int(mapped[classifier].shape[0]))
    _state_dict.assign_state_dict(model, mapped, source=str(path))
    return LoadedModel(
        module=model,
        outputs=model.outputs,
        input_shape=model.input_shape,
        num_classes=model.num_classes,
        description=f"{arch} from {path} ({'; '.join(notes)})" if notes else f"{arch} from {path}",
        sha256=_ckpt.sha256_file(path),
        arch=arch,
    )


# ------------------------------------------------------------------------------------------- helpers


def _to_eval(module: nn.Module, device: torch.device) -> nn.Module:
    module = module.to(device)
    try:
        module.eval()
    except NotImplementedError:  # exported programs keep the mode they were exported in
        pass
    return module
