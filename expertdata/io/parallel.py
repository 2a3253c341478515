"""Writing a dataset on a Dask cluster (``expertdata.io.cluster``): the same content, byte for byte, as one process.

Work is split by episodes: blocks of whole episodes of a few chunks each, as many as a multiple of the workers. A
task reads its block from the source itself (the dataset travels as the way to open it again: a path, a selection of
episodes, a merge; a peer format that reads episodes alone, LeRobot, RLDS or Minari's Arrow files, opens only the
block's files or records), writes every chunk of a Zarr destination that lies wholly inside its rows, hashes its
episodes' rows of every field, and returns the rows of the (at most two) chunks it shares with its neighbours. The
client writes those shared chunks once both sides have come, the per-episode fields (one row per episode: small),
then the metadata, and commits last: a reader never sees half a dataset. Per-episode digests are put together from
the workers' hashes; the content digest, one sequential hash over every field, is the client's pass over what was
written (the serial part: see docs/scale.md), compared episode by episode with the workers' hashes of the source.
Formats that cannot be written in parallel (HDF5, ``.npz``, peers) are written by the client from the Zarr parts the
workers wrote.
"""
from __future__ import annotations

import tempfile
import threading
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..core.arrays import prefetch, row_bytes, text_to_codes
from ..core.dataset import Dataset
from ..core.digest import EpisodeDigester, combine_episodes, digests, episode_field_header, rows_hash
from ..core.errors import DigestMismatchError
from . import atomic, cluster, formats
from .formats.chunked import stored_form

#: A block of episodes holds at least this many chunks of the field with the most bytes a row...
CHUNKS_PER_BLOCK = 4
#: ... and the dataset is cut in at least this many blocks per worker (a worker lost costs one block).
BLOCKS_PER_WORKER = 4


def episode_blocks(dataset: Dataset, target_rows: int) -> list[tuple[int, int]]:
    """Blocks of whole episodes of about ``target_rows`` rows (an episode longer than that is a block alone), as
    ``(first episode, stop episode)``."""
    index = dataset.episodes
    out, first, rows = [], 0, 0
    for e, length in enumerate(index.lengths):
        rows += int(length)
        if rows >= target_rows:
            out.append((first, e + 1))
            first, rows = e + 1, 0
    if first < index.n_episodes:
        out.append((first, index.n_episodes))
    return out


