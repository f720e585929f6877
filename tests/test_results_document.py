"""The typed, versioned results document: it round-trips a real run's results.json exactly, and its reader
refuses other versions, formats and broken content in one line (exit code 2 on the command line)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import Result

from exitspace.errors import DataError
from exitspace.search.results import RESULTS_VERSION, dump_results, load_results, upgrade_file


@pytest.fixture
def results_file(repo: Path, tmp_path: Path) -> Path:
    """A copy of the committed ResNet-20 results.json."""
    return Path(shutil.copy(repo / "results" / "resnet20_cifar10" / "report" / "results.json", tmp_path / "results.json"))


def test_committed_results_round_trip_exactly(results_file: Path) -> None:
    document = load_results(results_file)
    assert document.version == RESULTS_VERSION and document.pareto and document.headline.design
    assert document.to_json() == json.loads(results_file.read_text())
    assert dump_results(document) == results_file.read_text()


def test_other_version_is_refused_in_one_line_and_version_1_upgrades(results_file: Path,
                                                                     cli: Callable[..., Result]) -> None:
    data = json.loads(results_file.read_text())
    results_file.write_text(json.dumps({**data, "version": 1}))
    out = cli("report", results_file)
    assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1
    assert "results version 1, this exitspace reads version 2" in out.output
    assert upgrade_file(results_file).to_json() == data
    results_file.write_text(json.dumps({**data, "version": 3}))
    with pytest.raises(DataError, match="results version 3.*re-run `exitspace search`"):
        load_results(results_file)
    with pytest.raises(DataError, match="cannot be upgraded"):
        upgrade_file(results_file)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: {**d, "format": "other"}, "not an exitspace results file"),
        (lambda d: {**d, "pareto": [{k: v for k, v in d["pareto"][0].items() if k != "name"}]}, "pareto.0.name: Field required"),
        (lambda d: {**d, "trials_columns": 3}, "trials_columns: Input should be a valid list"),
    ],
)
def test_broken_content_names_the_field(results_file: Path, edit: Callable[[dict[str, Any]], Any], expected: str) -> None:
    results_file.write_text(json.dumps(edit(json.loads(results_file.read_text()))))
    with pytest.raises(DataError, match=expected) as info:
        load_results(results_file)
    assert "\n" not in str(info.value)
