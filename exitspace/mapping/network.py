"""An early-exit network cut into exit stages: which layers run, in which order, in which stage.

A *candidate* is a list of exit heads in network order (head keys ``"<label>:<head type>"`` as the
workload names them in ``Layer.exit``, e.g. ``"D:pool4_fc1"``); the last one must be the final exit,
mounted after the last backbone block. :func:`stage_network` turns a workload (the "supernet": backbone
plus every candidate head) and such a list into a :class:`StagedNetwork`:

- execution order: backbone layers in workload order, each selected head inserted right after the last
  backbone layer of the block it is mounted after;
- stage ``i`` = the backbone layers after exit ``i-1``'s block up to and including exit ``i``'s block,
  plus head ``i``'s layers; backbone layers after the final exit's block never run;
- the data edges (producer -> consumer) between selected layers, and the "chain" predecessor of each
  layer (the previous backbone layer for backbone layers, the previous layer of the same head for head
  layers), which the overlap scheduler uses.

Indices in a :class:`StagedNetwork` are *local* (positions in execution order); ``layer_index`` maps
them back to positions in the workload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exitspace.errors import ConfigError
from exitspace.workload.layer import Layer, Workload


def head_label(key: str) -> str:
    """The exit label of a head key (``"D:pool4_fc1" -> "D"``; a bare label is returned as is)."""
    return key.split(":", 1)[0]


def backbone_blocks(workload: Workload) -> list[str]:
    """Backbone block names in network order (first appearance)."""
    blocks: list[str] = []
    for layer in workload.backbone():
        if layer.block not in blocks:
            blocks.append(layer.block)
    return blocks


def available_heads(workload: Workload) -> list[str]:
    """Head keys the workload carries, in network order."""
    return workload.exits


def resolve_exits(workload: Workload, exits: list[str], heads: list[str] | None = None) -> list[str]:
    """Turn exit labels (``"D"``) plus head types (``"pool4_fc1"``, one for all or one per exit) into the
    workload's head keys. Full keys (``"D:pool4_fc1"``) pass through. One-line error for anything unknown."""
    known = available_heads(workload)
    if not exits:
        raise ConfigError("exits: empty; give at least the final exit, e.g. 'K'")
    if heads is not None and len(heads) not in (1, len(exits)):
        raise ConfigError(f"heads: give one head type or one per exit ({len(exits)}), got {len(heads)}")
    keys: list[str] = []
    for pos, exit_name in enumerate(exits):
        if ":" in exit_name:
            key = exit_name
        elif heads is not None:
            key = f"{exit_name}:{heads[0] if len(heads) == 1 else heads[pos]}"
        else:
            matches = [k for k in known if head_label(k) == exit_name]
            if len(matches) != 1:
                raise ConfigError(
                    f"exits: {exit_name!r} matches {len(matches)} heads {matches}; give the head type (--heads)"
                )
            key = matches[0]
        if key not in known and exit_name in known:
            key = exit_name
        if key not in known:
            labels = sorted({head_label(k) for k in known})
            raise ConfigError(
                f"exits: no head {key!r} in workload; exits available {labels}, head keys like {known[:2]}"
            )
        keys.append(key)
    return keys


@dataclass(frozen=True)
class StagedNetwork:
    """A candidate EENN in execution order, cut into exit stages (see module docstring)."""

    name: str
    exit_keys: tuple[str, ...]
    exit_blocks: tuple[str, ...]
    layer_names: tuple[str, ...]
    layer_index: np.ndarray  # [n] position of each local layer in the workload
    stage_of: np.ndarray  # [n] stage (0..S-1) of each local layer
    is_head: np.ndarray  # [n] bool
    edges: np.ndarray  # [e, 2] local (producer, consumer)
    reads_input: np.ndarray  # [n] bool: reads the network input
    chain_prev: np.ndarray  # [n] local index of the chain predecessor or -1
    head_last: np.ndarray  # [S] local index of the last layer of each head

    @property
    def num_stages(self) -> int:
        """Number of exit stages (exits, the final one included)."""
        return len(self.exit_keys)

    @property
    def num_layers(self) -> int:
        """Number of layers that run."""
        return len(self.layer_names)


