"""Confidence measures of exit heads, the one owner of their names. Higher always means "more sure"; all lie
in [0, 1]. A measure is a function of the softmax probabilities ``[..., classes] -> [...]`` registered with
:func:`measure`; adding one is one function here (and its test).

- ``max_softmax``: the largest softmax probability;
- ``entropy``: ``1 - H(p) / log(classes)`` (1 for a one-hot prediction, 0 for the uniform one);
- ``margin``: the gap between the two largest probabilities.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from exitspace.errors import ConfigError
from exitspace.registries import registrar

ConfidenceMeasure = Callable[[np.ndarray], np.ndarray]
MEASURES: dict[str, ConfidenceMeasure] = {}
measure = registrar(MEASURES)
"""``@measure("name")`` registers a confidence measure under the name configs and ``--confidence`` use."""


@measure("max_softmax")
def max_softmax(probs: np.ndarray) -> np.ndarray:
    """The largest probability."""
    return probs.max(axis=-1)


@measure("entropy")
def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """One minus the entropy over its maximum, log(classes)."""
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=-1)
    return 1.0 - entropy / np.log(probs.shape[-1])


@measure("margin")
def margin(probs: np.ndarray) -> np.ndarray:
    """The gap between the two largest probabilities."""
    top2 = np.partition(probs, -2, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def check_confidence(kind: str, where: str = "confidence") -> str:
    """``kind`` if it names a confidence measure; else a one-line error naming ``where``."""
    if kind not in MEASURES:
        raise ConfigError(f"{where}: unknown confidence measure {kind!r}; use one of {list(MEASURES)}")
    return kind


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
    return MEASURES[kind](softmax(np.asarray(logits, dtype=np.float32)))
