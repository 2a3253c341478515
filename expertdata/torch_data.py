"""Batches for torch's own loop: an ``IterableDataset`` over one split of a dataset (``TrainingData``)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

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
