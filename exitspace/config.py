"""The run configuration of ``exitspace run``: one YAML file for the whole flow.

Sections: ``exit_tables`` (reuse committed tables or train), ``train`` (the training config to run when
tables are missing), ``hardware``, ``cost``, ``search`` (design space, objectives, constraints, engine) and
``report``. Every mistake becomes one :class:`~exitspace.errors.ConfigError` line naming the field and
the fix. Accuracies and shares are fractions in [0, 1].
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exitspace.errors import ConfigError
from exitspace.files import load_yaml
from exitspace.pathnames import masked_url
from exitspace.precision import PrecisionPair, check_pair


def _ask_owner(check: Callable[..., Any], value: Any) -> Any:
    """Validate ``value`` with the check of the vocabulary's owner; its one-line error as a field error."""
    try:
        return check(value, "")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
INSTALLED_DATA = Path(sys.prefix) / "share" / "exitspace"
"""Where a non-editable install puts ``configs/`` (pyproject's data-files): the stand-in for a checkout's root."""

OBJECTIVES = ("accuracy", "elp", "exit_overhead", "e_avg", "l_avg", "p99_latency")
"""Objectives the search can optimise; ``accuracy`` is maximised, the rest minimised."""

MAX_TRIALS = 1_000_000
"""Most trials one search may ask for (about an hour's sampling; beyond it a typo, e.g. 10**25)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _fraction(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:
        hint = f" (write {value / 100:g} for {value:g}%)" if 1.0 < value <= 100.0 else ""
        raise ValueError(f"must be a fraction in [0, 1]{hint}")
    return value


class ExitTablesConfig(_Strict):
    """Where exit tables come from: a directory of committed tables, used when it holds every pair."""

    dir: str | None = Field(None, description="directory with committed exit tables (*.npz); null: always train")
    fallback_train: str | None = Field(
        None, description="training config to run when `dir` lacks a table (default: train.config)"
    )


class TrainConfig(_Strict):
    """Training: the training engineer's config file, run (or resumed) when exit tables are missing."""

    config: str | None = Field(None, description="path of a training YAML (configs/train/*.yaml)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="keys replaced in the training config")


class HardwareConfig(_Strict):
    """The accelerator: a preset name or a path to a system YAML."""

    system: str = "edge_tpu_quad"


class CostConfig(_Strict):
    """Cost backend (``analytical`` by default; ``zigzag`` with the extra)."""

    backend: str = "analytical"


class ThresholdSpace(_Strict):
    """Exit thresholds: one shared value (the paper) or one per exit, on a grid from ``low`` to ``high``."""

    mode: str = Field("shared", description="exit rule: shared or per_exit (see dynamic/exit_rules.py)")
    low: float = 0.5
    high: float = 0.99
    step: float | None = 0.01

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        from exitspace.dynamic.exit_rules import check_mode

        return str(_ask_owner(check_mode, value))

    @model_validator(mode="after")
    def _bounds(self) -> "ThresholdSpace":
        if not 0.0 <= self.low < self.high <= 1.0:
            raise ValueError(f"low={self.low} and high={self.high}: need 0 <= low < high <= 1")
        if self.step is not None and not 0.0 < self.step <= self.high - self.low:
            raise ValueError(f"step={self.step}: need 0 < step <= high - low ({self.high - self.low:g}) or null")
        return self


class SpaceConfig(_Strict):
    """The design space; null lists mean "everything the exit tables / strategies offer"."""

    exits: list[str] | None = Field(None, description="candidate early-exit labels (final exit always on)")
    head_types: list[str] | None = None
    precision_pairs: list[PrecisionPair] | None = Field(
        default_factory=lambda: [(8, 8)], description="null: every quantized pair that has an exit table"
    )
    thresholds: ThresholdSpace = ThresholdSpace()
    confidence: str = Field("max_softmax", description="confidence measure (see dynamic/confidence.py)")
    policies: list[str] = Field(default_factory=lambda: ["wait"], description="exit-head policies: wait, overlap")
    allocations: list[str] = Field(default_factory=lambda: ["greedy"], description="allocation strategies (layers to cores)")
    min_exits: int = Field(0, ge=0, description="fewest early exits (final exit not counted)")
    max_exits: int | None = Field(None, ge=0, description="most early exits (final exit not counted)")

    @field_validator("precision_pairs")
    @classmethod
    def _pairs(cls, pairs: list[PrecisionPair] | None) -> list[PrecisionPair] | None:
        if pairs is None:
            return None
        if not pairs:
            raise ValueError("give at least one [backbone bits, exit bits] pair, e.g. [[8, 8]]")
        return [_ask_owner(check_pair, pair) for pair in pairs]

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, value: str) -> str:
        from exitspace.dynamic.confidence import check_confidence

        return str(_ask_owner(check_confidence, value))

    @field_validator("policies")
    @classmethod
    def _policies(cls, values: list[str]) -> list[str]:
        from exitspace.mapping.schedule import check_policy

        return [_ask_owner(check_policy, value) for value in values]

    @field_validator("allocations")
    @classmethod
    def _allocations(cls, values: list[str]) -> list[str]:
        from exitspace.mapping.optimise import check_strategy

        return [_ask_owner(check_strategy, value) for value in values]

    @model_validator(mode="after")
    def _counts(self) -> "SpaceConfig":
        for name in ("policies", "allocations"):
            if not getattr(self, name):
                raise ValueError(f"{name}: give at least one choice")
        if self.max_exits is not None and self.max_exits < self.min_exits:
            raise ValueError(f"max_exits={self.max_exits} < min_exits={self.min_exits}; raise max_exits")
        return self


