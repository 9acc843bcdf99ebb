"""Checkpoints in our own format: save, read the sidecar, load (weights checked against the sidecar).

Reading weights without running code is `_weights.read_weights`; importing public layouts (nestings,
wrapper prefixes, normalisation statistics) is `_state_dict`.

Our format: ``save_checkpoint("runs/m", model, arch=..., num_classes=..., meta=...)`` writes
``runs/m.safetensors`` and the JSON sidecar ``runs/m.json`` (format 1):

- ``arch``, ``arch_options`` (create_model options, e.g. {"hidden": 32}), ``num_classes``, ``outputs``
  ("logits"), ``input_shape``, ``normalisation`` ({mean, std}
  of the first layer; inputs are pixels in [0, 1] and noise is added before the normalisation),
- ``theta_convention`` ("standard deviation" for gaussian, "half-width" for uniform) when ``meta``
  names a ``noise`` family,
- everything else given in ``meta``: by convention ``method`` (gaussian, smoothadv, macer, uniform,
  stability), ``hyper_parameters`` (dict), ``noise``, ``sigma``, ``data`` (the data spec), ``epochs``,
  ``held_out_accuracy`` (clean accuracy of the base model on held-out data, in [0, 1]),
- ``code_version`` (anisocert's) and ``weights_sha256`` (of the .safetensors file, checked on load).

`load_checkpoint` rebuilds the registered architecture and loads the weights strictly: the round trip
is exact (same outputs bit for bit on the same device).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidParameterError, ModelLoadError
from ._registry import create_model, is_model, list_models
from ._state_dict import assign_state_dict, check_state_dict
from ._weights import read_weights

__all__ = [
    "save_checkpoint",
    "read_sidecar",
    "load_checkpoint",
    "checkpoint_paths",
    "SIDECAR_FORMAT",
]

SIDECAR_FORMAT = 1
_RESERVED = (
    "format",
    "arch",
    "arch_options",
    "num_classes",
    "outputs",
    "input_shape",
    "normalisation",
    "code_version",
    "weights_sha256",
)
_THETA_CONVENTION = {"gaussian": "standard deviation", "uniform": "half-width"}


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) for 'm', 'm.safetensors' or 'm.json': ('m.safetensors', 'm.json')."""
    path = Path(path).expanduser()
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, *, arch: str, num_classes: int, meta: dict | None = None
) -> Path:
    """Write `model`'s weights as safetensors and the JSON sidecar beside them; returns the weights path.

    Parameters
    ----------
    path : str or Path
        ``m`` or ``m.safetensors``; writes ``m.safetensors`` and ``m.json`` (parents are created).
    model : nn.Module
        An instance of the registered architecture `arch` (its state dict must fit `arch`).
    arch : str
        A name from `anisocert.models.list_models()`.
    num_classes : int
        The number of outputs.
    meta : dict, optional
        JSON-serialisable training record (see the module docstring). ``noise`` must be gaussian or
        uniform; the theta convention is then derived from it.
    """
    if not is_model(arch):
        raise InvalidParameterError(
            f"arch={arch!r} is not registered; choose one of: {', '.join(list_models())}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidParameterError(f"num_classes={num_classes!r} must be an integer >= 1")
    meta = dict(meta or {})
    clash = sorted(set(meta) & set(_RESERVED))
    if clash:
        raise InvalidParameterError(
            f"meta keys {', '.join(clash)} are written by save_checkpoint; remove them"
        )
    sidecar = {
        "format": SIDECAR_FORMAT,
        "arch": arch,
        "arch_options": dict(getattr(model, "arch_options", {})),
        "num_classes": num_classes,
        "outputs": getattr(model, "outputs", "logits"),
        "input_shape": list(getattr(model, "input_shape", ())) or None,
        "normalisation": getattr(model, "normalisation", None),
        **_noise_fields(meta),
        **meta,
        "code_version": _code_version(),
    }
    weights, side = checkpoint_paths(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Nothing is written unless the weights fit the architecture and the sidecar is valid JSON.
    with torch.device("meta"):
        probe = create_model(arch, num_classes, **sidecar["arch_options"])
    check_state_dict(probe, state, source=f"the model given to save_checkpoint (arch {arch})")
    _to_json(sidecar)
    weights.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    _atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt", "arch": arch}))
    text = _to_json({**sidecar, "weights_sha256": sha256_file(weights)})
    _atomic_write(side, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return weights


def read_sidecar(path: str | os.PathLike) -> dict:
    """The sidecar of checkpoint `path` ('m', 'm.safetensors' or 'm.json'), validated (arch, num_classes)."""
    weights, side = checkpoint_paths(path)
    if not side.is_file():
        raise ModelLoadError(
            f"no sidecar {side} beside {weights}: it names the architecture; write it with "
            f"anisocert.models.checkpoint.save_checkpoint, or load the weights as ARCH:{weights}"
        )
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"sidecar {side} is not valid JSON: {err}") from None
    if not isinstance(sidecar, dict):
        raise ModelLoadError(f"sidecar {side} must hold a JSON object, not {type(sidecar).__name__}")
    arch, num_classes = sidecar.get("arch"), sidecar.get("num_classes")
    if not isinstance(arch, str) or not is_model(arch):
        raise ModelLoadError(f"sidecar {side}: arch={arch!r} is not registered ({', '.join(list_models())})")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelLoadError(f"sidecar {side}: num_classes={num_classes!r} must be an integer >= 1")
    if sidecar.get("format", SIDECAR_FORMAT) > SIDECAR_FORMAT:
        raise ModelLoadError(f"sidecar {side} has format {sidecar['format']}; upgrade anisocert to read it")
    return sidecar


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, sidecar) for checkpoint `path` ('m', 'm.safetensors' or 'm.json')."""
    weights, _ = checkpoint_paths(path)
    sidecar = read_sidecar(path)
    state = read_weights(weights)
    expected = sidecar.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise ModelLoadError(
            f"{weights} does not match its sidecar (sha256 differs): the weights were replaced or damaged"
        )
    try:
        model = create_model(sidecar["arch"], sidecar["num_classes"], **sidecar.get("arch_options", {}))
    except InvalidParameterError as err:
        raise ModelLoadError(f"sidecar of {weights}: {err}") from None
    recorded = sidecar.get("input_shape")
    if recorded is not None and tuple(recorded) != tuple(getattr(model, "input_shape", recorded)):
        raise ModelLoadError(
            f"sidecar of {weights} records input_shape {list(recorded)} but {sidecar['arch']} takes "
            f"{list(model.input_shape)}: the checkpoint was not made for this architecture; retrain it"
        )
    assign_state_dict(model, state, source=str(weights))
    return model.eval(), sidecar


# ---------------------------------------------------------------------------------------- helpers


def _noise_fields(meta: dict) -> dict:
    """theta_convention derived from meta['noise'] (and checked if meta gives one)."""
    noise = meta.get("noise")
    if noise is None:
        return {}
    if noise not in _THETA_CONVENTION:
        raise InvalidParameterError(f"meta noise={noise!r} must be one of: {', '.join(_THETA_CONVENTION)}")
    given = meta.get("theta_convention")
    if given is not None and given != _THETA_CONVENTION[noise]:
        raise InvalidParameterError(
            f"meta theta_convention={given!r} contradicts noise={noise!r} ({_THETA_CONVENTION[noise]!r})"
        )
    return {"theta_convention": _THETA_CONVENTION[noise]}


def _to_json(sidecar: dict) -> str:
    def default(obj):
        if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
            return obj.item()
        if isinstance(obj, (tuple, set)):
            return list(obj)
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.dumps(sidecar, indent=2, default=default, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(f"checkpoint meta must be JSON with finite numbers: {err}") from None


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:
        return "0.1.0"
