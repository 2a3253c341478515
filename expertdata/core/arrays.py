"""Array-like helpers shared by every backend: reading lazy arrays in row blocks, and text stored as code points.

A dataset's fields are numpy arrays, memory maps, h5py datasets or zarr arrays: anything with ``shape``,
``dtype`` and row slicing. Nothing here reads more than one block at a time.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator, Protocol, TypeVar

import numpy as np

from .errors import ExpertDataError, UnreadableError

#: Rows are read and written in blocks of about this many bytes (one default chunk): large enough for
#: sequential I/O, small enough that converting a dataset larger than memory stays within bounded memory.
#: 16 MB blocks converted no faster and peaked at up to 0.26x a 1 GB dataset, against 0.16x with 8 MB.
BLOCK_BYTES = 8 * 2**20

T = TypeVar("T")


class ArrayLike(Protocol):
    shape: tuple[int, ...]
    dtype: np.dtype

    def __getitem__(self, key: Any) -> np.ndarray: ...


def row_bytes(array: ArrayLike) -> int:
    """Bytes in one row of ``array``."""
    return int(np.dtype(array.dtype).itemsize * np.prod(array.shape[1:], dtype=np.int64))


def block_rows(array: ArrayLike, multiple: int = 1, target: int = BLOCK_BYTES) -> int:
    """How many rows make a block of about ``target`` bytes, rounded to a multiple of ``multiple``."""
    rows = max(1, target // max(1, row_bytes(array)))
    return max(multiple, rows // multiple * multiple)


def iter_blocks(array: ArrayLike, start: int = 0, stop: int | None = None, rows: int | None = None,
                label: str = "array") -> Iterator[np.ndarray]:
    """Yield ``array[start:stop]`` as consecutive numpy blocks of ``rows`` rows.

    A block that cannot be read (a corrupt chunk, a truncated file) raises ``UnreadableError`` naming
    ``label`` and the rows, whatever the storage library raised.
    """
    stop = array.shape[0] if stop is None else stop
    rows = rows or block_rows(array)
    for begin in range(start, stop, rows):
        end = min(begin + rows, stop)
        try:
            block = np.asarray(array[begin:end])
        except ExpertDataError:
            raise
        except Exception as exc:  # h5py, zarr and numcodecs report damage with many exception types
            raise UnreadableError(f"{label}: cannot read rows {begin}-{end}: {type(exc).__name__}: {exc}") from None
        yield block


def put_unless_stopped(slots: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` into ``slots``, giving up if ``stop`` is set first; returns whether it was put.

    A producer thread uses it so that a consumer that goes away never leaves it blocked on a full queue.
    """
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield from ``items`` while a background thread already produces the next ``depth`` items.

    Reading the next block overlaps with whatever the caller does with this one (numpy, h5py and zarr
    release the GIL while copying and doing I/O). An exception in the producer is raised in the caller.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not put_unless_stopped(slots, (item, None), stop):
                    return
            put_unless_stopped(slots, (done, None), stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            put_unless_stopped(slots, (done, exc), stop)

    worker = threading.Thread(target=produce, daemon=True, name="expertdata-prefetch")
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def read_into(array: ArrayLike, start: int, stop: int, out: np.ndarray) -> None:
    """Copy rows ``start:stop`` of ``array`` into ``out``, straight from the file where the array can."""
    reader = getattr(array, "read_into", None)
    if reader is not None:
        reader(start, stop, out)
    else:
        out[...] = array[start:stop]


def will_need(array: ArrayLike, start: int, stop: int) -> None:
    """Hint that rows ``start:stop`` will be read soon, where the array's storage can act on it."""
    hint = getattr(array, "will_need", None)
    if hint is not None:
        hint(start, stop)


def first_rows(array: ArrayLike) -> dict[str, int]:
    """Each distinct value of a one-dimensional text array, with the first row that holds it."""
    first: dict[str, int] = {}
    begin = 0
    for block in iter_blocks(array):
        for row, value in enumerate(block.tolist()):
            first.setdefault(value, begin + row)
        begin += len(block)
    return first


def text_to_codes(block: np.ndarray) -> np.ndarray:
    """A text (``U``) array as its UTF-32 code points, one trailing axis of the string width."""
    width = block.dtype.itemsize // 4
    return np.ascontiguousarray(block).view(np.uint32).reshape(block.shape + (width,))


class TextView:
    """A lazy view of a stored code-point array as the text array it was written from."""

    def __init__(self, codes: ArrayLike, dtype: np.dtype) -> None:
        self._codes = codes
        self.dtype = np.dtype(dtype)
        self.shape = tuple(codes.shape[:-1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        codes = np.ascontiguousarray(self._codes[key], dtype=np.uint32)
        return codes.view(self.dtype).reshape(codes.shape[:-1])


def reads_at_once(array: ArrayLike) -> int:
    """How many reads of ``array`` are worth running at once: more than one where each waits on a network
    (a dataset where it lives), one for local files."""
    while array is not None:
        found = getattr(array, "reads_at_once", None)
        if found is not None:
            return int(found)
        array = getattr(array, "_array", None)
    return 1


class LazyRows:
    """Rows assembled from other arrays (``read_into``), read only when sliced."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        raise NotImplementedError

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError(f"{type(self).__name__} rows are read by slices of rows")
        start, stop, step = key.indices(self.shape[0])
        out = np.empty((max(0, stop - start),) + tuple(self.shape[1:]), self.dtype)
        self.read_into(start, max(start, stop), out)
        return out[::step]


class RowWindow:
    """Rows ``window`` of a lazy array, read only when sliced."""

    def __init__(self, array: ArrayLike, window: slice) -> None:
        self._array = array
        self._start, self._stop, _ = window.indices(array.shape[0])
        self.dtype = array.dtype
        self.shape = (max(0, self._stop - self._start),) + tuple(array.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        read_into(self._array, self._start + start, self._start + stop, out)

    def will_need(self, start: int, stop: int) -> None:
        will_need(self._array, self._start + start, self._start + stop)

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("a row window is read by slices of rows")
        start, stop, step = key.indices(self.shape[0])
        return np.asarray(self._array[self._start + start:self._start + stop])[::step]


class Appended(LazyRows):
    """The rows of a lazy array followed by rows held in memory (a journal's tail), read only when sliced."""

    def __init__(self, head: ArrayLike, tail: np.ndarray) -> None:
        self._head, self._tail = head, tail
        self._split = head.shape[0]
        self.dtype = np.dtype(head.dtype)
        self.shape = (self._split + len(tail),) + tuple(head.shape[1:])

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        middle = min(max(start, self._split), stop)
        if middle > start:
            read_into(self._head, start, middle, out[:middle - start])
        out[middle - start:] = self._tail[middle - self._split:stop - self._split]

    def will_need(self, start: int, stop: int) -> None:
        if start < self._split:
            will_need(self._head, start, min(stop, self._split))


class Gathered(LazyRows):
    """Rows ``index`` (increasing) of a lazy array, read only when sliced: a slice reads the rows it spans once
    and keeps the ones indexed (a peer format that interleaves rows we store apart), or, where the indexed rows
    are under half of those spanned (episodes selected far apart), reads each contiguous run alone."""

    def __init__(self, array: ArrayLike, index: np.ndarray) -> None:
        self._array, self._index = array, np.asarray(index, np.int64)
        self.dtype = np.dtype(array.dtype)
        self.shape = (len(self._index),) + tuple(array.shape[1:])

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        rows = self._index[start:stop]
        first, last = int(rows[0]), int(rows[-1])
        if 2 * len(rows) >= last + 1 - first:
            out[...] = np.asarray(self._array[first:last + 1])[rows - first]
            return
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            read_into(self._array, int(rows[lo]), int(rows[hi - 1]) + 1, out[lo:hi])


class Concatenated(LazyRows):
    """Lazy arrays one after another along the rows (a peer format's per-episode arrays), read only when
    sliced: a slice reads the rows it needs from each part it spans."""

    def __init__(self, parts: list[ArrayLike], dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self._parts = parts
        self._offsets = np.cumsum([0] + [p.shape[0] for p in parts])
        self.dtype = np.dtype(dtype)
        self.shape = (int(self._offsets[-1]),) + tuple(row_shape)

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        for part in range(max(first, 0), len(self._parts)):
            begin, end = int(self._offsets[part]), int(self._offsets[part + 1])
            if begin >= stop:
                break
            lo, hi = max(start, begin), min(stop, end)
            if hi > lo:
                read_into(self._parts[part], lo - begin, hi - begin, out[lo - start:hi - start])
