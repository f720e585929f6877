"""Shared helpers of the hardware readers: YAML reading and one-line field errors.

Every problem in a hardware file becomes one :class:`ConfigError` line of the form
``"<file>: <field path>: <what is wrong> (got <value>)"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from exitspace.errors import ConfigError
from exitspace.files import UniqueKeyLoader, read_text


class FieldReader:
    """Reads typed fields out of a parsed YAML mapping and fails with one line naming the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> NoReturn:
        """Raise the one-line error for ``path``."""
        prefix = f"{self.source}: " if self.source else ""
        where = f"{path}: " if path else ""
        raise ConfigError(f"{prefix}{where}{message}")

    def mapping(self, value: Any, path: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping (got {_show(value)})")
        return value

    def get(self, data: dict[Any, Any], key: str, path: str, default: Any = ..., hint: str = "") -> Any:
        """``data[key]``; a missing required key fails naming ``path.key``."""
        if key in data and data[key] is not None:
            return data[key]
        if default is ...:
            self.fail(_join(path, key), "required field is missing" + (f"; {hint}" if hint else ""))
        return default

    def integer(self, value: Any, path: str, minimum: int | None = None, strict_positive: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            self.fail(path, f"must be an integer (got {_show(value)})")
        number = int(value)
        if strict_positive and number <= 0:
            self.fail(path, f"must be > 0 (got {_show(value)})")
        if minimum is not None and number < minimum:
            self.fail(path, f"must be >= {minimum} (got {_show(value)})")
        return number

    def number(self, value: Any, path: str, minimum: float | None = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"must be a number (got {_show(value)})")
        if minimum is not None and value < minimum:
            self.fail(path, f"must be >= {minimum:g} (got {_show(value)})")
        return float(value)

    def seq(self, value: Any, path: str, min_length: int = 0) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"must be a list (got {_show(value)})")
        if len(value) < min_length:
            self.fail(path, f"needs at least {min_length} entr{'y' if min_length == 1 else 'ies'} (got {len(value)})")
        return list(value)

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.fail(path, f"must be a string (got {_show(value)})")
        return str(value)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_document(path: Path, strict: bool = False) -> Any:
    """Parse a YAML or JSON file; malformed text fails with the file and line.

    ``strict`` refuses duplicate keys (system files: a core id given twice); core files stay lenient
    like ZigZag (whose bundled tpu_like.yaml repeats ``ports``; the last one wins).
    """
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; give the path of a hardware YAML/JSON file or a preset name")
    text = read_text(path, "hardware file", "give a hardware YAML/JSON file or a preset name")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path.name}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader if strict else yaml.SafeLoader)  # noqa: S506 (safe loaders)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{path.name}: {where}malformed YAML ({problem}); fix the syntax") from None


def validation_error_line(exc: ValidationError, source: str, rename: dict[str, str] | None = None) -> ConfigError:
    """The first error of a pydantic ValidationError as one line naming the field path."""
    error = exc.errors()[0]
    parts = [str(part) for part in error["loc"]]
    if rename:
        parts = [rename.get(part, part) for part in parts]
    path = ".".join(parts)
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "greater_than":
        message = f"must be > {error['ctx']['gt']}"
    elif error["type"] == "greater_than_equal":
        message = f"must be >= {error['ctx']['ge']}"
    if "input" in error and error["type"] not in ("value_error", "missing"):
        message += f" (got {_show(error['input'])})"
    prefix = f"{source}: " if source else ""
    return ConfigError(f"{prefix}{path + ': ' if path else ''}{message}")
