"""What a trainer may ask of a dataset, and all it may ask: ``TrainingData``.

Every trainer (BC, GAIL, the SB3 and torch adapters, third-party plugins) uses this interface and nothing
else, so any dataset that implements it trains, whatever its format or size. ``ExpertDataset``
implements it, in memory and out of core.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

Batch = tuple[Any, Any]


class Batches(Protocol):
    """Minibatches ``(obs, actions)`` from ``TrainingData.batches``: iterate, and ``close()`` when done."""

    batch_size: int

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def __len__(self) -> int:
        """Minibatches per epoch."""

    def close(self) -> None: ...

#: The sides of a dataset a trainer can ask for: the training split, the validation split, or every
#: kept transition (of this rank).
SPLITS = ("train", "val", "all")


@runtime_checkable
class TrainingData(Protocol):
    """Expert transitions as a trainer sees them.

    Observations and actions come as the dataset stores their rows: images as uint8 (N, H, W, C), a
    Discrete value as (N, 1) integers, image paths already decoded.
    """

    #: A display name for messages (the file's path, or ``<memory>``).
    name: str
    #: The episodes kept (SB2's ``num_traj``: after ``traj_limitation``), every rank's.
    num_traj: int

    @property
    def observation_space(self) -> Any:
        """The declared observation space (a gymnasium space), or ``None`` when the file declares none."""

    @property
    def action_space(self) -> Any:
        """The declared action space (a gymnasium space), or ``None``."""

    def fitting_spaces(self, observation_space: Any = None, action_space: Any = None,
                       against: str = "the env") -> tuple[Any, Any]:
        """The spaces to train with: ``against``'s spaces (an env's, a policy's) when given, after checking
        that they equal the declared ones, or, for a file that declares none, that the rows' shapes and
        dtypes fit them; else the declared spaces. A mismatch is a one-line ``UsageError`` naming both."""

    def check(self) -> None:
        """Refuse, in one line, a dataset that breaks the format's rules (naming the rule ids) or holds
        no transition to train on."""

    def split_size(self, split: str) -> int:
        """Transitions in ``split`` (``train``, ``val`` or ``all``), of this rank."""

    def observation_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std of the kept observations (float64, the row's shape flattened)."""

    def batches(self, split: str, batch_size: int | None = None, *, seed: Any = None, infinite: bool = True,
                shuffle: bool = True, to_torch: bool = False,
                part: tuple[int, int] | None = None) -> Batches:
        """Minibatches ``(obs, actions)`` of ``split`` (of the dataset's own batch size unless given): endless
        (a new order every epoch) or one epoch. ``part=(k, n)`` serves the k-th of n disjoint shares (torch's
        loader workers)."""

    def window_batches(self, split: str, length: int, batch_size: int | None = None, *, pad_before: int = 0,
                       pad_after: int = 0, fields: Any = None, seed: Any = None, infinite: bool = True,
                       shuffle: bool = True, to_torch: bool = False, part: tuple[int, int] | None = None) -> Any:
        """Minibatches of ``split``'s windows of ``length`` rows (diffusion_policy's ``SequenceSampler`` rule, edge
        padded by ``pad_before`` and ``pad_after``), each a dict of (batch, length, ...) arrays by field (the
        observation's leaves and the actions unless ``fields`` says), this rank's share, as ``batches``."""

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """``n`` random kept transitions of this rank, drawn with ``rng``."""

    def terminal_episodes(self, time_limit: int | None = None) -> int:
        """How many kept episodes (every rank's) end in a terminal state, from the ``terminated`` flags where
        the dataset has them. A dataset without them (SB2's files) is read as the env says: an episode
        shorter than ``time_limit`` (the env's, when it has one) ended in a terminal state, one of exactly
        ``time_limit`` steps was cut by it; without either, none is counted."""
