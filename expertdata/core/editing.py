"""New datasets from others: the episodes of one that meet criteria (``choose``; ``Dataset.take`` takes them) and
several one after another (``merged``). Both are lazy (nothing is read until the result is sliced or saved) and
leave their sources alone; ``expertdata.io.storage.select`` and ``merge`` write them, recording the parents' digests.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

import numpy as np

from . import spaces
from .arrays import Concatenated
from .dataset import Dataset
from .errors import UsageError
from .schema import DESCRIPTIVE_KEYS, shown

_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


#: Episode numbers a selection may name before the dataset's count is known.
MAX_CHOSEN = 10**7


def parse_episodes(text: str, n_episodes: int | None = None) -> np.ndarray:
    """Episode numbers from ``"0-9,20,25-30"`` (inclusive ranges), each within the dataset's ``n_episodes`` where
    it is known (the reader checks them otherwise)."""
    chosen: list[np.ndarray] = []
    limit = MAX_CHOSEN if n_episodes is None else n_episodes
    for part in text.split(","):
        match = _RANGE.fullmatch(part)
        if match is None:
            raise UsageError(f"episodes: {part.strip()!r} is not a number or a range such as 3-7")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if first > last or last >= limit:
            raise UsageError(f"episodes: {part.strip()} is outside the dataset's episodes 0-{limit - 1}")
        chosen.append(np.arange(first, last + 1, dtype=np.int64))
    return np.unique(np.concatenate(chosen))


def choose(dataset: Dataset, episodes: str | None = None, min_return: float | None = None,
           max_return: float | None = None, min_length: int | None = None, max_length: int | None = None,
           split: str | None = None) -> np.ndarray:
    """The episode numbers that meet every criterion given (all episodes where none is)."""
    index = dataset.episodes
    keep = np.ones(index.n_episodes, bool)
    if episodes is not None:
        keep &= np.isin(np.arange(index.n_episodes), parse_episodes(episodes, index.n_episodes))
    if min_return is not None or max_return is not None:
        if not dataset.has_rewards:
            raise UsageError(f"{dataset.source} has no rewards, so its episodes have no returns to select by")
        returns = np.asarray(dataset["episode_returns"][:], np.float64)
        keep &= (returns >= (-np.inf if min_return is None else min_return)) & (
            returns <= (np.inf if max_return is None else max_return))
    keep &= (index.lengths >= (min_length or 0)) & (index.lengths <= (max_length or np.iinfo(np.int64).max))
    if split is not None:
        named = dataset.metadata.get("splits") or {}
        if split not in named:
            raise UsageError(f"{dataset.source} has no split named {split!r} (it has "
                             f"{', '.join(map(repr, named)) or 'none'})")
        keep &= np.isin(np.arange(index.n_episodes), named[split])
    return np.flatnonzero(keep)


def merged(datasets: Sequence[Dataset]) -> Dataset:
    """The datasets' episodes one after another, lazily. Their spaces, fields (names, dtypes, row shapes) and
    descriptive metadata other than named splits must agree; a mismatch is a one-line ``UsageError``."""
    first = datasets[0]
    for other in datasets[1:]:
        for key in ("observation_space", "action_space"):
            if not spaces.same(first.metadata.get(key), other.metadata.get(key)):
                raise UsageError(f"{key.replace('_', ' ')}s differ: {first.source} has "
                                 f"{_short(first.metadata.get(key))}, {other.source} has "
                                 f"{_short(other.metadata.get(key))}")
        forms = {name: (np.dtype(a.dtype), tuple(a.shape[1:])) for name, a in first.fields.items()}
        theirs = {name: (np.dtype(a.dtype), tuple(a.shape[1:])) for name, a in other.fields.items()}
        for name in sorted(set(forms) | set(theirs)):
            if name not in forms or name not in theirs:
                holder, other_one = (first, other) if name in forms else (other, first)
                raise UsageError(f"field {shown(name)} is in {holder.source} but not in {other_one.source}")
            if forms[name] != theirs[name]:
                raise UsageError(f"field {shown(name)} differs: dtype and row shape {forms[name]} in {first.source}, "
                                 f"{theirs[name]} in {other.source}")
        for key in DESCRIPTIVE_KEYS:
            if key not in ("splits", "observation_space", "action_space") and \
                    first.metadata.get(key) != other.metadata.get(key):
                raise UsageError(f"metadata {key!r} differs: {first.source} has {_short(first.metadata.get(key))}, "
                                 f"{other.source} has {_short(other.metadata.get(key))}")
    fields = {name: Concatenated([d.fields[name] for d in datasets], array.dtype, tuple(array.shape[1:]))
              for name, array in first.fields.items()}
    metadata = {k: v for k, v in first.metadata.items() if k in DESCRIPTIVE_KEYS and k != "splits"}
    splits: dict[str, list[int]] = {}
    offset = 0
    for d in datasets:
        for name, episodes in (d.metadata.get("splits") or {}).items():
            splits.setdefault(name, []).extend(offset + e for e in episodes)
        offset += d.n_episodes
    if splits:
        metadata["splits"] = splits
    return Dataset(fields, metadata, first.root, " + ".join(d.source for d in datasets),
                   inputs=tuple(i for d in datasets for i in d.inputs), origin=(merged, (list(datasets),), {}))


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