@dataclass(frozen=True)
class _Mounts:
    """Where a candidate's heads sit: the backbone's blocks and, per exit, its head layers and block."""

    blocks: list[str]  # backbone blocks in network order
    block_pos: dict[str, int]
    exit_keys: list[str]
    heads: dict[str, list[Layer]]
    exit_blocks: list[str]
    positions: list[int]  # block position of each exit


@dataclass(frozen=True)
class _Order:
    """The layers that run, in execution order: workload position, stage, head flag and name of each."""

    layers: list[int]
    stage: list[int]
    is_head: list[bool]
    names: list[str]


@dataclass(frozen=True)
class _Wiring:
    """Data edges, network-input readers and chain predecessors (local indices), and each stage's last head layer."""

    edges: list[tuple[int, int]]
    reads_input: np.ndarray
    chain_prev: np.ndarray
    last_in_head: dict[int, int]


def stage_network(workload: Workload, exit_keys: list[str], name: str | None = None) -> StagedNetwork:
    """Cut ``workload`` into the stages of the candidate ``exit_keys`` (head keys, network order)."""
    mounts = _mount_heads(workload, exit_keys)
    _check_exit_order(mounts)
    index_of = {layer.name: pos for pos, layer in enumerate(workload.layers)}
    order = _execution_order(workload, mounts, index_of)
    wiring = _wire(workload, order, index_of)
    return StagedNetwork(
        name=name or workload.name,
        exit_keys=tuple(exit_keys),
        exit_blocks=tuple(mounts.exit_blocks),
        layer_names=tuple(order.names),
        layer_index=np.asarray(order.layers, dtype=np.int64),
        stage_of=np.asarray(order.stage, dtype=np.int64),
        is_head=np.asarray(order.is_head, dtype=bool),
        edges=np.asarray(wiring.edges, dtype=np.int64).reshape(-1, 2),
        reads_input=wiring.reads_input,
        chain_prev=wiring.chain_prev,
        head_last=_head_last(workload, exit_keys, wiring),
    )


def _mount_heads(workload: Workload, exit_keys: list[str]) -> _Mounts:
    """The backbone's blocks and the head layers and block of each exit; one-line errors for bad exits."""
    blocks = backbone_blocks(workload)
    if not blocks:
        raise ConfigError(f"workload {workload.name!r}: has no backbone layers (all layers carry an exit)")
    block_pos = {block: pos for pos, block in enumerate(blocks)}
    known = available_heads(workload)
    if len(set(exit_keys)) != len(exit_keys):
        raise ConfigError(f"exits: {list(exit_keys)} lists a head twice; give each exit once")

    heads: dict[str, list[Layer]] = {}
    exit_blocks: list[str] = []
    for key in exit_keys:
        heads[key], mount = _head_and_mount(workload, key, known, blocks, block_pos)
        exit_blocks.append(mount)
    positions = [block_pos[b] for b in exit_blocks]
    return _Mounts(blocks, block_pos, exit_keys, heads, exit_blocks, positions)


def _head_and_mount(
    workload: Workload, key: str, known: list[str], blocks: list[str], block_pos: dict[str, int]
) -> tuple[list[Layer], str]:
    """The layers of head ``key`` and the backbone block it is mounted after."""
    if key not in known:
        raise ConfigError(f"exits: no head {key!r} in workload {workload.name!r}; available {known}")
    layers = workload.head(key)
    mounts = {layer.block for layer in layers}
    if len(mounts) != 1:
        raise ConfigError(f"workload: head {key!r} layers name several blocks {sorted(mounts)}; use one")
    mount = mounts.pop()
    if mount not in block_pos:
        raise ConfigError(
            f"exits: {key!r} is mounted after block {mount!r}, which the backbone does not have "
            f"(blocks {blocks[0]}..{blocks[-1]}); fix the head's block or choose another exit"
        )
    return layers, mount


