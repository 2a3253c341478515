"""What the chunked formats (HDF5, Zarr) share: text stored as code points, and appending rows in order.

Text arrays (SB2's image paths) are stored as UTF-32 code points with one trailing axis, the numpy dtype
kept in an attribute, so they round-trip bit-identically where the format has no fixed-width text type.

Appending is crash-safe: arrays grow ahead of the data (geometrically, so growing is rare), and after
each whole episode the writer records how many transitions and episodes are complete (``commit``).
Readers cut every array to that mark, so a killed recording still reads as a valid dataset.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable

import numpy as np

from ..arrays import ArrayLike, TextView, text_to_codes
from ..errors import UsageError
from ..schema import field_name_problem
from .base import METADATA_KEY, TEXT_DTYPE_KEY, WriteOptions, metadata_to_json


def stored_form(dtype: np.dtype, row_shape: tuple[int, ...]) -> tuple[np.dtype, tuple[int, ...], dict[str, str]]:
    """The dtype, row shape and attributes a field is stored with."""
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        return np.dtype(np.uint32), tuple(row_shape) + (dtype.itemsize // 4,), {TEXT_DTYPE_KEY: dtype.str}
    return dtype, tuple(row_shape), {}


def as_read(array: ArrayLike, attrs: Any) -> ArrayLike:
    """The array a reader sees: text again where code points were stored."""
    if TEXT_DTYPE_KEY not in attrs:
        return array
    name = attrs[TEXT_DTYPE_KEY]
    return TextView(array, np.dtype(name.decode() if isinstance(name, bytes) else name))


def commit_mark(value: Any) -> tuple[int, int]:
    """The (transitions, episodes) a stored commit mark holds: JSON text (an attribute) or two integers (a
    dataset). Raises ``ValueError`` naming what is wrong with a malformed one."""
    try:
        if isinstance(value, (str, bytes)):
            mark = json.loads(value)
            counts = (mark["transitions"], mark["episodes"])
        else:
            counts = tuple(np.asarray(value).tolist())
        if len(counts) == 2 and all(type(c) is int and c >= 0 for c in counts):
            return counts[0], counts[1]
    except (ValueError, TypeError, KeyError, RecursionError):
        pass
    raise ValueError(f"the commit mark {str(value)[:80]!r} is not two counts (transitions, episodes)")


def missing_chunks(rows: int, chunks: tuple[int, ...], shape: tuple[int, ...],
                   stored: Iterable[int]) -> tuple[int, int] | None:
    """Chunks missing within the first ``rows`` rows of an array, given the row index (along the first axis)
    of every chunk stored: ``(how many, the first missing row)``, or ``None``. Counts only what is stored,
    so a header that claims 10^12 rows costs nothing to check."""
    per_step = int(np.prod([-(-n // c) for n, c in zip(shape[1:], chunks[1:])], dtype=np.int64))
    steps = -(-rows // chunks[0])
    counts = Counter(k for k in stored if k < steps)
    present = sum(counts.values())
    if present >= steps * per_step:
        return None
    first = 0
    while counts.get(first, 0) >= per_step:
        first += 1
    return steps * per_step - present, first * chunks[0]


class ChunkedSink:
    """Appends each field's rows in order, growing arrays whose length was not known up front.

    Subclasses provide the storage calls: create, resize and list arrays, set a file-level attribute,
    flush and close. Rows are written by slicing, which h5py and zarr share, unless a subclass has a
    faster way (``_write``).
    """

    def __init__(self, options: WriteOptions, compression: tuple[str, int | None]) -> None:
        self._options = options
        self._compression = compression
        self._arrays: dict[str, Any] = {}
        self._filled: dict[str, int] = {}

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        raise NotImplementedError

    def _resize(self, array: Any, rows: int) -> None:
        raise NotImplementedError

    def _set_attr(self, key: str, text: str) -> None:
        raise NotImplementedError

    def _write_mark(self, transitions: int, episodes: int) -> None:
        """Store the commit mark."""
        raise NotImplementedError

    def _flush(self) -> None:
        """Make everything written so far durable (HDF5 buffers metadata; Zarr writes through)."""

    def _close(self) -> None:
        raise NotImplementedError

    def _existing(self) -> dict[str, Any]:
        """The arrays already in the file, by name."""
        raise NotImplementedError

    def _write(self, array: Any, begin: int, block: np.ndarray) -> None:
        array[begin:begin + len(block)] = block

    def resume(self, transitions: int, episodes: int, per: dict[str, str]) -> "ChunkedSink":
        """Continue appending to the file's arrays after the given committed counts (``per``: each
        field's ``step`` or ``episode``)."""
        self._arrays = self._existing()
        self._filled = {name: transitions if per.get(name, "step") == "step" else episodes for name in self._arrays}
        return self

    def add_field(self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], n_rows: int | None) -> None:
        why = field_name_problem(name)
        if why:
            raise UsageError(why)
        stored, stored_row, attrs = stored_form(dtype, row_shape)
        rows = self._options.rows_per_chunk(stored, stored_row)
        if n_rows:  # a chunk longer than the field would only pad it
            rows = min(rows, n_rows)
        self._arrays[name] = self._create(name, stored, (n_rows or 0,) + stored_row, (rows,) + stored_row, attrs)
        self._filled[name] = 0

    def append(self, name: str, block: np.ndarray) -> None:
        array, begin = self._arrays[name], self._filled[name]
        stop = begin + len(block)
        if stop > array.shape[0]:
            self._resize(array, max(stop, 2 * array.shape[0]))
        self._write(array, begin, text_to_codes(block) if block.dtype.kind == "U" else block)
        self._filled[name] = stop

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        # Stored as JSON text, not as a JSON object, so every format holds the very same bytes.
        self._set_attr(METADATA_KEY, metadata_to_json(metadata))

    def commit(self, transitions: int, episodes: int) -> None:
        """Mark the first ``transitions`` steps and ``episodes`` episodes complete, durably."""
        self._flush()
        self._write_mark(transitions, episodes)
        self._flush()

    def close(self) -> None:
        for name, array in self._arrays.items():
            if array.shape[0] != self._filled[name]:
                self._resize(array, self._filled[name])
        self._close()

    def abort(self) -> None:
        self._close()