def balanced_block_rows(rows: int, target: int, workers: int) -> int:
    """``target`` rows a block, lowered so that ``rows`` make a multiple of ``workers`` blocks (by less than half where
    they made ``workers`` blocks or more): a dataset of a few blocks otherwise leaves workers idle while one reads the
    last (3 blocks on 2 workers)."""
    blocks = max(1, -(-rows // max(1, target)))
    return max(1, -(-rows // (-(-blocks // workers) * workers)))


def _open(place: str, storage_options: dict[str, Any] | None, name: str) -> Any:
    """Array ``name`` of the Zarr store at ``place`` (a folder, or a URL where ``storage_options`` are given)."""
    import zarr

    from .formats.zarr import writable_store

    # Every chunk written, an all-zero one too (as the serial writer does): a missing chunk always means lost data.
    return zarr.open_array(writable_store(place, storage_options), path=name, mode="r+").with_config(
        {"write_empty_chunks": True})


def _stored(rows: np.ndarray, array: Any) -> np.ndarray:
    """Rows as the Zarr array stores them (text as code points at its width)."""
    return text_to_codes(rows.astype(f"<U{array.shape[-1]}")) if rows.dtype.kind == "U" else rows


def block_source(dataset: Dataset, episodes: tuple[int, int], token: str) -> Any:
    """What a task reads a block of episodes from: for a dataset opened from a local path in a format that reads
    episodes alone (LeRobot, RLDS, Minari), the block's episodes alone; for another dataset opened from somewhere,
    the whole of it, opened once per worker for every block of the command ``token`` names (``kept_open``); a
    dataset in memory travels with the task."""
    from . import remote

    origin = dataset.origin
    if origin is None:
        return dataset
    if getattr(origin[0], "__name__", "") == "load" and origin[2].get("episodes") is None:
        path = origin[1][0]
        if not remote.is_url(path) and formats.selective(path):
            return _Reopened(origin[0], origin[1], {**origin[2], "episodes": list(range(*episodes))})
    return _Reopened(*origin, token=token)


#: On a worker, the sources kept open for the blocks of a command, by its token (``kept_open``) and the thread that
#: reads them (readers keep state: a video decoder's place, a file's position).
_KEPT: dict[tuple[str, int], Dataset] = {}
_KEPT_LOCK = threading.Lock()


class _Reopened:
    """A dataset opened where it is unpickled (on a worker), by ``function(*args, **kwargs)``: a block's episodes
    alone, or, with a ``token``, a whole source that the worker opens once and keeps for the command's other blocks
    (a reader that parses its whole source when it opens would otherwise parse it once per block); a worker of
    several threads opens it once in each."""

    def __init__(self, function: Any, args: tuple, kwargs: dict, token: str | None = None) -> None:
        self.function, self.args, self.kwargs, self.token = function, args, kwargs, token

    def open(self) -> Dataset:
        if self.token is None:
            return self.function(*self.args, **self.kwargs)
        key = (self.token, threading.get_ident())
        with _KEPT_LOCK:
            kept = _KEPT.get(key)
        if kept is None:
            kept = self.function(*self.args, **self.kwargs)
            with _KEPT_LOCK:
                _KEPT[key] = kept
        return kept


def _forget(token: str) -> None:
    """On a worker: close the sources kept open for the command ``token``."""
    with _KEPT_LOCK:
        kept = [_KEPT.pop(key) for key in [key for key in _KEPT if key[0] == token]]
    for source in kept:
        source.close()


@contextmanager
def kept_open(client: Any) -> Iterator[str]:
    """A token for the blocks of one command: the workers keep its source open between blocks and close it at the
    end (a cluster that went away closed it with its workers)."""
    token = uuid.uuid4().hex
    try:
        yield token
    finally:
        with suppress(OSError, TimeoutError):  # a cluster gone: its workers' sources closed with them
            client.run(_forget, token, on_error="ignore")


def write_block(dataset: Any, place: tuple[str, dict[str, Any] | None] | None, dtypes: Mapping[str, np.dtype],
                chunks: Mapping[str, int], episodes: tuple[int, int],
                bounds: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """One task: the rows of episodes ``episodes`` (which start and end at rows ``bounds``) of every per-step field
    named in ``dtypes``, as the whole dataset's dtype (a block read alone may hold text narrower than the whole's),
    read from ``dataset`` (or from the block alone, a ``_Reopened`` one) and written into the Zarr store
    at ``place`` (a folder, or a URL and its storage options) where they fill whole chunks; returns, per field, the
    hash of each episode's rows and the rows of the chunks shared with the neighbouring blocks (``(first row, rows)``
    pieces). Without ``place``, the hashes."""
    starts, ends = bounds
    r0, r1 = int(starts[0]), int(ends[-1])
    alone = isinstance(dataset, _Reopened) and dataset.token is None
    source = dataset.open() if isinstance(dataset, _Reopened) else dataset
    base = r0 if alone else 0  # the block's rows in the source it reads from
    out: dict[str, Any] = {}
    episodes_of = EpisodeDigester(np.append(starts - r0, r1 - r0), lambda _: "step")
    for name, dtype in dtypes.items():
        field = source[name]
        array = _open(*place, name) if place is not None else None
        c = chunks[name] if place is not None else \
            formats.WriteOptions().rows_per_chunk(np.dtype(field.dtype), tuple(field.shape[1:]))
        episodes_of.begin_field(name, dtype, (r1 - r0,) + tuple(field.shape[1:]))
        # A chunk at a time, so a worker holds one chunk of rows, not its block (blocks grow with the dataset).
        edges = [r0, *range(-(-(r0 + 1) // c) * c, r1, c), r1]
        pieces = []
        # The next chunk is read while this one is hashed and written, as one process's copy does.
        for p0, p1, rows in prefetch((p0, p1, np.asarray(field[p0 - base:p1 - base]).astype(dtype, copy=False))
                                     for p0, p1 in zip(edges[:-1], edges[1:])):
            episodes_of.update(rows)
            if array is None:
                continue
            if p0 % c == 0 and p1 - p0 == c:  # a whole chunk, this task's alone
                array[p0:p1] = _stored(rows, array)
            elif len(rows):  # a chunk shared with a neighbouring block (or the array's short last one): the client's
                pieces.append((p0, rows))
        out[name] = (episodes_of.row_hashes(), pieces)
    if alone:
        source.close()
    return out


class _Shared:
    """The chunks that blocks share, filled as the pieces come and written once whole."""

    def __init__(self, place: tuple[str, dict[str, Any] | None], sizes: Mapping[str, int],
                 chunks: Mapping[str, int]) -> None:
        self._place, self._sizes, self._chunks = place, sizes, chunks
        self._pending: dict[tuple[str, int], list[tuple[int, np.ndarray]]] = {}

    def add(self, name: str, start: int, rows: np.ndarray) -> None:
        c, n = self._chunks[name], self._sizes[name]
        at = 0
        while at < len(rows):  # a piece may span the end of one chunk and the start of the next
            k = (start + at) // c
            stop = min(len(rows), (k + 1) * c - start)
            key = (name, k)
            self._pending.setdefault(key, []).append((start + at, rows[at:stop]))
            pieces = self._pending[key]
            if sum(len(p) for _, p in pieces) == min(c, n - k * c):
                array = _open(*self._place, name)
                whole = np.concatenate([p for _, p in sorted(pieces, key=lambda piece: piece[0])])
                array[k * c:k * c + len(whole)] = _stored(whole, array)
                del self._pending[key]
            at = stop

    def done(self) -> bool:
        return not self._pending


def write_parts(client: Any, dataset: Dataset, folder: Path, options: formats.WriteOptions,
                metadata: dict[str, Any], record: Callable[[str, list[str]], None],
                rows_at: tuple[str, dict[str, Any]] | None = None) -> tuple[str, list[str]]:
    """Write every field of ``dataset`` into a new Zarr store at ``folder`` on the cluster, then ``metadata``, once
    ``record(content digest, per-episode digests)`` has entered them; returns both. With ``rows_at`` (a URL and its
    storage options), the workers write the per-step fields' chunks there instead, and the rest of the store, here,
    is what ``remote.put`` puts there after (its root metadata last)."""
    from . import remote
    from .formats import zarr as zarr_backend

    names = sorted(dataset.fields)
    step = [n for n in names if dataset.field_per(n) == "step"]
    sink = zarr_backend.BACKEND.writer(folder, options)
    try:
        chunks, sizes = {}, {}
        for name in names:
            array = dataset.fields[name]
            sink.add_field(name, np.dtype(array.dtype), tuple(array.shape[1:]), array.shape[0])
            stored, row, _ = stored_form(np.dtype(array.dtype), tuple(array.shape[1:]))
            chunks[name] = min(options.rows_per_chunk(stored, row), max(1, array.shape[0]))
            sizes[name] = array.shape[0]
        # Blocks span a few chunks of the field that holds the most bytes a row; a narrower field's larger chunks
        # are shared between blocks, their few bytes written by the client.
        heaviest = max(step, key=lambda n: row_bytes(dataset.fields[n]), default=None)
        blocks = _blocks(client, dataset, CHUNKS_PER_BLOCK * (chunks[heaviest] if heaviest is not None else 1))
        place: tuple[str, dict[str, Any] | None] = rows_at or (str(folder), None)
        if rows_at is not None:  # the arrays' own metadata first, so that workers can open them there
            remote.put(folder, *rows_at, root=False)
        shared = _Shared(place, sizes, chunks)
        hashes: dict[str, list[bytes]] = {n: [b""] * dataset.n_episodes for n in step}

        def arrived(k: int, found: dict[str, Any]) -> None:
            first = blocks[k][0]
            for name, (episode_hashes, pieces) in found.items():
                hashes[name][first:first + len(episode_hashes)] = episode_hashes
                for start, rows in pieces:
                    shared.add(name, start, rows)

        with kept_open(client) as token:
            cluster.run(client, write_block, [(block_source(dataset, b, token), place, _dtypes(dataset, step), chunks,
                                               b, _bounds(dataset, b)) for b in blocks], "write-block", arrived)
        assert shared.done()  # every shared chunk had both its sides
        for name in names:
            if name not in step:  # one row per episode: the client's
                sink.write_rows(name, 0, np.asarray(dataset.fields[name][:]))
        for name in step:
            sink.written_elsewhere(name, sizes[name])
        written = formats.read_raw(folder, "zarr")  # per-step fields written where they live are withheld here
        there = None
        try:
            there = zarr_backend.remote_fields(*rows_at, step) if rows_at is not None else None
            content, per_episode = digests(Dataset({**written.fields, **(there.fields if there else {})}, metadata),
                                           None)
        finally:
            written.close()
            if there is not None:
                there.close()
        expected = _episode_digests(dataset, names, step, hashes)
        if expected != per_episode:
            wrong = [e for e, (a, b) in enumerate(zip(expected, per_episode)) if a != b]
            raise DigestMismatchError(f"{folder}: {len(wrong)} episodes differ from the source once written "
                                      f"(the first: {wrong[0]}); nothing was written")
        record(content, per_episode)
        sink.set_metadata(metadata)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return content, per_episode


def _blocks(client: Any, dataset: Dataset, least: int) -> list[tuple[int, int]]:
    """The blocks of whole episodes the cluster's workers share: at least ``least`` rows each, at least
    ``BLOCKS_PER_WORKER`` per worker where the dataset is large enough, a multiple of the workers where it is small."""
    if not dataset.n_episodes:
        return []
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    target = max(least, -(-dataset.n_transitions // (BLOCKS_PER_WORKER * workers)))
    return episode_blocks(dataset, balanced_block_rows(dataset.n_transitions, target, workers))


def _dtypes(dataset: Dataset, names: list[str]) -> dict[str, np.dtype]:
    return {name: np.dtype(dataset.fields[name].dtype) for name in names}


def _bounds(dataset: Dataset, block: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    index = dataset.episodes
    return index.starts[block[0]:block[1]], index.ends[block[0]:block[1]]


def episode_digests(client: Any, dataset: Dataset) -> list[str]:
    """``dataset``'s per-episode digests, its episodes' rows hashed on the cluster, blocks of whole episodes."""
    names = sorted(dataset.fields)
    step = [n for n in names if dataset.field_per(n) == "step"]
    blocks = _blocks(client, dataset, 1)
    hashes: dict[str, list[bytes]] = {n: [b""] * dataset.n_episodes for n in step}
    with kept_open(client) as token:
        jobs = [(block_source(dataset, b, token), None, _dtypes(dataset, step), {}, b, _bounds(dataset, b))
                for b in blocks]
        found_all = cluster.run(client, write_block, jobs, "hash-block")
    for (first, _), found in zip(blocks, found_all):
        for name, (episode_hashes, _) in found.items():
            hashes[name][first:first + len(episode_hashes)] = episode_hashes
    return _episode_digests(dataset, names, step, hashes)


def _episode_digests(dataset: Dataset, names: list[str], step: list[str], hashes: dict[str, list[bytes]]) -> list[str]:
    """The per-episode digests from the workers' hashes of each episode's rows (per-step fields) and the client's
    (per-episode fields)."""
    fields = []
    for name in names:
        array = dataset.fields[name]
        header = episode_field_header(name, array.dtype, tuple(array.shape[1:]))
        if name in step:
            fields.append((header, hashes[name]))
        else:
            rows = np.asarray(array[:])
            fields.append((header, [rows_hash(rows[e:e + 1]) for e in range(dataset.n_episodes)]))
    return combine_episodes(fields, dataset.n_episodes)


def staging(path: Path) -> tempfile.TemporaryDirectory:
    """A folder beside ``path`` for the Zarr parts of a format written by the client (workers must reach it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=path.parent, prefix=f"{atomic.PARTIAL}-{path.name}-parts-")
