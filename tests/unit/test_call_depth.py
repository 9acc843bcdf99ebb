"""From `anisocert certify` to the model's forward pass in few calls (issue 14): the stack at the forward
pass holds the CLI command, the runner, the worker, the smoothed classifier and the sampler, nothing more."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

import anisocert.core.sampling as sampling
from anisocert.cli import app


def _calls_to_the_model(monkeypatch, tmp_path, method: str) -> list[str]:
    """The anisocert functions on the stack at the first forward pass of certification, innermost first,
    from count_predictions (which calls the model) out to the CLI command."""
    stacks = []
    real = sampling._checked

    def checked(scores, chunk):  # called on the model's scores, right after the forward pass
        stacks.append([(f.frame.f_globals.get("__name__", ""), f.function) for f in inspect.stack()[1:]])
        return real(scores, chunk)

    monkeypatch.setattr(sampling, "_checked", checked)
    args = ["certify", "--model", "builtin:digits-gaussian", "--method", method, "--max", "1", "--n", "200"]
    args += ["--iso-samples", "8", "--ancer-iterations", "2", "--ancer-samples", "4", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / method)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for stack in stacks:
        # the project's frames by the module that defines them, never by the folder they lie in
        names = [name for module, name in stack if module.split(".")[0] == "anisocert"]
        if "selection_counts" in names or "certify" in names or "certify_selected" in names:
            return names[: names.index("command") + 1]  # the certification, not the noise search
    raise AssertionError("no forward pass of certification was seen")


@pytest.mark.parametrize("method, most", [("fixed", 5), ("isotropic", 5), ("ancer", 7)])
def test_the_cli_reaches_the_forward_pass_in_few_calls(monkeypatch, tmp_path, method, most):
    calls = _calls_to_the_model(monkeypatch, tmp_path, method)
    assert calls[0] == "count_predictions" and calls[-1] == "command", calls
    assert len(calls) <= most, calls
    if method != "ancer":
        assert calls == ["count_predictions", "certify", "run", "certify_dataset", "command"]
