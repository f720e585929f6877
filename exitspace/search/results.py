"""The results document of a run (``<run dir>/report/results.json``): typed, versioned, one reader.

The search builds it, the driver adds the hardware-side facts, and report, compare, finetune and export
read it with :func:`load_results`, which refuses anything but this format and :data:`RESULTS_VERSION` in one
line. Fields that an older or partial run lacks stay unset and are not written back (``to_json``).

Version history: 1, untyped (``dict``); 2, this model (same content; ``python -m exitspace.search.results
FILE...`` marks version-1 files as version 2 after checking them against the model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exitspace.errors import DataError
from exitspace.files import atomic_write_text, read_text

RESULTS_FORMAT: Literal["exitspace.results"] = "exitspace.results"
RESULTS_VERSION = 2
UPGRADABLE_VERSIONS = (1,)
"""Versions whose content is this version's (only the number differs)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DesignRecord(_Record):
    """One early-exit design (see :class:`exitspace.search.space.Design`)."""

    exits: list[str]
    final: str
    heads: dict[str, str]
    precision: list[int]
    thresholds: list[float]
    policy: str
    allocation: str
    confidence: str = "max_softmax"


class ScoredRecord(_Record):
    """A design with its metrics per split (``val`` selects, ``test`` reports), exit ratios and per-stage costs."""

    design: DesignRecord
    name: str
    val: dict[str, float]
    test: dict[str, float]
    exit_ratios: dict[str, list[float]] = Field(default_factory=dict)
    exit_accuracy: dict[str, list[float]] = Field(default_factory=dict)
    stages: list[dict[str, Any]] = Field(default_factory=list)
    memory_fit: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)

    def split(self, name: str) -> dict[str, float]:
        """Metrics of ``"val"`` or ``"test"``."""
        return self.val if name == "val" else self.test


class ParetoRecord(ScoredRecord):
    """A Pareto design, after the allocation refinement: the allocation it was searched with, its objectives."""

    searched_allocation: str
    objective_values: list[float]
    oracle: dict[str, dict[str, Any]] | None = None
    """Per split: oracle bounds of the design's exits (exitspace.flow.oracle; added by the driver)."""


class StudyRecord(_Record):
    """The search's study: where it is stored, its size, this session's time."""

    name: str
    storage: str
    trials: int
    feasible: int
    new_trials: int
    population: int
    seconds: float
    eval_seconds: float
    persist_seconds: float


class CurvePoint(_Record):
    """The hypervolume (validation) after one generation."""

    generation: int
    trials: int
    hypervolume: float


class HypervolumeRecord(_Record):
    """The hypervolume's reference point and normalisation, its curve per generation, the front's on test."""

    reference_point: dict[str, float]
    normalisation: str
    scale: dict[str, float]
    curve: list[CurvePoint]
    front_test: float


class MacProxyRecord(_Record):
    """The MAC-proxy baseline search: its study, its front re-costed, and that front's test hypervolume."""

    study: StudyRecord
    front: list[ScoredRecord]
    hypervolume_test: float


class ThresholdRecord(_Record):
    """The threshold grid searched."""

    mode: str
    low: float
    high: float
    step: float | None


class SpaceRecord(_Record):
    """The design space searched."""

    candidate_exits: list[str]
    final_exit: str
    head_types: dict[str, list[str]]
    precision_pairs: list[list[int]]
    thresholds: ThresholdRecord
    confidence: str
    policies: list[str]
    allocations: list[str]
    refine_allocation: str | None


class TestSelected(_Record):
    """The best test-selected design (an oracle figure, marked as such)."""

    design: str
    test_accuracy: float
    elp_reduction: float


class AgainstFinalHead(_Record):
    """The headline against the static network of one final head type."""

    reference: str | None
    static_test_accuracy: float | None
    design: str | None
    test_accuracy: float | None
    test_accuracy_loss_points: float | None
    elp_reduction: float | None


class Headline(_Record):
    """The largest ELP cut within ``max_loss_points`` of the static reference (``design`` unset if none is)."""

    reference: str
    max_loss_points: float
    static_test_accuracy: float
    static_test_elp: float
    static_val_accuracy: float
    design: str | None = None
    test_accuracy: float | None = None
    test_accuracy_loss_points: float | None = None
    test_elp: float | None = None
    elp_reduction: float | None = None
    elp_product_reduction: float | None = None
    test_selected: TestSelected | None = None
    against_each_final_head: list[AgainstFinalHead] = Field(default_factory=list)
    test_elp_vs_oracle_a: float | None = None


