"""The persistent cost cache: hits equal fresh results, persistence, invalidation by version / core / shape."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exitspace.cost.analytical import AnalyticalBackend
from exitspace.cost.cache import CostCache, cached_evaluate, core_hash, layer_key
from exitspace.errors import DataError
from exitspace.workload.layer import Layer, OpType, Precision
from tests.test_cost_analytical import paper_core


class CountingBackend(AnalyticalBackend):
    """The analytical backend, counting the layers it really evaluates."""

    def __init__(self, version: str = "test-1") -> None:
        self.version = version
        self.calls = 0

    def evaluate(self, layers, core):  # type: ignore[override]
        self.calls += len(layers)
        return super().evaluate(layers, core)


def layers() -> list[Layer]:
    return [
        Layer("a", OpType.CONV, K=32, C=16, OX=16, OY=16, FX=3, FY=3),
        Layer("b", OpType.POINTWISE, K=64, C=32, OX=8, OY=8),
        Layer("c", OpType.FC, K=10, C=256),
    ]


def test_hits_equal_fresh_results_and_skip_the_backend(tmp_path) -> None:
    core = paper_core()
    backend = CountingBackend()
    cache = CostCache(tmp_path / "cost.sqlite")
    first = cached_evaluate(backend, layers(), core, cache)
    assert backend.calls == 3
    second = cached_evaluate(backend, layers(), core, cache)
    assert backend.calls == 3
    assert [c.to_dict() for c in first] == [c.to_dict() for c in second]
    assert cache.hits == 3 and cache.misses == 3


def test_same_shape_other_name_is_a_hit_with_the_new_name(tmp_path) -> None:
    core = paper_core()
    backend = CountingBackend()
    cache = CostCache()
    cached_evaluate(backend, layers(), core, cache)
    renamed = [replace(layer, name=layer.name + "_copy") for layer in layers()]
    again = cached_evaluate(backend, renamed, core, cache)
    assert backend.calls == 3
    assert [c.layer for c in again] == [l.name for l in renamed]


def test_persists_across_instances(tmp_path) -> None:
    core = paper_core()
    path = tmp_path / "cost.sqlite"
    cache = CostCache(path)
    fresh = cached_evaluate(CountingBackend(), layers(), core, cache)
    cache.close()
    backend = CountingBackend()
    reopened = CostCache(path)
    assert len(reopened) == 3
    loaded = cached_evaluate(backend, layers(), core, reopened)
    assert backend.calls == 0
    assert [c.to_dict() for c in loaded] == [c.to_dict() for c in fresh]


def test_new_backend_version_precision_or_core_misses(tmp_path) -> None:
    core = paper_core()
    cache = CostCache(tmp_path / "cost.sqlite")
    cached_evaluate(CountingBackend("v1"), layers(), core, cache)
    newer = CountingBackend("v2")
    cached_evaluate(newer, layers(), core, cache)
    assert newer.calls == 3
    four_bit = [l.with_precision(Precision.uniform(4)) for l in layers()]
    same = CountingBackend("v2")
    cached_evaluate(same, four_bit, core, cache)
    assert same.calls == 3
    other_core = paper_core().model_copy(update={"name": "other"})
    assert core_hash(other_core) != core_hash(core)
    cached_evaluate(same, layers(), other_core, cache)
    assert same.calls == 6


def test_key_ignores_name_and_graph_position() -> None:
    a = layers()[0]
    b = replace(a, name="z", block="b3", exit="A:pool4_fc1", inputs=("x",))
    assert layer_key(a) == layer_key(b)
    assert layer_key(a) != layer_key(replace(a, K=33))


def test_corrupt_file_is_a_one_line_error(tmp_path) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="delete it to rebuild"):
        CostCache(path)
