"""Progress of a certification run: a rich bar on a terminal, plain lines in a log.

A bar redraws in place, which a file cannot show: redirected to a file (a cluster batch job, nohup, CI)
rich prints nothing until the end, and a 22-minute run left an empty log. When the stream is not a
terminal, a plain line is printed every ``interval`` seconds (from a timer thread, so a chunk that takes
minutes still shows) and once at the end: inputs done / total, inputs per minute, ETA, current phase.
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["INTERVAL", "PHASES", "Progress", "format_seconds"]

INTERVAL = 30.0  # seconds between two plain progress lines
PHASES = ("sigma search", "theta search", "certification", "memory", "Ray workers")


def format_seconds(seconds: float) -> str:
    """'45s', '7m05s', '3h02m': short enough for a log line, exact enough for an ETA."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Context manager of a run's progress; ``advance(k)`` (or calling it) counts k finished inputs and
    ``phase(name)`` names what the run is doing now. Silent when disabled.

    total: inputs of the run; completed: those finished before (a resume), left out of the rate.
    stream: where to write (default sys.stdout, the stream of the run's summary line); a terminal gets
    the rich bar, anything else plain lines every ``interval`` seconds and at the end.
    """

    def __init__(
        self,
        enabled: bool,
        total: int,
        completed: int = 0,
        *,
        stream=None,
        interval: float | None = None,
        label: str = "certify",
        clock=time.monotonic,
    ):
        self.enabled, self.total, self.completed, self.label = enabled, total, completed, label
        self.stream = stream if stream is not None else sys.stdout
        self.interval = INTERVAL if interval is None else interval
        self.clock = clock
        self.current = ""
        self._start_completed = completed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._bar = None
        self._plain = enabled and not _is_terminal(self.stream)

    # -- the run's side ----------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        self._t0 = self.clock()
        if not self.enabled:
            return self
        if self._plain:
            self._thread = threading.Thread(
                target=self._every_interval, name="anisocert-progress", daemon=True
            )
            self._thread.start()
        else:
            self._start_bar()
        return self

    def __call__(self, k: int) -> None:
        self.advance(k)

    def advance(self, k: int) -> None:
        with self._lock:
            self.completed += k
        if self._bar is not None:
            self._update_bar(k)

    def phase(self, name: str) -> None:
        with self._lock:
            self.current = name
        if self._bar is not None:
            self._bar.update(self._task, phase=name)

    def __exit__(self, kind, *exc) -> bool:
        if not self.enabled:
            return False
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._write(self.line(final=True, stopped=kind is not None))
        if self._bar is not None:
            self._bar.stop()
        return False

    # -- plain lines -------------------------------------------------------------------------------
    def line(self, *, final: bool = False, stopped: bool = False) -> str:
        """One progress line: done / total, inputs per minute (this session), ETA and the phase."""
        with self._lock:
            done, phase = self.completed, self.current
        elapsed = max(self.clock() - self._t0, 1e-9)
        new = done - self._start_completed
        rate = 60.0 * new / elapsed  # inputs per minute
        share = f" ({100.0 * done / self.total:.0f}%)" if self.total else ""
        head = f"{self.label}: {done}/{self.total} inputs{share}"
        speed = f"{rate:.3g} inputs/min" if new else "- inputs/min"
        if final:
            state = "stopped" if stopped else "done"
            return f"{head}, {speed}, {state} after {format_seconds(elapsed)}"
        left = self.total - done
        eta = format_seconds(60.0 * left / rate) if new and left > 0 else "0s" if left <= 0 else "unknown"
        return f"{head}, {speed}, ETA {eta}, phase: {phase or 'starting'}, elapsed {format_seconds(elapsed)}"

    def _every_interval(self) -> None:
        while not self._stop.wait(self.interval):
            self._write(self.line())

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken log must not stop the run
            pass

    # -- the rich bar ------------------------------------------------------------------------------
    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[phase]}"),
            console=Console(file=self.stream),
            transient=False,
            speed_estimate_period=3600,  # rate and ETA over the last hour: chunks may take minutes
        )
        self._bar.start()
        self._task = self._bar.add_task(
            self.label, total=self.total, completed=self.completed, rate="", phase=self.current
        )

    def _update_bar(self, k: int) -> None:
        self._bar.advance(self._task, k)
        speed = self._bar.tasks[0].speed  # inputs per second; None before two chunks
        self._bar.update(self._task, rate="" if speed is None else f"{60 * speed:.3g} inputs/min")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
