"""The content digest: one hash over every field's name, dtype, shape and values, and the descriptive
metadata (env id, spaces, extras, user keys). It is the same in every format, so a lab can check what it
received; provenance and lineage, which a conversion adds to, are left out.

It is a two-level SHA-256: each field's C-order bytes are cut into 4 MiB leaves, each leaf is hashed on
its own (in a thread pool: hashlib releases the GIL, so leaves hash on every core while the caller reads
or writes), and the leaf digests go in order into the top hash. Leaves are cut by byte offset, so the
digest does not depend on how the caller splits the rows into blocks.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from .arrays import ArrayLike, iter_blocks, prefetch
from .schema import DESCRIPTIVE_KEYS

PREFIX = "sha256:"
LEAF_BYTES = 4 * 2**20


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="expertdata-digest")


def _leaf(data: memoryview) -> bytes:
    return hashlib.sha256(data).digest()


class Digester:
    """Feeds fields to the hash in name order, block by block, so the digest can be taken while copying."""

    def __init__(self) -> None:
        self._top = hashlib.sha256()
        self._pending: deque[Future] = deque()
        self._carry = bytearray()
        self._field_bytes: int | None = None

    def _submit(self, data: memoryview | bytes) -> None:
        self._pending.append(_pool().submit(_leaf, data))

    def _collect(self) -> None:
        while self._pending:
            self._top.update(self._pending.popleft().result())

    def _end_field(self) -> None:
        if self._field_bytes is None:
            return
        if self._carry:
            self._submit(bytes(self._carry))
            self._carry.clear()
        self._collect()
        self._top.update(self._field_bytes.to_bytes(8, "little"))
        self._field_bytes = None

    def begin_field(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self._end_field()
        self._top.update(f"{name}\0{np.dtype(dtype).str}\0{list(shape)}\0".encode())
        self._field_bytes = 0

    def update(self, block: np.ndarray) -> None:
        """Hash ``block`` in the background; it is kept alive only until the next call, which waits for it."""
        self._collect()
        data = memoryview(np.ascontiguousarray(block)).cast("B")
        self._field_bytes += len(data)
        if self._carry:
            take = min(len(data), LEAF_BYTES - len(self._carry))
            self._carry += data[:take]
            data = data[take:]
            if len(self._carry) < LEAF_BYTES:
                return
            self._submit(bytes(self._carry))
            self._carry.clear()
        whole = len(data) - len(data) % LEAF_BYTES
        for begin in range(0, whole, LEAF_BYTES):
            self._submit(data[begin:begin + LEAF_BYTES])
        self._carry += data[whole:]

    def finish(self, metadata: Mapping[str, Any]) -> str:
        self._end_field()
        descriptive = {k: metadata[k] for k in DESCRIPTIVE_KEYS if k in metadata}
        self._top.update(json.dumps(descriptive, sort_keys=True, allow_nan=False).encode())
        return PREFIX + self._top.hexdigest()


def digest(dataset: Any) -> str:
    """The content digest of a ``Dataset``, read block by block."""
    digester = Digester()
    for name in sorted(dataset.fields):
        array: ArrayLike = dataset.fields[name]
        digester.begin_field(name, array.dtype, tuple(array.shape))
        for block in prefetch(iter_blocks(array, label=f"{dataset.source}: field '{name}'")):
            digester.update(block)
    return digester.finish(dataset.metadata)
