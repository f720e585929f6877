"""Dynamic stage: exit policies and thresholds, exit ratios and accuracy, dynamic-inference metrics.

Entry points: :func:`~exitspace.dynamic.evaluate.evaluate_design` (one design end to end),
:func:`~exitspace.dynamic.metrics.dynamic_metrics` (metrics of a schedule for given ratios),
:class:`~exitspace.dynamic.exits.ExitScorer` (vectorised threshold scoring on an exit table) and
:func:`~exitspace.dynamic.calibration.calibrate`. Definitions: docs/metrics.md.
"""

from exitspace.dynamic.calibration import Calibration, calibrate
from exitspace.dynamic.confidence import MEASURES, confidence
from exitspace.dynamic.evaluate import DesignEvaluation, deploy, evaluate_design
from exitspace.dynamic.exits import ExitOutcome, ExitScorer, ScoreBatch, parse_thresholds
from exitspace.dynamic.oracle import OracleBound, oracle_bounds
from exitspace.dynamic.metrics import DynamicMetrics, StaticBaseline, dynamic_metrics, latency_percentiles
from exitspace.dynamic.paper_style import PaperStyleMetrics, paper_style_metrics

__all__ = [
    "Calibration",
    "DesignEvaluation",
    "DynamicMetrics",
    "ExitOutcome",
    "ExitScorer",
    "MEASURES",
    "OracleBound",
    "PaperStyleMetrics",
    "ScoreBatch",
    "StaticBaseline",
    "calibrate",
    "confidence",
    "deploy",
    "dynamic_metrics",
    "evaluate_design",
    "latency_percentiles",
    "oracle_bounds",
    "paper_style_metrics",
    "parse_thresholds",
]
