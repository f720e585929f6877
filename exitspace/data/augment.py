"""Batched augmentation and normalisation as plain tensor ops (no torchvision)."""

from __future__ import annotations

import torch


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` by ``padding`` px and take one random HxW crop per image (one gather)."""
    if padding <= 0:
        return images
    n = images.shape[0]
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    return crop_at(images, padding, dy, dx)


def crop_at(images: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` by ``padding`` px and crop image i at offset (``dy[i]``, ``dx[i]``), each in [0, 2 * padding]."""
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = (dy.long()[:, None] + torch.arange(h))[:, :, None]  # [N, H, 1]
    cols = (dx.long()[:, None] + torch.arange(w))[:, None, :]  # [N, 1, W]
    batch = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [N, C, H, W]


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image horizontally with probability ``p``."""
    return flip_where(images, torch.rand(images.shape[0], generator=generator) < p)


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror image i horizontally where ``flip[i]`` is true."""
    return torch.where(flip.bool()[:, None, None, None], images.flip(3), images)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image at a uniformly random centre, clipped at the borders.

    Meant for normalised float images, where zero is the data mean (DeVries & Taylor, 2017).
    """
    if size <= 0:
        return images
    n, _, h, w = images.shape
    cy = torch.randint(0, h, (n, 1), generator=generator)
    cx = torch.randint(0, w, (n, 1), generator=generator)
    low = size // 2
    in_rows = (torch.arange(h) >= cy - low) & (torch.arange(h) < cy - low + size)  # [N, H]
    in_cols = (torch.arange(w) >= cx - low) & (torch.arange(w) < cx - low + size)  # [N, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [N, H, W]
    return images * keep[:, None].to(images.dtype)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> float32, scaled to [0, 1], minus per-channel mean, over std."""
    x = images.to(torch.float32).div_(255.0)
    return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def channel_stats(images_nhwc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std in [0, 1] units of uint8 ``[N, H, W, C]`` images (float64 accumulation)."""
    flat = images_nhwc.reshape(-1, images_nhwc.shape[-1]).to(torch.float64) / 255.0
    return flat.mean(0).to(torch.float32), flat.std(0).clamp_min(1e-6).to(torch.float32)
