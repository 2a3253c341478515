"""Distributed launches, in one place: this process's rank and the number of ranks, and the collective
operations that data-parallel trainers need (gradients and statistics averaged, parameters kept in step).

Two launchers are understood: MPI (``mpirun``; mpi4py) and torch's own (``torchrun``: ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``; torch.distributed with the gloo backend, which runs on CPUs). Without a launch everything
here works on one process and neither mpi4py nor torch.distributed is touched. torch is imported only by the
operations on tensors and under torchrun, so the core never needs it.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..core.errors import UsageError

if TYPE_CHECKING:
    import torch

#: Variables that MPI launchers set (MPICH's Hydra, Open MPI, PMIx); their absence means no MPI launch.
_LAUNCH_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


#: Variables that torchrun sets for every process it starts.
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_under_mpi() -> bool:
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCH_VARIABLES)


def launched_under_torchrun() -> bool:
    """Whether torch's launcher (``torchrun``) started this process (and MPI did not)."""
    return not launched_under_mpi() and all(v in os.environ for v in _TORCHRUN_VARIABLES)


def _torchrun_rank_and_size() -> tuple[int, int]:
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise UsageError("RANK and WORLD_SIZE must be whole numbers (as torchrun sets them)") from None
    if not 0 <= rank < size:
        raise UsageError(f"RANK {rank} is not in 0..{size - 1} (WORLD_SIZE {size})")
    return rank, size


def rank_and_size(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: as given, else from ``MPI.COMM_WORLD`` under an MPI launch, or from ``RANK`` and
    ``WORLD_SIZE`` under torchrun, else ``(0, 1)``."""
    if (rank is None) != (world_size is None):
        raise UsageError("give both rank and world_size, or neither")
    if rank is not None:
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not in 0..{world_size - 1}")
        return int(rank), int(world_size)
    if launched_under_torchrun():
        return _torchrun_rank_and_size()
    if not launched_under_mpi():
        return 0, 1
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


class World:
    """The ranks taking part: ``rank``, ``size``, and collective operations (no-ops on one process), over MPI or
    torch.distributed (gloo), whichever launched the process."""

    def __init__(self) -> None:
        self.comm: Any = None
        self.torch_group = False
        self.rank, self.size = 0, 1
        if launched_under_mpi():
            from mpi4py import MPI

            self.comm = MPI.COMM_WORLD
            self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        elif launched_under_torchrun():
            self.rank, self.size = _torchrun_rank_and_size()
            if self.size > 1:
                import torch.distributed as dist

                if not dist.is_initialized():
                    dist.init_process_group("gloo")
                self.torch_group = True

    def _all_reduce(self, values: np.ndarray, op: str) -> np.ndarray:
        """torch.distributed's all-reduce of a float64 array (``sum`` or ``min``)."""
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(np.array(values, dtype=np.float64))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MIN)
        return tensor.numpy()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum over ranks (float64)."""
        values = np.asarray(values, dtype=np.float64)
        if self.size == 1:
            return values
        if self.torch_group:
            return self._all_reduce(values, "sum")
        from mpi4py import MPI

        total = np.empty_like(values)
        self.comm.Allreduce(values, total, op=MPI.SUM)
        return total

    def min(self, value: int) -> int:
        if self.size == 1:
            return value
        if self.torch_group:
            return int(self._all_reduce(np.array([value]), "min")[0])
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
                self._broadcast(array)
                tensor.copy_(torch.from_numpy(array))

    def _broadcast(self, array: np.ndarray) -> None:
        """Rank 0's values into ``array`` (contiguous) on every rank."""
        if self.torch_group:
            import torch
            import torch.distributed as dist

            tensor = torch.from_numpy(array)
            dist.broadcast(tensor, src=0)
        else:
            self.comm.Bcast(array, root=0)

    def identical(self, arrays: Mapping[str, np.ndarray]) -> bool:
        """Whether every rank holds exactly rank 0's arrays (a trainer's ``get_parameters()``, say)."""
        if self.size == 1:
            return True
        flat = np.concatenate([np.ascontiguousarray(arrays[k], dtype=np.float64).ravel() for k in sorted(arrays)])
        reference = flat.copy()
        self._broadcast(reference)
        return self.min(int(np.array_equal(flat, reference))) == 1
