"""Checkpoints: reading weights without running code, importing public layouts, and our own format.

Reading (`read_weights`): ``.safetensors`` files, or ``torch.save`` files through
``torch.load(weights_only=True)`` only; a pickle that would import anything else (``os.system``, a
class) is refused with ModelLoadError before it runs. Numpy arrays and scalars are allowed.

Importing (`unwrap_state_dict`, `map_state_dict`): a state dict nested under ``state_dict``, ``net``
(MACER), ``model_state_dict`` or ``model`` is renamed to an architecture's keys by name: the wrapper
prefixes ``module.`` (DataParallel), ``1.`` (Cohen et al. and SmoothAdv's ``Sequential(normalize,
model)``), ``model.`` (RS4A) are removed, and torchvision ResNet-50 keys go under ``net.``.

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
import pickle
import pickletools
import re
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidParameterError, ModelLoadError
from ._registry import create_model, float32_list, is_model, list_models

__all__ = [
    "save_checkpoint",
    "read_sidecar",
    "load_checkpoint",
    "checkpoint_paths",
    "read_weights",
    "unwrap_state_dict",
    "map_state_dict",
    "check_state_dict",
    "assign_state_dict",
    "classifier_key",
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
_NESTINGS = ("state_dict", "net", "model_state_dict", "model")
_WRAPPERS = ("module.", "1.", "model.", "net.")
_NORM_KEY = re.compile(
    r"^(?:(?:module|model)\.)*(?:0|norm|normalize|normalizer|normalise|normalization|normalisation)\."
    r"(?:module\.)?(mean|means|mu|std|sds|sigma|log_sig)$"
)
_SHOW = 5  # keys named in a mismatch message
# Globals of ordinary torch.save files (allowed by weights_only); anything else is named when refused.
_PLAIN_GLOBALS = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Size",
    "torch.device",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "_codecs.encode",
}
_PLAIN_TORCH = re.compile(
    r"^torch\.(\w*Storage|u?int\d*|float\d*|bfloat16|half|double|long|bool|complex\d*)$"
)


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
    assign_state_dict(model, state, source=str(weights))
    return model.eval(), sidecar


# ---------------------------------------------------------------------------- reading and importing


def read_weights(path: Path) -> Mapping:
    """The object stored in a .safetensors or torch.save file, read without running any pickled code."""
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} does not exist")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelLoadError(f"cannot read safetensors file {path}: {_first_line(err)}") from None
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as err:
        names = _pickle_globals(path)
        if not names:
            reason = next((ln.strip() for ln in str(err).splitlines() if "Unpickler error" in ln), "")
            raise ModelLoadError(
                f"cannot read checkpoint {path}: not a PyTorch checkpoint, or a damaged one {reason}".rstrip()
            ) from None
        if all(n in _NUMPY_GLOBALS for n in names):
            return _load_with_numpy(path)
        shown = ", ".join(names[:_SHOW])
        raise ModelLoadError(
            f"refused {path}: it is a pickle that would import {shown}, which can run code; only tensors, "
            "containers and numbers are read. Re-save it as torch.save(model.state_dict(), PATH) or safetensors"
        ) from None
    except Exception as err:  # truncated zip, not a torch file, ...
        raise ModelLoadError(f"cannot read checkpoint {path}: {_first_line(err)}") from None


_NUMPY_GLOBALS = {
    f"{mod}.{name}"
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("scalar", "_reconstruct")
} | {"numpy.ndarray", "numpy.dtype"}


def _load_with_numpy(path: Path) -> Mapping:
    """torch.load(weights_only=True) with numpy arrays/scalars/dtypes allowed (they rebuild data, not code)."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype]
    allowed += [
        type(np.dtype(t)) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")
    ]
    with torch.serialization.safe_globals(allowed):
        try:
            return _torch_load(path)
        except Exception as err:
            raise ModelLoadError(f"refused {path}: {_first_line(err)}") from None


