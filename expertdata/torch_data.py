"""Batches for torch's own loop: an ``IterableDataset`` over one split of an ``ExpertDataset``."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .loader import DataLoader


class ExpertIterableDataset(IterableDataset):
    """Each iteration is one epoch of ``split``'s batches, as tensors.

    Wrap it as ``torch.utils.data.DataLoader(ds, batch_size=None, num_workers=N)``: it batches itself
    (one tensor gather per batch is far faster than collating single transitions), and each torch worker
    serves a disjoint share of the transitions.
    """

    def __init__(self, dataset: Any, split: str = "train", batch_size: int | None = None) -> None:
        self.dataset, self.split = dataset, split
        self.batch_size = batch_size or dataset.train_loader.batch_size
        self._epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = self.dataset.split_indices(self.split)
        worker = get_worker_info()
        if worker is not None:
            indices = np.array_split(indices, worker.num_workers)[worker.id]
        seed = np.random.SeedSequence([self.dataset._args["seed"] or 0, self._epoch, worker.id if worker else 0])
        self._epoch += 1
        loader = DataLoader(indices, self.dataset.observations, self.dataset.actions, self.batch_size,
                            infinite_loop=False, shuffle=self.dataset.randomize, sequential=True, seed=seed,
                            image_root=self.dataset.source.root, to_torch=True)
        yield from loader
