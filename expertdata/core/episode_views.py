"""Episodes of a dataset at hand: one (``episode``), all of them streamed (``iter_episodes``), and one row per
episode in a table (``episode_table``). Each is index arithmetic on the episode index and reads of the rows it
needs; ``Dataset`` offers them as methods.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from .arrays import BLOCK_BYTES, RowWindow, row_bytes
from .episodes import Episode
from .errors import UsageError
from .field import Field
from .schema import base_field

#: Per-episode values every episode has a name for (where the dataset records them).
FLAGS = ("terminated", "truncated")


def _position(dataset: Any, i: int) -> int:
    n = dataset.n_episodes
    at = int(i) + (n if i < 0 else 0)
    if not 0 <= at < n:
        raise UsageError(f"{dataset.source}: episode {i} is outside its {n:,} episodes (0 to {n - 1}, or -1 to -{n})")
    return at


def step_fields(dataset: Any) -> list[str]:
    """The per-step fields an episode holds: every one but ``episode_starts``."""
    return [name for name in dataset.fields if dataset.field_per(name) == "step" and name != "episode_starts"]


def _per_episode(dataset: Any, episodes: np.ndarray) -> dict[str, Any]:
    """The per-episode values of ``episodes``, each an array over them (``final_obs`` as a dict of leaves where the
    observation is composite), read once."""
    values: dict[str, Any] = {}
    index = dataset.episodes
    if dataset.has_rewards and "episode_returns" in dataset.fields:
        values["return"] = np.asarray(dataset["episode_returns"][episodes], np.float64)
    last = index.ends[episodes] - 1
    for flag in FLAGS:
        if flag in dataset.fields:
            values[flag] = np.asarray(dataset[flag][last], bool)
    leaves = dataset.leaf_fields("final_obs")
    if all(name in dataset.fields for name in leaves.values()):
        finals = {path: np.asarray(dataset[name][episodes]) for path, name in leaves.items()}
        values["final_obs"] = finals[""] if list(finals) == [""] else finals
    for name in dataset.fields:
        known = base_field(name)
        if dataset.field_per(name) == "episode" and (known is None or known.name not in ("episode_returns",
                                                                                           "final_obs")):
            values[name] = np.asarray(dataset[name][episodes])
    digests = dataset.metadata.get("episode_digests")
    if isinstance(digests, list) and len(digests) == index.n_episodes:
        values["digest"] = np.asarray([digests[e] for e in episodes], dtype=str)
    return values


def _one(values: dict[str, Any], k: int) -> dict[str, Any]:
    """The ``k``-th episode's values, numbers as Python scalars."""
    out = {}
    for name, value in values.items():
        item = {p: v[k] for p, v in value.items()} if isinstance(value, dict) else value[k]
        out[name] = item.item() if isinstance(item, np.generic) else item
    return out


def episode(dataset: Any, i: int) -> Episode:
    """Episode ``i`` (negative counts from the end): its per-step fields as views of the dataset's rows, read when
    sliced, and its per-episode values."""
    at = _position(dataset, i)
    index = dataset.episodes
    start, length = int(index.starts[at]), int(index.lengths[at])
    rows = slice(start, start + length)
    steps = {name: Field(RowWindow(dataset.fields[name], rows), f"{dataset.source}: episode {at}: field {name!r}")
             for name in step_fields(dataset)}
    return Episode(at, start, length, steps, _one(_per_episode(dataset, np.asarray([at])), 0))


def iter_episodes(dataset: Any, indices: Sequence[int] | None = None) -> Iterator[Episode]:
    """The episodes (``indices``, or all, in order), streamed: their steps read a block of about
    ``arrays.BLOCK_BYTES`` at a time (consecutive episodes in one read per field), so one block is in memory
    however large the dataset, and each episode's steps are arrays."""
    index = dataset.episodes
    chosen = np.arange(index.n_episodes) if indices is None else np.asarray(
        [_position(dataset, int(i)) for i in indices], np.int64)
    names = step_fields(dataset)
    per_row = max(1, sum(row_bytes(dataset.fields[n]) for n in names))
    budget = max(1, BLOCK_BYTES // per_row)
    values = _per_episode(dataset, chosen)
    k = 0
    while k < len(chosen):
        group = [k]  # consecutive episodes whose rows follow each other, within the budget
        while (group[-1] + 1 < len(chosen) and chosen[group[-1] + 1] == chosen[group[-1]] + 1 and
               index.ends[chosen[group[-1] + 1]] - index.starts[chosen[k]] <= budget):
            group.append(group[-1] + 1)
        begin, end = int(index.starts[chosen[group[0]]]), int(index.ends[chosen[group[-1]]])
        block = {name: dataset[name][begin:end] for name in names}
        for j in group:
            e = int(chosen[j])
            start, stop = int(index.starts[e]) - begin, int(index.ends[e]) - begin
            steps = {name: rows[start:stop] for name, rows in block.items()}
            for rows in steps.values():
                rows.flags.writeable = False
            yield Episode(e, int(index.starts[e]), stop - start, steps, _one(values, j))
        k = group[-1] + 1


def episode_table(dataset: Any) -> Any:
    """One row per episode (a pandas ``DataFrame``): ``episode``, ``start`` (its first row), ``length``, ``return``,
    ``terminated``, ``truncated``, and its per-episode fields (``task``, ``seed``, ``digest``, ...) where the
    dataset records them. ``final_obs`` is left out (an observation, not a number)."""
    try:
        import pandas as pd
    except ImportError:
        raise UsageError('the episode table is a pandas DataFrame: pip install "expertdata[plot]"') from None
    index = dataset.episodes
    values = _per_episode(dataset, np.arange(index.n_episodes))
    values.pop("final_obs", None)
    table = {"episode": np.arange(index.n_episodes), "start": index.starts, "length": index.lengths}
    table["return"] = values.pop("return", np.full(index.n_episodes, np.nan))
    for name, value in values.items():
        if value.ndim == 1:  # a per-episode field of several values a row stays out of the table
            table[name] = value
    return pd.DataFrame(table)