def _torch_load(path: Path):
    """torch.load(weights_only=True), without its warnings about legacy pickles: those files are
    either read as plain data or refused with anisocert's own one-line error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def _pickle_globals(path: Path) -> list[str]:
    """Module.name of every GLOBAL / STACK_GLOBAL in the file's (first) pickle, found without unpickling."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    except (zipfile.BadZipFile, StopIteration, OSError):
        data = path.read_bytes()
    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif op.name == "GLOBAL":
                names.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # a damaged pickle: report what was found so far
        pass
    return list(dict.fromkeys(n for n in names if n not in _PLAIN_GLOBALS and not _PLAIN_TORCH.match(n)))


def unwrap_state_dict(obj, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a checkpoint, and the nesting key it was found under ('' at top level)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj), ""
        for key in _NESTINGS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                return dict(inner), key
    top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
    raise ModelLoadError(
        f"{path} holds no state dict of tensors (found: {top}); expected a state dict, or one under "
        f"{', '.join(_NESTINGS)}"
    )


def map_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, nesting: str = ""
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a foreign state dict's keys to `model`'s by name; returns (state dict, notes on what was done).

    Normalisation statistics found in the file (RS4A's ``norm.module.mu``/``log_sig``, a ``0.mean``
    layer, our ``normalize.mean``) are kept; otherwise the architecture's default normalisation stays,
    except for MACER's layout (nesting ``net``, no wrapper, no statistics): MACER trains on raw [0, 1]
    pixels, so its first layer becomes the identity. Raises ModelLoadError listing missing and
    unexpected keys when no renaming fits.
    """
    norm_keys = tuple(getattr(model, "normalisation_keys", ()))
    target = set(model.state_dict()) - set(norm_keys)
    stats, rest = _split_normalisation(state, norm_keys)
    mapped, stripped = _rename(rest, target, getattr(model, "import_prefix", ""))
    notes = [f"under '{nesting}'"] if nesting else []
    notes += [f"removed prefix '{p}'" for p in stripped]
    if (
        getattr(model, "import_prefix", "")
        and all(k.startswith(model.import_prefix) for k in mapped)
        and not all(k.startswith(model.import_prefix) for k in rest)
    ):
        notes.append(f"torchvision keys moved under '{model.import_prefix}'")
    if set(mapped) != target:
        raise ModelLoadError(_mismatch_message(model, mapped, target, source))
    if norm_keys:
        current = model.state_dict()
        if stats:
            mean, std = stats
            notes.append("normalisation from the file")
        elif nesting == "net" and not stripped:
            mean, std = torch.zeros_like(current[norm_keys[0]]), torch.ones_like(current[norm_keys[1]])
            notes.append("MACER layout: no input normalisation (identity first layer)")
        else:
            mean, std = current[norm_keys[0]], current[norm_keys[1]]
            notes.append("normalisation: architecture default")
        want = current[norm_keys[0]].shape
        if mean.numel() != want.numel() or std.numel() != want.numel():
            raise ModelLoadError(
                f"{source}: normalisation with {mean.numel()} channels does not fit the model's {want.numel()}"
            )
        mapped[norm_keys[0]] = mean.reshape(want).to(current[norm_keys[0]].dtype)
        mapped[norm_keys[1]] = std.reshape(want).to(current[norm_keys[1]].dtype)
    return mapped, notes


def _split_normalisation(state: Mapping[str, torch.Tensor], norm_keys: tuple[str, ...]):
    """((mean, std) or None, the other entries). Recognises our keys, RS4A's mu/log_sig, 0.mean/0.std."""
    found: dict[str, torch.Tensor] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        bare = key
        while bare.startswith(("module.", "model.")):
            bare = bare.split(".", 1)[1]
        match = _NORM_KEY.match(key)
        if norm_keys and bare in norm_keys:
            found["mean" if bare == norm_keys[0] else "std"] = value
        elif match:
            role = match.group(1)
            if role == "log_sig":
                found["std"] = value.exp()
            else:
                found["mean" if role in ("mean", "means", "mu") else "std"] = value
        else:
            rest[key] = value
    if not found:
        return None, rest
    if set(found) != {"mean", "std"}:
        rest.update(
            {k: v for k, v in state.items() if k not in rest}
        )  # half a pair: leave it to the mismatch
        return None, rest
    return (found["mean"].float().flatten(), found["std"].float().flatten()), rest


