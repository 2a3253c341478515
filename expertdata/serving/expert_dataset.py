"""``ExpertDataset``, as SB2 users know it: the kept episodes, their split, and loaders over each side;
and the interface every trainer uses (``expertdata.serving.training.TrainingData``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..core import images, observations, spaces
from ..core.arrays import RowWindow, iter_blocks, row_bytes
from ..core.dataset import Dataset
from ..core.errors import InvalidDatasetError, UsageError
from ..core.windows import Windows
from ..io import formats, remote
from ..io.checking import validate
from ..io.storage import load
from . import mpi, splits
from .loader import DataLoader
from .training import SPLITS

#: Kept observations and actions up to this size are read into memory; larger ones are served out of core.
IN_MEMORY_BYTES = 2 * 2**30
#: Out of core, ``sample`` draws from a pool of about this many bytes of rows read in random blocks, and
#: renews the pool once it has drawn as many rows as it holds.
SAMPLE_POOL_BYTES = 64 * 2**20


def _pushed(path: str | Path, episodes: Any, traj_limitation: int) -> Any:
    """The episodes to read from ``path``: those asked for; or, where the format reads episodes alone, the first
    ``traj_limitation`` (so a partial download's first complete episodes are read without the rest)."""
    if episodes is not None:
        return list(episodes)
    if traj_limitation not in (-1, None) and traj_limitation > 0 and not remote.is_url(path) and \
            formats.selective(path):
        return list(range(int(traj_limitation)))
    return None


class WindowBatches:
    """Minibatches of windows (``ExpertDataset.window_batches``): iterate, ``len`` per epoch, ``close`` when done.

    Rows held in memory are gathered batch by batch. Stored ones are read a pool at a time: the windows of about
    ``SAMPLE_POOL_BYTES`` of consecutive rows, read once per field, served shuffled among themselves, the pools in a
    new random order every epoch. Every window is served once an epoch, and reads stay sequential.
    """

    def __init__(self, windows: Windows, items: np.ndarray, batch_size: int, seed: Any, infinite: bool,
                 shuffle: bool, to_torch: bool) -> None:
        if not len(items):
            raise UsageError("no window fits this split: its episodes are shorter than a window (pad them: pad_before, "
                             "pad_after)")
        self.windows, self.items, self.batch_size = windows, np.asarray(items, np.int64), int(batch_size)
        self._rng, self._infinite, self._shuffle, self._torch = np.random.default_rng(seed), infinite, shuffle, to_torch
        rows = windows.rows(self.items)
        low = rows.min(axis=1)
        if windows._memory:
            self._pools = [np.arange(len(self.items))]
        else:
            per_row = max(1, sum(row_bytes(a) for a in windows.arrays.values()))
            key = low // max(windows.length, SAMPLE_POOL_BYTES // per_row)
            order = np.argsort(key, kind="stable")
            self._pools = np.split(order, np.flatnonzero(np.diff(key[order])) + 1)
        self._spans = [(int(low[p].min()), int(rows[p].max()) + 1) for p in self._pools]
        self._epoch: Iterator[tuple[int, np.ndarray]] = iter(())
        self._epochs = 0
        self._block: tuple[int, dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """One epoch: ``(pool, positions in items)`` per batch, pools in a random order, shuffled within each."""
        for pool in (self._rng.permutation(len(self._pools)) if self._shuffle else range(len(self._pools))):
            order = self._rng.permutation(self._pools[pool]) if self._shuffle else self._pools[pool]
            for begin in range(0, len(order), self.batch_size):
                yield int(pool), order[begin:begin + self.batch_size]

    def __len__(self) -> int:
        return sum(-(-len(p) // self.batch_size) for p in self._pools)

    def __iter__(self) -> "WindowBatches":
        return self

    def __next__(self) -> dict[str, Any]:
        found = next(self._epoch, None)
        if found is None:
            if self._epochs and not self._infinite:
                raise StopIteration
            self._epoch, self._epochs = self._batches(), self._epochs + 1
            found = next(self._epoch)
        batch = self._read(*found)
        if self._torch:
            import torch

            return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}
        return batch

    def _read(self, pool: int, positions: np.ndarray) -> dict[str, np.ndarray]:
        items = self.items[positions]
        if self.windows._memory:
            return self.windows.batch(items)
        if self._block is None or self._block[0] != pool:
            lo, hi = self._spans[pool]
            self._block = (pool, {name: np.asarray(array[lo:hi]) for name, array in self.windows.arrays.items()})
        rows = self.windows.rows(items) - self._spans[pool][0]
        return {name: array[rows] for name, array in self._block[1].items()}

    def close(self) -> None:
        self._epoch, self._block = iter(()), None


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
        in time: the first ``train_fraction`` for training, the rest for validation. Or a pair of the
        dataset's named splits (``metadata["splits"]``, robomimic's masks), ``("train", "valid")``: the
        episodes of the first train, those of the second validate (``train_fraction`` is then unused).
    :param seed: seeds the split and every loader; the same seed gives the same batches in every format.
    :param in_memory: read the kept rows into memory (``None``: when they fit in ``IN_MEMORY_BYTES``).
    :param rank, world_size: serve this rank's disjoint shard of whole episodes (default: from MPI when
        launched under ``mpirun``, else everything).
    :param n_workers, backend: workers decoding image files (observations stored as paths).
    :param episodes: keep only these episodes (numbers, increasing), before ``traj_limitation``. They, and
        ``traj_limitation``'s first K, are read alone where the format allows (a LeRobot folder opens only their
        files: the complete episodes of a partial download train, whatever else is missing).
    """

    def __init__(self, expert_path: str | Path | None = None, traj_data: dict[str, Any] | None = None,
                 train_fraction: float = 0.7, batch_size: int = 64, traj_limitation: int = -1,
                 randomize: bool = True, verbose: int = 1, sequential_preprocessing: bool = False, *,
                 split: str | tuple[str, str] = "episodes", seed: int | None = None, in_memory: bool | None = None,
                 rank: int | None = None, world_size: int | None = None, n_workers: int = 1,
                 backend: str = "threading", episodes: Any = None) -> None:
        if (expert_path is None) == (traj_data is None):
            raise UsageError("pass exactly one of expert_path and traj_data")
        self._args = dict(expert_path=expert_path, traj_data=traj_data, train_fraction=train_fraction,
                          batch_size=batch_size, traj_limitation=traj_limitation, randomize=randomize,
                          sequential_preprocessing=sequential_preprocessing, split=split, seed=seed,
                          in_memory=in_memory, rank=rank, world_size=world_size, n_workers=n_workers,
                          backend=backend, episodes=episodes)
        self.source: Dataset = (load(expert_path, episodes=_pushed(expert_path, episodes, traj_limitation))
                                if expert_path is not None else Dataset.from_arrays(
                                    {}, None, **{k: v for k, v in traj_data.items()}))
        if expert_path is None and episodes is not None:
            self.source = self.source.take(episodes)
        self.name = self.source.source
        self.seed, self.batch_size = seed, int(batch_size)
        index = self.source.episodes
        self.num_traj = splits.limit(index, traj_limitation)
        self.num_transition = index.step_slice(0, self.num_traj).stop
        #: The kept episodes' returns; ``None`` for demonstrations without rewards (``avg_ret`` is then NaN).
        self.returns = (np.asarray(self.source["episode_returns"][:self.num_traj], dtype=np.float64)
                        if self.source.has_rewards else None)
        self.avg_ret, self.std_ret = ((float(np.mean(self.returns)), float(np.std(self.returns)))
                                      if self.num_traj and self.returns is not None else (float("nan"), float("nan")))
        self.randomize, self.sequential_preprocessing = randomize, sequential_preprocessing
        self.rank, self.world_size = mpi.rank_and_size(rank, world_size)
        split_seed, *seeds = np.random.SeedSequence(seed).spawn(4)
        self._split_seeds = dict(zip(SPLITS, seeds))
        train, val = (splits.named(index, self.num_traj, self.source.metadata.get("splits"), split)
                      if isinstance(split, tuple) else
                      splits.split(index, self.num_traj, train_fraction, split, np.random.default_rng(split_seed)))
        self._whole = {"train": train, "val": val, "all": np.arange(self.num_transition)}
        self.train_indices = splits.shard(index, train, self.rank, self.world_size)
        self.val_indices = splits.shard(index, val, self.rank, self.world_size)
        self.indices = splits.shard(index, np.arange(self.num_transition), self.rank, self.world_size)
        self.observations, self.actions = self._arrays(in_memory)
        self._loader_kwargs = dict(image_root=self.source.root, n_workers=n_workers, backend=backend)
        self.train_loader = self._own_loader("train", self.batch_size)
        self.val_loader = self._own_loader("val", self.batch_size) if len(val) else None
        self.dataloader: DataLoader | None = None
        self._checked = False
        self._stats: tuple[np.ndarray, np.ndarray] | None = None
        self._pool: tuple[DataLoader, Any, np.ndarray, int] | None = None
        if verbose >= 1:
            self.log_info()

    def _arrays(self, in_memory: bool | None) -> tuple[Any, Any]:
        """The kept observations (an array, or a dict of them by leaf path) and actions."""
        rows = slice(0, self.num_transition)
        obs, actions = self.source.observations(), self.source["actions"]
        if in_memory is None:
            in_memory = (observations.row_bytes(obs) + row_bytes(actions)) * self.num_transition <= IN_MEMORY_BYTES
        if in_memory:
            return observations.apply(lambda a: np.asarray(a[rows]), obs), np.asarray(actions[rows])
        return observations.apply(lambda a: RowWindow(a, rows), obs), RowWindow(actions, rows)

    def _own_loader(self, split: str, batch_size: int) -> DataLoader:
        """SB2's loaders: shuffled as ``randomize`` says, prepared in the background unless
        ``sequential_preprocessing``, started on first use."""
        return self.batches(split, batch_size, shuffle=self.randomize, start=False,
                            sequential=self.sequential_preprocessing)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.actions, np.ndarray)

    def init_dataloader(self, batch_size: int) -> None:
        """Prepare ``dataloader``, over every kept transition (of this rank), as GAIL uses it."""
        if self.dataloader is not None:
            self.dataloader.close()
        self.dataloader = self._own_loader("all", batch_size)

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
        if self.returns is None:
            print("Returns: none (demonstrations without rewards)")
        else:
            print(f"Average returns: {self.avg_ret}")
            print(f"Std for returns: {self.std_ret}")

    def kept(self) -> Dataset:
        """The kept episodes as a dataset (lazy where the source is)."""
        return self.source.take_episodes(self.num_traj)

    def to_pandas(self) -> Any:
        """One row per kept episode (``Dataset.episode_table``): ``episode``, ``start``, ``length``, ``return``, the
        flags and the per-episode fields."""
        return self.kept().episode_table()

    def plot(self, out: str | Path | None = None) -> Any:
        """SB2's plot, extended (returns, lengths, actions, observation ranges): written to ``out`` (PNG),
        or returned as a matplotlib figure."""
        from ..tools.plotting import figure, plot

        return plot([self.kept()], out) if out is not None else figure([self.kept()])

    def torch_dataset(self, split: str = "train", batch_size: int | None = None) -> Any:
        """A ``torch.utils.data.IterableDataset`` of this split's batches, for torch's own loop."""
        from .torch_data import ExpertIterableDataset

        return ExpertIterableDataset(self, split, batch_size or self.batch_size, self.seed, self.randomize)

    def map_dataset(self, split: str = "train") -> Any:
        """A map-style ``torch.utils.data.Dataset`` of ``split``'s transitions (every rank's), for torch's
        samplers: ``DistributedSampler`` shards it across ranks under ``torchrun``."""
        from .torch_data import ExpertMapDataset

        return ExpertMapDataset(self, split)

    def whole_split(self, split: str) -> np.ndarray:
        """``split``'s transitions on every rank together (``split_indices`` gives this rank's shard)."""
        self.split_indices(split)  # checks the name
        return self._whole[split]

    def split_indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise UsageError(f"split must be one of {SPLITS}, not {split!r}")
        return {"train": self.train_indices, "val": self.val_indices, "all": self.indices}[split]

    # -- what a trainer may ask (expertdata.serving.training.TrainingData) ----------------------------------

    @property
    def observation_space(self) -> Any:
        """The declared observation space (gymnasium), or ``None`` (an SB2 file declares none)."""
        spec = self.source.metadata.get("observation_space")
        return None if spec is None else spaces.to_gymnasium(spec)

    @property
    def action_space(self) -> Any:
        """The declared action space (gymnasium), or ``None``."""
        spec = self.source.metadata.get("action_space")
        return None if spec is None else spaces.to_gymnasium(spec)

    def _row_form(self, field: str) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype of one row as a trainer sees it (image paths decoded)."""
        array = self.source[field]
        if np.dtype(array.dtype).kind == "U" and self.num_transition:
            frame = images.read_image(images.resolve(self.source.root, str(array[0:1][0])))
            return tuple(frame.shape), frame.dtype
        return tuple(array.shape[1:]), np.dtype(array.dtype)

    def fitting_spaces(self, observation_space: Any = None, action_space: Any = None,
                       against: str = "the env") -> tuple[Any, Any]:
        """The spaces to train with (gymnasium): ``against``'s, when given, once they are checked against
        the declared spaces or, where the file declares none (SB2), against the rows' shapes and dtypes;
        else the declared ones. A mismatch is a one-line ``UsageError`` naming both sides."""
        declared = (self.source.metadata.get("observation_space"), self.source.metadata.get("action_space"))
        given = tuple(spaces.to_json(s) if s is not None and not isinstance(s, dict) else s
                      for s in (observation_space, action_space))
        out = []
        for label, field, mine, theirs in (("observation", "obs", declared[0], given[0]),
                                           ("action", "actions", declared[1], given[1])):
            if theirs is None:
                if mine is None:
                    raise UsageError(f"the dataset {self.name} declares no {label} space (an SB2 file); "
                                     "give the env so that its spaces are used")
                out.append(mine)
                continue
            if mine is not None and not spaces.same(mine, theirs):
                raise UsageError(f"{label} spaces differ: the dataset {self.name} has {json.dumps(mine)}, "
                                 f"{against} has {json.dumps(theirs)}")
            if mine is None:
                names = self.source.leaf_fields() if field == "obs" else {"": field}
                for path, leaf in (spaces.leaves(theirs) if field == "obs" else {"": theirs}).items():
                    shape, dtype = self._row_form(names[path]) if path in names else ((), None)
                    why = (spaces.shape_fits(leaf, (0,) + shape, dtype) if dtype is not None
                           else f"leaf {path!r} is not stored")
                    if why:
                        raise UsageError(f"the dataset {self.name} declares no {label} space and does not fit "
                                         f"{against}'s: its {label} {path + ' ' if path else ''}{why} "
                                         f"({json.dumps(theirs)})")
            out.append(theirs)
        return spaces.to_gymnasium(out[0]), spaces.to_gymnasium(out[1])

    def check(self) -> None:
        """Refuse a dataset that breaks the format's rules (every error's rule id named) or that holds no
        transition to train on; a dataset that passed is not checked again."""
        if self._checked:
            return
        if self.num_transition == 0:
            raise InvalidDatasetError(f"{self.name}: holds no transitions; there is nothing to train on")
        report = validate(self.source)
        if report.errors:
            rules = sorted({p.rule.id for p in report.errors})
            raise InvalidDatasetError(f"{self.name}: refused for training, it breaks rule{'s' * (len(rules) > 1)} "
                                      f"{', '.join(rules)} (first: {report.errors[0].one_line()}); "
                                      f"`expertdata validate {self.name}` lists every problem, and check=False "
                                      "trains anyway", report.errors)
        self._checked = True

    def split_size(self, split: str) -> int:
        """Transitions in ``split`` (``train``, ``val`` or ``all``), of this rank."""
        return len(self.split_indices(split))

    def observation_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std of every kept observation (all ranks alike), read block by block; for a
        composite space, of every leaf's dimensions in leaf order (``observations.flat``)."""
        if self._stats is None:
            parts = []
            for path, array in zip(self.source.leaf_fields(), observations.leaves(self.observations)):
                total, total_sq, count = 0.0, 0.0, 0
                for block in iter_blocks(array, label=f"{self.name}: field {'obs/' + path if path else 'obs'!r}"):
                    if block.dtype.kind == "U":
                        block = np.stack([images.read_image(images.resolve(self.source.root, str(p))) for p in block])
                    rows = block.reshape(len(block), -1).astype(np.float64)
                    total, total_sq, count = total + rows.sum(0), total_sq + (rows * rows).sum(0), count + len(rows)
                mean = total / max(count, 1)
                parts.append((mean, np.sqrt(np.maximum(total_sq / max(count, 1) - mean * mean, 0.0))))
            self._stats = np.concatenate([m for m, _ in parts]), np.concatenate([s for _, s in parts])
        return self._stats

    def batches(self, split: str, batch_size: int | None = None, *, seed: Any = None, infinite: bool = True,
                shuffle: bool = True, to_torch: bool = False, part: tuple[int, int] | None = None,
                start: bool = True, sequential: bool | None = None) -> DataLoader:
        """A ``DataLoader`` of ``split``'s minibatches ``(obs, actions)``; close it when done.

        :param batch_size: the dataset's ``batch_size`` when not given.
        :param seed: seeds the shuffles; by default each split's own seed, derived from the dataset's.
        :param infinite: endless, a new order every epoch; else one epoch, in the calling thread.
        :param part: ``(k, n)``: only the k-th of n contiguous shares of the split (torch's workers).
        :param start, sequential: start preparing batches now; prepare them in the calling thread.
        """
        indices = self.split_indices(split)
        if part is not None:
            indices = np.array_split(indices, part[1])[part[0]]
        return DataLoader(indices, self.observations, self.actions, batch_size or self.batch_size,
                          infinite_loop=infinite, shuffle=shuffle, start_process=start,
                          sequential=(not infinite) if sequential is None else sequential,
                          seed=self._split_seeds[split] if seed is None else seed, to_torch=to_torch,
                          **self._loader_kwargs)

    def windows(self, split: str, length: int, pad_before: int = 0, pad_after: int = 0,
                fields: Sequence[str] | None = None, every_rank: bool = False) -> Windows:
        """``split``'s windows of ``length`` rows over the kept episodes (``Dataset.windows``: SequenceSampler's
        rule), read from the rows this dataset holds (in memory where it keeps them). A window belongs to the split,
        and to the rank, of its first row inside its episode. ``every_rank``: every rank's windows of the split
        (for torch's ``DistributedSampler``), else this rank's."""
        held = dict(zip(self.source.leaf_fields().values(), observations.leaves(self.observations)))
        held["actions"] = self.actions
        every = Windows(self.source, length, pad_before, pad_after, fields, range(self.num_traj), held)
        mine = self.whole_split(split) if every_rank else self.split_indices(split)
        return every.subset(np.flatnonzero(np.isin(every.anchors(), mine)))

    def window_batches(self, split: str, length: int, batch_size: int | None = None, *, pad_before: int = 0,
                       pad_after: int = 0, fields: Sequence[str] | None = None, seed: Any = None,
                       infinite: bool = True, shuffle: bool = True, to_torch: bool = False,
                       part: tuple[int, int] | None = None) -> WindowBatches:
        """Minibatches of ``split``'s windows, as ``batches`` serves transitions: dicts of arrays of (batch,
        ``length``, ...) per field, this rank's share, shuffled anew each epoch, endless or one epoch; ``part=(k,
        n)`` the k-th of n disjoint shares (torch's loader workers)."""
        windows = self.windows(split, length, pad_before, pad_after, fields)
        items = np.arange(len(windows))
        if part is not None:
            items = np.array_split(items, part[1])[part[0]]
        return WindowBatches(windows, items, batch_size or self.batch_size, self._split_seeds[split]
                             if seed is None else seed, infinite, shuffle, to_torch)

    def terminal_episodes(self, time_limit: int | None = None) -> int:
        index = self.source.episodes
        if "terminated" in self.source.fields:  # read block by block: memory follows the episodes
            last, begin, count = index.ends[:self.num_traj] - 1, 0, 0
            for block in iter_blocks(self.source["terminated"], 0, self.num_transition, label="field 'terminated'"):
                inside = last[(last >= begin) & (last < begin + len(block))] - begin
                count, begin = count + int(np.count_nonzero(block[inside])), begin + len(block)
            return count
        if time_limit is None:
            return 0
        return int(np.count_nonzero(index.lengths[:self.num_traj] < time_limit))

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random kept transitions of this rank, drawn with ``rng`` (with replacement).

        In memory, uniformly from every transition. Out of core, uniformly from a pool of about
        ``SAMPLE_POOL_BYTES`` of rows read from random blocks, renewed (in the background) once it has
        drawn as many rows as it holds: memory stays bounded and reads stay sequential, and every
        transition is drawn from in turn.
        """
        if not len(self.indices):
            raise InvalidDatasetError(f"{self.name}: holds no transitions to sample")
        if self.in_memory:
            rows = self.indices[rng.integers(0, len(self.indices), n)]
            obs = observations.apply(lambda a: np.take(a, rows, axis=0), self.observations)
            if self.source.has_image_paths:
                obs = np.stack([images.read_image(images.resolve(self.source.root, str(p))) for p in obs])
            return obs, np.take(self.actions, rows, axis=0)
        if self._pool is None or self._pool[3] >= len(self._pool[2]):
            if self._pool is None:
                size = max(1, SAMPLE_POOL_BYTES // max(1, observations.row_bytes(self.observations)
                                                          + row_bytes(self.actions)))
                loader = self.batches("all", min(size, len(self.indices)), seed=int(rng.integers(2**63)))
            else:
                loader = self._pool[0]
            obs, act = next(loader)
            self._pool = (loader, obs, act, 0)
        loader, obs, act, drawn = self._pool
        rows = rng.integers(0, len(act), n)
        self._pool = (loader, obs, act, drawn + n)
        return observations.apply(lambda a: a[rows], obs), act[rows]

    def _loaders(self) -> list[DataLoader]:
        return [loader for loader in (self.train_loader, self.val_loader, self.dataloader,
                                      self._pool[0] if self._pool else None) if loader is not None]

    def close(self) -> None:
        """Stop the loaders' threads and close the file."""
        for loader in self._loaders():
            loader.close()
        self.source.close()

    def prepare_pickling(self) -> None:
        """Stop the loaders' threads (SB2 needed this before pickling; pickling works without it now)."""
        for loader in self._loaders():
            loader.close()

    def __getstate__(self) -> dict[str, Any]:
        return self._args

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state, verbose=0)
