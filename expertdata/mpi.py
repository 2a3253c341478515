"""This process's rank and the number of ranks, without importing mpi4py outside an MPI launch."""
from __future__ import annotations

import os
import sys

from .errors import UsageError

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
