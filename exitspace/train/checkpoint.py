"""Atomic checkpoint files and the model hash."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from exitspace.errors import CheckpointError
from exitspace.files import atomic_output


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` atomically (see :func:`exitspace.files.atomic_output`)."""
    with atomic_output(path) as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint (``mmap``: tensors stay on disk until touched); one-line CheckpointError if unreadable.

    Only tensors and plain containers are unpickled (``weights_only``): a crafted file (a teacher or an
    exported result someone shared) cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "unsupported GLOBAL" in str(exc):
            raise CheckpointError(f"{path}: holds objects other than tensors and plain values, which are not loaded "
                                  "(they could run code); use a checkpoint written by `exitspace train`") from None
        raise CheckpointError(f"{path}: unreadable checkpoint (UnpicklingError); delete it to restart that phase") from None
    except (OSError, RuntimeError, EOFError, ValueError, AttributeError, TypeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to restart that phase") from None


def state_dict_hash(model: torch.nn.Module) -> str:
    """sha256 over the state dict (sorted names, dtype, shape and bytes of every tensor)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
