"""Dynamic stage: confidences, exit assignment, vectorised scoring, calibration, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from exitspace.dynamic import ExitScorer, calibrate, confidence, latency_percentiles, parse_thresholds
from exitspace.errors import CheckpointError, ConfigError
from exitspace.train.exit_table import ExitTable


def test_confidences_on_known_logits() -> None:
    logits = np.array([[0.0, 0.0], [50.0, 0.0], [np.log(3.0), 0.0]])
    assert confidence(logits, "max_softmax") == pytest.approx([0.5, 1.0, 0.75])
    assert confidence(logits, "margin") == pytest.approx([0.0, 1.0, 0.5])
    p = np.array([0.75, 0.25])
    expected = 1 + (p * np.log(p)).sum() / np.log(2)
    assert confidence(logits, "entropy") == pytest.approx([0.0, 1.0, expected], abs=1e-6)
    assert confidence(np.zeros((2, 3, 10)), "entropy").shape == (2, 3)
    with pytest.raises(ConfigError, match="unknown confidence"):
        confidence(logits, "energy")


def hand_scorer() -> ExitScorer:
    # 4 samples, 3 exits
    conf = np.array([[0.9, 0.2, 0.1], [0.5, 0.8, 0.3], [0.4, 0.6, 0.9], [0.95, 0.99, 0.2]])
    correct = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=bool)
    return ExitScorer(conf, correct, ["A", "B", "K"], "val")


def test_first_exit_above_its_threshold_takes_the_sample() -> None:
    scorer = hand_scorer()
    assert scorer.assign([0.9, 0.7]).tolist() == [0, 1, 2, 0]
    out = scorer.outcome([0.9, 0.7])
    assert out.ratios == [0.5, 0.25, 0.25]
    assert out.exit_accuracy == [0.5, 1.0, 0.0]
    assert out.accuracy == pytest.approx(0.5)
    never = scorer.outcome([np.inf, np.inf])
    assert never.ratios == [0.0, 0.0, 1.0] and never.accuracy == pytest.approx(0.75)
    assert never.exit_accuracy[0] is None


def test_vectorised_scoring_matches_one_by_one() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4, 10)) * rng.uniform(0.5, 3, size=(1, 4, 1))
    labels = rng.integers(0, 10, size=500)
    scorer = ExitScorer(confidence(logits), logits.argmax(-1) == labels[:, None], ["A", "B", "C", "K"])
    vectors = rng.uniform(0.1, 0.9, size=(300, 3))
    vectors[::7, 1] = np.inf
    batch = scorer.score(vectors, chunk_elements=40_000)  # several chunks
    for m in (0, 7, 123, 299):
        exit_of = scorer.assign(vectors[m])
        counts = np.bincount(exit_of, minlength=4)
        correct = (logits.argmax(-1)[np.arange(500), exit_of] == labels).mean()
        assert batch.counts[m].tolist() == counts.tolist()
        assert batch.accuracy[m] == pytest.approx(correct)
    assert np.allclose(batch.ratios.sum(axis=1), 1.0)


def test_threshold_parsing_and_shape_errors() -> None:
    assert parse_thresholds([0.8], 4).tolist() == [0.8, 0.8, 0.8]
    assert parse_thresholds([0.7, 0.8, 0.9], 4).tolist() == [0.7, 0.8, 0.9]
    with pytest.raises(ConfigError, match="give 1 or 3"):
        parse_thresholds([0.7, 0.8], 4)
    with pytest.raises(ConfigError, match="thresholds"):
        hand_scorer().score(np.ones((2, 5)))


def synthetic_table(n: int = 2000, seed: int = 0) -> ExitTable:
    """Later heads are more accurate; confident predictions are more often right."""
    rng = np.random.default_rng(seed)
    keys = ["A:h", "B:h", "K:h"]
    logits, labels = {}, {}
    for split in ("val", "test"):
        y = rng.integers(0, 10, size=n)
        out = rng.normal(size=(n, 3, 10)).astype(np.float32)
        for h, strength in enumerate((1.5, 2.5, 4.0)):
            margin = rng.exponential(strength, size=n)
            out[np.arange(n), h, y] += margin
        logits[split], labels[split] = out, y
    return ExitTable(keys, [1, 3, 5], logits, labels, {"precision_pair": [8, 8]})


def test_calibration_for_an_accuracy_drop_holds_on_val_and_reports_test() -> None:
    table = synthetic_table()
    val = ExitScorer.from_exit_table(table, "val", table.head_keys)
    test = ExitScorer.from_exit_table(table, "test", table.head_keys)
    cost = np.array([1.0, 4.0, 10.0])
    tight = calibrate(val, cost, target_drop=0.0, test=test)
    loose = calibrate(val, cost, target_drop=5.0, test=test)
    assert tight.feasible and loose.feasible
    assert tight.val.accuracy >= val.final_accuracy - 1e-12
    assert loose.val.accuracy >= val.final_accuracy - 0.05 - 1e-12
    assert loose.val_cost <= tight.val_cost <= cost[-1]
    assert loose.val_cost < 0.9 * cost[-1]  # early exits do fire
    shared = min(  # at least as cheap as the best feasible shared threshold
        (c for t in np.linspace(0, 1, 201) for c, a in [_cost_acc(val, [t, t], cost)] if a >= val.final_accuracy - 0.05),
    )
    assert loose.val_cost <= shared + 1e-9
    assert loose.test is not None and loose.test.split == "test" and sum(loose.test.ratios) == pytest.approx(1)
    assert loose.vectors_scored > 200


def _cost_acc(scorer: ExitScorer, thresholds: list[float], cost: np.ndarray) -> tuple[float, float]:
    out = scorer.outcome(thresholds)
    return float(np.dot(out.ratios, cost)), out.accuracy


def test_calibration_for_a_cost_budget() -> None:
    table = synthetic_table(seed=1)
    val = ExitScorer.from_exit_table(table, "val", table.head_keys, kind="margin")
    cost = np.array([1.0, 4.0, 10.0])
    result = calibrate(val, cost, max_cost=5.0)
    assert result.feasible and result.val_cost <= 5.0 + 1e-9
    impossible = calibrate(val, cost, max_cost=0.5)
    assert not impossible.feasible
    with pytest.raises(ConfigError, match="exactly one"):
        calibrate(val, cost)


def test_exit_table_lookup_errors() -> None:
    table = synthetic_table(n=10)
    with pytest.raises(CheckpointError, match="no head 'Z:h'"):
        ExitScorer.from_exit_table(table, "val", ["A:h", "Z:h", "K:h"])
    with pytest.raises(ConfigError, match="no split 'train'"):
        ExitScorer.from_exit_table(table, "train", table.head_keys)


def test_latency_percentiles_of_the_exit_distribution() -> None:
    lat = [10.0, 20.0, 30.0]
    assert latency_percentiles(lat, [0.5, 0.3, 0.2]) == {"p50": 10.0, "p95": 30.0, "p99": 30.0}
    assert latency_percentiles(lat, [0.2, 0.76, 0.04]) == {"p50": 20.0, "p95": 20.0, "p99": 30.0}
    assert latency_percentiles(lat, [0.0, 0.0, 1.0])["p50"] == 30.0


def test_popcount_fallback_matches_numpy() -> None:
    from exitspace.dynamic.exits import _POPCOUNT, _popcount_rows

    packed = np.random.default_rng(0).integers(0, 256, size=(5, 17), dtype=np.uint8)
    expected = np.unpackbits(packed, axis=1).sum(axis=1)
    assert _popcount_rows(packed).tolist() == expected.tolist()
    assert _POPCOUNT[packed].sum(axis=1).tolist() == expected.tolist()


def test_calibration_from_a_start_is_never_worse_on_val_than_the_start() -> None:
    rng = np.random.default_rng(3)
    conf = rng.random((400, 3)).astype(np.float32)
    correct = rng.random((400, 3)) < np.array([0.7, 0.8, 0.9])
    scorer = ExitScorer(conf, correct, ["A:x", "B:x", "C:x"], "val")
    cost = np.array([1.0, 4.0, 9.0])
    start = [0.93, 0.41]
    at_start = scorer.outcome(start)
    drop = 100 * (scorer.final_accuracy - at_start.accuracy)
    fitted = calibrate(scorer, cost, target_drop=max(drop, 0.0), start=start)
    assert fitted.feasible  # the start meets the target by construction
    assert fitted.val.accuracy >= min(at_start.accuracy, scorer.final_accuracy) - 1e-12
    assert fitted.val_cost <= float(np.dot(at_start.ratios, cost)) + 1e-12
