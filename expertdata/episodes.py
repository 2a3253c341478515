"""The episode index: each episode's start offset and length, derived once from ``episode_starts``.

Every episode operation (slicing, ``traj_limitation``, splits, shards) is index arithmetic on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
