"""The content digest: one hash over every field's name, dtype, shape and values, and the descriptive
metadata (env id, spaces, extras, user keys). It is the same in every format, so a lab can check what it
received; provenance and lineage, which a conversion adds to, are left out.

Per-episode digests (``EpisodeDigester``) hash each episode's rows of every field, so that a dataset that
differs from the one written can say which episodes differ, and chosen episodes can be checked alone.

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


#: Per-episode digests are recorded for datasets of at most this many episodes (they sit in the metadata).
MAX_EPISODE_DIGESTS = 200_000
#: Hex digits of a per-episode digest (128 bits).
EPISODE_DIGEST_HEX = 32


class EpisodeDigester:
    """Per-episode digests, fed like ``Digester`` (fields in name order, their rows block by block): each
    episode's digest hashes, for every field, its header and the hash of the episode's rows of it.

    :param bounds: the first row of each episode followed by the number of steps (``EpisodeIndex``'s starts
        and the row count).
    :param per: ``field -> "step" | "episode"``: which rows of a field belong to an episode.
    """

    def __init__(self, bounds: np.ndarray, per: Any) -> None:
        self._steps = np.asarray(bounds, np.int64)
        self._per = per
        self._fields: list[tuple[bytes, list[bytes]]] = []

    def begin_field(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        n = len(self._steps) - 1
        self._bounds = self._steps if self._per(name) == "step" else np.arange(n + 1)
        self._fields.append((episode_field_header(name, dtype, tuple(shape[1:])), []))
        self._row, self._hasher = 0, blake3.blake3()
        self._close_empty()

    def _close_empty(self) -> None:
        """Finish the episodes that end where the rows stand (empty ones included)."""
        done = self._fields[-1][1]
        while len(done) < len(self._bounds) - 1 and self._bounds[len(done) + 1] <= self._row:
            done.append(self._hasher.digest(length=16))
            self._hasher = blake3.blake3()

    def update(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block)
        begin, end = self._row, self._row + len(data)
        done = self._fields[-1][1]
        while self._row < end:
            stop = min(end, int(self._bounds[len(done) + 1])) if len(done) < len(self._bounds) - 1 else end
            self._hasher.update(memoryview(data[self._row - begin:stop - begin]).cast("B"))
            self._row = stop
            self._close_empty()

    def row_hashes(self) -> list[bytes]:
        """The current field's hash of each episode's rows (``rows_hash`` of them), once all its rows are fed."""
        return list(self._fields[-1][1])

    def finish(self) -> list[str]:
        return combine_episodes(self._fields, len(self._steps) - 1)


def episode_field_header(name: str, dtype: np.dtype, row_shape: tuple[int, ...]) -> bytes:
    """What an episode's digest hashes before the hash of its rows of field ``name``."""
    return f"{name}\0{np.dtype(dtype).str}\0{list(row_shape)}\0".encode()


def rows_hash(rows: np.ndarray) -> bytes:
    """The hash of an episode's rows of one field (their raw C-order bytes; none for no rows), as episode digests
    take it."""
    return blake3.blake3(memoryview(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))).digest(length=16)


def combine_episodes(fields: list[tuple[bytes, list[bytes]]], n: int) -> list[str]:
    """Each episode's digest from every field's header and the hash of the episode's rows of it (fields in name
    order): rows hashed anywhere (on a cluster's workers, say) give the digest one process gives."""
    out = []
    for e in range(n):
        h = blake3.blake3()
        for header, episodes in fields:
            h.update(header + episodes[e])
        out.append(h.hexdigest(length=EPISODE_DIGEST_HEX // 2))
    return out


def _feed(dataset: Any, *digesters: Any) -> None:
    for name in sorted(dataset.fields):
        array: ArrayLike = dataset.fields[name]
        for d in digesters:
            d.begin_field(name, array.dtype, tuple(array.shape))
        for block in prefetch(iter_blocks(array, label=f"{dataset.source}: field '{name}'")):
            for d in digesters:
                d.update(block)


def episode_digester(dataset: Any) -> EpisodeDigester:
    """An ``EpisodeDigester`` for ``dataset``'s episodes."""
    return EpisodeDigester(np.append(dataset.episodes.starts, dataset.n_transitions), dataset.field_per)


def digest(dataset: Any) -> str:
    """The content digest of a ``Dataset``, read block by block."""
    digester = Digester()
    _feed(dataset, digester)
    return digester.finish(dataset.metadata)


def digests(dataset: Any, limit: int | None = MAX_EPISODE_DIGESTS) -> tuple[str, list[str] | None]:
    """The content digest and the per-episode digests (``None`` past ``limit`` episodes) of a ``Dataset``, in
    one pass."""
    digester = Digester()
    if limit is not None and dataset.n_episodes > limit:
        _feed(dataset, digester)
        return digester.finish(dataset.metadata), None
    episodes = episode_digester(dataset)
    _feed(dataset, digester, episodes)
    return digester.finish(dataset.metadata), episodes.finish()
