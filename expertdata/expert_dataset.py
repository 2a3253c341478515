"""``ExpertDataset``, as SB2 users know it: the kept episodes, their split, and loaders over each side."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import mpi, splits
from .arrays import RowWindow, row_bytes
from .dataset import Dataset
from .errors import UsageError
from .loader import DataLoader
from .storage import load

#: Kept observations and actions up to this size are read into memory; larger ones are served out of core.
IN_MEMORY_BYTES = 2 * 2**30


class ExpertDataset:
    """Expert trajectories ready for training, from a file in any format or an in-memory dict.

    :param expert_path: a dataset file (``.npz``, HDF5, Zarr); exactly one of this and ``traj_data``.
    :param traj_data: a dict of arrays with SB2's keys (``obs``, ``actions``, ``rewards``,
        ``episode_starts``, ``episode_returns``, and optional fields).
    :param train_fraction: share of the data used for training, the rest for validation.
    :param batch_size: minibatch size of the train and validation loaders.
    :param traj_limitation: keep exactly the first K whole episodes (-1: all).
    :param randomize: shuffle the batches (a new order every epoch).
    :param verbose: 1 logs the kept episodes' count and returns.
    :param sequential_preprocessing: prepare batches in the calling thread, not in the background.

    Ours, keyword-only:

    :param split: ``episodes`` (default: whole episodes on each side) or ``transitions`` (SB2's: shuffled
        single steps, so an episode lands on both sides). With one episode, ``episodes`` splits its steps
        in time: the first ``train_fraction`` for training, the rest for validation.
    :param seed: seeds the split and every loader; the same seed gives the same batches in every format.
    :param in_memory: read the kept rows into memory (``None``: when they fit in ``IN_MEMORY_BYTES``).
    :param rank, world_size: serve this rank's disjoint shard of whole episodes (default: from MPI when
        launched under ``mpirun``, else everything).
    :param n_workers, backend: workers decoding image files (observations stored as paths).
    """

    def __init__(self, expert_path: str | Path | None = None, traj_data: dict[str, Any] | None = None,
                 train_fraction: float = 0.7, batch_size: int = 64, traj_limitation: int = -1,
                 randomize: bool = True, verbose: int = 1, sequential_preprocessing: bool = False, *,
                 split: str = "episodes", seed: int | None = None, in_memory: bool | None = None,
                 rank: int | None = None, world_size: int | None = None, n_workers: int = 1,
                 backend: str = "threading") -> None:
        if (expert_path is None) == (traj_data is None):
            raise UsageError("pass exactly one of expert_path and traj_data")
        self._args = dict(expert_path=expert_path, traj_data=traj_data, train_fraction=train_fraction,
                          batch_size=batch_size, traj_limitation=traj_limitation, randomize=randomize,
                          sequential_preprocessing=sequential_preprocessing, split=split, seed=seed,
                          in_memory=in_memory, rank=rank, world_size=world_size, n_workers=n_workers,
                          backend=backend)
        self.source: Dataset = (load(expert_path) if expert_path is not None else Dataset.from_arrays(
            {}, None, **{k: v for k, v in traj_data.items()}))
        index = self.source.episodes
        self.num_traj = splits.limit(index, traj_limitation)
        self.num_transition = index.step_slice(0, self.num_traj).stop
        self.returns = np.asarray(self.source["episode_returns"][:self.num_traj], dtype=np.float64)
        self.avg_ret, self.std_ret = float(np.mean(self.returns)), float(np.std(self.returns))
        self.randomize, self.sequential_preprocessing = randomize, sequential_preprocessing
        self.rank, self.world_size = mpi.rank_and_size(rank, world_size)
        split_seed, *self._loader_seeds = np.random.SeedSequence(seed).spawn(4)
        train, val = splits.split(index, self.num_traj, train_fraction, split, np.random.default_rng(split_seed))
        self.train_indices = splits.shard(index, train, self.rank, self.world_size)
        self.val_indices = splits.shard(index, val, self.rank, self.world_size)
        self.indices = splits.shard(index, np.arange(self.num_transition), self.rank, self.world_size)
        self.observations, self.actions = self._arrays(in_memory)
        self._loader_kwargs = dict(shuffle=randomize, start_process=False, sequential=sequential_preprocessing,
                                   image_root=self.source.root, n_workers=n_workers, backend=backend)
        self.train_loader = self._loader(self.train_indices, batch_size, self._loader_seeds[0])
        self.val_loader = self._loader(self.val_indices, batch_size, self._loader_seeds[1]) if len(val) else None
        self.dataloader: DataLoader | None = None
        if verbose >= 1:
            self.log_info()

    def _arrays(self, in_memory: bool | None) -> tuple[Any, Any]:
        rows = slice(0, self.num_transition)
        obs, actions = self.source["obs"], self.source["actions"]
        if in_memory is None:
            in_memory = (row_bytes(obs) + row_bytes(actions)) * self.num_transition <= IN_MEMORY_BYTES
        if in_memory:
            return np.asarray(obs[rows]), np.asarray(actions[rows])
        return RowWindow(obs, rows), RowWindow(actions, rows)

    def _loader(self, indices: np.ndarray, batch_size: int, seed: np.random.SeedSequence) -> DataLoader:
        return DataLoader(indices, self.observations, self.actions, batch_size, seed=seed, **self._loader_kwargs)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.observations, np.ndarray)

    def init_dataloader(self, batch_size: int) -> None:
        """Prepare ``dataloader``, over every kept transition (of this rank), as GAIL uses it."""
        if self.dataloader is not None:
            self.dataloader.close()
        self.dataloader = self._loader(self.indices, batch_size, self._loader_seeds[2])

    def get_next_batch(self, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The next ``(observations, actions)`` minibatch of ``split``: ``None`` (``dataloader``), ``train``
        or ``val``."""
        loaders = {None: self.dataloader, "train": self.train_loader, "val": self.val_loader}
        if split not in loaders:
            raise UsageError(f"split must be None, 'train' or 'val', not {split!r}")
        loader = loaders[split]
        if loader is None:
            raise UsageError("call init_dataloader(batch_size) first" if split is None else
                             "there is no validation split (train_fraction=1.0)")
        try:
            return next(loader)
        except StopIteration:
            return next(iter(loader))

    def log_info(self) -> None:
        """Print the kept episodes' count and returns (SB2's lines)."""
        print(f"Total trajectories: {self.num_traj}")
        print(f"Total transitions: {self.num_transition}")
        print(f"Average returns: {self.avg_ret}")
        print(f"Std for returns: {self.std_ret}")

    def kept(self) -> Dataset:
        """The kept episodes as a dataset (lazy where the source is)."""
        return self.source.take_episodes(self.num_traj)

    def to_pandas(self) -> Any:
        """One row per kept episode: ``episode``, ``start``, ``length``, ``return``."""
        from .plotting import episode_table

        return episode_table(self.kept())

    def plot(self, out: str | Path | None = None) -> Any:
        """SB2's plot, extended (returns, lengths, actions, observation ranges): written to ``out`` (PNG),
        or returned as a matplotlib figure."""
        from .plotting import figure, plot

        return plot([self.kept()], out) if out is not None else figure([self.kept()])

    def torch_dataset(self, split: str = "train", batch_size: int | None = None) -> Any:
        """A ``torch.utils.data.IterableDataset`` of this split's batches, for torch's own loop."""
        from .torch_data import ExpertIterableDataset

        return ExpertIterableDataset(self, split, batch_size)

    def split_indices(self, split: str) -> np.ndarray:
        return {"train": self.train_indices, "val": self.val_indices, "all": self.indices}[split]

    def close(self) -> None:
        """Stop the loaders' threads and close the file."""
        for loader in (self.train_loader, self.val_loader, self.dataloader):
            if loader is not None:
                loader.close()
        self.source.close()

    def prepare_pickling(self) -> None:
        """Stop the loaders' threads (SB2 needed this before pickling; pickling works without it now)."""
        for loader in (self.train_loader, self.val_loader, self.dataloader):
            if loader is not None:
                loader.close()

    def __getstate__(self) -> dict[str, Any]:
        return self._args

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state, verbose=0)
