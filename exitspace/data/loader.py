"""Mini-batches from an in-memory dataset, shuffled and augmented deterministically per epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from exitspace.data.augment import cutout, normalize, random_crop, random_flip
from exitspace.data.base import ArrayDataset
from exitspace.data.trivial_augment import trivial_augment
from exitspace.data.views import FixedViews, view_images


class BatchLoader:
    """Yields ``(images float32 [B, C, H, W], labels int64 [B])`` on ``device``.

    The order and augmentation of epoch ``e`` depend only on ``(seed, e)``, so a run resumed at an
    epoch boundary, or within an epoch (``skip``), sees exactly the batches an uninterrupted run would.
    With ``views`` (and ``augment``), each image's crop and flip is one of its fixed views, drawn per
    epoch, instead of a fresh random one; ``epoch_with_targets`` adds that view's soft target ``[B, C]``
    (None without views). Trivial augment and cutout still apply on top.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        shuffle: bool = False,
        augment: bool = False,
        crop_padding: int = 4,
        flip: bool = True,
        cutout_size: int = 0,
        trivial: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
        views: FixedViews | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.images = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
        self.labels = torch.from_numpy(dataset.labels)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.crop_padding, self.flip, self.drop_last = crop_padding, flip, drop_last
        self.cutout_size, self.trivial = cutout_size, trivial
        self.mean, self.std, self.seed, self.channels_last = mean, std, seed, channels_last
        self.device = torch.device(device)  # batches are built on the CPU, then handed over there
        self.views: FixedViews | None = None
        if views is not None:
            self.use_views(views)

    def use_views(self, views: FixedViews) -> None:
        """Crop and flip every image as one of its fixed ``views`` from now on (see the class docstring)."""
        if views.offsets.shape[0] != self.labels.shape[0]:
            raise ValueError(f"views: {views.offsets.shape[0]} images' views for a dataset of {self.labels.shape[0]}")
        self.views = views

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches ``(x, y)`` of one epoch, without its first ``skip`` (drawn all the same, so the rest match)."""
        for x, y, _ in self.epoch_with_targets(epoch, skip):
            yield x, y

    def epoch_with_targets(self, epoch: int = 0, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """As ``epoch``, with each batch's soft targets from the fixed views (None without views): ``(x, y, targets)``."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        n = self.labels.shape[0]
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            images, targets = self.images[index], None
            if self.augment:
                if self.views is not None:
                    pick = torch.randint(0, self.views.per_image, (index.shape[0],), generator=generator)
                    images = view_images(images, self.views.offsets[index, pick], self.crop_padding)
                    targets = self.views.targets[index, pick].float()
                else:
                    images = random_crop(images, self.crop_padding, generator)
                    if self.flip:
                        images = random_flip(images, generator)
                if self.trivial:
                    images = trivial_augment(images, generator)
            x = normalize(images, self.mean, self.std)
            if self.augment and self.cutout_size:
                x = cutout(x, self.cutout_size, generator)
            if i < skip:
                continue
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield (x.to(self.device), self.labels[index].to(self.device),
                   None if targets is None else targets.to(self.device))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)
