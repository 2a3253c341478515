"""Which transitions a consumer sees: ``traj_limitation``, train/validation splits and MPI shards.

Pure functions on the episode index; each returns step indices (int64, in ascending order unless said).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..core.episodes import EpisodeIndex
from ..core.errors import UsageError

SPLITS = ("episodes", "transitions")


def limit(index: EpisodeIndex, traj_limitation: int) -> int:
    """How many episodes ``traj_limitation`` keeps: exactly the first K, or all for -1."""
    n = index.n_episodes
    if traj_limitation == -1:
        return n
    if not 0 < traj_limitation <= n:
        raise UsageError(f"traj_limitation={traj_limitation}: the dataset holds {n} episodes; ask for 1 to {n}, "
                         "or -1 for all")
    return int(traj_limitation)


def _n_train(total: int, train_fraction: float) -> int:
    """Train share of ``total`` units, leaving at least one on each side when there are two or more."""
    return int(np.clip(round(total * train_fraction), 1, total - 1)) if total >= 2 else total


def split(index: EpisodeIndex, n_episodes: int, train_fraction: float, mode: str,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation steps of the first ``n_episodes`` episodes.

    ``episodes`` (the default) puts whole episodes on each side, chosen at random; with a single episode
    it falls back to its first ``train_fraction`` of steps for training and the rest for validation, so
    neither side is empty and they stay apart in time. ``transitions`` is SB2's split: shuffled single
    steps, so an episode lands on both sides.
    """
    if mode not in SPLITS:
        raise UsageError(f"split must be one of {SPLITS}, not {mode!r}")
    if not 0.0 < train_fraction <= 1.0:
        raise UsageError(f"train_fraction must be in (0, 1], not {train_fraction}")
    steps = index.steps(np.arange(n_episodes))
    if train_fraction == 1.0:
        return steps, steps[:0]
    if mode == "transitions" or n_episodes == 1:
        cut = _n_train(len(steps), train_fraction)
        if mode == "transitions":
            steps = rng.permutation(steps)
            return np.sort(steps[:cut]), np.sort(steps[cut:])
        return steps[:cut], steps[cut:]
    order = rng.permutation(n_episodes)
    cut = _n_train(n_episodes, train_fraction)
    return index.steps(np.sort(order[:cut])), index.steps(np.sort(order[cut:]))


def named(index: EpisodeIndex, n_episodes: int, splits: Any, sides: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation steps of the first ``n_episodes`` episodes from the dataset's named splits
    (``metadata["splits"]``: name -> episode numbers; robomimic's masks): ``sides`` names the train split and
    the validation split."""
    known = splits if isinstance(splits, dict) else {}
    missing = [name for name in sides if name not in known]
    if missing:
        have = ", ".join(map(repr, known)) or "none"
        raise UsageError(f"the dataset has no split named {', '.join(map(repr, missing))} (it has {have})")
    return tuple(index.steps(np.asarray(sorted(e for e in known[name] if e < n_episodes), np.int64))
                 for name in sides)


def shard(index: EpisodeIndex, steps: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's disjoint share of ``steps``: whole episodes, balanced by transitions.

    Episodes go, longest first, to the rank with the fewest transitions so far (ties to the lower rank),
    so every rank gets about the same number of batches. With fewer episodes than ranks, steps are shared
    out as contiguous ranges instead.
    """
    if world_size == 1:
        return steps
    if not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is not in 0..{world_size - 1}")
    episode_of = np.searchsorted(index.starts, steps, side="right") - 1
    episodes, counts = np.unique(episode_of, return_counts=True)
    if len(episodes) < world_size:
        return np.array_split(steps, world_size)[rank]
    loads = np.zeros(world_size, dtype=np.int64)
    owner = np.empty(len(episodes), dtype=np.int64)
    for i in np.argsort(-counts, kind="stable"):
        owner[i] = int(np.argmin(loads))
        loads[owner[i]] += counts[i]
    return steps[np.isin(episode_of, episodes[owner == rank])]
