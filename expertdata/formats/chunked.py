"""What the chunked formats (HDF5, Zarr) share: text stored as code points, and appending rows in order.

Text arrays (SB2's image paths) are stored as UTF-32 code points with one trailing axis, the numpy dtype
kept in an attribute, so they round-trip bit-identically where the format has no fixed-width text type.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..arrays import ArrayLike, TextView, text_to_codes
from . import TEXT_DTYPE_KEY, WriteOptions


def stored_form(dtype: np.dtype, row_shape: tuple[int, ...]) -> tuple[np.dtype, tuple[int, ...], dict[str, str]]:
    """The dtype, row shape and attributes a field is stored with."""
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        return np.dtype(np.uint32), tuple(row_shape) + (dtype.itemsize // 4,), {TEXT_DTYPE_KEY: dtype.str}
    return dtype, tuple(row_shape), {}


def as_read(array: ArrayLike, attrs: Any) -> ArrayLike:
    """The array a reader sees: text again where code points were stored."""
    return TextView(array, np.dtype(attrs[TEXT_DTYPE_KEY])) if TEXT_DTYPE_KEY in attrs else array


class ChunkedSink:
    """Appends each field's rows in order, growing arrays whose length was not known up front.

    Subclasses create arrays (``_create``) and grow them (``_grow``); rows are written by slicing, which
    h5py and zarr share, unless a subclass has a faster way (``_write``).
    """

    def __init__(self, options: WriteOptions, compression: tuple[str, int | None]) -> None:
        self._options = options
        self._compression = compression
        self._arrays: dict[str, Any] = {}
        self._filled: dict[str, int] = {}

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        raise NotImplementedError

    def _grow(self, array: Any, rows: int) -> None:
        raise NotImplementedError

    def _write(self, array: Any, begin: int, block: np.ndarray) -> None:
        array[begin:begin + len(block)] = block

    def add_field(self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], n_rows: int | None) -> None:
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
            self._grow(array, stop)
        self._write(array, begin, text_to_codes(block) if block.dtype.kind == "U" else block)
        self._filled[name] = stop
