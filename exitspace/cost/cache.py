"""Persistent cost cache: SQLite on disk, a dict in memory in front of it.

Key = (backend name, backend version, core description hash, layer op, ZigZag loop sizes, stride, precision).
The layer's name is not part of the key: two layers of the same shape share one entry (the returned cost
carries the asking layer's name). A new backend version therefore misses every old entry.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from exitspace.cost.base import CostBackend, LayerCost
from exitspace.errors import ConfigError, DataError
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer

CACHE_FORMAT = 1
_core_hashes: dict[int, tuple[Core, str]] = {}


def core_hash(core: Core) -> str:
    """Stable hash of a core's full description (memoised per object)."""
    hit = _core_hashes.get(id(core))
    if hit is not None and hit[0] is core:
        return hit[1]
    digest = hashlib.sha1(core.model_dump_json().encode()).hexdigest()[:16]
    _core_hashes[id(core)] = (core, digest)
    return digest


def layer_key(layer: Layer) -> tuple:
    """The part of the cache key that comes from the layer (everything that changes its cost)."""
    p = layer.precision
    return (
        layer.op.value, layer.B, layer.K, layer.C, layer.OY, layer.OX, layer.FY, layer.FX, layer.groups,
        layer.stride, layer.padding, p.weight, p.input, p.output, p.psum,
    )


class CostCache:
    """Layer costs by (backend, version, core, layer shape, precision); ``path=None`` keeps it in memory only."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._mem: dict[tuple, LayerCost] = {}
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path))
                self._db.execute("CREATE TABLE IF NOT EXISTS cost (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(CACHE_FORMAT),))
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                raise DataError(f"cost cache {self.path}: not a usable SQLite file ({exc}); delete it to rebuild") from None

    @staticmethod
    def _full_key(backend: CostBackend, chash: str, layer: Layer) -> tuple:
        return (backend.name, backend.version, chash, layer_key(layer))

    def get_many(self, layers: Sequence[Layer], core: Core, backend: CostBackend) -> list[LayerCost | None]:
        """Cached costs (None where missing), renamed to each asking layer."""
        chash = core_hash(core)
        out: list[LayerCost | None] = []
        missing: list[int] = []
        for i, layer in enumerate(layers):
            hit = self._mem.get(self._full_key(backend, chash, layer))
            if hit is None:
                missing.append(i)
                out.append(None)
            else:
                out.append(hit if hit.layer == layer.name else replace(hit, layer=layer.name))
        if missing and self._db is not None:
            for i in missing:
                key = self._full_key(backend, chash, layers[i])
                row = self._db.execute("SELECT value FROM cost WHERE key = ?", (repr(key),)).fetchone()
                if row is not None:
                    cost = LayerCost.from_dict(json.loads(row[0]))
                    self._mem[key] = cost
                    out[i] = replace(cost, layer=layers[i].name)
        found = sum(1 for c in out if c is not None)
        self.hits += found
        self.misses += len(out) - found
        return out

    def put_many(self, layers: Sequence[Layer], costs: Sequence[LayerCost], core: Core, backend: CostBackend) -> None:
        """Store costs (in memory and, with a path, on disk)."""
        chash = core_hash(core)
        rows = []
        for layer, cost in zip(layers, costs):
            key = self._full_key(backend, chash, layer)
            self._mem[key] = cost
            rows.append((repr(key), json.dumps(cost.to_dict())))
        if self._db is not None and rows:
            self._db.executemany("INSERT OR REPLACE INTO cost VALUES (?, ?)", rows)
            self._db.commit()

    def __len__(self) -> int:
        if self._db is not None:
            return int(self._db.execute("SELECT COUNT(*) FROM cost").fetchone()[0])
        return len(self._mem)

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None


def cached_evaluate(
    backend: CostBackend, layers: Sequence[Layer], core: Core, cache: CostCache | None
) -> list[LayerCost]:
    """Costs of ``layers`` on ``core``: cached ones from ``cache``, the rest evaluated in one batch and stored."""
    if cache is None:
        return backend.evaluate(layers, core)
    costs = cache.get_many(layers, core, backend)
    missing = [i for i, c in enumerate(costs) if c is None]
    if missing:
        fresh = backend.evaluate([layers[i] for i in missing], core)
        if len(fresh) != len(missing):
            raise ConfigError(f"cost backend {backend.name!r}: returned {len(fresh)} costs for {len(missing)} layers")
        cache.put_many([layers[i] for i in missing], fresh, core, backend)
        for i, cost in zip(missing, fresh):
            costs[i] = cost
    return costs  # type: ignore[return-value]


class PersistentBackend:
    """A cost backend behind a persistent :class:`CostCache` (same name and version as the wrapped one)."""

    def __init__(self, backend: CostBackend, path: Path) -> None:
        self.inner = backend
        self.name = backend.name
        self.version = backend.version
        self.cache = CostCache(path)

    def evaluate(self, layers: Sequence[Layer], core: Core) -> list[LayerCost]:
        """Cached costs; the rest from the wrapped backend."""
        return cached_evaluate(self.inner, layers, core, self.cache)
