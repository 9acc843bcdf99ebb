"""The isotropic sigma comparison on a CIFAR-shaped model (issue 5): anisocert's searches against
ddsmoothing's 900-step gradient on 3x32x32 inputs.

No CIFAR-10 data or trained CIFAR model is available offline, and random weights give meaningless radii
(the radius then only grows with sigma). So the model is trained here, in seconds: a small CNN on
scikit-learn's digits upsampled to 3x32x32 (the grey value on all three channels, pixels in [0, 1]),
with Gaussian noise augmentation at sigma = 0.25. Inputs of CIFAR's shape and range, a trained model;
not CIFAR-10's images.
"""

from __future__ import annotations

import time

import numpy as np
import public_code as public
import torch
from common import ALPHA, SIGMA, Report, Settings, table, timed
from pipelines import SIGMA_HEADER, certify_sigmas
from torch.nn import functional

from anisocert import load_data, optimise_sigma

SHAPE = (3, 32, 32)
EPOCHS = 12
BATCH = 64
CERT_BATCH = 1000


def cifar_shaped(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """anisocert's digits split (same images, same train/test split), each 8x8 image upsampled
    bilinearly to 32x32 and replicated on 3 channels: (k, 3, 32, 32) in [0, 1] and the labels."""
    data = load_data("digits", split)
    x = data.get(np.arange(len(data)))  # (k, 1, 8, 8) in [0, 1]
    x = functional.interpolate(
        x, size=SHAPE[1:], mode="bilinear", align_corners=False
    )  # convex weights: stays in [0, 1]
    return x.expand(-1, SHAPE[0], -1, -1).contiguous(), np.asarray(data.labels)


def small_cnn() -> torch.nn.Module:
    """Two strided convolutions and a linear layer on 3x32x32 (about 0.7 M multiply-adds per input)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 4, stride=2, padding=1),  # 16x16x16
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 4, stride=2, padding=1),  # 32x8x8
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 8 * 8, 10),
    )


def train_cnn(x: torch.Tensor, y: np.ndarray, seed: int = 0) -> torch.nn.Module:
    """Adam, EPOCHS epochs of x + N(0, SIGMA^2) (fresh noise each step), cross-entropy on the logits."""
    torch.manual_seed(seed)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(y, dtype=torch.long)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(order), BATCH):
            b = order[start : start + BATCH]
            noisy = x[b] + SIGMA * torch.randn(x[b].shape, generator=gen)
            loss = functional.cross_entropy(model(noisy), labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def cifar_shaped_isotropic(s: Settings, rep: Report) -> dict:
    """Each isotropic method's sigma on the CIFAR-shaped digits model, certified by Smoothed.certify on
    the same draws (common random numbers), as isotropic_quality does on the digits CNN."""
    section_start = time.perf_counter()
    x_train, y_train = cifar_shaped("train")
    x_test, y_test = cifar_shaped("test")
    train_s, model = timed(train_cnn, x_train, y_train)
    with torch.inference_mode():
        clean = float((model(x_test).argmax(1).numpy() == y_test).mean())
        noisy = float(
            (
                model(x_test + SIGMA * torch.randn(x_test.shape, generator=torch.Generator().manual_seed(1)))
                .argmax(1)
                .numpy()
                == y_test
            ).mean()
        )
    info = {
        "clean_accuracy": clean,
        "noisy_accuracy": noisy,  # one draw of N(0, SIGMA^2) per test input
        "train_seconds": train_s,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": EPOCHS,
        "train_inputs": len(y_train),
        "test_inputs": len(y_test),
    }
    indices = np.linspace(0, len(y_test) - 1, s.cifar_inputs).astype(int)
    x, labels = x_test[indices], y_test[indices]
    kw = dict(idx=indices, batch_size=CERT_BATCH)
    public_name = f"ddsmoothing gradient ({s.public_iterations[0]} it)"
    methods = {
        "anisocert votes search (1000 draws)": lambda: (
            optimise_sigma(
                model, "gaussian", x, SIGMA, method="votes", certify_n=s.cifar_n, certify_alpha=ALPHA, **kw
            ).sigma
        ),
        "anisocert search (1000 draws)": lambda: (
            optimise_sigma(model, "gaussian", x, SIGMA, method="search", **kw).sigma
        ),
        public_name: lambda: public.dds_sigma(public.public_model(model), x, SIGMA, s.public_iterations[0]),
    }
    rows, out, seconds_per_input, sigmas = certify_sigmas(
        model, x, labels, indices, methods, s.cifar_n, CERT_BATCH
    )
    cap = SIGMA * 10  # the searches' default sigma_max
    at_cap = {name: int((sig >= cap * (1 - 1e-4)).sum()) for name, sig in sigmas.items()}
    with torch.inference_mode():  # the class the model gives to noise alone
        votes = model(0.5 + 10.0 * torch.randn(1000, *SHAPE, generator=torch.Generator().manual_seed(2)))
        votes = torch.bincount(votes.argmax(1), minlength=10)
    noise_class, noise_share = int(votes.argmax()), float(votes.max()) / 1000
    section_s = time.perf_counter() - section_start
    rep.add(
        f"### Isotropic sigma, CIFAR-shaped model: {len(indices)} test inputs, each sigma certified by "
        f"`Smoothed.certify` (N = {s.cifar_n:,}, the same draws for every method, no memory)\n\n"
        "The model is not a CIFAR-10 model: no CIFAR-10 data or trained CIFAR model is available offline, "
        "and random weights give meaningless radii. It is a small CNN (two strided convolutions and a "
        f"linear layer, {info['parameters']:,} parameters) trained here on CIFAR-shaped inputs: "
        "scikit-learn's 8x8 digits upsampled bilinearly to 3x32x32 (the grey value on all three channels, "
        f"pixels in [0, 1]; anisocert's digits split, {info['train_inputs']:,} train / "
        f"{info['test_inputs']:,} test images), {EPOCHS} epochs of Adam with Gaussian noise augmentation "
        f"at sigma = {SIGMA}, seed 0, in {train_s:.1f} s; clean test accuracy {clean:.3f}, "
        f"{noisy:.3f} under one draw of N(0, {SIGMA}^2). The inputs have CIFAR's dimension (3,072) and "
        "range, so sigma acts on as many pixels as on CIFAR, but the images are smooth (each digit "
        "pixel spans about 4x4 pixels, on 3 identical channels), so the noise is easier to average out "
        "than on natural images and the radii are larger. Every method starts at sigma0 = "
        f"{SIGMA}; the votes search aims at the certification budget (N = {s.cifar_n:,}, "
        f"alpha = {ALPHA}); the public gradient runs at its defaults ({s.public_iterations[0]} iterations, "
        f"100 samples, lr 0.04) on the model with a softmax appended, unbounded above, while the searches look in "
        f"their default range [{SIGMA / 10:g}, {cap:g}]. Inputs whose sigma is at or above {cap:g}: "
        + ", ".join(f"{k} for {name}" for name, k in at_cap.items())
        + f" (largest gradient sigma {float(sigmas[public_name].max()):.3g}). On noise alone (0.5 + N(0, 10^2), "
        f"1,000 draws) the model votes class {noise_class} {noise_share:.0%} of the time: a test input of that "
        "class keeps its prediction at any sigma, so there an unbounded sigma buys a radius that grows "
        f"without bound. Section time {section_s:.0f} s (training included).\n\n" + table(SIGMA_HEADER, rows)
    )
    return {
        "inputs": len(indices),
        "n": s.cifar_n,
        "quality": out,
        "seconds": seconds_per_input,
        "public": public_name,
        "ours": {
            "search": "anisocert search (1000 draws)",
            "votes search": "anisocert votes search (1000 draws)",
        },
        "model": info,
        "at_sigma_max": at_cap,  # inputs whose sigma is >= the searches' sigma_max (10 x sigma0)
        "noise_class": (noise_class, noise_share),
        "section_seconds": section_s,
    }
