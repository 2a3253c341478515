"""The episode index: each episode's start offset and length, derived once from ``episode_starts``.

Every episode operation (slicing, ``traj_limitation``, splits, shards) is index arithmetic on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .arrays import iter_blocks


@dataclass(frozen=True)
class EpisodeIndex:
    """Start offsets and lengths of the episodes of a dataset of ``n_transitions`` steps."""

    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_starts(cls, episode_starts: np.ndarray) -> "EpisodeIndex":
        """Index the episodes of a boolean ``episode_starts`` array (steps before the first start are
        ignored here; validation reports them)."""
        flags = np.asarray(episode_starts, dtype=bool)
        starts = np.flatnonzero(flags)
        ends = np.append(starts[1:], flags.size)
        return cls(starts.astype(np.int64), (ends - starts).astype(np.int64))

    @classmethod
    def read(cls, episode_starts: Any) -> "EpisodeIndex":
        """Index a stored ``episode_starts`` array block by block: memory follows the number of episodes,
        not of steps."""
        starts, begin = [], 0
        for block in iter_blocks(episode_starts, label="field 'episode_starts'"):
            starts.append(np.flatnonzero(block) + begin)
            begin += len(block)
        found = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
        return cls(found, np.diff(np.append(found, begin)).astype(np.int64))

    @property
    def n_episodes(self) -> int:
        return int(self.starts.size)

    @property
    def ends(self) -> np.ndarray:
        """One past the last step of each episode."""
        return self.starts + self.lengths

    def step_slice(self, first: int, stop: int) -> slice:
        """The steps of episodes ``first`` to ``stop - 1``, which are contiguous."""
        if stop <= first:
            return slice(0, 0)
        return slice(int(self.starts[first]), int(self.ends[stop - 1]))

    def steps(self, episodes: np.ndarray) -> np.ndarray:
        """Step indices of the given episodes, in the given order, each episode's steps in order."""
        episodes = np.asarray(episodes, dtype=np.int64)
        lengths = self.lengths[episodes]
        offsets = np.repeat(self.starts[episodes] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return offsets + np.arange(int(lengths.sum()), dtype=np.int64)


@dataclass(frozen=True)
class Episode:
    """One episode of a dataset: its per-step fields (``steps``: views of the dataset's rows, read when sliced, or
    arrays where the episode was read whole), and its per-episode values (``values``: ``return``, ``terminated``,
    ``truncated``, ``final_obs``, and the dataset's per-episode fields, such as ``task``, ``seed`` or ``digest``,
    where it records them). ``episode["obs"]`` reads either kind by name.

    :param index: the episode's number in its dataset.
    :param start: its first row.
    """

    index: int
    start: int
    length: int
    steps: dict[str, Any]
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        if name in self.steps:
            return self.steps[name]
        if name in self.values:
            return self.values[name]
        raise KeyError(f"episode {self.index} has no {name!r}; it has {', '.join([*self.steps, *self.values])}")

    def __contains__(self, name: object) -> bool:
        return name in self.steps or name in self.values

    def __len__(self) -> int:
        return self.length

    @property
    def episode_return(self) -> float | None:
        """The sum of its rewards (``None`` for demonstrations without rewards)."""
        return self.values.get("return")

    @property
    def terminated(self) -> bool | None:
        """Whether it ended in a terminal state (``None`` where the dataset records no flags)."""
        return self.values.get("terminated")

    @property
    def truncated(self) -> bool | None:
        return self.values.get("truncated")

    @property
    def final_obs(self) -> Any:
        """The observation after its last step (``None`` where the dataset records none)."""
        return self.values.get("final_obs")

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.values.items() if k != "final_obs" and np.ndim(v) == 0}
        return f"<Episode {self.index}: {self.length} steps from row {self.start}, {shown}>"


def renumbered_splits(splits: dict[str, list[int]], episodes: Sequence[int]) -> dict[str, list[int]]:
    """Named splits of a dataset, as they fall on the ``episodes`` taken from it (renumbered from 0)."""
    renumber = {int(e): i for i, e in enumerate(episodes)}
    return {name: [renumber[e] for e in members if e in renumber] for name, members in splits.items()}
