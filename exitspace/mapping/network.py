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


def stage_network(workload: Workload, exit_keys: list[str], name: str | None = None) -> StagedNetwork:
    """Cut ``workload`` into the stages of the candidate ``exit_keys`` (head keys, network order)."""
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
        heads[key] = layers
        exit_blocks.append(mount)
    positions = [block_pos[b] for b in exit_blocks]
    for prev, cur, key in zip(positions, positions[1:], exit_keys[1:]):
        if cur <= prev:
            raise ConfigError(
                f"exits: {key!r} (after {blocks[cur]}) does not come after the exit before it (after "
                f"{blocks[prev]}); list exits in network order, one per block"
            )
    if positions[-1] != len(blocks) - 1:
        raise ConfigError(
            f"exits: the last exit {exit_keys[-1]!r} is mounted after {exit_blocks[-1]!r}; the final exit must "
            f"follow the last block {blocks[-1]!r} (add the final exit, e.g. 'K')"
        )

    index_of = {layer.name: pos for pos, layer in enumerate(workload.layers)}
    order: list[int] = []
    stage: list[int] = []
    head_flag: list[bool] = []
    backbone = [index_of[layer.name] for layer in workload.backbone()]
    last_of_block = {workload.layers[i].block: i for i in backbone}
    current = 0
    for wpos in backbone:
        block = workload.layers[wpos].block
        bpos = block_pos[block]
        while current < len(positions) and positions[current] < bpos:
            current += 1
        if current >= len(positions):
            break  # after the final exit's block: never runs
        order.append(wpos)
        stage.append(current)
        head_flag.append(False)
        if wpos == last_of_block[block] and positions[current] == bpos:
            for layer in heads[exit_keys[current]]:
                order.append(index_of[layer.name])
                stage.append(current)
                head_flag.append(True)

    names = [workload.layers[w].name for w in order]
    name_to_local = {n: i for i, n in enumerate(names)}
    edges: list[tuple[int, int]] = []
    reads_input = np.zeros(len(order), dtype=bool)
    chain_prev = np.full(len(order), -1, dtype=np.int64)
    last_backbone = -1
    last_in_head: dict[int, int] = {}
    for pos, wpos in enumerate(order):
        layer = workload.layers[wpos]
        if not layer.inputs:
            reads_input[pos] = True
        for producer in layer.inputs:
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
            edges.append((src, pos))
        if head_flag[pos]:
            chain_prev[pos] = last_in_head.get(stage[pos], -1)
            last_in_head[stage[pos]] = pos
        else:
            chain_prev[pos] = last_backbone
            last_backbone = pos
    head_last = np.array([last_in_head.get(s, -1) for s in range(len(exit_keys))], dtype=np.int64)
    for s, key in enumerate(exit_keys):
        if head_last[s] < 0:
            raise ConfigError(f"exits: head {key!r} has no layers in workload {workload.name!r}")
    return StagedNetwork(
        name=name or workload.name,
        exit_keys=tuple(exit_keys),
        exit_blocks=tuple(exit_blocks),
        layer_names=tuple(names),
        layer_index=np.asarray(order, dtype=np.int64),
        stage_of=np.asarray(stage, dtype=np.int64),
        is_head=np.asarray(head_flag, dtype=bool),
        edges=np.asarray(edges, dtype=np.int64).reshape(-1, 2),
        reads_input=reads_input,
        chain_prev=chain_prev,
        head_last=head_last,
    )


def static_network(workload: Workload, final_key: str) -> StagedNetwork:
    """The static baseline: the backbone run to the end with only the final classifier head (no early
    exits, no early heads), as one stage."""
    return stage_network(workload, [final_key], name=f"{workload.name}:static")
