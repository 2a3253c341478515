"""Array-like helpers shared by every backend: reading lazy arrays in row blocks, and text stored as code points.

A dataset's fields are numpy arrays, memory maps, h5py datasets or zarr arrays: anything with ``shape``,
``dtype`` and row slicing. Nothing here reads more than one block at a time.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol

import numpy as np

#: Rows are read and written in blocks of about this many bytes: large enough for sequential I/O,
#: small enough that converting a dataset larger than memory stays within bounded memory.
BLOCK_BYTES = 32 * 2**20


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


def iter_blocks(array: ArrayLike, start: int = 0, stop: int | None = None,
                rows: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``array[start:stop]`` as consecutive numpy blocks of ``rows`` rows."""
    stop = array.shape[0] if stop is None else stop
    rows = rows or block_rows(array)
    for begin in range(start, stop, rows):
        yield np.asarray(array[begin:min(begin + rows, stop)])


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

    @property
    def storage(self) -> ArrayLike:
        """The array the code points are stored in (for chunking and compression reports)."""
        return self._codes
