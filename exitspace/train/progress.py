"""Progress: a rich bar on a terminal, plain log lines otherwise; both can also go to a log file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

if TYPE_CHECKING:
    import torch


class Reporter:
    """Reports steps and epochs. ``quiet`` silences the console (e.g. for ``--json``)."""

    def __init__(self, console: Console | None = None, log_file: Path | None = None, log_every: int = 50,
                 quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, markup=False)
        self.log_file = log_file
        self.log_every = log_every
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self._progress: Progress | None = None

    def log(self, message: str) -> None:
        """One line to the console and the log file."""
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        if not self.quiet:
            self.console.print(line, highlight=False, soft_wrap=True)
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "a") as handle:
                handle.write(line + "\n")

    def start_epoch(self, description: str, total: int) -> Any:
        """Begin a bar for one epoch; returns a task handle."""
        self._description = description
        if self.live:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._progress.start()
            return self._progress.add_task(description, total=total, stats="")
        return None

    def step(self, task: Any, done: int, **stats: float | torch.Tensor) -> None:
        """Advance to ``done`` steps with running loss / accuracy / images per second."""
        text = f"loss {stats['loss']:.3f} acc {stats['acc']:.3f} {stats['ips']:.0f} img/s lr {stats['lr']:.4f}"
        if self._progress is not None:
            self._progress.update(task, completed=done, stats=text)
        elif done % self.log_every == 0:
            self.log(f"{self._description} step {done}: {text}")

    def end_epoch(self, task: Any, record: dict[str, Any]) -> None:
        """Close the bar and log the epoch summary."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()]
        self.log(f"{self._description} done: " + ", ".join(parts))
