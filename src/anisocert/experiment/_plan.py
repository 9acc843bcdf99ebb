"""Steps (train, import, certify, report), the plan of a preset, and running it with skips and resumes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..core.noise import get_noise
from ..errors import InvalidParameterError, UnknownNameError
from ..run.config import FLAT_FIELDS, CertifyConfig
from ..train import TrainConfig
from ._estimate import _duration, estimate_plan, format_plan
from ._presets import get_preset
from ._step import Step

__all__ = ["Step", "CERTIFY_METHODS", "ExperimentSummary", "parse_overrides", "build_plan", "run_experiment"]

CERTIFY_METHODS = ("fixed", "isotropic", "ancer")


def parse_overrides(items: Sequence[str] | dict | None) -> tuple[dict, dict]:
    """'train.FIELD=VALUE' / 'certify.FIELD=VALUE' items (or a {'train.FIELD': value} dict) ->
    (train overrides, certify overrides). Values are read as JSON (1, 0.5, true, null), else as text."""
    if not items:
        return {}, {}
    pairs = list(items.items()) if isinstance(items, dict) else [_split_item(i) for i in items]
    allowed = {
        # what names a base model or a run (its method, noise, sigma, data, model) is fixed by the preset
        "train": {f.name for f in fields(TrainConfig)} - {"method", "sigma", "sigma_is_std", "data"},
        "certify": set(FLAT_FIELDS) - {"model", "method", "noise", "sigma", "data", "model_sha256"},
    }
    out: dict[str, dict] = {"train": {}, "certify": {}}
    for key, value in pairs:
        group, _, name = key.partition(".")
        if group not in allowed or name not in allowed[group]:
            choices = ", ".join(f"{g}.{n}" for g in allowed for n in sorted(allowed[g]))
            raise UnknownNameError(f"override {key!r} is unknown; use one of: {choices}")
        out[group][name] = value
    return out["train"], out["certify"]


def _split_item(item: str) -> tuple[str, object]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InvalidParameterError(f"override {item!r} must look like train.epochs=1 or certify.n=1000")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return key.strip(), tuple(value) if isinstance(value, list) else value


def build_plan(
    preset: str,
    out,
    *,
    data_root=None,
    sigmas: Sequence[float] | None = None,
    pretrained: dict[str, str] | None = None,
    overrides=None,
    device: str | None = None,
    quick: bool = False,
) -> list[Step]:
    """The preset's steps under OUT: per base model, train (or import) then certify x 3; then the reports
    (and, for presets that draw them, the pictures of each ancer run).

    sigmas keeps only the base models of these nominal sigmas; pretrained maps a base model's NAME
    (e.g. gaussian-0.25) to a load_model spec to use instead of training it (over the preset's own
    imports, e.g. mnist's shipped models); quick runs the preset's --quick variant.
    """
    p = get_preset(preset)
    p = p.quick_variant() if quick else p
    out = Path(out)
    data = p.data_spec(data_root)
    train_over, certify_over = parse_overrides(overrides)
    own = {name for name, _, _ in p.models}
    pretrained = {**{k: v for k, v in p.pretrained if k in own}, **dict(pretrained or {})}
    steps: list[Step] = []
    groups: dict[tuple[str, float], list[Path]] = {}
    for name, sigma, options in _chosen_models(p, preset, sigmas, pretrained):
        train = replace(TrainConfig(data=data, device=device, **options), **train_over)
        model_step, model = _model_step(name, train, out, pretrained)
        certify = _certify_configs(p, name, train, model, data, device, certify_over)
        steps.append(model_step)
        for method, config in zip(CERTIFY_METHODS, certify, strict=True):
            run_dir = out / "runs" / name / method
            steps.append(Step("certify", f"{name}/{method}", run_dir, arch=train.arch, certify=config))
            groups.setdefault((get_noise(train.noise).norm, sigma), []).append(run_dir)
    return steps + _report_steps(groups, p.grid, out) + _picture_steps(steps, p.pictures, out)


def _picture_steps(steps: Sequence[Step], inputs: int, out: Path) -> list[Step]:
    """Per ancer run: theta maps and perturbed images of `inputs` certified inputs, beside the isotropic
    run of the same base model (none when inputs is 0)."""
    if not inputs:
        return []
    runs = {s.name: s.output for s in steps if s.kind == "certify"}
    return [
        Step(
            "pictures",
            name.removesuffix("/ancer"),
            out / "pictures" / name.removesuffix("/ancer"),
            runs=(run, runs[name.removesuffix("ancer") + "isotropic"]),
            grid=str(inputs),
        )
        for name, run in runs.items()
        if name.endswith("/ancer")
    ]


def _chosen_models(p, preset: str, sigmas, pretrained: dict[str, str]) -> list:
    """The preset's (name, sigma, options) of the chosen sigmas; refuses pretrained names it lacks."""
    names = {name for name, _, _ in p.models}
    unknown = sorted(set(pretrained) - names)
    if unknown:
        raise UnknownNameError(
            f"--pretrained names {', '.join(unknown)} are not models of {preset}; "
            f"its models are: {', '.join(sorted(names))}"
        )
    chosen = [m for m in p.models if sigmas is None or any(math.isclose(m[1], s) for s in sigmas)]
    if not chosen:
        raise InvalidParameterError(
            f"no model of {preset} has sigma in {list(sigmas)}; its sigmas are "
            f"{sorted({m[1] for m in p.models})}"
        )
    return chosen


def _model_step(name: str, train: TrainConfig, out: Path, pretrained: dict[str, str]) -> tuple[Step, str]:
    """(the step that makes base model NAME: import it or train it, the model spec its runs certify)."""
    if name in pretrained:
        output = out / "models" / f"{name}.import.json"
        return Step("import", name, output, arch=train.arch, pretrained=pretrained[name]), pretrained[name]
    stem = out / "models" / name
    return Step("train", name, stem, arch=train.arch, train=train), str(stem) + ".safetensors"


def _certify_configs(p, name: str, train: TrainConfig, model: str, data: str, device, over) -> list:
    """One run per method in CERTIFY_METHODS: the base model's noise and sigma, the preset's budget, then
    the certify overrides."""
    return [
        CertifyConfig.from_flat(
            **{
                **dict(model=model, data=data, noise=train.noise, method=method, sigma=train.theta),
                **dict(label=f"{name} {method}", device=device, **p.certify),
                **over,
            }
        )
        for method in CERTIFY_METHODS
    ]


def _report_steps(groups: dict[tuple[str, float], list[Path]], grid: str, out: Path) -> list[Step]:
    """One report per (norm, sigma) over its runs; l1 runs use the l1 grid, l2 runs the preset's, and a
    preset whose grid is 'auto' (fitted to its runs' radii) uses it for both."""
    return [
        Step(
            "report",
            f"{norm} sigma={sigma:g}",
            out / "report" / f"{norm}-sigma-{sigma:g}",
            runs=tuple(runs),
            grid="l1" if norm == "l1" and grid != "auto" else grid,
        )
        for (norm, sigma), runs in groups.items()
    ]


@dataclass
class ExperimentSummary:
    steps: list[Step]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    listing: str = ""


def run_experiment(
    preset: str,
    out,
    *,
    data_root=None,
    dry_run: bool = False,
    sigmas=None,
    pretrained=None,
    overrides=None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    throughput: dict[str, float] | None = None,
    command: str = "",
    quick: bool = False,
) -> ExperimentSummary:
    """Build the preset's plan under OUT and run the steps that are not done (or only list them with
    their estimated cost when dry_run). Returns what ran and what was skipped."""
    from ..train import resolve_device

    steps = build_plan(
        preset,
        out,
        data_root=data_root,
        sigmas=sigmas,
        pretrained=pretrained,
        overrides=overrides,
        device=device,
        quick=quick,
    )
    summary = ExperimentSummary(steps)
    if dry_run:
        rates = dict(throughput or {})
        estimates = estimate_plan(steps, device=device, throughput=rates)
        summary.listing = format_plan(estimates, device=_describe(resolve_device(device)), throughput=rates)
        log(summary.listing)
        return summary
    from ..viz.plots import check_out_dir

    out = check_out_dir(out)
    if data_root is not None and not Path(data_root).is_dir():
        raise InvalidParameterError(
            f"--data-root {data_root} is not a folder; give the folder of the data set"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(_plan_json(preset, steps), indent=2, default=str) + "\n")
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {step.kind} {step.name}"
        if step.done():
            summary.skipped.append(step.name)
            log(f"{head}: done already, skipped")
            continue
        t0 = time.perf_counter()
        log(f"{head} ...")
        step.run(progress=progress, log=log, command=command)
        summary.ran.append(step.name)
        log(f"{head}: finished in {_duration(time.perf_counter() - t0)}")
    reports = [s.output / "report.md" for s in steps if s.kind == "report"]
    reports += [s.output for s in steps if s.kind == "pictures"]
    log("reports: " + ", ".join(str(r) for r in reports))
    return summary


def _describe(device) -> str:
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    import os

    return f"cpu ({os.cpu_count()} cores)"


def _plan_json(preset: str, steps: Sequence[Step]) -> dict:
    rows = []
    for s in steps:
        row: dict = {"kind": s.kind, "name": s.name, "output": str(s.output)}
        if s.train is not None:
            row["train"] = s.train.to_dict()
        if s.certify is not None:
            row["certify"] = s.certify.result_dict()
        if s.pretrained:
            row["pretrained"] = s.pretrained
        if s.runs:
            row["runs"] = [str(r) for r in s.runs]
        rows.append(row)
    return {"preset": preset, "steps": rows}
