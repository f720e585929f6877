"""TrivialAugment (Müller & Hutter, 2021, "wide" magnitudes), batched over uint8 images.

Each image gets one operation drawn uniformly from ``OPERATIONS`` and one strength drawn uniformly from
31 bins in [0, 1]; the signed operations (shear, translate, rotate, the four enhancements) also draw a
sign. Every operation runs once per batch on the images that drew it, with per-image parameters, and all
draws come from the caller's generator, so an epoch's augmentation depends only on its seed. Geometric
operations sample nearest pixels and fill with black, like the zero padding of the random crop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

STRENGTH_BINS = 31
MAX_SHEAR = 0.99
MAX_TRANSLATE = 32.0  # pixels, the "wide" range for 32x32 images
MAX_ROTATE = 135.0  # degrees
MAX_ENHANCE = 0.99  # blend factor 1 +- this
MIN_POSTERIZE_BITS = 2


def affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp float ``[N, C, H, W]`` by per-image ``theta [N, 2, 3]`` (output coords -> input coords, both in
    [-1, 1] about the centre); nearest pixels, black outside."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _theta(n: int) -> torch.Tensor:
    return torch.eye(2, 3).repeat(n, 1, 1)


def shear(images: torch.Tensor, amount: torch.Tensor, axis: int) -> torch.Tensor:
    """Shear along x (``axis`` 1: x' = x + amount * y) or y (``axis`` 0), about the image centre."""
    theta = _theta(images.shape[0])
    theta[:, 1 - axis, axis] = amount  # row 0 maps x, row 1 maps y; column 0 is x, column 1 is y
    return affine(images, theta)


def translate(images: torch.Tensor, pixels: torch.Tensor, axis: int) -> torch.Tensor:
    """Shift content by ``pixels`` along x (``axis`` 1, rightwards) or y (``axis`` 0, downwards)."""
    theta = _theta(images.shape[0])
    size = images.shape[3] if axis == 1 else images.shape[2]
    theta[:, 1 - axis, 2] = -2.0 * pixels / size
    return affine(images, theta)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate about the centre by ``degrees`` (counter-clockwise on screen)."""
    radians = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
    return affine(images, theta)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[N, 1, H, W]`` of RGB images (the channel itself for one-channel images)."""
    if images.shape[1] != 3:
        return images.mean(1, keepdim=True)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _blend(degenerate: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``degenerate + factor * (images - degenerate)`` per image, clipped to [0, 255]."""
    return (degenerate + factor.view(-1, 1, 1, 1) * (images - degenerate)).clamp(0.0, 255.0)


def brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black: 0 is black, 1 the image."""
    return _blend(torch.zeros_like(images), images, factor)


def saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's grey version (PIL's ``ImageEnhance.Color``)."""
    return _blend(_gray(images).expand_as(images), images, factor)


def contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level."""
    return _blend(_gray(images).mean((2, 3), keepdim=True).expand_as(images), images, factor)


def sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with a 3x3 smoothed copy (centre weight 5 of 13); border pixels are kept as they are."""
    channels = images.shape[1]
    kernel = torch.ones(3, 3, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smooth = images.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(images, kernel, groups=channels)
    return _blend(smooth, images, factor)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` most significant bits of each 8-bit value."""
    step = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
    return torch.div(images, step, rounding_mode="floor") * step


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert every value at or above ``threshold``."""
    return torch.where(images >= threshold.view(-1, 1, 1, 1), 255.0 - images, images)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's range to [0, 255]; a flat channel stays as it is."""
    low = images.amin((2, 3), keepdim=True)
    high = images.amax((2, 3), keepdim=True)
    scale = torch.where(high > low, 255.0 / (high - low).clamp_min(1.0), torch.ones_like(high))
    offset = torch.where(high > low, low, torch.zeros_like(low))
    return ((images - offset) * scale).clamp(0.0, 255.0)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram-equalize each channel of integer-valued images (PIL's lookup rule: the cumulative count
    before each level over the count outside the highest occupied level, spread on 255 steps)."""
    n, c, h, w = images.shape
    levels = images.reshape(n * c, h * w).round().long().clamp(0, 255)
    counts = torch.zeros(n * c, 256, dtype=torch.long).scatter_add_(1, levels, torch.ones_like(levels))
    top_level = 255 - counts.flip(1).ne(0).long().argmax(1)
    last_count = counts.gather(1, top_level[:, None]).squeeze(1)
    step = (h * w - last_count) // 255
    before = counts.cumsum(1) - counts
    lut = ((before + (step // 2)[:, None]) // step.clamp_min(1)[:, None]).clamp(max=255)
    lut = torch.where((step > 0)[:, None], lut, torch.arange(256).expand_as(lut))
    return lut.gather(1, levels).reshape(n, c, h, w).to(images.dtype)


Operation = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# name -> f(images, strength in [0, 1], sign in {-1, 1})
OPERATIONS: dict[str, Operation] = {
    "identity": lambda x, s, g: x,
    "shear_x": lambda x, s, g: shear(x, g * s * MAX_SHEAR, axis=1),
    "shear_y": lambda x, s, g: shear(x, g * s * MAX_SHEAR, axis=0),
    "translate_x": lambda x, s, g: translate(x, g * s * MAX_TRANSLATE, axis=1),
    "translate_y": lambda x, s, g: translate(x, g * s * MAX_TRANSLATE, axis=0),
    "rotate": lambda x, s, g: rotate(x, g * s * MAX_ROTATE),
    "brightness": lambda x, s, g: brightness(x, 1.0 + g * s * MAX_ENHANCE),
    "saturation": lambda x, s, g: saturation(x, 1.0 + g * s * MAX_ENHANCE),
    "contrast": lambda x, s, g: contrast(x, 1.0 + g * s * MAX_ENHANCE),
    "sharpness": lambda x, s, g: sharpness(x, 1.0 + g * s * MAX_ENHANCE),
    "posterize": lambda x, s, g: posterize(x, (8 - (s * (8 - MIN_POSTERIZE_BITS)).floor())),
    "solarize": lambda x, s, g: solarize(x, 255.0 * (1.0 - s)),
    "autocontrast": lambda x, s, g: autocontrast(x),
    "equalize": lambda x, s, g: equalize(x),
}


def trivial_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random operation at a random strength per image of uint8 ``[N, C, H, W]``; returns uint8."""
    n = images.shape[0]
    choice = torch.randint(0, len(OPERATIONS), (n,), generator=generator)
    strength = torch.randint(0, STRENGTH_BINS, (n,), generator=generator).float() / (STRENGTH_BINS - 1)
    sign = torch.randint(0, 2, (n,), generator=generator).float() * 2.0 - 1.0
    out = images.to(torch.float32)
    for k, (name, operation) in enumerate(OPERATIONS.items()):
        picked = (choice == k).nonzero().squeeze(1)
        if name == "identity" or picked.numel() == 0:
            continue
        out[picked] = operation(out[picked], strength[picked], sign[picked])
    return out.round_().clamp_(0.0, 255.0).to(torch.uint8)
