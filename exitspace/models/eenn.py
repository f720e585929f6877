"""The early-exit "supernet": a backbone carrying one head of each listed type at every candidate
mounting point and at the final point, built from a validated :class:`EENNSpec`.

Exit labels: candidates are lettered "A", "B", ... in block order and the final exit takes the next
letter (paper: candidates after blocks 0-9 are A..J, the final exit after block 11 is K). Head keys are
``"<label>:<head type>"``; ``forward`` returns logits ``[batch, len(head_keys), classes]`` in
``head_keys`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from exitspace.errors import ConfigError
from exitspace.models.common import Backbone, init_weights, scale_gradient
from exitspace.models.heads import PoolFCHead, build_head, check_head_type
from exitspace.models.registry import backbone_entry, build_backbone


def exit_label(index: int) -> str:
    """Spreadsheet-style letters: 0 -> "A", 25 -> "Z", 26 -> "AA"."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def head_key(label: str, head_type: str) -> str:
    """``"<label>:<head type>"``."""
    return f"{label}:{head_type}"


class EENNSpec(BaseModel):
    """What to build: backbone, its options, the candidate mounting blocks and the head types."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "mobilenetv2_cifar"
    width: float = Field(1.0, gt=0, description="channel width multiplier")
    num_classes: int = Field(10, ge=2)
    in_channels: int = Field(3, ge=1, description="1 for Fashion-MNIST")
    input_size: int = Field(32, ge=1, description="square input height = width in pixels")
    candidates: list[int] | None = Field(
        None, description="block indices that carry candidate exits; None = the backbone's default"
    )
    head_types: list[str] = Field(default_factory=lambda: ["pool4_fc1", "pool4_fc2"], min_length=1)
    final_head_types: list[str] | None = Field(None, description="head types at the final exit; None = head_types")
    backbone_options: dict[str, Any] = Field(default_factory=dict, description="e.g. {'shortcut': 'B'} for ResNets")

    @model_validator(mode="after")
    def _check(self) -> "EENNSpec":
        try:
            entry = backbone_entry(self.backbone)
        except ConfigError as exc:
            raise ConfigError(f"model.backbone: {exc}") from None
        for field_name in ("head_types", "final_head_types"):
            values = getattr(self, field_name) or []
            for name in values:
                try:
                    check_head_type(name)
                except ConfigError as exc:
                    raise ConfigError(f"model.{field_name}: {exc}") from None
            if len(set(values)) != len(values):
                raise ConfigError(f"model.{field_name}: {values} lists a head type twice; list each once")
        if self.final_head_types is not None and not self.final_head_types:
            raise ConfigError("model.final_head_types: empty; the final exit needs at least one head type")
        last = entry.num_blocks - 1
        for block in self.candidates or []:
            if not 0 <= block < last:
                raise ConfigError(
                    f"model.candidates: block {block} is out of range for {self.backbone}; candidates are "
                    f"0..{last - 1} (block {last} carries the final exit)"
                )
        if self.candidates is not None and len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"model.candidates: {self.candidates} lists a block twice; list each once")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "EENNSpec":
        """Validate a plain dict (e.g. the ``model:`` section of a config); one-line ConfigError on bad input."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "model"
            raise ConfigError(f"model.{where}: {first['msg']} (got {first.get('input')!r})") from None

    @property
    def num_blocks(self) -> int:
        """Number of backbone blocks."""
        return backbone_entry(self.backbone).num_blocks

    @property
    def candidate_blocks(self) -> tuple[int, ...]:
        """Candidate mounting blocks, sorted."""
        chosen = backbone_entry(self.backbone).default_candidates if self.candidates is None else self.candidates
        return tuple(sorted(chosen))

    @property
    def exits(self) -> list[tuple[str, int]]:
        """(label, block index) of every exit, the final one last."""
        blocks = [*self.candidate_blocks, self.num_blocks - 1]
        return [(exit_label(i), block) for i, block in enumerate(blocks)]

    def head_types_at(self, block: int) -> list[str]:
        """Head types mounted after ``block``."""
        if block == self.num_blocks - 1 and self.final_head_types is not None:
            return list(self.final_head_types)
        return list(self.head_types)

    @property
    def head_keys(self) -> list[str]:
        """All head keys in network order (the order of ``EENN.forward``'s head dimension)."""
        return [head_key(label, kind) for label, block in self.exits for kind in self.head_types_at(block)]

    @property
    def head_blocks(self) -> list[int]:
        """The block each head (in ``head_keys`` order) is mounted after."""
        return [block for _, block in self.exits for _ in self.head_types_at(block)]

    def backbone_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`build_backbone`."""
        return {"width": self.width, "in_channels": self.in_channels, **self.backbone_options}


def _module_name(key: str) -> str:
    """A module-safe name for a head key ("A:pool4_fc1" -> "A_pool4_fc1")."""
    return key.replace(":", "_")


class _Tagged(nn.Module):
    """Mixin: which heads are final, and a submodule path -> (layer-name prefix, block tag, exit) for workload extraction."""

    backbone: Backbone
    _head_of_module: dict[str, tuple[str, int]]
    heads: nn.ModuleDict

    def head_parameters(self, final: bool) -> list[nn.Parameter]:
        """Parameters of the final exit's heads (``final``), or of the early exits' heads (mounted before the last block)."""
        last = max(block for _, block in self._head_of_module.values())
        return [param for name, (_, block) in self._head_of_module.items() if (block == last) == final
                for param in self.heads[name].parameters()]

    def workload_tag(self, path: str) -> tuple[str, str, str | None]:
        """(name, block, exit) for the submodule at ``path`` (e.g. "backbone.blocks.3.expand.0")."""
        parts = path.split(".") if path else []
        if parts[:1] == ["backbone"] and parts[1:2] == ["blocks"] and len(parts) >= 3:
            block = self.backbone.block_infos[int(parts[2])].name
            return ".".join([block, *parts[3:]]), block, None
        if parts[:1] == ["backbone"] and parts[1:2] == ["stem"]:
            return ".".join(["stem", *parts[2:]]), "stem", None
        if parts[:1] == ["heads"] and len(parts) >= 2 and parts[1] in self._head_of_module:
            key, block_index = self._head_of_module[parts[1]]
            return ".".join([key, *parts[2:]]), self.backbone.block_infos[block_index].name, key
        return path, "", None


class EENN(_Tagged):
    """Backbone + heads of every listed type at every candidate point and at the final point.

    Two training knobs leave the outputs unchanged: ``head_grad_scale`` multiplies the gradient that
    early (non-final) heads send into the backbone, and ``share_pooling`` lets the pool4 heads of one
    block reuse one max-pooled map (faster; off by default so that a traced workload keeps every
    head's own pooling layer, as the hardware runs it).
    """

    head_grad_scale: float = 1.0
    share_pooling: bool = False

    def __init__(self, spec: EENNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = build_backbone(spec.backbone, **spec.backbone_kwargs())
        shapes = self.backbone.block_shapes(spec.input_size)
        self.heads = nn.ModuleDict()
        self._head_of_module = {}
        self._heads_after: dict[int, list[str]] = {}
        for key, block in zip(spec.head_keys, spec.head_blocks):
            channels, height, width = shapes[block]
            kind = key.split(":", 1)[1]
            name = _module_name(key)
            self.heads[name] = build_head(kind, channels, height, width, spec.num_classes)
            self._head_of_module[name] = (key, block)
            self._heads_after.setdefault(block, []).append(name)
        init_weights(self)

    @property
    def head_keys(self) -> list[str]:
        """Head keys in output order."""
        return self.spec.head_keys

    @property
    def head_blocks(self) -> list[int]:
        """Block index each head is mounted after, in output order."""
        return self.spec.head_blocks

    def head(self, key: str) -> nn.Module:
        """The head module of a head key such as "A:pool4_fc1"."""
        return self.heads[_module_name(key)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every head: ``[batch, len(head_keys), classes]``."""
        x = self.backbone.stem(x)
        outputs = []
        last = max(self.head_blocks)
        for index, block in enumerate(self.backbone.blocks):
            x = block(x)
            names = self._heads_after.get(index, [])
            if names:
                features = x if index == last else scale_gradient(x, self.head_grad_scale)
                outputs.extend(self._run_heads(names, features))
        return torch.stack(outputs, dim=1)

    def _run_heads(self, names: Sequence[str], features: torch.Tensor) -> list[torch.Tensor]:
        if not self.share_pooling:
            return [self.heads[name](features) for name in names]
        pooled: dict[Any, torch.Tensor] = {}
        logits = []
        for name in names:
            head = self.heads[name]
            if isinstance(head, PoolFCHead):
                if head.pool_key not in pooled:
                    pooled[head.pool_key] = head.pooled(features)
                logits.append(head.classify(pooled[head.pool_key]))
            else:
                logits.append(head(features))
        return logits

    def subnet(self, head_keys: Sequence[str]) -> "EENNSubnet":
        """A design cut from this supernet: the chosen heads only, sharing its weights (see EENNSubnet)."""
        return EENNSubnet(self, head_keys)

    def final_exit(self) -> "EENNSubnet":
        """This supernet cut to its final exit: every head type mounted after the last block (no early exits)."""
        last = max(self.head_blocks)
        return self.subnet([key for key, block in zip(self.head_keys, self.head_blocks) if block == last])


class EENNSubnet(_Tagged):
    """Chosen heads of a supernet, sharing its modules and keeping its head keys (paper letters).

    The backbone runs up to the deepest chosen head. Use it to export or fine-tune one design, or, with
    only the final head, as the static baseline of a trained supernet.
    """

    head_grad_scale: float = 1.0  # as the supernet's: gradient factor from the earlier chosen heads into the backbone

    def __init__(self, supernet: EENN, head_keys: Sequence[str]) -> None:
        super().__init__()
        unknown = [key for key in head_keys if key not in supernet.head_keys]
        if unknown or not head_keys:
            raise ConfigError(
                f"exits: {unknown or 'none chosen'}; choose among the supernet's heads {supernet.head_keys}"
            )
        self.spec = supernet.spec
        self.backbone = supernet.backbone
        chosen = [key for key in supernet.head_keys if key in set(head_keys)]
        block_of = dict(zip(supernet.head_keys, supernet.head_blocks))
        self.heads = nn.ModuleDict({_module_name(key): supernet.heads[_module_name(key)] for key in chosen})
        self._head_of_module = {_module_name(key): (key, block_of[key]) for key in chosen}
        self._heads_after: dict[int, list[str]] = {}
        for key in chosen:
            self._heads_after.setdefault(block_of[key], []).append(_module_name(key))
        self._keys = chosen
        self._blocks = [block_of[key] for key in chosen]

    @property
    def head_keys(self) -> list[str]:
        """Chosen head keys in output (network) order."""
        return list(self._keys)

    @property
    def head_blocks(self) -> list[int]:
        """Block index each chosen head is mounted after."""
        return list(self._blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the chosen heads: ``[batch, len(head_keys), classes]``."""
        x = self.backbone.stem(x)
        outputs: list[torch.Tensor] = []
        last = max(self._blocks)
        for index in range(last + 1):
            x = self.backbone.blocks[index](x)
            names = self._heads_after.get(index, [])
            if names:
                features = x if index == last else scale_gradient(x, self.head_grad_scale)
                outputs.extend(self.heads[name](features) for name in names)
        return torch.stack(outputs, dim=1)


class PlainNet(_Tagged):
    """Backbone + one head after the last block: the static baseline (no early exits)."""

    def __init__(self, spec: EENNSpec, head_type: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        kind = check_head_type(head_type or spec.head_types_at(spec.num_blocks - 1)[0])
        self.backbone = build_backbone(spec.backbone, **spec.backbone_kwargs())
        last = self.backbone.num_blocks - 1
        channels, height, width = self.backbone.block_shapes(spec.input_size)[last]
        self.head_key = head_key(spec.exits[-1][0], kind)
        head = build_head(kind, channels, height, width, spec.num_classes)
        self.heads = nn.ModuleDict({_module_name(self.head_key): head})
        self._head_of_module = {_module_name(self.head_key): (self.head_key, last)}
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, classes]``."""
        return self.heads[_module_name(self.head_key)](self.backbone(x))


def build_eenn(spec: EENNSpec | dict[str, Any] | None = None, **overrides: Any) -> EENN:
    """Build the supernet from a spec (or a dict / keyword overrides of the default spec)."""
    if spec is None or isinstance(spec, dict):
        spec = EENNSpec.parse({**(spec or {}), **overrides})
    elif overrides:
        spec = EENNSpec.parse({**spec.model_dump(), **overrides})
    return EENN(spec)


def build_plain(spec: EENNSpec | dict[str, Any] | None = None, head_type: str | None = None) -> PlainNet:
    """Build the backbone-only + final-head network (static baseline, plain-training benchmark)."""
    if spec is None or isinstance(spec, dict):
        spec = EENNSpec.parse(spec or {})
    return PlainNet(spec, head_type)
