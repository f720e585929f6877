"""Exit heads, by name: "pool4_fc1", "pool4_fc2" (the paper's) and "gap_fc".

The paper's heads max-pool the feature map down to 4x4 with kernel = stride = H/4, flatten (C*16
features) and apply one linear layer, or two with ReLU6 between (C*16 -> C*8 -> classes). For sizes
not divisible by 4 the kernel is ceil(H/4) with ceil-mode pooling (e.g. 7x7 -> 4x4); a map of 4x4 or
smaller is not pooled.
"""

from __future__ import annotations

import math
from typing import Callable, cast

import torch
from torch import nn

from exitspace.errors import ConfigError


def pooled_size(size: int, target: int = 4) -> tuple[int, int]:
    """(kernel, output size) of the pool that brings ``size`` down to at most ``target``."""
    if size <= target:
        return 1, size
    kernel = math.ceil(size / target)
    return kernel, math.ceil(size / kernel)


class PoolFCHead(nn.Module):
    """Max-pool to <= 4x4, flatten, then one linear layer or two (hidden C*8, ReLU6)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, depth: int) -> None:
        super().__init__()
        (kernel_y, out_y), (kernel_x, out_x) = pooled_size(height), pooled_size(width)
        self.pool = (
            nn.MaxPool2d((kernel_y, kernel_x), (kernel_y, kernel_x), ceil_mode=True)
            if (kernel_y, kernel_x) != (1, 1)
            else None
        )
        self.flatten = nn.Flatten()
        features = channels * out_y * out_x
        if depth == 1:
            self.fc1 = nn.Linear(features, num_classes)
            self.act: nn.ReLU6 | None = None
            self.fc2: nn.Linear | None = None
        else:
            self.fc1 = nn.Linear(features, channels * 8)
            self.act = nn.ReLU6(inplace=True)
            self.fc2 = nn.Linear(channels * 8, num_classes)

    @property
    def pool_key(self) -> tuple[int, ...] | None:
        """Identifies the pooling: heads with equal keys at one block can share one pooled map."""
        return None if self.pool is None else (*self.pool.kernel_size, *self.pool.stride)  # type: ignore[misc]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The head's max-pooled feature map (``x`` itself when it is already 4x4 or smaller)."""
        return x if self.pool is None else self.pool(x)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from the pooled map: flatten, then the linear layer(s)."""
        x = self.fc1(self.flatten(pooled))
        if self.fc2 is not None:
            x = self.fc2(cast(nn.ReLU6, self.act)(x))  # cast: act is set whenever fc2 is
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pooled(x))


class GapFCHead(nn.Module):
    """Global average pool, flatten, one linear layer C -> classes."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(x)))


HeadFactory = Callable[[int, int, int, int], nn.Module]

HEADS: dict[str, HeadFactory] = {
    "pool4_fc1": lambda c, h, w, k: PoolFCHead(c, h, w, k, depth=1),
    "pool4_fc2": lambda c, h, w, k: PoolFCHead(c, h, w, k, depth=2),
    "gap_fc": GapFCHead,
}


def check_head_type(name: str) -> str:
    """``name`` if it is a registered head type, else a one-line ConfigError."""
    if name not in HEADS:
        raise ConfigError(f"head type {name!r}: unknown; use one of {sorted(HEADS)}")
    return name


def build_head(name: str, channels: int, height: int, width: int, num_classes: int) -> nn.Module:
    """Build an exit head for a feature map of ``channels`` x ``height`` x ``width``."""
    return HEADS[check_head_type(name)](channels, height, width, num_classes)
