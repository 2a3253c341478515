"""The content digest: one hash over every field's name, dtype, shape and values, and the descriptive
metadata (env id, spaces, extras, user keys). It is the same in every format, so a lab can check what it
received; provenance and lineage, which a conversion adds to, are left out.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

from .arrays import ArrayLike, iter_blocks
from .schema import DESCRIPTIVE_KEYS

PREFIX = "sha256:"


class Digester:
    """Feeds fields to the hash in name order, block by block, so the digest can be taken while copying."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def begin_field(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self._hash.update(f"{name}\0{np.dtype(dtype).str}\0{list(shape)}\0".encode())

    def update(self, block: np.ndarray) -> None:
        self._hash.update(memoryview(np.ascontiguousarray(block)).cast("B"))

    def finish(self, metadata: Mapping[str, Any]) -> str:
        descriptive = {k: metadata[k] for k in DESCRIPTIVE_KEYS if k in metadata}
        self._hash.update(json.dumps(descriptive, sort_keys=True, allow_nan=False).encode())
        return PREFIX + self._hash.hexdigest()


def digest(dataset: Any) -> str:
    """The content digest of a ``Dataset``, read block by block."""
    digester = Digester()
    for name in sorted(dataset.fields):
        array: ArrayLike = dataset.fields[name]
        digester.begin_field(name, array.dtype, tuple(array.shape))
        for block in iter_blocks(array):
            digester.update(block)
    return digester.finish(dataset.metadata)