def _rename(state: dict[str, torch.Tensor], target: set[str], import_prefix: str):
    """Strip shared wrapper prefixes until the keys equal `target` (adding `import_prefix` if needed)."""
    current, stripped = dict(state), []
    while True:
        if set(current) == target:
            return current, stripped
        if import_prefix:
            moved = {import_prefix + k: v for k, v in current.items()}
            if set(moved) == target:
                return moved, stripped
        head = next((w for w in _WRAPPERS if current and all(k.startswith(w) for k in current)), None)
        if head is None:
            break
        current = {k[len(head) :]: v for k, v in current.items()}
        stripped.append(head)
    if import_prefix:  # for the error message, show the closer of the two namings
        moved = {import_prefix + k: v for k, v in current.items()}
        if len(set(moved) & target) > len(set(current) & target):
            return moved, stripped
    return current, stripped


def _mismatch_message(model: nn.Module, mapped: Mapping, target: set[str], source: str) -> str:
    missing = sorted(target - set(mapped))
    unexpected = sorted(set(mapped) - target)
    arch = getattr(model, "arch", type(model).__name__)
    text = (
        f"checkpoint {source} does not fit {arch}: {len(missing)} missing keys ({_few(missing)}) and "
        f"{len(unexpected)} unexpected keys ({_few(unexpected)})"
    )
    fits = _architectures_fitting(set(mapped))
    return text + (f"; these keys fit {', '.join(fits)}" if fits else "; check the architecture name")


def _architectures_fitting(keys: set[str]) -> list[str]:
    """Registered architectures whose parameters have exactly these names (built on the meta device)."""
    fits = []
    for name in list_models():
        with torch.device("meta"):
            other = create_model(name)
        norm = set(getattr(other, "normalisation_keys", ()))
        names, prefix = set(other.state_dict()) - norm, getattr(other, "import_prefix", "")
        if keys - norm == names or (prefix and {prefix + k for k in keys - norm} == names):
            fits.append(name)
    return fits


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """ModelLoadError unless `state` has exactly the model's keys and shapes (shape mismatches listed first)."""
    own = model.state_dict()
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        shown = ", ".join(
            f"{k} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)}" for k in bad[:_SHOW]
        )
        hint = ""
        if classifier_key(model) in bad:
            hint = f"; the file has {state[classifier_key(model)].shape[0]} classes: pass num_classes accordingly"
        raise ModelLoadError(f"checkpoint {source}: {len(bad)} tensors differ in shape: {shown}{hint}")
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    if missing or unexpected:
        raise ModelLoadError(
            f"checkpoint {source}: {len(missing)} missing keys ({_few(sorted(missing))}) and "
            f"{len(unexpected)} unexpected keys ({_few(sorted(unexpected))})"
        )


def assign_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Check `state` against the model (`check_state_dict`), load it strictly, refresh `model.normalisation`."""
    check_state_dict(model, state, source=source)
    model.load_state_dict(state, strict=True)
    keys = getattr(model, "normalisation_keys", ())
    if keys and hasattr(model, "normalisation"):
        current = model.state_dict()
        model.normalisation = {"mean": float32_list(current[keys[0]]), "std": float32_list(current[keys[1]])}


def classifier_key(model: nn.Module) -> str:
    """The weight of the last Linear layer: its first dimension is the number of classes."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return f"{names[-1]}.weight" if names else ""


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


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOW]) + (", ..." if len(keys) > _SHOW else "") if keys else "none"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
