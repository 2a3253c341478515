"""``Field``: a dataset's field as a read-only numpy-like array, whatever stores it (a ``.npz`` member, an h5py
dataset, a zarr array, a peer's video, a remote chunk store, a view of chosen episodes).

It has numpy's ``shape``, ``dtype``, ``ndim``, ``size``, ``nbytes``, ``len`` and iteration over rows, and is indexed
as numpy indexes (an integer, a slice with any step, an array of integers, a boolean mask, and tuples of them with
the other axes), reading only the rows the index needs: a slice's span, or an index array's distinct rows, then
numpy applies the index to them, so every combination means what it means in numpy. ``np.asarray(field)`` reads the
whole field in one bulk read (NumPy 2's ``__array__(dtype, copy)``). Whatever the storage library raises while
reading (a failed checksum, a truncated chunk) is one ``UnreadableError`` line naming the field.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .arrays import ArrayLike, block_rows, iter_blocks, read_into, will_need
from .errors import ExpertDataError, UnreadableError


class Field:
    """A stored array, read as numpy reads arrays, never written.

    :param label: names the field in messages (``data.zarr: field 'obs'``).
    :param reads_at_once: how many reads are worth running at once (``arrays.reads_at_once``).
    """

    def __init__(self, array: ArrayLike, label: str, reads_at_once: int | None = None) -> None:
        self._array, self._label = array, label
        self.shape, self.dtype = tuple(int(n) for n in array.shape), np.dtype(array.dtype)
        if reads_at_once is not None:
            self.reads_at_once = reads_at_once

    # -- what numpy's arrays have ----------------------------------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d field")
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        """The rows, read a block at a time."""
        if not self.shape:
            raise TypeError("iteration over a 0-d field")
        for block in iter_blocks(self, label=self._label):
            yield from block

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The whole field, in one bulk read (``copy=False`` is refused: a stored field is always read, copied)."""
        if copy is False:
            raise ValueError(f"{self._label}: a stored field cannot be viewed without reading it (copy=False)")
        whole = self._rows(0, self.shape[0]) if self.shape else self._guard(lambda: np.asarray(self._array[()]))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<Field {self._label}: shape {self.shape}, {self.dtype}>"

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(f"{self._label} is read-only: a dataset is changed by writing a new one (expertdata.save)")

    # -- reading ---------------------------------------------------------------------------------------------

    def _guard(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except ExpertDataError:
            raise
        except Exception as exc:  # h5py, zarr, numcodecs, PyAV, ... report damage with many exception types
            raise UnreadableError(f"{self._label}: cannot read: {type(exc).__name__}: {exc}") from None

    def _rows(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((max(0, stop - start),) + self.shape[1:], self.dtype)
        if stop > start:
            self.read_into(start, stop, out)
        return out

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Copy rows ``start:stop`` into ``out``, straight from the file where the storage can."""
        self._guard(read_into, self._array, start, stop, out)

    def will_need(self, start: int, stop: int) -> None:
        self._guard(will_need, self._array, start, stop)

    def __getitem__(self, key: Any) -> Any:
        """``field[key]`` as numpy gives it: only the rows the first axis's index needs are read."""
        if not self.shape:
            return self.__array__()[key]
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
        if rows is Ellipsis or rows is None:  # the first axis is not the one indexed: numpy decides on the whole
            return self.__array__()[key]
        n = self.shape[0]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            span = range(start, stop, step)
            if not span:
                return self._rows(0, 0)[(slice(None),) + rest]
            low, high = min(span), max(span) + 1
            if step != 1 and len(span) * 2 < high - low:  # rows far apart: read those alone
                rows = np.asarray(span, np.int64)
                distinct, where = np.unique(rows, return_inverse=True)
                return self._gather(distinct)[(where,) + rest]
            local = slice(start - low, (stop - low) if stop - low >= 0 else None, step)
            return self._rows(low, high)[(local,) + rest]
        if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
            at = int(rows) + (n if rows < 0 else 0)
            if not 0 <= at < n:
                raise IndexError(f"{self._label}: row {int(rows)} is out of bounds for {n:,} rows")
            return self._rows(at, at + 1)[(0,) + rest]
        picked = np.asarray(rows)
        if picked.dtype == bool:
            if picked.shape[:1] != (n,):
                raise IndexError(f"{self._label}: a boolean index of {picked.shape} for {n:,} rows")
            return self._gather(np.flatnonzero(picked.reshape(n, -1).any(axis=1)) if picked.ndim > 1 else
                                np.flatnonzero(picked), full=picked if picked.ndim > 1 else None, rest=rest)
        if picked.dtype.kind not in "iu":
            raise IndexError(f"{self._label}: rows are indexed by integers, slices, integer arrays or boolean masks, "
                             f"not {type(rows).__name__} of {picked.dtype}")
        wrapped = np.where(picked < 0, picked + n, picked).astype(np.int64)
        if wrapped.size and (wrapped.min() < 0 or wrapped.max() >= n):
            bad = picked.ravel()[int(np.argmax((wrapped.ravel() < 0) | (wrapped.ravel() >= n)))]
            raise IndexError(f"{self._label}: row {int(bad)} is out of bounds for {n:,} rows")
        distinct, where = np.unique(wrapped, return_inverse=True)
        return self._gather(distinct)[(where.reshape(wrapped.shape),) + rest]

    def _gather(self, distinct: np.ndarray, full: np.ndarray | None = None, rest: tuple = ()) -> np.ndarray:
        """Rows ``distinct`` (increasing), read run by run (or their whole span where they are dense); with
        ``full``, a boolean mask over more than the rows, applied as numpy would to those rows."""
        out = np.empty((len(distinct),) + self.shape[1:], self.dtype)
        if len(distinct):
            first, last = int(distinct[0]), int(distinct[-1]) + 1
            if 2 * len(distinct) >= last - first:
                out[...] = self._rows(first, last)[distinct - first]
            else:
                breaks = np.flatnonzero(np.diff(distinct) != 1) + 1
                for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(distinct)]):
                    self.read_into(int(distinct[lo]), int(distinct[hi - 1]) + 1, out[lo:hi])
        if full is not None:
            return out[full[distinct]][(slice(None),) + rest] if rest else out[full[distinct]]
        return out if not rest else out[(slice(None),) + rest]

    def blocks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """The rows as consecutive numpy blocks of about ``arrays.BLOCK_BYTES`` (or ``rows`` rows)."""
        return iter_blocks(self, rows=rows or block_rows(self), label=self._label)
