"""Experiment presets: the plan, the dry-run estimate, and a shrunk cifar10-l2 run end to end on a tiny
CIFAR-10 folder in the real pickle layout (cifar-10-batches-py: data_batch_1..5, test_batch, batches.meta)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from anisocert.cli.experiment import experiment
from anisocert.errors import InvalidParameterError, RunStoreError, UnknownNameError
from anisocert.experiment import (
    PRESETS,
    build_plan,
    estimate_plan,
    format_plan,
    parse_overrides,
    run_experiment,
)

LABELS = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_cifar10(root, per_batch: int = 20, test: int = 20, seed: int = 0):
    """Five training batches and a test batch of random 32x32 images, pickled like the real files
    (protocol 2, bytes keys, 'data' uint8 (N, 3072) in R, G, B planes, 'labels' a list of ints)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(name: str, n: int, label: bytes) -> None:
        labels = [int(v) for v in rng.integers(0, 10, n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        record = {
            b"batch_label": label,
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(record, handle, protocol=2)

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch, f"training batch {i} of 5".encode())
    batch("test_batch", test, b"testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(
            {b"num_cases_per_batch": per_batch, b"label_names": LABELS, b"num_vis": 3072}, handle, protocol=2
        )
    return root


# Small enough for a CPU test: ResNet-20 for one epoch, 2 test inputs, n = 40 draws, 2 optimiser steps.
SHRINK = {
    "train.arch": "cifar_resnet20",
    "train.epochs": 1,
    "train.batch_size": 50,
    "train.eval_batch_size": 20,
    "train.smoothadv_steps": 1,
    "train.macer_gauss_num": 2,
    "certify.n0": 8,
    "certify.n": 40,
    "certify.max_count": 2,
    "certify.iso_iterations": 2,
    "certify.iso_samples": 4,
    "certify.ancer_iterations": 2,
    "certify.ancer_samples": 4,
    "certify.batch_size": 80,
    "certify.inputs_per_batch": 2,
}


def test_presets_follow_the_paper_protocol(tmp_path):
    steps = build_plan("cifar10-l2", tmp_path, data_root=tmp_path)
    trains = [s for s in steps if s.kind == "train"]
    assert sorted({s.train.method for s in trains}) == ["gaussian", "macer", "smoothadv"]
    assert sorted({s.train.sigma for s in trains}) == [0.12, 0.25, 0.5, 1.0]
    assert {s.train.arch for s in trains} == {"cifar_resnet18"}
    certify = [s for s in steps if s.kind == "certify"]
    assert len(certify) == 3 * len(trains) and {s.certify.method for s in certify} == {
        "fixed",
        "isotropic",
        "ancer",
    }
    assert all(s.certify.budget.n == 100_000 and s.certify.skip == 1 and s.certify.memory for s in certify)
    assert [s.name for s in steps if s.kind == "report"] == [
        f"l2 sigma={s:g}" for s in (0.12, 0.25, 0.5, 1.0)
    ]
    # l1: uniform noise, sigma quoted as the standard deviation -> certified with half-width sqrt(3) sigma
    l1 = build_plan("cifar10-l1", tmp_path, data_root=tmp_path, sigmas=[0.5])
    assert {s.train.arch for s in l1 if s.kind == "train"} == {"wrn40_2"}
    assert {s.certify.noise for s in l1 if s.kind == "certify"} == {"uniform"}
    assert {round(s.certify.sigma, 12) for s in l1 if s.kind == "certify"} == {round(0.5 * 3**0.5, 12)}
    imagenet = build_plan("imagenet-l2", tmp_path, data_root=tmp_path)
    assert {s.certify.skip for s in imagenet if s.kind == "certify"} == {100}
    assert set(PRESETS) == {"cifar10-l2", "cifar10-l1", "imagenet-l2", "imagenet-l1", "digits", "mnist"}


def test_preset_recipes_are_the_released_codes(tmp_path):
    """The values docs/training.md traces to each repository (Cohen, SmoothAdv, MACER, RS4A, ANCER)."""
    steps = build_plan("cifar10-l2", tmp_path, data_root=tmp_path, sigmas=[0.25, 1.0])
    train = {s.name: s.train for s in steps if s.kind == "train"}
    cohen, adv, macer = train["gaussian-0.25"], train["smoothadv-0.25"], train["macer-0.25"]
    assert (cohen.epochs, cohen.batch_size, cohen.lr, cohen.schedule, cohen.lr_step, cohen.weight_decay) == (
        90,
        400,
        0.1,
        "step",
        30,
        1e-4,
    )
    assert (adv.epochs, adv.lr_step, adv.batch_size * adv.smoothadv_samples, adv.weight_decay) == (
        150,
        50,
        256,
        1e-4,
    )
    assert (adv.smoothadv_eps, adv.smoothadv_steps, adv.smoothadv_samples, adv.smoothadv_warmup) == (
        64 / 256,
        10,
        2,
        10,
    )
    assert (macer.epochs, macer.batch_size, macer.lr, macer.lr_step, macer.weight_decay) == (
        440,
        64,
        0.01,
        200,
        5e-4,
    )
    assert (macer.macer_gauss_num, macer.macer_lambda, macer.macer_gamma, macer.macer_beta) == (
        16,
        12.0,
        8.0,
        16.0,
    )
    assert train["macer-1.0"].macer_lambda == 4.0
    rs4a = next(s.train for s in build_plan("cifar10-l1", tmp_path, data_root=tmp_path) if s.kind == "train")
    assert (rs4a.epochs, rs4a.batch_size, rs4a.lr, rs4a.schedule, rs4a.nesterov, rs4a.weight_decay) == (
        120,
        64,
        0.1,
        "cosine",
        True,
        1e-4,
    )
    assert rs4a.sigma_is_std and rs4a.stability_weight == 6.0
    l1 = next(s.train for s in build_plan("imagenet-l1", tmp_path, data_root=tmp_path) if s.kind == "train")
    assert (l1.epochs, l1.batch_size, l1.lr, l1.lr_step, l1.nesterov, l1.arch) == (
        120,
        128,
        0.01,
        30,
        True,
        "imagenet_resnet50",
    )
    certify = next(s.certify for s in build_plan("imagenet-l2", tmp_path, data_root=tmp_path) if s.certify)
    assert (certify.budget.n0, certify.budget.n, certify.budget.alpha, certify.skip) == (
        100,
        100_000,
        0.001,
        100,
    )


def test_dry_run_counts_passes_and_time_from_the_throughput(tmp_path):
    """Without the data the standard sizes are used; with a given throughput the arithmetic is exact."""
    steps = build_plan("cifar10-l2", tmp_path, data_root=tmp_path / "absent", sigmas=[0.25])
    estimates = {e.step.name: e for e in estimate_plan(steps, throughput={"cifar_resnet18": 1000.0})}
    fixed = estimates["gaussian-0.25/fixed"]
    assert (
        fixed.forward == 10_000 * 100_100
        and fixed.backward == 0
        and fixed.seconds == pytest.approx(1_001_000)
    )
    ancer = estimates["gaussian-0.25/ancer"]
    assert ancer.backward == 10_000 * (900 * 100 + 100 * 100)
    assert ancer.forward == 10_000 * (2 * 100_100 + 900 * 100 + 100 * 100)
    train = estimates["macer-0.25"]
    assert train.backward == 440 * 50_000 * 16 and train.forward == 440 * 50_000 * 16 + 5 * 10_000
    assert train.seconds == pytest.approx((train.forward + 2 * train.backward) / 1000.0)
    assert "standard data-set size" in fixed.note
    listing = format_plan(list(estimates.values()), device="cpu", throughput={"cifar_resnet18": 1000.0})
    assert "13 of 13 steps to do" in listing and "gaussian-0.25/ancer" in listing


def test_overrides_are_checked_and_parsed():
    train, certify = parse_overrides(
        ["train.epochs=3", "certify.n=1000", "certify.label=x y", "train.amp=true"]
    )
    assert train == {"epochs": 3, "amp": True} and certify == {"n": 1000, "label": "x y"}
    with pytest.raises(UnknownNameError, match="override 'train.epoch' is unknown"):
        parse_overrides(["train.epoch=3"])
    with pytest.raises(UnknownNameError, match="certify.method"):
        parse_overrides({"certify.method": "fixed"})
    with pytest.raises(InvalidParameterError, match="must look like"):
        parse_overrides(["epochs"])
    with pytest.raises(InvalidParameterError, match="epochs=1.5"):
        build_plan("digits", "x", overrides=["train.epochs=1.5"])
    with pytest.raises(InvalidParameterError, match="needs --data-root"):
        build_plan("cifar10-l2", "x")
    with pytest.raises(UnknownNameError, match="choose one of: cifar10-l2"):
        build_plan("cifar100", "x")


def test_shrunk_cifar10_l2_runs_end_to_end_and_resumes(tmp_path):
    from anisocert.models import create_model
    from anisocert.models.checkpoint import save_checkpoint

    root = write_cifar10(tmp_path / "cifar")
    out = tmp_path / "exp"
    # one base model is imported (random weights stand in for a public checkpoint), two are trained
    imported = save_checkpoint(
        tmp_path / "public" / "resnet20",
        create_model("cifar_resnet20", 10),
        arch="cifar_resnet20",
        num_classes=10,
    )
    # the first run goes through the command line, as a user types it
    app = typer.Typer(add_completion=False)
    app.command()(experiment)
    args = ["cifar10-l2", "--data-root", str(root), "--out", str(out), "--sigmas", "0.25", "--no-progress"]
    args += ["--pretrained", f"gaussian-0.25={imported}"]
    for key, value in SHRINK.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "[1/13] import gaussian-0.25" in result.output and "[13/13] report" in result.output
    kwargs = dict(
        data_root=root,
        sigmas=[0.25],
        overrides=SHRINK,
        pretrained={"gaussian-0.25": str(imported)},
        progress=False,
    )
    lines: list[str] = []
    for name in ("smoothadv-0.25", "macer-0.25"):
        assert (out / "models" / f"{name}.safetensors").is_file() and (
            out / "models" / f"{name}.json"
        ).is_file()
    for name in ("gaussian-0.25", "smoothadv-0.25", "macer-0.25"):
        for method in ("fixed", "isotropic", "ancer"):
            tsv = (out / "runs" / name / method / "certify.tsv").read_text().splitlines()
            assert len(tsv) == 1 + 2  # header + the 2 inputs
    report = (out / "report" / "l2-sigma-0.25" / "report.md").read_text()
    assert "macer-0.25 ancer" in report and "gaussian-0.25 fixed" in report
    assert (out / "plan.json").is_file()
    # the same command again: every step is found done and skipped
    again = run_experiment("cifar10-l2", out, log=lines.append, **kwargs)
    assert again.ran == [] and len(again.skipped) == 13
    listing = run_experiment("cifar10-l2", out, dry_run=True, log=lines.append, **kwargs).listing
    assert (
        "0 of 13 steps to do" in listing and "to do" not in listing.split("\n", 3)[3].split("steps to do")[0]
    )
    # a changed training configuration is refused instead of silently mixing models
    with pytest.raises(RunStoreError, match="trained with another configuration"):
        run_experiment(
            "cifar10-l2", out, log=lines.append, **{**kwargs, "overrides": {**SHRINK, "train.epochs": 2}}
        )


def test_cli_dry_run_lists_steps_with_measured_throughput(tmp_path):
    app = typer.Typer(add_completion=False)
    app.command()(experiment)

    @app.callback()
    def _main():  # a group, so the command is invoked by name as in `anisocert experiment`
        pass

    root = write_cifar10(tmp_path / "cifar", per_batch=4, test=6)
    args = [
        "experiment",
        "cifar10-l2",
        "--data-root",
        str(root),
        "--out",
        str(tmp_path / "exp"),
        "--dry-run",
        "--sigmas",
        "0.5",
        "--set",
        "train.arch=cifar_resnet20",
        "--set",
        "certify.n=1000",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "measured forward throughput of cifar_resnet20" in result.output
    assert "certify  macer-0.5/ancer" in result.output and "6 inputs" in result.output
    assert not (tmp_path / "exp").exists()  # a dry run writes nothing
    bad = CliRunner().invoke(app, ["experiment", "cifar100", "--out", str(tmp_path / "x"), "--dry-run"])
    assert bad.exit_code == 2 and "unknown preset 'cifar100'" in bad.output
    bad = CliRunner().invoke(app, [*args, "--set", "train.nope=1"])
    assert bad.exit_code == 2 and "override 'train.nope' is unknown" in bad.output


def test_mnist_preset_certifies_the_shipped_lenets_and_draws_the_ancer_runs(tmp_path):
    steps = build_plan("mnist", tmp_path)
    imports = {s.name: s.pretrained for s in steps if s.kind == "import"}
    assert imports == {
        f"{m}-{s}": f"builtin:mnist-{m}-{s}"
        for m, s in [("gaussian", "0.25"), ("gaussian", "0.50"), ("gaussian", "1.00")]
        + [("smoothadv", "0.25"), ("smoothadv", "0.50"), ("macer", "0.25"), ("macer", "0.50")]
        + [("uniform", "0.25"), ("uniform", "0.50")]
    }
    certify = [s for s in steps if s.kind == "certify"]
    assert len(certify) == 27 and {s.certify.data for s in certify} == {"mnist"}
    assert {(s.certify.budget.n, s.certify.skip) for s in certify} == {(10_000, 10)}
    # l1: RS4A's convention, sigma the std -> half-width sqrt(3) sigma
    assert {round(s.certify.sigma, 12) for s in certify if s.certify.noise == "uniform"} == {
        round(0.25 * 3**0.5, 12),
        round(0.5 * 3**0.5, 12),
    }
    pictures = [s for s in steps if s.kind == "pictures"]
    assert [s.name for s in pictures] == [name for name in imports]
    assert all(s.runs[0].name == "ancer" and s.runs[1].name == "isotropic" for s in pictures)
    # a model can still be replaced, and --quick keeps one l2 and one l1 model
    other = build_plan("mnist", tmp_path, pretrained={"gaussian-0.25": "lenet:x.pt"})
    assert {s.name: s.pretrained for s in other if s.kind == "import"}["gaussian-0.25"] == "lenet:x.pt"
    quick = build_plan("mnist", tmp_path, quick=True)
    assert [s.name for s in quick if s.kind == "import"] == ["gaussian-0.50", "uniform-0.25"]
    with pytest.raises(InvalidParameterError, match="no --quick variant"):
        build_plan("digits", tmp_path, quick=True)


def test_mnist_quick_runs_end_to_end_and_resumes(tmp_path):
    """`anisocert experiment mnist --quick`: the shipped models, tables, runtime and pictures, resumable."""
    app = typer.Typer(add_completion=False)
    app.command()(experiment)
    out = tmp_path / "exp"
    args = ["mnist", "--quick", "--out", str(out), "--no-progress", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("gaussian-0.50", "uniform-0.25"):
        for method in ("fixed", "isotropic", "ancer"):
            assert len((out / "runs" / name / method / "certify.tsv").read_text().splitlines()) == 1 + 4
    report = (out / "report" / "l2-sigma-0.5" / "report.md").read_text()
    assert "gaussian-0.50 ancer" in report and "proxy / iso ACR" in report and "Runtime" in report
    assert (out / "report" / "l1-sigma-0.25" / "report.md").is_file()
    drawn = (out / "pictures" / "gaussian-0.50" / "pictures.json").read_text()
    assert "theta_" in drawn and "perturbation_" in drawn
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.output.count("done already, skipped") == 12
