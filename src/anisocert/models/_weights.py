"""Reading a checkpoint's weights without running code: ``.safetensors``, or ``torch.save`` files through
``torch.load(weights_only=True)`` only; a pickle that would import anything else (``os.system``, a
class) is refused with ModelLoadError before it runs. Numpy arrays and scalars are allowed.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import ModelLoadError, one_line

__all__ = ["read_weights"]

_SHOW = 5  # globals named in a refusal
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
            raise ModelLoadError(f"cannot read safetensors file {path}: {one_line(err)}") from None
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
        raise ModelLoadError(f"cannot read checkpoint {path}: {one_line(err)}") from None


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
            raise ModelLoadError(f"refused {path}: {one_line(err)}") from None


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
