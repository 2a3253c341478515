"""Data parallelism over MPI: one communicator, gradients and statistics averaged, parameters in step.

Without an MPI launch everything here is a no-op on one process, and mpi4py is never imported.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from expertdata.mpi import launched_under_mpi


class World:
    """The ranks taking part: ``rank``, ``size``, and collective operations on tensors."""

    def __init__(self) -> None:
        self.comm: Any = None
        self.rank, self.size = 0, 1
        if launched_under_mpi():
            from mpi4py import MPI

            self.comm = MPI.COMM_WORLD
            self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def average(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The mean over ranks of each tensor, in one allreduce of a flat buffer."""
        if self.size == 1:
            return list(tensors)
        from mpi4py import MPI

        flat = torch.cat([t.reshape(-1) for t in tensors]).double().numpy()
        total = np.empty_like(flat)
        self.comm.Allreduce(flat, total, op=MPI.SUM)
        out, at = [], 0
        for t in tensors:
            out.append(torch.from_numpy(total[at:at + t.numel()] / self.size).to(t.dtype).reshape(t.shape))
            at += t.numel()
        return out

    def sum(self, values: np.ndarray) -> np.ndarray:
        if self.size == 1:
            return np.asarray(values, dtype=np.float64)
        from mpi4py import MPI

        values = np.asarray(values, dtype=np.float64)
        total = np.empty_like(values)
        self.comm.Allreduce(values, total, op=MPI.SUM)
        return total

    def min(self, value: int) -> int:
        if self.size == 1:
            return value
        from mpi4py import MPI

        return int(self.comm.allreduce(value, op=MPI.MIN))

    def broadcast(self, module: torch.nn.Module) -> None:
        """Make every rank's parameters and buffers rank 0's (raw buffers: nothing is pickled)."""
        if self.size == 1:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                array = np.ascontiguousarray(tensor.detach().numpy())
                self.comm.Bcast(array, root=0)
                tensor.copy_(torch.from_numpy(array))

    def identical(self, module: torch.nn.Module) -> bool:
        """Whether every rank holds exactly rank 0's parameters."""
        if self.size == 1:
            return True
        flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()
        reference = flat.copy()
        self.comm.Bcast(reference, root=0)
        return self.min(int(np.array_equal(flat, reference))) == 1
