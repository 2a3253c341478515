"""What differs between two datasets, in any formats: their content, episode by episode, and metadata.

Episodes are matched by their per-episode digests (``expertdata.core.digest.EpisodeDigester``), so an episode that
moved is not a change; an unmatched episode at the same position in both is a change, whose fields are
compared row by row (the largest difference of numeric ones); the rest are only in one of them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.dataset import Dataset
from ..core.digest import digests
from ..core.schema import DESCRIPTIVE_KEYS

#: Changed episodes whose fields are compared row by row; past it, changes are only counted.
DETAILED = 20


@dataclass(frozen=True)
class Change:
    """Episode ``episode`` holds other rows in the two datasets: per field, the largest absolute difference
    (``None`` where it is not numeric, or its rows differ in shape or count, or the field is in one only)."""

    episode: int
    fields: dict[str, float | None]


@dataclass(frozen=True)
class Difference:
    """The outcome of ``diff``: ``identical`` content, else the episodes and metadata that differ."""

    digests: tuple[str, str]
    episodes: tuple[int, int]
    only_a: list[int] = field(default_factory=list)
    only_b: list[int] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    n_changed: int = 0
    moved: int = 0
    metadata: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.digests[0] == self.digests[1]

    def to_json(self) -> dict[str, Any]:
        return {"identical": self.identical, "digests": list(self.digests), "episodes": list(self.episodes),
                "only_a": self.only_a, "only_b": self.only_b, "changed": self.n_changed, "moved": self.moved,
                "changes": [{"episode": c.episode, "fields": c.fields} for c in self.changed],
                "metadata": {k: {"a": a, "b": b} for k, (a, b) in self.metadata.items()}}


def _rows(dataset: Dataset, name: str, episode: int) -> np.ndarray:
    index = dataset.episodes
    if dataset.field_per(name) == "episode":
        return np.asarray(dataset[name][episode:episode + 1])
    start = int(index.starts[episode])
    return np.asarray(dataset[name][start:start + int(index.lengths[episode])])


def _largest(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape != b.shape or a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        return None
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _fields_that_differ(a: Dataset, b: Dataset, episode: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in sorted(set(a.fields) | set(b.fields)):
        if name not in a.fields or name not in b.fields:
            out[name] = None
            continue
        rows_a, rows_b = _rows(a, name, episode), _rows(b, name, episode)
        if rows_a.dtype != rows_b.dtype or rows_a.shape != rows_b.shape or not np.array_equal(rows_a, rows_b):
            out[name] = _largest(rows_a, rows_b)
    return out


def diff(a: Dataset, b: Dataset) -> Difference:
    """Compare two datasets (one pass over each, and row by row over the first ``DETAILED`` changed episodes)."""
    (content_a, episodes_a), (content_b, episodes_b) = digests(a, None), digests(b, None)
    metadata = {k: (a.metadata.get(k), b.metadata.get(k)) for k in DESCRIPTIVE_KEYS
                if a.metadata.get(k) != b.metadata.get(k)}
    result = Difference((content_a, content_b), (len(episodes_a), len(episodes_b)), metadata=metadata)
    if result.identical:
        return result
    pool: dict[str, list[int]] = defaultdict(list)
    for e, d in enumerate(episodes_b):
        pool[d].append(e)
    unmatched_a, matched_b, moved = [], set(), 0
    for e, d in enumerate(episodes_a):
        if pool[d]:
            partner = pool[d].pop(0)
            matched_b.add(partner)
            moved += partner != e
        else:
            unmatched_a.append(e)
    unmatched_b = [e for e in range(len(episodes_b)) if e not in matched_b]
    both = sorted(set(unmatched_a) & set(unmatched_b))
    changed = [Change(e, _fields_that_differ(a, b, e)) for e in both[:DETAILED]]
    return Difference((content_a, content_b), result.episodes, [e for e in unmatched_a if e not in both],
                      [e for e in unmatched_b if e not in both], changed, len(both), moved, metadata)
