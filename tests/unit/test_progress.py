"""Progress of a run: plain lines at a steady interval when the output is not a terminal."""

import io
import re
import time

import pytest

from anisocert.run import progress as progress_module
from anisocert.run.config import CertifyConfig
from anisocert.run.progress import PHASES, Progress, format_seconds
from anisocert.run.runner import certify_dataset

LINE = re.compile(
    r"^certify: (\d+)/(\d+) inputs \(\d+%\), (\S+) inputs/min, ETA (\S+), phase: ([a-zA-Z ]+), elapsed \S+$"
)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_states_done_total_rate_eta_and_phase():
    clock, stream = _Clock(), io.StringIO()
    with Progress(True, 10, 2, stream=stream, interval=3600, clock=clock) as bar:
        assert (
            bar.line() == "certify: 2/10 inputs (20%), - inputs/min, ETA unknown, phase: starting, elapsed 0s"
        )
        bar.phase("theta search")
        clock.now += 90
        bar.advance(3)  # 3 new inputs in 90 s (the 2 of a former run do not count): 2 per minute
        assert bar.line() == (
            "certify: 5/10 inputs (50%), 2 inputs/min, ETA 2m30s, phase: theta search, elapsed 1m30s"
        )
        clock.now += 150
        bar(5)
    assert stream.getvalue().splitlines() == [
        "certify: 10/10 inputs (100%), 2 inputs/min, done after 4m00s"  # 8 new in 240 s
    ]


def test_without_a_terminal_lines_come_at_the_interval_while_nothing_advances():
    stream = io.StringIO()
    with Progress(True, 8, stream=stream, interval=0.02) as bar:
        bar.phase("sigma search")
        deadline = time.monotonic() + 10
        while len(stream.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # one long chunk: no advance, the lines still come
        bar.advance(8)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 4, lines
    for line in lines[:3]:
        match = LINE.match(line)
        assert match, line
        assert match.group(1, 2, 5) == ("0", "8", "sigma search")
    assert lines[-1].startswith("certify: 8/8 inputs (100%), ") and "done after" in lines[-1]


def test_an_interrupted_run_ends_with_a_stopped_line():
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(True, 4, stream=stream, interval=3600) as bar:
        bar.advance(1)
        raise KeyboardInterrupt
    assert stream.getvalue().startswith("certify: 1/4 inputs (25%)") and "stopped after" in stream.getvalue()


def test_a_terminal_gets_the_bar_and_disabled_progress_writes_nothing():
    terminal, log = _Terminal(), io.StringIO()
    with Progress(True, 4, stream=terminal, interval=0.01) as bar:
        bar.phase("certification")
        time.sleep(0.05)
        bar.advance(4)
    assert "4/4" in terminal.getvalue() and "ETA" not in terminal.getvalue()  # the rich bar, no lines
    with Progress(False, 4, stream=log, interval=0.01) as bar:
        time.sleep(0.05)
        bar.advance(4)
    assert log.getvalue() == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (0.4, 59, 60, 425, 3600, 10_920)] == [
        "0s",
        "59s",
        "1m00s",
        "7m05s",
        "1h00m",
        "3h02m",
    ]


def test_a_run_with_output_to_a_file_prints_lines_and_names_its_phases(tmp_path, monkeypatch, capsys):
    """certify_dataset with stdout captured (not a terminal): periodic lines, a final line, and the
    phases of an isotropic run with memory reported in order."""
    phases = []
    real_phase = Progress.phase

    def spy(self, name):
        phases.append(name)
        real_phase(self, name)

    monkeypatch.setattr(progress_module, "INTERVAL", 0.01)
    monkeypatch.setattr(Progress, "phase", spy)
    config = CertifyConfig.from_flat(
        model="builtin:digits-gaussian",
        method="isotropic",
        iso_method="search",
        iso_samples=20,
        iso_grid_points=3,
        n0=10,
        n=200,
        max_count=4,
        inputs_per_batch=2,
    )
    certify_dataset(config, tmp_path / "run", progress=True)
    lines = capsys.readouterr().out.splitlines()
    periodic = [LINE.match(line) for line in lines if "ETA" in line]
    assert periodic and all(periodic), lines
    assert {m.group(5) for m in periodic} <= set(PHASES) | {"starting"}
    assert lines[-1].startswith("certify: 4/4 inputs (100%), ") and "done after" in lines[-1]
    assert phases[:5] == ["memory", "sigma search", "certification", "memory", "sigma search"]
    assert set(phases) == {"sigma search", "certification", "memory"}
