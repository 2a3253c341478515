"""Data for torch's own loop: an ``IterableDataset`` of batches over one split of a dataset (``TrainingData``),
and a map-style ``Dataset`` of single transitions for torch's samplers (``DistributedSampler`` under
``torchrun``)."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..core import images, observations
from .training import TrainingData


class ExpertIterableDataset(IterableDataset):
    """Each iteration is one epoch of ``split``'s batches, as tensors.

    Wrap it as ``torch.utils.data.DataLoader(ds, batch_size=None, num_workers=N)``: it batches itself
    (one tensor gather per batch is far faster than collating single transitions), and each torch worker
    serves a disjoint share of the transitions. Epoch ``e`` of worker ``w`` is shuffled from
    ``(seed, e, w)``.
    """

    def __init__(self, dataset: TrainingData, split: str = "train", batch_size: int = 64, seed: int | None = None,
                 shuffle: bool = True) -> None:
        self.dataset, self.split, self.batch_size = dataset, split, batch_size
        self.seed, self.shuffle = seed, shuffle
        self._epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        part = (worker.id, worker.num_workers) if worker is not None else None
        seed = np.random.SeedSequence([self.seed or 0, self._epoch, worker.id if worker else 0])
        self._epoch += 1
        yield from self.dataset.batches(self.split, self.batch_size, seed=seed, infinite=False, shuffle=self.shuffle,
                                        to_torch=True, part=part)


class ExpertMapDataset(Dataset):
    """The transitions of one split of an ``ExpertDataset`` by position, each ``(obs, action)`` as tensors (a
    dict of tensors for a composite observation space), for torch's samplers and collation.

    Every rank holds the whole split (not its MPI or torchrun shard): wrap it with
    ``torch.utils.data.distributed.DistributedSampler``, which gives each rank its share and reshuffles on
    ``set_epoch``. Rows are read one at a time, so keep the dataset in memory (the default for data that
    fits) or prefer ``ExpertIterableDataset`` for data served out of core.
    """

    def __init__(self, dataset: Any, split: str = "train") -> None:
        self.indices = dataset.whole_split(split)
        self.observations, self.actions = dataset.observations, dataset.actions
        self.root = dataset.source.root if dataset.source.has_image_paths else None

    def __len__(self) -> int:
        return len(self.indices)

    def _row(self, array: Any, row: int) -> torch.Tensor:
        value = np.asarray(array[row:row + 1])[0]
        if self.root is not None and value.dtype.kind == "U":  # an image stored as a path, as SB2 did
            value = images.read_image(images.resolve(self.root, str(value)))
        return torch.as_tensor(value)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        row = int(self.indices[i])
        return observations.apply(lambda a: self._row(a, row), self.observations), self._row(self.actions, row)
