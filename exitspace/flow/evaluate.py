"""``exitspace evaluate``: one EENN design on one system, from command-line options to the full result.

The workload (a workload file, or a backbone's EENN; an exit table's model spec and precision pair win),
the exit ratios (given, or from an exit table at given or calibrated thresholds), one deployable allocation
(:func:`~exitspace.dynamic.deploy`, the same one the search computes) and the dynamic metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exitspace.dynamic import Calibration, DesignEvaluation, ExitScorer, calibrate, deploy, evaluate_design, parse_thresholds
from exitspace.errors import ConfigError
from exitspace.files import atomic_write_text
from exitspace.flow.phases import Phases
from exitspace.mapping import Allocation, Mapper, StagedNetwork
from exitspace.mapping.optimise import STRATEGIES
from exitspace.precision import TRAINED_BITS, parse_pair
from exitspace.train.exit_table import ExitTable
from exitspace.workload.layer import Precision, Workload


def parse_bits(text: str) -> tuple[int, int]:
    """``--bits``: ``"8/8"`` (backbone/exits), ``"8"`` or ``"fp32/8"`` -> (backbone bits, exit bits), at widths an
    EENN is trained at (an exit's accuracy needs a trained network; profile and sweep cost any width)."""
    return parse_pair(text, "--bits", TRAINED_BITS, one_means_both=True)


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``exitspace evaluate`` was asked, parsed: the network, the system, how to allocate, and where the
    exit ratios come from (``ratios`` with ``exit_accuracy``, or ``exit_table`` with one of ``thresholds``,
    ``target_drop``, ``max_cost_ratio``)."""

    exits: list[str]
    heads: list[str]
    model: str | None = None
    workload_file: Path | None = None
    width: float = 1.0
    bits: str | None = None
    hardware: str = "edge_tpu_quad"
    backend: str = "analytical"
    allocation: str = "greedy"
    objective: str = "avg_product"
    confidence: str = "max_softmax"
    policy: str = "wait"
    seed: int = 0
    paper_style: bool = False
    ratios: list[float] | None = None
    exit_accuracy: list[float] | None = None
    exit_table: Path | None = None
    thresholds: list[float] | None = None
    target_drop: float | None = None
    max_cost_ratio: float | None = None

    def check(self) -> None:
        """One-line errors for an unknown objective or confidence, no head type, or ratio options that do not
        say where the exit ratios come from."""
        from exitspace.dynamic.confidence import MEASURES, check_confidence
        from exitspace.mapping.schedule import check_objective, check_policy

        check_objective(self.objective, "--objective")
        check_confidence(self.confidence, "--confidence")
        if self.policy in MEASURES:
            raise ConfigError(f"--policy: {self.policy!r} is a confidence measure; give it as --confidence {self.policy} "
                              "(--policy is the exit-head policy: wait or overlap)")
        check_policy(self.policy, "--policy")
        if not self.heads:
            raise ConfigError("--heads: empty; give a head type such as pool4_fc1")
        if (self.ratios is None) == (self.exit_table is None):
            raise ConfigError("--ratios / --exit-table: give exactly one (exit ratios directly, or an exit table to derive them)")
        if self.exit_table is None and (
            self.thresholds or self.target_drop is not None or self.max_cost_ratio is not None
        ):
            raise ConfigError("--thresholds/--target-drop/--max-cost-ratio need --exit-table")
        ratio = self.max_cost_ratio
        if ratio is not None and not 0 < ratio <= 1:
            raise ConfigError(f"--max-cost-ratio: {ratio} is outside (0, 1]; give the largest expected cost as a "
                              "fraction of running every sample to the final exit, e.g. 0.6")


def build_workload(
    model: str | None,
    workload_file: Path | None,
    width: float,
    heads: list[str],
    bits: str | None,
    table_meta: dict[str, Any] | None = None,
) -> Workload:
    """The workload from a workload file, or built from ``model``; with an exit table, its model spec (input
    size, candidates, ...) and precision pair are used, and a different model or bits is an error."""
    spec_hint = (table_meta or {}).get("model_spec")
    pair = (table_meta or {}).get("precision_pair")
    if pair is not None:
        if bits is not None and parse_bits(bits) != (int(pair[0]), int(pair[1])):
            raise ConfigError(f"--bits {bits}: the exit table is for {pair[0]}/{pair[1]}; give --bits {pair[0]}/{pair[1]}")
        bits = bits or f"{pair[0]}/{pair[1]}"
    if model is None and workload_file is None and spec_hint:
        model = spec_hint.get("backbone")
    if (model is None) == (workload_file is None):
        raise ConfigError("--model / --workload: give exactly one (e.g. --model mobilenetv2_cifar)")
    if workload_file is not None:
        result = Workload.from_json(workload_file)
        if bits is not None:
            backbone, exits = parse_bits(bits)
            result = result.with_precision(Precision.uniform(backbone), Precision.uniform(exits))
        return result
    backbone, exits = parse_bits(bits or "8/8")
    from exitspace.models.eenn import EENNSpec
    from exitspace.workload.paper import eenn_workload

    data: dict[str, Any] = {"backbone": model, "width": width, "head_types": sorted(set(heads))}
    if spec_hint:
        if spec_hint.get("backbone") != model:
            raise ConfigError(
                f"--model {model}: the exit table is for {spec_hint.get('backbone')!r}; give that model or another table"
            )
        data = {**spec_hint, "head_types": sorted(set(spec_hint.get("head_types") or []) | set(heads))}
    spec = EENNSpec.parse(data)
    return eenn_workload(spec, precision_backbone=backbone, precision_exits=exits)


def cost_per_exit(cum_energy: np.ndarray, cum_latency: np.ndarray, objective: str) -> np.ndarray:
    """The allocation objective's cost of a sample leaving at each exit."""
    if objective == "energy":
        return cum_energy
    if objective == "latency":
        return cum_latency
    return cum_energy * cum_latency


@dataclass(frozen=True)
class Ratios:
    """Exit ratios and accuracies to report, the ratios to allocate for (None: the reported ones), where
    they come from, and the threshold calibration where thresholds were calibrated."""

    report: list[float]
    accuracies: list[float | None] | None
    allocation: list[float] | None = None
    source: str = "given ratios"
    calibration: Calibration | None = None


@dataclass(frozen=True)
class DeployedDesign:
    """One EENN design on one system: the mapper, the exits (head keys) and their staged network, and how
    to allocate it (a given allocation or a strategy, objective, ``wait``/``overlap`` policy, GA seed)."""

    mapper: Mapper
    keys: list[str]
    net: StagedNetwork
    given: Allocation | None
    strategy: str
    objective: str
    policy: str
    seed: int

    @property
    def computed_strategy(self) -> str:
        """Strategy of the allocations computed here: the requested one, or greedy where a file was given."""
        return self.strategy if self.given is None else "greedy"

    def cost_per_exit(self, ratios: np.ndarray) -> np.ndarray:
        """The objective's cost of leaving at each exit, on the allocation for ``ratios`` (or the given one)."""
        _, schedule = deploy(self.mapper, self.net, self.strategy, ratios, self.objective, self.policy, self.seed,
                             self.given)
        return cost_per_exit(schedule.cum_energy, schedule.cum_latency, self.objective)

    def evaluate(self, ratios: Ratios) -> DesignEvaluation:
        """Allocate (unless given), schedule and score the design on ``ratios``, with their calibration."""
        evaluation = evaluate_design(
            self.mapper, self.keys, ratios.report, ratios.accuracies, strategy=self.computed_strategy,
            policy=self.policy, objective=self.objective, seed=self.seed, allocation=self.given,
            allocation_ratios=ratios.allocation,
        )
        evaluation.calibration = ratios.calibration
        return evaluation

    def paper_style(self, ratios: list[float]) -> dict[str, Any]:
        """The paper's figures (per-stage allocations, heads in the static energy) for ``ratios``."""
        from exitspace.dynamic.paper_style import paper_style_metrics

        return paper_style_metrics(self.mapper, self.net, ratios, self.computed_strategy, self.seed).to_dict()


def allocation_file(allocation: str) -> Allocation | None:
    """The allocation of ``--allocation FILE.json``; None where it names a strategy."""
    if allocation in STRATEGIES:
        return None
    path = Path(allocation)
    if not path.suffix.lower() == ".json":
        raise ConfigError(f"--allocation: unknown strategy {allocation!r}; use one of {list(STRATEGIES)} or a .json file")
    return Allocation.load(path)


def table_ratios(table: ExitTable, request: EvaluateRequest, design: DeployedDesign, phases: Phases) -> Ratios:
    """Exit ratios and accuracies from an exit table, for the given thresholds or thresholds calibrated on
    val: allocated for the val ratios, reported on test where the table has it."""
    keys = design.keys
    val = ExitScorer.from_exit_table(table, "val", keys, request.confidence)
    test = ExitScorer.from_exit_table(table, "test", keys, request.confidence) if "test" in table.logits else None
    chosen = (request.target_drop is not None) + (request.max_cost_ratio is not None) + (request.thresholds is not None)
    if chosen != 1:
        raise ConfigError("--exit-table: give exactly one of --thresholds, --target-drop, --max-cost-ratio")
    calibration: Calibration | None = None
    if request.thresholds is not None:
        vector = parse_thresholds(request.thresholds, len(keys))
        val_out = val.outcome(vector)
        report = test.outcome(vector) if test is not None else val_out
    else:
        phases.start("calibrating thresholds on val")
        calibration = calibrate_for_allocation(val, test, request, design)
        phases.done("calibrating thresholds on val")
        val_out = calibration.val
        report = calibration.test or val_out
    return Ratios(
        allocation=list(val_out.ratios),
        report=list(report.ratios),
        accuracies=list(report.exit_accuracy),
        source=f"{report.split} split ({report.samples} samples)",
        calibration=calibration,
    )


def calibrate_for_allocation(val: ExitScorer, test: ExitScorer | None, request: EvaluateRequest, design: DeployedDesign) -> Calibration:
    """Thresholds calibrated on val for ``target_drop`` or ``max_cost_ratio``. The cost per exit depends on the
    allocation, which depends on the ratios the thresholds give: iterate (at most 3 rounds, from equal
    ratios) until the thresholds repeat."""
    max_cost_ratio = request.max_cost_ratio
    current = np.full(len(design.keys), 1.0 / len(design.keys))
    previous: list[float] | None = None
    for _ in range(3):
        cost = design.cost_per_exit(current)
        calibration = calibrate(
            val, cost, target_drop=request.target_drop,
            max_cost=None if max_cost_ratio is None else max_cost_ratio * float(cost[-1]), test=test,
        )
        current = np.asarray(calibration.val.ratios)
        if calibration.thresholds == previous:
            break
        previous = calibration.thresholds
    if not calibration.feasible:  # only a cost budget can be out of reach (never exiting meets any accuracy drop)
        raise ConfigError(f"--max-cost-ratio {max_cost_ratio}: below the cheapest thresholds' cost "
                          f"({calibration.val_cost / float(cost[-1]):.3f} of the final exit's); give at least that")
    return calibration


def evaluate_request(request: EvaluateRequest, phases: Phases | None = None) -> tuple[dict[str, Any], Allocation]:
    """The full result of one ``exitspace evaluate`` (see :func:`result_document`) and its allocation."""
    from exitspace.cost.registry import get_backend
    from exitspace.hardware.loader import load_system
    from exitspace.mapping import resolve_exits

    phases = phases or Phases()
    request.check()
    given = allocation_file(request.allocation)
    table = ExitTable.load(request.exit_table) if request.exit_table is not None else None
    phases.start("building workload, system and per-layer costs")
    workload = build_workload(request.model, request.workload_file, request.width, request.heads, request.bits,
                              None if table is None else table.meta)
    system = load_system(request.hardware)
    mapper = Mapper(workload, system, get_backend(request.backend))
    phases.done("building workload, system and per-layer costs")
    keys = resolve_exits(workload, request.exits, request.heads)
    design = DeployedDesign(mapper, keys, mapper.network(keys), given, request.allocation, request.objective, request.policy,
                    request.seed)
    if request.ratios is not None:
        derived = Ratios(list(request.ratios), None if request.exit_accuracy is None else list(request.exit_accuracy))
    else:
        assert table is not None
        derived = table_ratios(table, request, design, phases)
    phases.start(f"allocating ({design.strategy})")
    evaluation = design.evaluate(derived)
    phases.done(f"allocating ({design.strategy})")
    paper = None
    if request.paper_style:
        phases.start("paper-style per-stage allocations")
        paper = design.paper_style(derived.report)
        phases.done("paper-style per-stage allocations")
    return result_document(design, request.backend, derived.source, evaluation, paper), evaluation.schedule.allocation


def result_document(
    design: DeployedDesign, backend: str, ratios_from: str, evaluation: DesignEvaluation, paper: dict[str, Any] | None
) -> dict[str, Any]:
    """The full result: network, exits, bits, hardware, backend, where the ratios come from, the evaluation
    and the paper-style figures."""
    workload = design.mapper.workload
    backbone_bits = next(iter(workload.backbone())).precision.weight
    exit_bits = next((layer.precision.weight for layer in workload if layer.exit), backbone_bits)
    return {
        "network": workload.name,
        "exits": design.keys,
        "bits": f"{backbone_bits}/{exit_bits}",
        "hardware": design.mapper.system.name,
        "backend": backend,
        "ratios_from": ratios_from,
        **evaluation.to_dict(),
        "paper_style": paper,
    }


def write_outputs(
    result: dict[str, Any], allocation: Allocation, out: Path | None, save_allocation: Path | None
) -> None:
    """Write the result JSON to ``out`` and the allocation JSON to ``save_allocation`` (where given)."""
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=1))
    if save_allocation is not None:
        atomic_write_text(save_allocation, json.dumps(allocation.to_dict(), indent=1))
