"""Paths as reports show them: relative to the working directory when inside it, so that committed
results do not carry one machine's absolute paths."""

from __future__ import annotations

from pathlib import Path


def shown_path(path: str | Path) -> str:
    """``path`` relative to the current directory when it lies inside it, else unchanged."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def shown_storage(url: str) -> str:
    """A file-backed storage URL with its path shown as :func:`shown_path` does; other URLs unchanged.

    Handles the trial log's ``exitspace-sqlite://<path>`` and SQLAlchemy's ``sqlite:///<path>`` (both
    read a relative path against the working directory).
    """
    for prefix in ("exitspace-sqlite://", "sqlite:///"):
        if url.startswith(prefix):
            return prefix + shown_path(url[len(prefix):])
    return url
