"""The co-design search with its baselines, producing the results document the report renders.

Baselines, computed in the same run and on the same evaluator:

- the static network (final exit only) at every precision pair of the space;
- the paper's published MobileNetV2 designs, when the backbone is the paper's;
- a MAC-proxy search (what NACHOS-style searches optimise: accuracy and expected MACs), same space and
  budget, whose Pareto designs are then re-costed with the real cost model.

Search objectives and constraints use the validation split (thresholds are thereby fitted on validation);
the report shows the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pathlib import Path
from typing import Any, Callable

from exitspace.config import RunConfig, SearchConfig
from exitspace.errors import InfeasibleError
from exitspace.pathnames import shown_path, shown_storage
from exitspace.precision import PrecisionPair, pair_label
from exitspace.search.engine import (
    SearchOutcome,
    SearchProblem,
    _non_dominated,
    default_storage,
    pareto_front,
    run_search,
    study_fingerprint,
)
from exitspace.search.hypervolume import hypervolume, hypervolume_curve, normalise, reference_point
from exitspace.search.objectives import Constraint, build_constraints, explain_infeasible, metric_key, violations
from exitspace.search.results import RESULTS_FORMAT, RESULTS_VERSION, ResultsDocument
from exitspace.search.scored import Evaluator, ScoredDesign
from exitspace.search.space import Design, DesignSpace


PAPER_DESIGNS: list[tuple[tuple[str, ...], float]] = [
    (("A", "B", "F"), 0.80),
    (("A", "C", "G"), 0.85),
    (("A", "E", "G"), 0.85),
    (("C", "D", "G"), 0.85),
    (("D", "F", "I"), 0.95),
]
"""The paper's published INT8 designs (early exits, shared threshold; final exit K always on), from its
accuracy table (see shared reference notes, section 6). Head depths per exit were not published."""

MAX_LOSS_POINTS = 0.01

Progress = Callable[[str, int, int], None]
_PhaseProgress = Callable[[int, int], None]  # (done, total) of one phase


@dataclass
class CodesignInputs:
    """What the search needs besides the config."""

    space: DesignSpace
    evaluator: Evaluator
    backbone: str = ""
    static_allocations: tuple[str, ...] | None = None
    """Allocation strategies tried for the static baselines (default: the space's); the best one is kept
    so the baseline gets the best mapping available, not just the search's cheapest strategy."""


def _reference_pair(pairs: tuple[PrecisionPair, ...]) -> PrecisionPair:
    """The static baseline the headline compares with: 8/8 when searched, else the widest pair."""
    return (8, 8) if (8, 8) in pairs else max(pairs, key=lambda p: (min(p), p))


def static_variants(inputs: CodesignInputs, pairs: tuple[PrecisionPair, ...]) -> dict[str, list[ScoredDesign]]:
    """The static network (final exit only) per pair and final head type, each on the allocation strategy
    with the lowest validation ELP."""
    space = inputs.space
    out: dict[str, list[ScoredDesign]] = {}
    for pair in pairs:
        out[pair_label(pair)] = []
        for head in space.head_types[space.final]:
            tried = [inputs.evaluator.evaluate(replace(space.static_design(pair, head), allocation=strategy))
                     for strategy in inputs.static_allocations or space.allocations]
            out[pair_label(pair)].append(min(tried, key=lambda e: e.val["elp"]))
    return out


def static_baselines(inputs: CodesignInputs, pairs: tuple[PrecisionPair, ...],
                     variants: dict[str, list[ScoredDesign]] | None = None) -> dict[str, ScoredDesign]:
    """The static baseline per pair: of the static networks (one per final head type), the one with the lowest
    validation ELP among those within 1 point of the most accurate one on validation, so that neither an
    inaccurate nor a needlessly costly final head makes the baseline weak."""
    variants = variants or static_variants(inputs, pairs)
    out = {}
    for name, options in variants.items():
        best = max(e.val["accuracy"] for e in options)
        near = [e for e in options if e.val["accuracy"] >= best - MAX_LOSS_POINTS - 1e-12]
        out[name] = min(near, key=lambda e: e.val["elp"])
    return out


def paper_baselines(inputs: CodesignInputs, pair: PrecisionPair, static: ScoredDesign) -> list[ScoredDesign]:
    """The paper's designs at ``pair`` under the paper's rule (shared threshold, heads wait for their exit);
    head type per early exit: the most accurate on validation; final head as in the static baseline; the
    allocation strategy with the lowest validation ELP."""
    space = inputs.space
    final_head = dict(static.design.heads)[space.final]
    out = []
    for exits, threshold in PAPER_DESIGNS:
        if any(e not in space.head_types for e in exits):
            continue
        heads = [(label, max(space.head_types[label], key=lambda h: _head_accuracy(inputs, label, h, pair)))
                 for label in exits]
        design = Design(exits=exits, final=space.final, heads=(*heads, (space.final, final_head)), precision=pair,
                        thresholds=tuple(threshold for _ in exits), policy="wait",
                        allocation=space.allocations[0], confidence=space.confidence)
        tried = [inputs.evaluator.evaluate(replace(design, allocation=a))
                 for a in inputs.static_allocations or space.allocations]
        out.append(min(tried, key=lambda e: e.val["elp"]))
    return out


def _head_accuracy(inputs: CodesignInputs, label: str, head: str, pair: PrecisionPair) -> float:
    """Accuracy of a single early head when every sample leaves there (threshold 0)."""
    space = inputs.space
    design = Design(exits=(label,), final=space.final, heads=((label, head), (space.final, space.head_types[space.final][0])),
                    precision=pair, thresholds=(0.0,), policy=space.policies[0], allocation=space.allocations[0],
                    confidence=space.confidence)
    return float(inputs.evaluator.evaluate(design).val["accuracy"])


def refine_allocation(
    problem: SearchProblem, front: list[ScoredDesign], strategy: str | None, keep_all: bool = False,
    progress: _PhaseProgress | None = None,
) -> list[tuple[ScoredDesign, ScoredDesign]]:
    """Re-map each design with an optimising allocation strategy (e.g. the GA, too slow inside the search) and
    keep the new mapping where it stays feasible and lowers the validation ELP; then drop designs that the
    refined ones dominate (unless ``keep_all``). Returns (kept evaluation, searched evaluation) pairs."""
    pairs = []
    for evaluation in front:
        best = evaluation
        if strategy and evaluation.design.allocation != strategy:
            other = problem.evaluate(replace(evaluation.design, allocation=strategy))
            feasible = all(v <= 0 for v in violations(other, problem.constraints))
            if feasible and other.val["elp"] < evaluation.val["elp"]:
                best = other
        pairs.append((best, evaluation))
        if progress:
            progress(len(pairs), len(front))
    if keep_all or not pairs:
        return pairs
    points = np.array([problem.values(e) for e, _ in pairs], float)
    points *= np.array([-1.0 if o == "accuracy" else 1.0 for o in problem.objectives])
    keep = _non_dominated(points)
    return [pair for pair, k in zip(pairs, keep) if k]


def headline(front: list[ScoredDesign], static: ScoredDesign, max_loss: float = MAX_LOSS_POINTS) -> dict[str, Any]:
    """The largest ELP reduction against ``static`` at <= ``max_loss`` accuracy loss.

    The design is selected on validation (accuracy loss <= max_loss there, lowest validation ELP) and its
    test figures are reported; the best test-selected figure is given too, marked as such.
    """

    def pick(split: str) -> ScoredDesign | None:
        ok = [e for e in front if e.split(split)["accuracy"] >= static.split(split)["accuracy"] - max_loss]
        return min(ok, key=lambda e: e.split(split)["elp"]) if ok else None

    out: dict[str, Any] = {
        "reference": f"static {pair_label(static.design.precision)} ({static.design.name})",
        "max_loss_points": 100 * max_loss,
        "static_test_accuracy": static.test["accuracy"],
        "static_test_elp": static.test["elp"],
        "static_val_accuracy": static.val["accuracy"],
    }
    chosen = pick("val")
    if chosen is not None:
        out.update(
            design=chosen.design.name,
            test_accuracy=chosen.test["accuracy"],
            test_accuracy_loss_points=100 * (static.test["accuracy"] - chosen.test["accuracy"]),
            test_elp=chosen.test["elp"],
            elp_reduction=1.0 - chosen.test["elp"] / static.test["elp"],
            elp_product_reduction=1.0 - chosen.test["elp_product"] / static.test["elp_product"],
        )
    oracle = pick("test")
    if oracle is not None:
        out["test_selected"] = {
            "design": oracle.design.name,
            "test_accuracy": oracle.test["accuracy"],
            "elp_reduction": 1.0 - oracle.test["elp"] / static.test["elp"],
        }
    return out


def _front_hv(front: list[ScoredDesign], objectives: list[str], elp_def: str, scale: dict[str, float],
              reference: dict[str, float], split: str = "test") -> float:
    import numpy as np

    points = [
        normalise([e.split(split)[metric_key(o, elp_def)] for o in objectives], objectives, scale) for e in front
    ]
    return hypervolume(np.array(points, float), reference_point(objectives, reference)) if points else 0.0


@dataclass(frozen=True)
class _StaticBaselines:
    """The static networks of a run: every final-head variant and the baseline per pair, and the pair the
    headline and the hypervolume normalisation compare with."""

    variants: dict[str, list[ScoredDesign]]
    per_pair: dict[str, ScoredDesign]
    reference_pair: PrecisionPair

    @classmethod
    def of(cls, inputs: CodesignInputs) -> _StaticBaselines:
        """Evaluate the static baselines of every precision pair of the space."""
        pairs = inputs.space.precision_pairs
        variants = static_variants(inputs, pairs)
        return cls(variants, static_baselines(inputs, pairs, variants), _reference_pair(pairs))

    @property
    def reference(self) -> ScoredDesign:
        """The static baseline at the reference pair."""
        return self.per_pair[pair_label(self.reference_pair)]


@dataclass(frozen=True)
class _Study:
    """Where a run's searches are stored and the NSGA-II settings they share."""

    storage: str
    name: str
    population: int
    seed: int

    def run(self, problem: SearchProblem, trials: int, progress: _PhaseProgress | None,
            suffix: str = "") -> SearchOutcome:
        """Run (or resume) ``problem`` in this study, or with ``suffix`` in the study of that name beside it."""
        return run_search(problem, trials=trials, population=self.population, seed=self.seed, storage=self.storage,
                          study_name=f"{self.name}{suffix}", progress=progress)


@dataclass(frozen=True)
class _Searched:
    """The baselines and the main search of a run: its problem, study and outcome, and the refined Pareto
    front as (kept evaluation, searched evaluation) pairs."""

    baselines: _StaticBaselines
    problem: SearchProblem
    study: _Study
    outcome: SearchOutcome
    refined: list[tuple[ScoredDesign, ScoredDesign]]

    @property
    def front(self) -> list[ScoredDesign]:
        """The refined Pareto front."""
        return [e for e, _ in self.refined]


def run_codesign(
    config: RunConfig,
    inputs: CodesignInputs,
    run_dir: Path,
    *,
    trials: int | None = None,
    progress: Progress | None = None,
) -> ResultsDocument:
    """Baselines, the search (resuming its study), the MAC-proxy search, and the results document.

    Raises :class:`InfeasibleError` with a one-line explanation when no design meets the constraints.
    """
    s = config.search
    trials = trials or s.trials
    report = (lambda phase: (lambda done, total: progress(phase, done, total))) if progress else (lambda phase: None)

    searched = _search(config, inputs, run_dir, trials, report)
    static_ref = searched.baselines.reference
    scale = {o: static_ref.val[metric_key(o, s.elp)] for o in s.objectives if o not in ("accuracy", "exit_overhead")}
    curve = hypervolume_curve(searched.outcome.trials, s.objectives, scale, s.hv_reference)
    test_scale = {o: static_ref.test[metric_key(o, s.elp)] for o in scale}

    mac = None
    if s.baselines.mac_proxy:
        mac = _mac_proxy_baseline(s, searched, s.baselines.mac_proxy_trials or trials, test_scale, report)
    paper: list[ScoredDesign] = []
    if s.baselines.paper == "on" or (s.baselines.paper == "auto" and "mobilenetv2" in inputs.backbone.lower()):
        paper = paper_baselines(inputs, searched.baselines.reference_pair, static_ref)

    hypervolume = {
        "reference_point": dict(s.hv_reference),
        "normalisation": "accuracy -> 1 - accuracy; exit_overhead as a share; cost objectives / static "
                         f"{pair_label(searched.baselines.reference_pair)} network (validation)",
        "scale": scale,
        "curve": curve,
        "front_test": _front_hv(searched.front, s.objectives, s.elp, test_scale, s.hv_reference),
    }
    return _results_document(config, inputs, searched, hypervolume, paper, mac)


def _search(config: RunConfig, inputs: CodesignInputs, run_dir: Path, trials: int,
            report: Callable[[str], _PhaseProgress | None]) -> _Searched:
    """The static baselines, then the main search under constraints relative to them; its Pareto front with
    refined allocations. Raises :class:`InfeasibleError` when no trial meets the constraints."""
    s = config.search
    baselines = _StaticBaselines.of(inputs)
    static_accuracy = {e.design.precision: e.val["accuracy"] for e in baselines.per_pair.values()}
    constraints = build_constraints(s.constraints, inputs.space, static_accuracy)
    study = _study(config, inputs.space, run_dir)
    problem = SearchProblem(inputs.space, inputs.evaluator, list(s.objectives), s.elp, constraints)
    outcome = study.run(problem, trials, report("search"))
    front_trials = pareto_front(outcome.trials, s.objectives)
    if not front_trials:
        raise InfeasibleError(explain_infeasible([t.evaluation for t in outcome.trials], constraints))
    front = [problem.evaluate(t.evaluation.design) for t in front_trials]  # trial results keep summaries only
    refined = refine_allocation(problem, front, s.refine_allocation, progress=report("refine front"))
    return _Searched(baselines, problem, study, outcome, refined)


def _study(config: RunConfig, space: DesignSpace, run_dir: Path) -> _Study:
    """The configured storage and study name, else the run directory's default storage and the run's name
    with a fingerprint of the space and the search settings."""
    s = config.search
    storage = s.storage or default_storage(run_dir)
    fingerprint = study_fingerprint({
        "space": space.fingerprint(), "objectives": s.objectives, "elp": s.elp,
        "constraints": s.constraints.model_dump(), "population": s.population, "seed": config.search_seed,
    })
    return _Study(storage, s.study_name or f"{config.name}-{fingerprint}", s.population, config.search_seed)


class _HardwareBlind:
    """The MAC-proxy search's evaluator: accuracy and expected MACs without mapping the design, where the
    constraints allow it (none needs cost metrics, and the memory fit does not depend on the allocation)."""

    def __init__(self, evaluator: Evaluator, constraints: list[Constraint]) -> None:
        self.inner = evaluator
        self.unmapped = getattr(evaluator, "score_without_mapping", None)
        if any(c.needs_mapping for c in constraints):
            self.unmapped = None

    def evaluate(self, design: Design) -> ScoredDesign:
        """The unmapped score where it decides everything the search needs, else the full evaluation."""
        scored = self.unmapped(design) if self.unmapped is not None else None
        return scored if scored is not None else self.inner.evaluate(design)


def _mac_proxy_baseline(s: SearchConfig, searched: _Searched, trials: int, test_scale: dict[str, float],
                        report: Callable[[str], _PhaseProgress | None]) -> dict[str, Any]:
    """The MAC-proxy search (accuracy and expected MACs; same space and constraints) in a study beside the
    main one; its Pareto designs, evaluated and re-mapped like the main front, with their test hypervolume."""
    problem = searched.problem
    mac_problem = SearchProblem(
        problem.space, _HardwareBlind(problem.evaluator, problem.constraints), ["accuracy", "macs_avg"], s.elp,
        problem.constraints, objective_override=lambda e: [e.val["accuracy"], e.val["macs_avg"]],
    )
    mac_outcome = searched.study.run(mac_problem, trials, report("mac-proxy search"), suffix="-macproxy")
    mac_front = [problem.evaluate(t.evaluation.design) for t in pareto_front(mac_outcome.trials, ["accuracy", "macs_avg"])]
    mac_front = [r for r, _ in refine_allocation(problem, mac_front, s.refine_allocation, keep_all=True,
                                                 progress=report("refine mac-proxy"))]
    return {
        "study": _study_info(mac_outcome),
        "front": [{k: v for k, v in e.to_dict().items() if k not in ("stages", "extra")} for e in mac_front],
        "hypervolume_test": _front_hv(mac_front, s.objectives, s.elp, test_scale, s.hv_reference),
    }


def _results_document(config: RunConfig, inputs: CodesignInputs, searched: _Searched, hypervolume: dict[str, Any],
                      paper: list[ScoredDesign], mac: dict[str, Any] | None) -> ResultsDocument:
    """The results document of a run (what the report renders)."""
    s = config.search
    baselines = searched.baselines
    outcome = searched.outcome
    return ResultsDocument.model_validate({
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "name": config.name,
        "config": {**config.public_dump(), "source": shown_path(config.source) if config.source else None},
        "backbone": inputs.backbone,
        "space": _space_info(inputs.space, s.refine_allocation),
        "objectives": list(s.objectives),
        "elp_definition": s.elp,
        "constraints": [c.text for c in searched.problem.constraints],
        "selection_split": "val",
        "report_split": "test",
        "study": _study_info(outcome),
        "hypervolume": hypervolume,
        "static": {k: v.to_dict() for k, v in baselines.per_pair.items()},
        "static_variants": {k: [v.to_dict() for v in vs] for k, vs in baselines.variants.items()},
        "static_reference": pair_label(baselines.reference_pair),
        "paper_designs": [e.to_dict() for e in paper],
        "mac_proxy": mac,
        "pareto": [
            {**e.to_dict(), "searched_allocation": origin.design.allocation,
             "objective_values": searched.problem.values(e)} for e, origin in searched.refined
        ],
        "trials": [
            [t.number, t.evaluation.val["accuracy"], t.evaluation.val["elp"], t.evaluation.test["accuracy"],
             t.evaluation.test["elp"], int(t.feasible)]
            for t in outcome.trials
        ],
        "trials_columns": ["trial", "val_accuracy", "val_elp", "test_accuracy", "test_elp", "feasible"],
        "headline": _headline_info(searched.front, baselines),
    })


def _space_info(space: DesignSpace, refine_allocation: str | None) -> dict[str, Any]:
    """The searched design space, as the results document records it."""
    return {
        "candidate_exits": list(space.candidates), "final_exit": space.final,
        "head_types": {k: list(v) for k, v in space.head_types.items()},
        "precision_pairs": [list(p) for p in space.precision_pairs],
        "thresholds": {"mode": space.threshold_mode, "low": space.threshold_low, "high": space.threshold_high,
                       "step": space.threshold_step},
        "confidence": space.confidence, "policies": list(space.policies), "allocations": list(space.allocations),
        "refine_allocation": refine_allocation,
    }


def _headline_info(front: list[ScoredDesign], baselines: _StaticBaselines) -> dict[str, Any]:
    """The headline against the reference static baseline, and in brief against each of its final-head variants."""
    return {**headline(front, baselines.reference),
            "against_each_final_head": [
                {k: h.get(k) for k in ("reference", "static_test_accuracy", "design", "test_accuracy",
                                       "test_accuracy_loss_points", "elp_reduction")}
                for h in (headline(front, v) for v in baselines.variants[pair_label(baselines.reference_pair)])]}


def _study_info(outcome: SearchOutcome) -> dict[str, Any]:
    storage = outcome.storage
    return {
        "name": outcome.study_name,
        "storage": shown_storage(storage),
        "trials": len(outcome.trials),
        "feasible": len(outcome.feasible),
        "new_trials": outcome.new_trials,
        "population": outcome.population,
        "seconds": outcome.seconds,
        "eval_seconds": outcome.eval_seconds,
        "persist_seconds": outcome.persist_seconds,
    }

