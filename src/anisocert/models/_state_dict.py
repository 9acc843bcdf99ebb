"""Importing public state dicts: unwrap the nesting, rename keys to an architecture's by name, check and assign.

A state dict nested under ``state_dict``, ``net`` (MACER), ``model_state_dict`` or ``model`` is renamed to
an architecture's keys: the wrapper prefixes ``module.`` (DataParallel), ``1.`` (Cohen et al. and
SmoothAdv's ``Sequential(normalize, model)``), ``model.`` (RS4A) are removed, and torchvision ResNet-50
keys go under ``net.``. Normalisation statistics in the file are kept (see `map_state_dict`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from ._registry import create_model, float32_list, list_models

__all__ = ["unwrap_state_dict", "map_state_dict", "check_state_dict", "assign_state_dict", "classifier_key"]

_NESTINGS = ("state_dict", "net", "model_state_dict", "model")
_WRAPPERS = ("module.", "1.", "model.", "net.")
_NORM_KEY = re.compile(
    r"^(?:(?:module|model)\.)*(?:0|norm|normalize|normalizer|normalise|normalization|normalisation)\."
    r"(?:module\.)?(mean|means|mu|std|sds|sigma|log_sig)$"
)
_SHOW = 5  # keys named in a mismatch message


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


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOW]) + (", ..." if len(keys) > _SHOW else "") if keys else "none"
