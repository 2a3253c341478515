"""The content digest: one hash over every field's name, dtype, shape and values, and the descriptive
metadata (env id, spaces, extras, user keys). It is the same in every format, so a lab can check what it
received; provenance and lineage, which a conversion adds to, are left out.

The hash is BLAKE3: cryptographic like SHA-256, but several times faster per core, and its tree mode
hashes one large update on every core (releasing the GIL), so checking a conversion on both sides costs
little beside the I/O. A streaming hash, so the digest does not depend on how rows are split into blocks.
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Mapping

import blake3
import numpy as np

from .arrays import ArrayLike, iter_blocks, prefetch
from .schema import DESCRIPTIVE_KEYS

PREFIX = "blake3:"


class Digester:
    """Feeds fields to the hash in name order, block by block, so the digest can be taken while copying.

    Blocks are hashed on a thread of the digester's own, one at a time and in order, while the caller goes
    on (to write the block it just handed over, say); the caller must not change a block it handed over.
    """

    def __init__(self) -> None:
        self._hash = blake3.blake3(max_threads=blake3.blake3.AUTO)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="expertdata-digest")
        self._pending: Future | None = None

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def begin_field(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Start a field; its header fixes its byte count, so the values that follow are unambiguous."""
        self._wait()
        self._hash.update(f"{name}\0{np.dtype(dtype).str}\0{list(shape)}\0".encode())

    def update(self, block: np.ndarray) -> None:
        """Hash the next rows of the current field (their raw C-order bytes) once the previous rows are done."""
        self._wait()
        data = memoryview(np.ascontiguousarray(block)).cast("B")
        self._pending = self._worker.submit(self._hash.update, data)

    def finish(self, metadata: Mapping[str, Any]) -> str:
        self._wait()
        self._worker.shutdown()
        descriptive = {k: metadata[k] for k in DESCRIPTIVE_KEYS if k in metadata}
        self._hash.update(json.dumps(descriptive, sort_keys=True, allow_nan=False).encode())
        return PREFIX + self._hash.hexdigest()


def digest(dataset: Any) -> str:
    """The content digest of a ``Dataset``, read block by block."""
    digester = Digester()
    for name in sorted(dataset.fields):
        array: ArrayLike = dataset.fields[name]
        digester.begin_field(name, array.dtype, tuple(array.shape))
        for block in prefetch(iter_blocks(array, label=f"{dataset.source}: field '{name}'")):
            digester.update(block)
    return digester.finish(dataset.metadata)
