"""Fixed augmented views: K crop/flip draws per training image, each with a stored soft target.

Distilling from a large teacher on a CPU costs a teacher forward pass per training image and epoch.
With fixed views the teacher predicts each view once, before training, and every epoch shows the
student one of the K stored views per image with the teacher's prediction for exactly that view (the
"fast knowledge distillation" of Shen & Xing, 2021, with crop offsets and flips for regions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exitspace.data.augment import crop_at, flip_where


@dataclass(frozen=True)
class FixedViews:
    """``offsets`` uint8 ``[N, K, 3]`` (crop row and column offset in [0, 2 * padding], flip 0/1) and
    ``targets`` ``[N, K, C]`` (a probability vector per view), for the N images of one dataset in its order."""

    offsets: torch.Tensor
    targets: torch.Tensor

    @property
    def per_image(self) -> int:
        """K, the views stored per image."""
        return int(self.offsets.shape[1])


def draw_views(count: int, per_image: int, padding: int, flip: bool, seed: int) -> torch.Tensor:
    """Seeded offsets ``[count, per_image, 3]`` uint8: uniform crop offsets, a fair coin for the flip (or no flip)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (count, per_image)
    dy = torch.randint(0, 2 * padding + 1, shape, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, shape, generator=generator)
    flips = (torch.rand(shape, generator=generator) < 0.5) if flip else torch.zeros(shape, dtype=torch.bool)
    return torch.stack([dy, dx, flips.long()], dim=-1).to(torch.uint8)


def view_images(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Images ``[B, C, H, W]`` cropped and flipped as ``offsets`` ``[B, 3]`` say."""
    cropped = crop_at(images, padding, offsets[:, 0], offsets[:, 1])
    return flip_where(cropped, offsets[:, 2])
