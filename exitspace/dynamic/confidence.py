"""Confidence measures of exit heads, from logits. Higher always means "more sure"; all lie in [0, 1].

- ``max_softmax``: the largest softmax probability;
- ``entropy``: ``1 - H(p) / log(classes)`` (1 for a one-hot prediction, 0 for the uniform one);
- ``margin``: the gap between the two largest probabilities.
"""

from __future__ import annotations

import numpy as np

from exitspace.errors import ConfigError

CONFIDENCES: tuple[str, ...] = ("max_softmax", "entropy", "margin")


def check_confidence(kind: str) -> None:
    """One-line error for an unknown confidence measure."""
    if kind not in CONFIDENCES:
        raise ConfigError(f"policy: unknown confidence {kind!r}; use one of {list(CONFIDENCES)}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float32."""
    shifted = np.asarray(logits, dtype=np.float32)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def confidence(logits: np.ndarray, kind: str = "max_softmax") -> np.ndarray:
    """Confidence of every sample at every head: logits [..., classes] -> [...]."""
    check_confidence(kind)
    if logits.shape[-1] < 2:
        raise ConfigError(f"logits: need at least 2 classes for a confidence (got shape {logits.shape})")
    probs = softmax(np.asarray(logits, dtype=np.float32))
    if kind == "max_softmax":
        return probs.max(axis=-1)
    if kind == "margin":
        top2 = np.partition(probs, -2, axis=-1)[..., -2:]
        return top2[..., 1] - top2[..., 0]
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=-1)
    return 1.0 - entropy / np.log(probs.shape[-1])
