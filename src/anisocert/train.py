"""Training base classifiers under noise: objectives plus one resumable loop.

theta is the standard deviation for gaussian noise and the half-width for uniform noise, as in
the rest of anisocert. Noise is added in [0, 1] input space (normalisation is inside the model).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import _checks
from .errors import UnknownNameError
from .noise import get_noise

__all__ = ["TrainConfig", "train_model", "OBJECTIVES"]


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "digits_cnn"
    data: str = "digits"
    method: str = "gaussian"
    sigma: float = 0.25
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str | None = None

    def __post_init__(self):
        if self.method not in OBJECTIVES:
            raise UnknownNameError(f"method={self.method!r} is unknown; choose one of {sorted(OBJECTIVES)}")
        _checks.check_real("sigma", self.sigma, hint="; e.g. 0.25")
        _checks.check_int("epochs", self.epochs)
        _checks.check_int("batch_size", self.batch_size)
        _checks.check_real("lr", self.lr)
        _checks.check_int("seed", self.seed, min_value=0)


def _augment(noise_name: str) -> Callable:
    noise = get_noise(noise_name)

    def loss(model, x, y, sigma, generator):
        return F.cross_entropy(model(noise.sample(x, torch.tensor(sigma, device=x.device), generator)), y)

    return loss


# method -> (noise family, loss(model, x, y, sigma, generator))
OBJECTIVES: dict[str, tuple[str, Callable]] = {
    "gaussian": ("gaussian", _augment("gaussian")),  # Cohen et al.: Gaussian data augmentation
    "uniform": ("uniform", _augment("uniform")),  # Yang et al.: uniform-noise augmentation (half-width)
}


def train_model(config: TrainConfig, out, *, progress: bool = True) -> Path:
    """Train config.arch on config.data under config.method's noise; writes OUT.safetensors + OUT.json.

    Resumable: the state after each epoch is kept in OUT.state.pt (tensors only) and picked up again.
    """
    from .checkpoint import save_checkpoint
    from .data import load_data
    from .models import create_model

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train, test = load_data(config.data, "train"), load_data(config.data, "test")
    model = create_model(config.arch, num_classes=train.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    noise_name, loss_fn = OBJECTIVES[config.method]
    state_path = out.with_suffix(".state.pt")
    start_epoch = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=True, map_location=device)
        if state["config"] == json.dumps(asdict(config), sort_keys=True):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            start_epoch = int(state["epoch"])
    generator = torch.Generator(device=device)
    n = len(train)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        generator.manual_seed(config.seed * 1000003 + epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        model.train()
        total = 0.0
        for b in range(math.ceil(n / config.batch_size)):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            x = train.get(idx).to(device)
            y = torch.as_tensor(train.labels[idx], device=device)
            loss = loss_fn(model, x, y, config.sigma, generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "config": json.dumps(asdict(config), sort_keys=True)}, state_path)
        if progress:
            print(f"epoch {epoch + 1}/{config.epochs} loss {total / n:.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    accuracy = noisy_accuracy(model, test, noise_name, config.sigma, device)
    path = save_checkpoint(out, model, arch=config.arch, num_classes=train.num_classes, meta={
        "training": {"method": config.method, **asdict(config)},
        "noise": noise_name, "theta_unit": get_noise(noise_name).theta_unit, "sigma": config.sigma,
        "data": config.data, "epochs": config.epochs, "heldout_noisy_accuracy": accuracy,
        "command": reproduce_command(config, out),
    })
    state_path.unlink(missing_ok=True)
    return path


@torch.no_grad()
def noisy_accuracy(model, dataset, noise_name: str, sigma: float, device, draws: int = 4) -> float:
    """Accuracy of the base model on noisy held-out inputs (a quick training check, not a certificate)."""
    noise = get_noise(noise_name)
    generator = torch.Generator(device=device).manual_seed(0)
    x = dataset.get(np.arange(len(dataset))).to(device)
    y = torch.as_tensor(dataset.labels, device=device)
    hits = sum((model(noise.sample(x, torch.tensor(sigma, device=device), generator)).argmax(1) == y).sum()
               for _ in range(draws))
    return float(hits) / (draws * len(dataset))


def reproduce_command(config: TrainConfig, out) -> str:
    return (f"anisocert train --arch {config.arch} --data {config.data} --method {config.method} "
            f"--sigma {config.sigma} --epochs {config.epochs} --batch-size {config.batch_size} --lr {config.lr} "
            f"--seed {config.seed} --out {out}")
