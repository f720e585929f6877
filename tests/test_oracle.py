"""Oracle exit policies: hand-checked assignments, bounds that hold against every threshold rule, relaxation."""

from __future__ import annotations

import numpy as np
import pytest

from exitspace.dynamic.exits import ExitScorer
from exitspace.dynamic.metrics import expected_costs
from exitspace.dynamic.oracle import agreeing_exits, correct_exits, oracle_bounds, relaxed_to_accuracy
from exitspace.errors import ConfigError

ENERGY = np.array([1.0, 2.0, 4.0])
LATENCY = np.array([10.0, 20.0, 40.0])


def test_hand_checked_assignments() -> None:
    predictions = np.array([[1, 1, 1], [0, 2, 2], [3, 4, 5], [7, 7, 8]])
    labels = np.array([1, 2, 4, 7])
    assert agreeing_exits(predictions).tolist() == [0, 1, 2, 2]
    assert correct_exits(predictions, labels).tolist() == [0, 1, 1, 0]
    bounds = oracle_bounds(predictions, labels, ENERGY, LATENCY, design_accuracy=0.5, design_elp=100.0)
    assert bounds["a"]["ratios"] == [0.25, 0.25, 0.5] and bounds["a"]["accuracy"] == 0.5  # final exit: right on 2 of 4
    assert bounds["a"]["elp"] == pytest.approx((10 + 40 + 160 + 160) / 4)
    assert bounds["b"]["accuracy"] == 1.0 and bounds["b"]["elp"] == pytest.approx((10 + 40 + 40 + 10) / 4)
    assert bounds["a_at_design_accuracy"] == {**bounds["a"], "rule": "a at the design's accuracy"}
    assert bounds["elp_vs_oracle_a"] == pytest.approx(100.0 / bounds["a"]["elp"])


def test_relaxation_moves_the_costliest_right_answers_first() -> None:
    exits = np.array([2, 1, 2, 0])
    correct = np.array([True, True, False, True])
    cost = ENERGY * LATENCY
    assert relaxed_to_accuracy(exits, correct, cost, 0.5).tolist() == [0, 1, 2, 0]  # one right answer to spare
    assert relaxed_to_accuracy(exits, correct, cost, 0.75).tolist() == exits.tolist()
    assert relaxed_to_accuracy(exits, correct, cost, 0.0).tolist() == [0, 0, 2, 0]


def test_bounds_hold_against_every_threshold_rule() -> None:
    rng = np.random.default_rng(3)
    samples, exits, classes = 400, 3, 5
    labels = rng.integers(0, classes, samples)
    logits = rng.normal(size=(samples, exits, classes)).astype(np.float32)
    logits[np.arange(samples)[:, None], np.arange(exits)[None, :], labels[:, None]] += 3 * np.array([0.4, 0.6, 0.85])
    predictions = logits.argmax(-1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    scorer = ExitScorer(probs.max(-1), predictions == labels[:, None], ["A", "B", "C"])
    final_accuracy = float((predictions[:, -1] == labels).mean())
    for t0 in np.linspace(0.2, 1.0, 9):
        for t1 in np.linspace(0.2, 1.0, 9):
            outcome = scorer.outcome([t0, t1])
            elp = expected_costs(np.asarray(outcome.ratios), ENERGY, LATENCY)[2]
            bounds = oracle_bounds(predictions, labels, ENERGY, LATENCY, outcome.accuracy, elp)
            assert bounds["a"]["accuracy"] == pytest.approx(final_accuracy)
            assert bounds["b"]["accuracy"] >= outcome.accuracy  # (b) bounds every rule's accuracy
            relaxed = bounds["a_at_design_accuracy"]
            assert min(outcome.accuracy, final_accuracy) - 1e-9 <= relaxed["accuracy"] <= final_accuracy + 1e-9
            assert relaxed["elp"] <= bounds["a"]["elp"] + 1e-9
            assert bounds["elp_vs_oracle_a"] == pytest.approx(elp / relaxed["elp"])
    everything_last = scorer.outcome([np.inf, np.inf])
    assert everything_last.accuracy == pytest.approx(final_accuracy)
    elp_last = float(ENERGY[-1] * LATENCY[-1])
    assert oracle_bounds(predictions, labels, ENERGY, LATENCY, final_accuracy, elp_last)["elp_vs_oracle_a"] > 1.5


def test_bad_shapes_are_one_line() -> None:
    with pytest.raises(ConfigError, match="oracle: 3 exits need"):
        oracle_bounds(np.zeros((4, 3), dtype=int), np.zeros(4, dtype=int), ENERGY[:2], LATENCY[:2], 0.5, 1.0)
