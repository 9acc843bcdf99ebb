"""One step of an experiment plan (train, import, certify or report) and how it runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunStoreError
from ..run.config import CertifyConfig
from ..train import TrainConfig

__all__ = ["Step"]


@dataclass(frozen=True)
class Step:
    """One unit of work. kind: train | import | certify | report | pictures. output: what it writes (its
    presence, with a matching configuration, marks the step as done). A pictures step draws `grid` (a
    count) inputs of runs[0] (an ancer run) beside runs[1] (the isotropic run)."""

    kind: str
    name: str
    output: Path
    arch: str = ""
    train: TrainConfig | None = None
    pretrained: str | None = None
    certify: CertifyConfig | None = None
    runs: tuple[Path, ...] = ()
    grid: str = ""

    def done(self) -> bool:
        if self.kind == "train":
            from ..train._state import paths

            weights, sidecar, _ = paths(self.output)
            if not (weights.is_file() and sidecar.is_file()):
                return False
            recorded = json.loads(sidecar.read_text()).get("training")
            if recorded != json.loads(json.dumps(self.train.result_dict())):
                raise RunStoreError(
                    f"{weights} was trained with another configuration; delete it (and "
                    f"{sidecar.name}) to train this one, or choose another --out"
                )
            return True
        if self.kind == "import":
            return (
                self.output.is_file() and json.loads(self.output.read_text()).get("spec") == self.pretrained
            )
        if self.kind == "certify":
            marker = self.output / "experiment-step.json"
            if not marker.is_file():
                return False
            saved = json.loads(marker.read_text())
            # a marker written before the exact sampler (no "sampler") stands for a float run: run the step
            # again (a store of another sampler is then refused, naming it)
            sampler = "sampler" in saved and self.certify.sampler in (None, saved["sampler"])
            return saved.get("config_hash") == self.certify.result_hash() and sampler
        report = self.output / ("pictures.json" if self.kind == "pictures" else "report.md")
        tsvs = [r / "certify.tsv" for r in self.runs]
        return report.is_file() and all(
            t.is_file() and t.stat().st_mtime <= report.stat().st_mtime for t in tsvs
        )

    def run(self, *, progress: bool, log: Callable[[str], None], command: str) -> None:
        if self.kind == "train":
            from ..train import train_model

            train_model(self.train, self.output, progress=progress, log=log)
        elif self.kind == "import":
            from ..models import load_model

            loaded = load_model(self.pretrained)
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text(
                json.dumps(
                    {
                        "spec": self.pretrained,
                        "description": loaded.description,
                        "sha256": loaded.sha256,
                        "num_classes": loaded.num_classes,
                    },
                    indent=2,
                )
            )
        elif self.kind == "certify":
            from ..run.runner import certify_dataset

            summary = certify_dataset(self.certify, self.output, progress=progress, command=command)
            log(summary.text())
            sampler = summary.summary["config"].get("sampler")  # as resolved for the data's grid
            marker = {"config_hash": self.certify.result_hash(), "sampler": sampler, "step": self.name}
            (self.output / "experiment-step.json").write_text(json.dumps(marker, indent=2) + "\n")
        elif self.kind == "pictures":
            from ..viz.visualize import ancer_pictures

            written = ancer_pictures(
                self.runs[0], self.output, iso_run=self.runs[1], inputs=int(self.grid), log=log
            )
            self.output.mkdir(parents=True, exist_ok=True)
            files = sorted(str(p.relative_to(self.output)) for p in written)
            (self.output / "pictures.json").write_text(json.dumps({"files": files}, indent=2) + "\n")
        else:
            from ..viz.report import load_results, write_report

            results = [load_results(r) for r in self.runs]
            write_report(results, self.output, grid=self.grid)
