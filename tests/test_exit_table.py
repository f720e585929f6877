"""Exit-table file: round trip, float16 storage, one-line errors for missing / corrupt / foreign files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exitspace.errors import CheckpointError
from exitspace.train.exit_table import ExitTable


def _table(rng: np.random.Generator) -> ExitTable:
    return ExitTable(
        head_keys=["A:pool4_fc1", "A:pool4_fc2", "B:pool4_fc1"],
        head_blocks=[0, 0, 3],
        logits={s: rng.normal(size=(n, 3, 10)).astype(np.float32) for s, n in (("val", 7), ("test", 5))},
        labels={s: rng.integers(0, 10, size=n) for s, n in (("val", 7), ("test", 5))},
        meta={"precision_pair": [8, 4], "model_hash": "abc", "accuracy": {"test": {"A:pool4_fc1": 0.5}}},
    )


def test_round_trip(tmp_path: Path) -> None:
    table = _table(np.random.default_rng(0))
    path = tmp_path / "t" / "exit_table_b8_e4.npz"
    table.save(path)
    loaded = ExitTable.load(path)
    assert loaded.head_keys == table.head_keys and loaded.head_blocks == table.head_blocks
    for split in ("val", "test"):
        np.testing.assert_array_equal(loaded.logits[split], table.logits[split].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(loaded.labels[split], table.labels[split])
    assert loaded.precision_pair == (8, 4) and loaded.meta["model_hash"] == "abc" and loaded.num_classes == 10
    assert loaded.head_index("B:pool4_fc1") == 2
    with np.load(path) as raw:
        assert raw["val_logits"].dtype == np.float16
    assert not list(path.parent.glob("*.tmp*"))


def test_missing_corrupt_and_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        ExitTable.load(tmp_path / "none.npz")
    path = tmp_path / "bad.npz"
    _table(np.random.default_rng(1)).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt") as info:
        ExitTable.load(path)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(CheckpointError, match="corrupt or not an exit table"):
        ExitTable.load(other)
    with pytest.raises(CheckpointError, match="shape"):
        ExitTable(["A:x"], [0], {"val": np.zeros((4, 2, 10))}, {"val": np.zeros(4)})
    with pytest.raises(CheckpointError, match="no head"):
        _table(np.random.default_rng(2)).head_index("Z:gap_fc")
