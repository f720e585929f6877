"""Cache directory, checksums and atomic array files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from exitspace.errors import DataError
from exitspace.files import atomic_output


def default_cache_dir() -> Path:
    """``$EXITSPACE_CACHE`` or ``~/.cache/exitspace``."""
    env = os.environ.get("EXITSPACE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "exitspace"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str | None, algorithm: str, fix: str) -> None:
    """Raise a one-line DataError if ``path`` is missing or its digest differs from ``expected``."""
    if not path.is_file():
        raise DataError(f"{path}: not found; {fix}")
    if expected is None:
        return
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DataError(f"{path}: {algorithm} is {actual}, expected {expected}; the file is corrupt or another file, {fix}")


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed ``.npz`` atomically (tmp file + rename)."""
    with atomic_output(path) as handle:
        np.savez(handle, **cast(dict[str, Any], arrays))  # cast: numpy stubs type **kwds as if one could be allow_pickle


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """Read a cache ``.npz``; None if missing or unreadable (the caller rebuilds it)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