class ConstraintsConfig(_Strict):
    """Constraints; null switches one off. Accuracy and shares as fractions."""

    min_accuracy: float | None = None
    max_accuracy_drop: float | None = Field(
        None, description="largest accuracy loss against the static network at the same precision"
    )
    max_exit_overhead: float | None = Field(None, description="largest share of energy spent in exit heads")
    memory_fit: bool = True
    max_latency: float | None = Field(None, gt=0, description="budget on the average latency (cycles)")
    max_p99_latency: float | None = Field(None, gt=0, description="budget on the p99 latency (cycles)")
    min_early_exit_share: float | None = None

    @field_validator("min_accuracy", "max_accuracy_drop", "max_exit_overhead", "min_early_exit_share")
    @classmethod
    def _fractions(cls, value: float | None) -> float | None:
        return _fraction(value, "")


class BaselinesConfig(_Strict):
    """Baselines computed in the same run."""

    static: bool = True
    paper: Literal["auto", "on", "off"] = Field("auto", description="paper's designs (auto: when backbone is the paper's)")
    mac_proxy: bool = True
    mac_proxy_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="trials of the MAC-proxy search (default: search.trials)")


def _default_hv_reference() -> dict[str, float]:
    """The hypervolume reference point: no accuracy, 1.5x the static network's costs, all energy in heads."""
    return {"accuracy": 0.0, "elp": 1.5, "exit_overhead": 1.0, "e_avg": 1.5, "l_avg": 1.5, "p99_latency": 1.5}


class SearchConfig(_Strict):
    """The co-design search."""

    space: SpaceConfig = SpaceConfig()
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "elp", "exit_overhead"])
    elp: Literal["paper", "product"] = Field(
        "paper", description="paper: E[E_cum*L_cum] over exits; product: E_avg * L_avg"
    )
    constraints: ConstraintsConfig = ConstraintsConfig()
    trials: int = Field(2000, ge=1, le=MAX_TRIALS)
    population: int = Field(50, ge=4, le=MAX_TRIALS)
    seed: int | None = Field(None, description="sampler seed (default: the run seed)")
    storage: str | None = Field(None, description="Optuna storage URL; default SQLite in the run directory")
    study_name: str | None = None
    hv_reference: dict[str, float] = Field(
        default_factory=_default_hv_reference,
        description="hypervolume reference point; cost objectives relative to the static 8/8 network (objectives "
                    "not given keep their default)",
    )
    baselines: BaselinesConfig = BaselinesConfig()
    refine_allocation: str | None = Field(
        "ga", description="after the search, re-map each Pareto design with this strategy where it lowers ELP; null: off"
    )

    @field_validator("hv_reference")
    @classmethod
    def _hv_reference(cls, reference: dict[str, float]) -> dict[str, float]:
        for name in reference:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r}; use any of {list(OBJECTIVES)}")
        return {**_default_hv_reference(), **reference}

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, objectives: list[str]) -> list[str]:
        if len(objectives) < 2:
            raise ValueError("give at least two objectives, e.g. [accuracy, elp]")
        for name in objectives:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r}; use any of {list(OBJECTIVES)}")
        if len(set(objectives)) != len(objectives):
            raise ValueError("an objective is listed twice; list each once")
        return objectives