def _check_exit_order(mounts: _Mounts) -> None:
    """Exits must follow each other block by block, the last one after the backbone's last block."""
    blocks, positions, exit_keys = mounts.blocks, mounts.positions, mounts.exit_keys
    for prev, cur, key in zip(positions, positions[1:], exit_keys[1:]):
        if cur <= prev:
            raise ConfigError(
                f"exits: {key!r} (after {blocks[cur]}) does not come after the exit before it (after "
                f"{blocks[prev]}); list exits in network order, one per block"
            )
    if positions[-1] != len(blocks) - 1:
        raise ConfigError(
            f"exits: the last exit {exit_keys[-1]!r} is mounted after {mounts.exit_blocks[-1]!r}; the final exit must "
            f"follow the last block {blocks[-1]!r} (add the final exit, e.g. 'K')"
        )


def _execution_order(workload: Workload, mounts: _Mounts, index_of: dict[str, int]) -> _Order:
    """Backbone layers up to the final exit's block, each selected head right after its block's last layer."""
    positions = mounts.positions
    order: list[int] = []
    stage: list[int] = []
    head_flag: list[bool] = []
    backbone = [index_of[layer.name] for layer in workload.backbone()]
    last_of_block = {workload.layers[i].block: i for i in backbone}
    current = 0
    for wpos in backbone:
        block = workload.layers[wpos].block
        bpos = mounts.block_pos[block]
        while current < len(positions) and positions[current] < bpos:
            current += 1
        if current >= len(positions):
            break  # after the final exit's block: never runs
        order.append(wpos)
        stage.append(current)
        head_flag.append(False)
        if wpos == last_of_block[block] and positions[current] == bpos:
            for layer in mounts.heads[mounts.exit_keys[current]]:
                order.append(index_of[layer.name])
                stage.append(current)
                head_flag.append(True)
    return _Order(order, stage, head_flag, [workload.layers[w].name for w in order])


def _wire(workload: Workload, order: _Order, index_of: dict[str, int]) -> _Wiring:
    """Data edges and chain predecessors of the layers that run (see the module docstring)."""
    name_to_local = {n: i for i, n in enumerate(order.names)}
    edges: list[tuple[int, int]] = []
    reads_input = np.zeros(len(order.layers), dtype=bool)
    chain_prev = np.full(len(order.layers), -1, dtype=np.int64)
    last_backbone = -1
    last_in_head: dict[int, int] = {}
    for pos, wpos in enumerate(order.layers):
        layer = workload.layers[wpos]
        if not layer.inputs:
            reads_input[pos] = True
        for producer in layer.inputs:
            edges.append((_producer_position(layer, producer, pos, name_to_local, index_of), pos))
        if order.is_head[pos]:
            chain_prev[pos] = last_in_head.get(order.stage[pos], -1)
            last_in_head[order.stage[pos]] = pos
        else:
            chain_prev[pos] = last_backbone
            last_backbone = pos
    return _Wiring(edges, reads_input, chain_prev, last_in_head)


def _producer_position(
    layer: Layer, producer: str, pos: int, name_to_local: dict[str, int], index_of: dict[str, int]
) -> int:
    """Local index of ``producer``, read by ``layer`` at local ``pos``; one-line errors unless it runs before."""
    if producer not in name_to_local:
        if producer in index_of:
            raise ConfigError(
                f"workload: layer {layer.name!r} reads {producer!r}, which does not run in this "
                f"candidate (another head or after the final exit); fix its inputs"
            )
        raise ConfigError(f"workload: layer {layer.name!r} reads unknown layer {producer!r}; fix its inputs")
    src = name_to_local[producer]
    if src >= pos:
        raise ConfigError(
            f"workload: layer {layer.name!r} reads {producer!r}, which runs later; list layers in "
            "topological order"
        )
    return src


def _head_last(workload: Workload, exit_keys: list[str], wiring: _Wiring) -> np.ndarray:
    """Local index of the last layer of each head; one-line error for a head without layers."""
    head_last = np.array([wiring.last_in_head.get(s, -1) for s in range(len(exit_keys))], dtype=np.int64)
    for s, key in enumerate(exit_keys):
        if head_last[s] < 0:
            raise ConfigError(f"exits: head {key!r} has no layers in workload {workload.name!r}")
    return head_last


def static_network(workload: Workload, final_key: str) -> StagedNetwork:
    """The static baseline: the backbone run to the end with only the final classifier head (no early
    exits, no early heads), as one stage."""
    return stage_network(workload, [final_key], name=f"{workload.name}:static")
