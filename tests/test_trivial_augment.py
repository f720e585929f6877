"""TrivialAugment: each operation does what it names; the batch draw is seeded and per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from exitspace.data import BatchLoader, make_synthetic
from exitspace.data.trivial_augment import (
    OPERATIONS, Operation, autocontrast, brightness, contrast, equalize, posterize, rotate, saturation, sharpness,
    shear, solarize, translate, trivial_augment,
)


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Float images with integer values in [0, 255], ``[n, 3, 32, 32]``."""
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed)).float()


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8))


def _from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()


def test_translate_moves_content_and_fills_black() -> None:
    x = _images(2)
    right = translate(x, torch.tensor([3.0, 3.0]), axis=1)
    assert torch.equal(right[..., 3:], x[..., :-3]) and right[..., :3].eq(0).all()
    up = translate(x, torch.tensor([-5.0, -5.0]), axis=0)
    assert torch.equal(up[:, :, :-5], x[:, :, 5:]) and up[:, :, -5:].eq(0).all()


def test_rotate_quarter_turn_is_rot90_and_zero_is_identity() -> None:
    x = _images(2)
    assert torch.equal(rotate(x, torch.tensor([90.0, 90.0])), torch.rot90(x, 1, (2, 3)))
    assert torch.equal(rotate(x, torch.zeros(2)), x)


def test_shear_x_moves_pixels_within_rows_and_shear_y_within_columns() -> None:
    rows = torch.arange(32.0).view(1, 1, 32, 1).expand(2, 3, 32, 32) + 1  # value = row index + 1
    cols = rows.transpose(2, 3)  # value = column index + 1
    amount = torch.tensor([0.5, -0.7])
    along_x = shear(rows, amount, axis=1)
    assert not torch.equal(along_x, rows) and (along_x.eq(0) | along_x.eq(rows)).all()
    along_y = shear(cols, amount, axis=0)
    assert not torch.equal(along_y, cols) and (along_y.eq(0) | along_y.eq(cols)).all()
    assert torch.equal(shear(rows, torch.zeros(2), axis=1), rows)


def test_enhancements_match_pil_within_rounding() -> None:
    x = _images(3)
    factors = torch.tensor([0.3, 1.0, 1.7])
    for ours, theirs in ((brightness, ImageEnhance.Brightness), (saturation, ImageEnhance.Color),
                         (contrast, ImageEnhance.Contrast), (sharpness, ImageEnhance.Sharpness)):
        got = ours(x, factors).round()
        for i, f in enumerate(factors.tolist()):
            want = _from_pil(theirs(_pil(x[i])).enhance(f))
            assert (got[i] - want).abs().max() <= 2, (ours.__name__, f)


def test_enhancement_extremes() -> None:
    x = _images(2)
    zero = torch.zeros(2)
    assert brightness(x, zero).eq(0).all()
    grey = saturation(x, zero)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    flat = contrast(x, zero)
    assert torch.allclose(flat, flat[:, :1, :1, :1].expand_as(flat))
    assert torch.allclose(sharpness(x, torch.ones(2)), x)


def test_posterize_solarize_autocontrast() -> None:
    x = _images(2)
    assert posterize(x, torch.tensor([2.0, 8.0]))[0].remainder(64).eq(0).all()
    assert torch.equal(posterize(x, torch.tensor([2.0, 8.0]))[1], x[1])
    sol = solarize(x, torch.tensor([128.0, 256.0]))
    assert torch.equal(sol[0], torch.where(x[0] >= 128, 255 - x[0], x[0])) and torch.equal(sol[1], x[1])
    dull = x * 0.5 + 40
    stretched = autocontrast(dull)
    assert stretched.amin((2, 3)).eq(0).all() and stretched.amax((2, 3)).eq(255).all()
    assert torch.equal(autocontrast(torch.full((1, 3, 8, 8), 7.0)), torch.full((1, 3, 8, 8), 7.0))


def test_equalize_matches_pil_exactly() -> None:
    skewed = (torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)) ** 3 * 180).round()
    skewed[2] = 9.0  # one flat image: left as it is
    got = equalize(skewed)
    for i in range(3):
        assert torch.equal(got[i], _from_pil(ImageOps.equalize(_pil(skewed[i]))))


def test_batch_draw_is_seeded_per_image_and_uses_every_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _images(512).to(torch.uint8)
    a = trivial_augment(x, torch.Generator().manual_seed(5))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, trivial_augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, trivial_augment(x, torch.Generator().manual_seed(6)))
    unchanged = (a == x).flatten(1).all(1).float().mean().item()
    assert 0.5 / len(OPERATIONS) < unchanged < 0.35  # identity, zero strengths and a few no-ops
    calls: dict[str, int] = {}

    def counted(name: str, operation: Operation) -> Operation:
        def wrapper(images: torch.Tensor, strength: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
            calls[name] = calls.get(name, 0) + images.shape[0]
            return operation(images, strength, sign)
        return wrapper

    for name, operation in list(OPERATIONS.items()):
        monkeypatch.setitem(OPERATIONS, name, counted(name, operation))
    assert torch.equal(trivial_augment(x, torch.Generator().manual_seed(5)), a)
    assert set(calls) == set(OPERATIONS) - {"identity"}  # identity is skipped, not called
    assert all(10 < count < 70 for count in calls.values())  # about 512 / 14 images each


def test_loader_applies_it_to_training_batches_after_the_same_crops() -> None:
    train, _ = make_synthetic(128, 16, 10, 16, seed=0)
    mean, std = torch.zeros(3), torch.ones(3)
    plain = BatchLoader(train, 64, mean, std, shuffle=True, augment=True, seed=3)
    trivial = BatchLoader(train, 64, mean, std, shuffle=True, augment=True, trivial=True, seed=3)
    (x_plain, y_plain), (x_ta, y_ta) = next(iter(plain)), next(iter(trivial))
    assert torch.equal(y_plain, y_ta) and not torch.equal(x_plain, x_ta)
    evaluation = BatchLoader(train, 64, mean, std, trivial=True)
    assert torch.equal(next(iter(evaluation))[0], next(iter(BatchLoader(train, 64, mean, std)))[0])
