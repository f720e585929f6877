"""Files a run reads and writes: the one owner of the rules.

Writing: every file is written atomically (:func:`atomic_output`): into a temporary file in the same folder,
flushed and fsynced, then renamed over the target, so that a kill at any moment leaves the previous file or
the new one, never a partial one.

Reading: :func:`read_text` and :func:`load_yaml` turn unreadable files (missing, a folder, no permission,
not UTF-8 text, malformed YAML, a key given twice) into one-line :class:`~exitspace.errors.ExitspaceError`
messages naming the file and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from exitspace.errors import ConfigError, ExitspaceError


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_file_name(name: str) -> str:
    """``name`` as one file-name component that stays in its folder: characters other than letters, digits and
    ``_ . + -`` become "_" (no separators) and leading dots are dropped (no ".." and no hidden file); "" when
    nothing remains (the caller refuses it or picks a default)."""
    return _UNSAFE_NAME.sub("_", str(name)).lstrip(".")


def writable_folder(path: Path | str, what: str) -> Path:
    """``path`` as a folder this process can write into (created with its parents); one-line ConfigError
    naming ``what`` (e.g. "--run-dir") when it is a file, lies under a file or is not writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{what} {path}: is a file (or lies under one), not a folder; give a folder path") from None
    except PermissionError:
        raise ConfigError(f"{what} {path}: cannot be created (permission denied); choose a writable place") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot be created ({exc.strerror or type(exc).__name__}); choose another place") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: not writable (permission denied); choose a writable folder or fix its permissions")
    return path


@contextmanager
def atomic_output_path(path: Path | str, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path`` (same file system, so the rename is atomic; parent folders are
    created) for a writer that wants a file name; what is written there replaces ``path`` only when the block
    ends without an exception. An exception (Ctrl-C included) removes it and leaves ``path`` as it was.
    ``keep_suffix``: the temporary name ends in ``path``'s suffix too (for writers that go by it)."""
    path = Path(path)
    parent = writable_folder(path.parent, "folder")
    tmp = parent / (f".{path.name}.{os.getpid()}.tmp" + (path.suffix if keep_suffix else ""))
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder; remove it or choose another output path")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(parent)


@contextmanager
def atomic_output(path: Path | str) -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces ``path`` only when the block ends without an exception
    (:func:`atomic_output_path`)."""
    with atomic_output_path(path) as tmp:
        try:
            handle = open(tmp, "wb")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write ({exc.strerror or type(exc).__name__}); "
                              "choose another path") from None
        with handle:
            yield handle


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: Path | str, what: str, fix: str, error: type[ExitspaceError] = ConfigError) -> str:
    """The UTF-8 text of ``path``; one-line ``error`` naming ``what`` (e.g. "run config") and ``fix`` when the
    file is missing, a folder, unreadable or not text."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path}: not found; {fix}") from None
    except IsADirectoryError:
        raise error(f"{what} {path}: is a folder, not a file; {fix}") from None
    except PermissionError:
        raise error(f"{what} {path}: not readable (permission denied); fix its permissions") from None
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror or type(exc).__name__}); {fix}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text (byte {exc.start}); {fix}") from None
    if "\x00" in text:
        raise error(f"{what} {path}: a binary file, not text; {fix}")
    return text


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (the second would silently win)."""


def _construct_unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # keys merged in (<<: *anchor) may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping reports it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def parse_yaml(text: str, where: str, fix: str = "fix the indentation or quoting", unique_keys: bool = True,
               error: type[ExitspaceError] = ConfigError) -> Any:
    """Parse YAML text (safe loader; duplicate keys refused unless ``unique_keys`` is False); a syntax
    error becomes one line naming ``where``, the line and the column."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader if unique_keys else yaml.SafeLoader)  # noqa: S506 (safe loaders)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if problem.startswith("duplicate key"):
            raise error(f"{where}: {problem}{at}; keep one of them") from None
        raise error(f"{where}: malformed YAML{at}: {problem}; {fix}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to be a config; {fix}") from None


def load_yaml(path: Path | str, what: str, fix: str, unique_keys: bool = True,
              error: type[ExitspaceError] = ConfigError) -> Any:
    """Read and parse a YAML file (see :func:`read_text` and :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, what, fix, error), f"{what} {path}", unique_keys=unique_keys, error=error)
