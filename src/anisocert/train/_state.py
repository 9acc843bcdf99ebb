"""The files of a training run (weights, sidecar, resume state) and the resume state itself.

After every epoch the model, optimiser, schedule and loss scaler go to OUT.state.pt (tensors only, written
atomically) with the configuration's text; a later call with the same configuration resumes from it, and
one with another configuration is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import RunStoreError
from ._config import TrainConfig

__all__ = ["paths", "finished", "resume", "save_state"]

_STATE_VERSION = 1


def paths(out) -> tuple[Path, Path, Path]:
    """(weights, sidecar, resume state) for OUT: OUT.safetensors, OUT.json, OUT.state.pt.

    OUT may end in .safetensors; other dots are kept (``digits_gaussian_0.25`` is a stem, not a suffix).
    """
    from ..models.checkpoint import checkpoint_paths

    weights, sidecar = checkpoint_paths(out)
    return weights, sidecar, weights.with_name(weights.name[: -len(".safetensors")] + ".state.pt")


def _config_text(config: TrainConfig) -> str:
    return json.dumps(config.result_dict(), sort_keys=True)


def finished(sidecar: Path, config: TrainConfig) -> bool:
    if not sidecar.is_file():
        return False
    try:
        recorded = json.loads(sidecar.read_text()).get("training")
    except ValueError:
        return False
    return isinstance(recorded, dict) and json.dumps(recorded, sort_keys=True) == _config_text(config)


def resume(state_path: Path, config: TrainConfig, model, opt, sched, scaler, device) -> int:
    """Load OUT.state.pt when it belongs to this config; returns the number of finished epochs."""
    if not state_path.is_file():
        return 0
    try:
        state = torch.load(state_path, weights_only=True, map_location=device)
    except Exception as err:
        raise RunStoreError(
            f"resume state {state_path} is unreadable ({type(err).__name__}); delete it to start again"
        ) from None
    if state.get("config") != _config_text(config):
        raise RunStoreError(
            f"{state_path} holds an unfinished run with another configuration; delete it to "
            "start this one, or rerun the original command to finish it"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    if state.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"])


def save_state(state_path: Path, config: TrainConfig, model, opt, sched, scaler, epoch: int) -> None:
    state = {
        "version": _STATE_VERSION,
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "epoch": epoch,
        "config": _config_text(config),
    }
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_name(state_path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, state_path)