class ReportConfig(_Strict):
    """The report."""

    html: bool = True
    designs: int = Field(5, ge=1, le=1000, description="designs shown in detail (exit ratios, stage costs)")
    sweep_layers: int = Field(3, ge=0, le=1000, description="most costly layers in the alignment sweep")
    note: str | None = Field(None, description="a paragraph placed at the top of the report (e.g. why a pair is left out)")


class RunConfig(_Strict):
    """Everything ``exitspace run`` needs."""

    name: str = "run"
    seed: int = 0
    run_dir: str | None = Field(None, description="default ./runs/<name>")
    exit_tables: ExitTablesConfig = ExitTablesConfig()
    train: TrainConfig = TrainConfig()
    hardware: HardwareConfig = HardwareConfig()
    cost: CostConfig = CostConfig()
    search: SearchConfig = SearchConfig()
    report: ReportConfig = ReportConfig()
    source: str | None = Field(None, description="set by the loader: the YAML file read")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"{name!r}: use letters, digits, '_', '-', '.' only (it names the run directory)")
        return name

    @property
    def search_seed(self) -> int:
        """Seed of the sampler."""
        return self.seed if self.search.seed is None else self.search.seed

    def public_dump(self) -> dict[str, Any]:
        """The config as JSON-ready data to store or show: the storage URL without its password."""
        data = self.model_dump(mode="json")
        if data["search"]["storage"] is not None:
            data["search"]["storage"] = masked_url(data["search"]["storage"])
        return data

    def resolve_path(self, value: str | None) -> Path | None:
        """A path from the config: absolute as is; a relative one is looked up next to the config file, in
        the working directory, then in the repository root (an installed copy: ``INSTALLED_DATA``); the first
        that exists wins (else the working directory's)."""
        if value is None:
            return None
        path = Path(value).expanduser()
        if path.is_absolute():
            return path
        candidates = [Path(self.source).resolve().parent / path] if self.source else []
        candidates += [Path.cwd() / path, REPO_ROOT / path, INSTALLED_DATA / path]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        return Path.cwd() / path

    def run_path(self, override: str | Path | None = None) -> Path:
        """The run directory."""
        if override is not None:
            return Path(override)
        if self.run_dir is not None:
            return Path(self.run_dir).expanduser()
        return Path("runs") / self.name


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{source}: {loc}: unknown key; remove it or check the spelling (see configs/default.yaml)"
    if kind == "missing":
        return f"{source}: {loc}: missing; add it"
    got = err.get("input")
    got_text = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{source}: {loc or 'top level'}: {msg}{got_text}"


def parse_config(data: Any, source: str = "config") -> RunConfig:
    """Validate a mapping; one-line ConfigError on any problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections (got {type(data).__name__})")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def default_config_path() -> Path:
    """configs/default.yaml next to the package (repository checkout) or installed with it (``INSTALLED_DATA``)."""
    for candidate in (REPO_ROOT / "configs" / "default.yaml", INSTALLED_DATA / "configs" / "default.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("no configs/default.yaml found next to the package; pass a config file to `exitspace run`")


def named_config_path(name: str) -> Path:
    """A config by file path or by name under configs/ (``resnet20_cifar10`` -> configs/resnet20_cifar10.yaml)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    for root in (REPO_ROOT / "configs", INSTALLED_DATA / "configs"):
        candidate = root / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.yaml"))
    raise ConfigError(f"config {name!r}: not a file and not a named config; use a path or one of {available}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a run config (default: configs/default.yaml)."""
    path = default_config_path() if path is None else named_config_path(str(path))
    data = load_yaml(path, "config", "check the path; a run config is a YAML file (see configs/default.yaml)")
    data = {} if data is None else data
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
        data["source"] = str(path)
        for dotted, value in (overrides or {}).items():
            set_dotted(data, dotted, value)
    return parse_config(data, str(path))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted`` = "a.b", making missing sections; the one owner of dotted overrides."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value
