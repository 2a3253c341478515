"""Observations as trainers and loaders handle them: one array, or, for a Dict or Tuple space, a dict of
arrays by leaf path (``{"image": ..., "arm/pos": ...}``; ``expertdata.core.spaces.leaves`` names the paths).

The functions here apply the same step to either form, so code that serves or stores observations needs no
case for composite spaces.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from . import arrays

T = TypeVar("T")
#: An array (numpy, torch, lazy), or a dict of them by leaf path.
Observations = Any


def apply(fn: Callable[[Any], T], obs: Observations) -> T | dict[str, T]:
    """``fn`` applied to the array, or to each leaf's array."""
    return {path: fn(leaf) for path, leaf in obs.items()} if isinstance(obs, dict) else fn(obs)


def leaves(obs: Observations) -> list[Any]:
    """The arrays, in leaf order (one for a plain space)."""
    return list(obs.values()) if isinstance(obs, dict) else [obs]


def n_rows(obs: Observations) -> int:
    """Rows (observations) held."""
    return int(leaves(obs)[0].shape[0])


def row_bytes(obs: Observations) -> int:
    """Bytes in one observation, over every leaf."""
    return sum(arrays.row_bytes(a) for a in leaves(obs))


def concatenate(parts: Sequence[Observations]) -> Observations:
    """Observations of several batches, in order, as one batch."""
    if isinstance(parts[0], dict):
        return {path: np.concatenate([p[path] for p in parts]) for path in parts[0]}
    return np.concatenate(parts)


def flat(obs: Observations) -> np.ndarray:
    """Each observation as one float64 row: every leaf flattened and concatenated in leaf order (statistics
    of composite observations are taken over this row)."""
    return np.concatenate([np.asarray(a).reshape(len(a), int(np.prod(a.shape[1:], dtype=np.int64))).astype(np.float64)
                           for a in leaves(obs)], axis=1)
