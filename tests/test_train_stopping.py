"""Stopping a training run: SIGINT / SIGTERM taken at the next step with a checkpoint, one process per run directory."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from exitspace.errors import RunDirError
from exitspace.train.checkpoint import load_checkpoint
from exitspace.train.pipeline import run_training
from exitspace.train.progress import Reporter
from exitspace.train.stopping import (TrainingStopped, lock_holder, run_dir_lock, steps_take_stops, stop_requested,
                                      stop_signals)
from tiny_training import quiet_reporter, table_hash, tiny_config

STEPS_PER_EPOCH = 256 // 64  # _config: 256 training images (320 less 64 for validation), batch 64


class _SignalAtStep(Reporter):
    """A quiet reporter that sends ``signum`` to this process after the ``at``-th training step it sees."""

    def __init__(self, run_dir: Path, at: int, signum: int) -> None:
        super().__init__(log_file=run_dir / "train.log", quiet=True)
        self.at, self.signum, self.steps = at, signum, 0

    def step(self, task: Any, done: int, **stats: Any) -> None:
        super().step(task, done, **stats)
        self.steps += 1
        if self.steps == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize(("signum", "at", "where"), [
    (signal.SIGTERM, STEPS_PER_EPOCH + 2, (1, 2)),  # within epoch 2: a mid-epoch checkpoint after step 2
    (signal.SIGINT, STEPS_PER_EPOCH, (1, 0)),  # on an epoch's last step: the epoch finishes, validation included
])
def test_a_signal_stops_at_the_next_step_with_a_checkpoint_and_the_resumed_run_matches(
        tmp_path: Path, signum: int, at: int, where: tuple[int, int]) -> None:
    config = tiny_config()
    run_training(config, tmp_path / "a", reporter=quiet_reporter(tmp_path / "a"))
    stopped = tmp_path / "b"
    with pytest.raises(TrainingStopped, match=r"^float: stopped .*; checkpoint written, re-run to resume$"):
        run_training(config, stopped, reporter=_SignalAtStep(stopped, at, signum))
    state = load_checkpoint(stopped / "float" / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == where and not (stopped / "float" / "done.json").exists()
    assert f"{signal.Signals(signum).name}: stopping after this step" in (stopped / "train.log").read_text()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and not stop_requested()  # handlers restored
    run_training(config, stopped, reporter=quiet_reporter(stopped))
    assert table_hash(tmp_path / "a", (32, 32)) == table_hash(stopped, (32, 32))


def test_a_second_signal_or_one_outside_the_steps_stops_at_once() -> None:
    lines: list[str] = []
    with stop_signals(lines.append):
        with pytest.raises(KeyboardInterrupt):  # e.g. while teacher views are built: at once, as before
            os.kill(os.getpid(), signal.SIGTERM)
        with steps_take_stops():
            os.kill(os.getpid(), signal.SIGINT)
            assert stop_requested() and lines == ["SIGINT: stopping after this step, once the checkpoint is written "
                                                  "(signal again to stop at once)"]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not stop_requested()


def test_a_second_run_on_a_busy_run_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    assert lock_holder(tmp_path) is None
    with run_dir_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()  # what train-status shows
        with pytest.raises(RunDirError, match=rf"in use by another `exitspace train` \(pid {os.getpid()}\); wait for "
                                              rf"it to finish, or stop it with `kill -TERM {os.getpid()}`"):
            run_training(tiny_config(), tmp_path, reporter=quiet_reporter(tmp_path))
        assert not (tmp_path / "float").exists()
    assert lock_holder(tmp_path) is None
    run_training(tiny_config(optim={"epochs": 1}), tmp_path, reporter=quiet_reporter(tmp_path))  # free again once released
