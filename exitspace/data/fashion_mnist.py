"""Fashion-MNIST from its four IDX files (gzip-compressed or raw)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from exitspace.data.base import ArrayDataset
from exitspace.errors import DataError

FASHION_MNIST_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
#: Where Debian's dataset-fashion-mnist package puts the files (tried when no path is given).
DEBIAN_PATH = Path("/usr/share/dataset-fashion-mnist")
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (magic 0x0000080N, N dims, big-endian sizes)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}); replace the file") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX file; replace the file")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()}); replace the file")
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: {len(raw) - header} data bytes, header says {int(np.prod(shape))}; the file is truncated, replace it")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root / stem}[.gz]: not found; set data.path to the folder with the four Fashion-MNIST IDX files")


def load_fashion_mnist(path: Path | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) with images ``[N, 28, 28, 1]``."""
    root = Path(path) if path is not None else DEBIAN_PATH
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; set data.path to the Fashion-MNIST IDX folder (apt install dataset-fashion-mnist)")
    arrays = {key: read_idx(_find(root, stem)) for key, stem in _FILES.items()}
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{root}: {split} IDX files have shapes {images.shape} / {labels.shape}; expected [N,H,W] and [N]")
        out.append(ArrayDataset(images[..., None].copy(), labels.astype(np.int64), list(FASHION_MNIST_CLASSES), f"fashion_mnist/{split}"))
    return out[0], out[1]
