"""Stopping a training run cleanly: one process per run directory (training's lock, and the search's), and
SIGINT / SIGTERM taken at the next training step, after a checkpoint, so that no finished step is lost
(`exitspace train` resumes from it)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from exitspace.errors import RunDirError

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: run directories are not locked there
    _fcntl = None  # type: ignore[assignment]

LOCK = "train.lock"


class TrainingStopped(KeyboardInterrupt):
    """A stop asked for by SIGINT or SIGTERM, taken at a step boundary once the checkpoint is written."""


class _State:
    """What the signal handler needs: whether a training loop can take the stop, and whether one was asked."""

    deferring = False
    requested = False
    log: Callable[[str], None] = print


def stop_requested() -> bool:
    """True once SIGINT or SIGTERM arrived during a training loop's steps: checkpoint, then raise."""
    return _State.requested


@contextmanager
def steps_take_stops() -> Iterator[None]:
    """Inside, a first signal only sets ``stop_requested`` (the loop checkpoints and stops at its next step);
    outside, and for a second signal, it stops at once (KeyboardInterrupt)."""
    before = _State.deferring
    _State.deferring = True
    try:
        yield
    finally:
        _State.deferring = before


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _State.deferring and not _State.requested:
        _State.requested = True
        _State.log(f"{signal.Signals(signum).name}: stopping after this step, once the checkpoint is written "
                   "(signal again to stop at once)")
        return
    raise KeyboardInterrupt


@contextmanager
def stop_signals(log: Callable[[str], None]) -> Iterator[None]:
    """Route SIGTERM, and SIGINT unless the process was started ignoring it (``nohup cmd &``), to the
    step-boundary stop above for the duration; handlers are restored afterwards. Off the main thread,
    where Python cannot install handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, _on_signal) for signum in names}
    _State.requested, _State.log = False, log
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.requested = False


@dataclass(frozen=True)
class DirLock:
    """A run directory's lock: its file, the commands that take it, and how to stop the holder."""

    file: str
    commands: str
    stop: str


TRAIN_LOCK = DirLock(LOCK, "`exitspace train`", "stop it with `kill -TERM {pid}` (it checkpoints first)")
SEARCH_LOCK = DirLock("search.lock", "`exitspace run` or `exitspace search`",
                      "stop it with `kill -INT {pid}` (it stores its finished trials first)")
"""One search per run directory: two would splice their trials into one study."""


def lock_holder(run_dir: Path, lock: DirLock = TRAIN_LOCK) -> int | None:
    """The pid of the process that holds ``run_dir``'s ``lock`` now, or None (also where ``fcntl`` is missing)."""
    path = Path(run_dir) / lock.file
    if _fcntl is None or not path.is_file():
        return None
    with open(path) as handle:
        try:
            _fcntl.flock(handle, _fcntl.LOCK_SH | _fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        _fcntl.flock(handle, _fcntl.LOCK_UN)
    return None


@contextmanager
def run_dir_lock(run_dir: Path, lock: DirLock = TRAIN_LOCK) -> Iterator[None]:
    """Hold ``run_dir``'s ``lock`` (an advisory lock the system drops when the process dies) for the duration;
    a second process of the lock's commands on the same directory gets a one-line RunDirError instead of
    overwriting the first one's checkpoints or trials. Where ``fcntl`` is missing (Windows), nothing is locked."""
    if _fcntl is None:  # pragma: no cover - Windows
        yield
        return
    path = Path(run_dir) / lock.file
    with open(path, "a+") as handle:
        try:
            _fcntl.flock(handle, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise RunDirError(f"{run_dir}: in use by another {lock.commands} (pid {holder}); wait for it to finish, "
                              f"or {lock.stop.format(pid=holder)}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            _fcntl.flock(handle, _fcntl.LOCK_UN)
