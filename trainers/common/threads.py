"""How many threads torch uses while a trainer trains."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from .nets import VectorFeatures


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` intra-op threads (``None``: unchanged), restoring the previous number."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threads_for(features: torch.nn.Module, asked: int | None) -> int | None:
    """``asked``, else one thread for an MLP (small matrices lose more to thread hand-offs than they gain,
    and collapse when another process busies a core) and torch's own choice for a CNN."""
    return asked or (1 if isinstance(features, VectorFeatures) else None)