class SweptLayer(_Record):
    """One layer shape of the alignment sweep."""

    name: str
    dim: str
    actual: int
    values: list[int]
    energy_pj: list[float]
    latency_cycles: list[float]
    macs: list[int]
    share: float
    same_shape: list[str]
    spatial_utilization: list[float]


class AlignmentSweepRecord(_Record):
    """The alignment sweep of the most costly backbone layer shapes (empty without a compute core)."""

    core: str | None = None
    layers: list[SweptLayer] = Field(default_factory=list)
    note: str | None = None


class ResultsDocument(_Record):
    """Everything a run found (see the module docstring)."""

    format: Literal["exitspace.results"] = RESULTS_FORMAT
    version: int = RESULTS_VERSION
    name: str
    config: dict[str, Any]
    backbone: str
    space: SpaceRecord
    objectives: list[str]
    elp_definition: str
    constraints: list[str]
    selection_split: str = "val"
    report_split: str = "test"
    study: StudyRecord
    hypervolume: HypervolumeRecord
    static: dict[str, ScoredRecord]
    static_variants: dict[str, list[ScoredRecord]]
    static_reference: str
    paper_designs: list[ScoredRecord]
    mac_proxy: MacProxyRecord | None
    pareto: list[ParetoRecord]
    trials: list[list[int | float]]
    trials_columns: list[str]
    headline: Headline
    # added by the driver (exitspace.flow.run) after the search
    alignment_sweep: AlignmentSweepRecord | None = None
    exit_tables: str | None = None
    exit_table_hashes: dict[str, str | None] = Field(default_factory=dict)
    hardware: str | None = None
    cost_backend: str | None = None

    def static_reference_entry(self) -> ScoredRecord:
        """The static network every figure is relative to."""
        return self.static[self.static_reference]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (fields that were never set left out, so an old document is written back as it was)."""
        return self.model_dump(mode="json", exclude_unset=True)


def dump_results(results: ResultsDocument) -> str:
    """The document as results.json text: one line per trial row (a trial would otherwise take six lines)."""
    marker = "__TRIAL_ROWS__"
    data = results.to_json()
    rows = data.get("trials", [])
    text = json.dumps({**data, "trials": marker}, indent=1)
    table = "[\n" + ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in rows) + "\n ]"
    return text.replace(json.dumps(marker), table)


def results_path(source: Path) -> Path:
    """A run directory's ``report/results.json``, or ``source`` itself when it is a file."""
    source = Path(source)
    return source / "report" / "results.json" if source.is_dir() else source


def load_results(source: Path | str) -> ResultsDocument:
    """The results document of a run directory or a results.json; one-line DataError (exit code 2) for a
    missing or unreadable file, another format, another version, or content that does not fit the model."""
    path = results_path(Path(source))
    data = _read(path)
    if data.get("version") != RESULTS_VERSION:
        upgrade = (f"; mark it as version {RESULTS_VERSION} with `python -m exitspace.search.results {path}`"
                   if data.get("version") in UPGRADABLE_VERSIONS else "; re-run `exitspace search` to write it anew")
        raise DataError(f"{path}: results version {data.get('version')!r}, this exitspace reads version "
                        f"{RESULTS_VERSION}{upgrade}")
    return _validated(path, data)


def upgrade_file(path: Path) -> ResultsDocument:
    """Rewrite a results.json of an upgradable version as this version (its content checked by the model)."""
    data = _read(path)
    if data.get("version") not in (*UPGRADABLE_VERSIONS, RESULTS_VERSION):
        raise DataError(f"{path}: results version {data.get('version')!r} cannot be upgraded; re-run `exitspace search`")
    document = _validated(path, {**data, "version": RESULTS_VERSION})
    atomic_write_text(path, dump_results(document))
    return document


def _read(path: Path) -> dict[str, Any]:
    text = read_text(path, "results file", "give a run directory of `exitspace run` or its results.json", DataError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); re-run `exitspace run`") from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be a results file; re-run `exitspace run`") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not an exitspace results file (format {found!r}); give the results.json of `exitspace run`")
    return data


def _validated(path: Path, data: dict[str, Any]) -> ResultsDocument:
    try:
        return ResultsDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DataError(f"{path}: {where}: {error['msg']}; give the unedited results.json of `exitspace run`") from None


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        try:
            upgrade_file(Path(name))
        except DataError as exc:
            sys.exit(f"error: {exc}")
        print(f"{name}: results version {RESULTS_VERSION}")
