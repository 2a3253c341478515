"""MPI, in one place: this process's rank and the number of ranks, and the collective operations that
data-parallel trainers need (gradients and statistics averaged, parameters kept in step).

Without an MPI launch everything here works on one process and mpi4py is never imported. torch is
imported only by the operations on tensors, so the core never needs it.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    import torch

#: Variables that MPI launchers set (MPICH's Hydra, Open MPI, PMIx); their absence means no MPI launch.
_LAUNCH_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def launched_under_mpi() -> bool:
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCH_VARIABLES)


def rank_and_size(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: as given, else from ``MPI.COMM_WORLD`` under an MPI launch, else ``(0, 1)``."""
    if (rank is None) != (world_size is None):
        raise UsageError("give both rank and world_size, or neither")
    if rank is not None:
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not in 0..{world_size - 1}")
        return int(rank), int(world_size)
    if not launched_under_mpi():
        return 0, 1
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


class World:
    """The ranks taking part: ``rank``, ``size``, and collective operations (no-ops on one process)."""

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

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum over ranks (float64)."""
        values = np.asarray(values, dtype=np.float64)
        if self.size == 1:
            return values
        from mpi4py import MPI

        total = np.empty_like(values)
        self.comm.Allreduce(values, total, op=MPI.SUM)
        return total

    def min(self, value: int) -> int:
        if self.size == 1:
            return value
        from mpi4py import MPI

        return int(self.comm.allreduce(value, op=MPI.MIN))

    def average(self, tensors: Sequence["torch.Tensor"]) -> list["torch.Tensor"]:
        """The mean over ranks of each tensor, in one allreduce of a flat buffer."""
        if self.size == 1:
            return list(tensors)
        import torch

        total = self.sum(torch.cat([t.reshape(-1) for t in tensors]).double().numpy())
        out, at = [], 0
        for t in tensors:
            out.append(torch.from_numpy(total[at:at + t.numel()] / self.size).to(t.dtype).reshape(t.shape))
            at += t.numel()
        return out

    def broadcast(self, module: "torch.nn.Module") -> None:
        """Make every rank's parameters and buffers rank 0's (raw buffers: nothing is pickled)."""
        if self.size == 1:
            return
        import torch

        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                array = np.ascontiguousarray(tensor.detach().numpy())
                self.comm.Bcast(array, root=0)
                tensor.copy_(torch.from_numpy(array))

    def identical(self, arrays: Mapping[str, np.ndarray]) -> bool:
        """Whether every rank holds exactly rank 0's arrays (a trainer's ``get_parameters()``, say)."""
        if self.size == 1:
            return True
        flat = np.concatenate([np.ascontiguousarray(arrays[k], dtype=np.float64).ravel() for k in sorted(arrays)])
        reference = flat.copy()
        self.comm.Bcast(reference, root=0)
        return self.min(int(np.array_equal(flat, reference))) == 1
