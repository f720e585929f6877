"""Each vocabulary has one owner, and the run config asks it: confidence measures, exit rules (threshold
modes), exit-head policies, allocation strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from exitspace.config import parse_config
from exitspace.dynamic import exit_rules
from exitspace.dynamic.confidence import MEASURES, confidence, measure
from exitspace.errors import ConfigError


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"confidence": "softmax"}, "search.space.confidence: unknown confidence measure 'softmax'"),
        ({"policies": ["wait", "later"]}, "search.space.policies: unknown exit-head policy 'later'"),
        ({"allocations": ["greedy", "best"]}, "search.space.allocations: unknown strategy 'best'"),
        ({"thresholds": {"mode": "each"}}, "search.space.thresholds.mode: unknown threshold mode 'each'"),
    ],
)
def test_config_refuses_what_the_owner_does_not_know(space: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"search": {"space": space}}, "cfg.yaml")
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
def top2_sum() -> Iterator[str]:
    """A confidence measure registered for one test only."""
    measure("top2_sum")(lambda probs: np.sort(probs, axis=-1)[..., -2:].sum(axis=-1))
    yield "top2_sum"
    del MEASURES["top2_sum"]


def test_a_new_confidence_measure_is_one_registered_function(top2_sum: str) -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]]))
    assert np.allclose(confidence(logits, top2_sum), [0.8, 0.95])
    assert parse_config({"search": {"space": {"confidence": top2_sum}}}).search.space.confidence == top2_sum


def test_threshold_modes_draw_named_parameters() -> None:
    drawn: list[str] = []

    def draw(name: str) -> float:
        drawn.append(name)
        return 0.5 + 0.1 * len(drawn)

    assert exit_rules.MODES["shared"](draw, ["A", "B", "C"], ["A", "C"]) == (0.6, 0.6)
    assert exit_rules.MODES["per_exit"](draw, ["A", "B", "C"], ["A", "C"]) == pytest.approx((0.7, 0.9))
    assert drawn == ["threshold", "threshold_A", "threshold_B", "threshold_C"]


def test_a_core_preset_is_one_yaml_file(tmp_path: Path) -> None:
    from exitspace.hardware.model import CoreKind
    from exitspace.hardware.presets import PRESET_DIR, _presets, preset_core

    text = (PRESET_DIR / "cores" / "edge_tpu_simd.yaml").read_text().split("\n", 1)[1]
    (tmp_path / "my_simd.yaml").write_text("# preset: a SIMD core of my own\n" + text)
    assert _presets(tmp_path) == {"my_simd": "a SIMD core of my own"}
    kinds = {name: preset_core(name).kind for name in ("edge_tpu_pooling", "edge_tpu_simd", "edge_tpu_offchip")}
    assert kinds == {"edge_tpu_pooling": CoreKind.POOLING, "edge_tpu_simd": CoreKind.SIMD,
                     "edge_tpu_offchip": CoreKind.OFFCHIP}  # read from the files, not from a table
