"""The episode index is derived from episode_starts; episode operations are arithmetic on it."""
from __future__ import annotations

import numpy as np

from expertdata import EpisodeIndex

from .conftest import make_dataset


def test_index_from_episode_starts():
    index = EpisodeIndex.from_starts(np.array([1, 0, 0, 1, 1, 0], dtype=bool))
    assert index.starts.tolist() == [0, 3, 4]
    assert index.lengths.tolist() == [3, 1, 2]
    assert index.ends.tolist() == [3, 4, 6]
    assert index.step_slice(1, 3) == slice(3, 6)
    assert index.steps(np.array([2, 0])).tolist() == [4, 5, 0, 1, 2]


def test_take_episodes_keeps_exactly_the_first_whole_episodes():
    ds = make_dataset(lengths=(4, 2, 5))
    first_two = ds.take_episodes(2)
    assert first_two.n_transitions == 6 and first_two.n_episodes == 2
    assert np.array_equal(first_two["rewards"][:], ds["rewards"][:6])
    assert np.array_equal(first_two["episode_returns"][:], ds["episode_returns"][:2])
