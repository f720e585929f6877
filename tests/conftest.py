"""Fixtures shared by the test files. Helper code that tests import by name lives beside this file in
modules that are not test files: ``toys`` (a synthetic exit table and a toy evaluator for the search and the
report) and ``tiny_training`` (a seconds-long training config, a quiet reporter)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner, Result

from exitspace.cli.main import app, register_commands

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    """The repository root (configs/, results/, tests/goldens/)."""
    return REPO


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("report", path, "--json")``: the ``exitspace`` command line, all commands registered, in-process."""
    register_commands()
    runner = CliRunner()

    def invoke(*args: object) -> Result:
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke
