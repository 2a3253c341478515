"""What the chunked formats (HDF5, Zarr) share: text stored as code points, and appending rows in order.

Text arrays (SB2's image paths) are stored as UTF-32 code points with one trailing axis, the numpy dtype
kept in an attribute, so they round-trip bit-identically where the format has no fixed-width text type.

Appending is crash-safe: arrays grow ahead of the data (geometrically, so growing is rare), and after
each whole episode the writer records how many transitions and episodes are complete (``commit``).
Readers cut every array to that mark, so a killed recording still reads as a valid dataset. Where the
backend gives a journal path, commits go to the journal (``expertdata.io.journal``) and reach the
arrays and the mark every ``JOURNAL_BYTES``; readers add the journal's commits after the mark.
"""
from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ...core import guard
from ...core.arrays import Appended, ArrayLike, RowWindow, TextView, text_to_codes
from ...core.errors import ExpertDataError, UsageError
from ...core.rules import Finding
from ...core.schema import field_name_problem, field_per, shown
from .. import journal
from .base import METADATA_KEY, TEXT_DTYPE_KEY, Raw, WriteOptions, metadata_to_json

#: Committed rows wait in the journal until about this many bytes have come, then move into the arrays:
#: each move rewrites every field's last, partly filled chunk.
JOURNAL_BYTES = 2**20


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


def journal_token(mark: Any) -> str | None:
    """The journal token a commit mark stored as JSON text holds, if any."""
    try:
        token = json.loads(mark).get("journal") if isinstance(mark, (str, bytes)) else None
    except (ValueError, AttributeError, RecursionError):
        return None
    return token if isinstance(token, str) else None


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


def journal_of(path: Path) -> Path:
    """Where a streaming writer keeps its journal: beside the dataset, as SQLite keeps its own."""
    return path.with_name(path.name + "-journal")


def _layout(arrays: dict[str, ArrayLike]) -> journal.Layout:
    return {name: (np.dtype(array.dtype), tuple(array.shape[1:])) for name, array in arrays.items()}


def add_journal(raw: Raw, at: Path, token: str | None, stored: dict[str, ArrayLike],
                field: Callable[[str, ArrayLike], ArrayLike], trusted: bool) -> None:
    """Add the commits that a streaming writer's journal at ``at`` holds after ``raw``'s commit mark.

    :param token: the journal token stored with the commit mark (``None``: the file has no journal).
    :param stored: every array as stored (text as code points).
    :param field: the field a reader sees, from a stored array (or the stored rows and the journal's).
    """
    if raw.committed is None or token is None or not os.path.lexists(at):
        return
    if not trusted and os.path.islink(at):
        raw.findings.append(Finding("outside-reference", f"its journal {at.name} is a link "
                                                         f"(to {os.path.realpath(at)}); it is not read"))
        return
    mark = raw.committed
    try:
        reached, tail, problem = journal.read(guard.Scope(at.parent, trusted).open(at.name), token, _layout(stored),
                                              mark)
    except (OSError, ExpertDataError) as exc:
        reached, tail, problem = mark, {}, f"its journal cannot be read ({exc})"
    if problem:
        raw.findings.append(Finding("missing-data", f"episodes committed after episode {reached[1]:,} are lost: "
                                                    f"{problem}"))
    if reached == mark:
        return
    for name, array in stored.items():
        if name in raw.fields:
            rows = mark[0] if field_per(name, raw.metadata) == "step" else mark[1]
            raw.fields[name] = field(name, Appended(RowWindow(array, slice(0, rows)), tail[name]))
            if name in raw.coverage:  # the arrays' own chunks are checked up to the mark only
                raw.coverage[name] = lambda count, covered=raw.coverage[name], rows=rows: covered(min(count, rows))
    raw.committed = reached


class ChunkedSink:
    """Appends each field's rows in order, growing arrays whose length was not known up front.

    Subclasses provide the storage calls: create, resize and list arrays, set a file-level attribute,
    flush and close. Rows are written by slicing, which h5py and zarr share, unless a subclass has a
    faster way (``_write``).
    """

    def __init__(self, options: WriteOptions, compression: tuple[str, int | None],
                 journal_at: Path | None = None) -> None:
        self._options = options
        self._compression = compression
        self._arrays: dict[str, Any] = {}
        self._filled: dict[str, int] = {}
        self._journal_at = journal_at
        #: Written with the commit mark and in the journal's header, so only this file's journal is read.
        self._token = secrets.token_hex(8)
        self._journal: journal.Journal | None = None
        self._committed = (0, 0)
        self._uncommitted: dict[str, list[np.ndarray]] = {}
        self._waiting: dict[str, list[np.ndarray]] = {}
        self._waiting_bytes = 0

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        raise NotImplementedError

    def _resize(self, array: Any, rows: int) -> None:
        raise NotImplementedError

    def _set_attr(self, key: str, text: str) -> None:
        raise NotImplementedError

    def _write_mark(self, transitions: int, episodes: int) -> None:
        """Store the commit mark, with ``_token``."""
        raise NotImplementedError

    def _stored_mark(self) -> tuple[tuple[int, int] | None, str | None]:
        """The commit mark the file holds and its journal token, each ``None`` when absent."""
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
        field's ``step`` or ``episode``), moving what a killed writer's journal holds into them first."""
        self._arrays = self._existing()
        mark, token = self._stored_mark()
        stored = mark or (transitions, episodes)
        self._filled = {name: stored[0] if per.get(name, "step") == "step" else stored[1] for name in self._arrays}
        if self._journal_at is not None and os.path.lexists(self._journal_at):
            if stored != (transitions, episodes) and token is not None:
                reached, rows, _ = journal.read(open(self._journal_at, "rb"), token, _layout(self._arrays), stored)
                for name, block in rows.items():
                    self._append_rows(name, block)
                self._mark(*reached)
            self._journal_at.unlink()
        self._committed = (transitions, episodes)
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

    def _as_stored(self, name: str, block: np.ndarray) -> np.ndarray:
        if block.dtype.kind == "U":  # stored at the array's width (text from another source may be narrower)
            width = self._arrays[name].shape[-1]
            if block.dtype.itemsize // 4 > width:
                raise UsageError(f"field {shown(name)}: text of {block.dtype.itemsize // 4} characters does not fit "
                                 f"its stored width of {width}")
            block = text_to_codes(block.astype(f"<U{width}"))
        return block

    def write_rows(self, name: str, begin: int, block: np.ndarray) -> None:
        """Write rows at ``begin`` rather than after the last: for a writer that places rows itself (a cluster's
        client, whose workers write the rest)."""
        self._write(self._arrays[name], begin, self._as_stored(name, block))
        self._filled[name] = max(self._filled[name], begin + len(block))

    def written_elsewhere(self, name: str, rows: int) -> None:
        """Rows ``0:rows`` of field ``name`` were written into the store by others (a cluster's workers)."""
        self._filled[name] = max(self._filled[name], rows)

    def append(self, name: str, block: np.ndarray) -> None:
        block = self._as_stored(name, block)
        if self._journal is None:
            self._append_rows(name, block)
        else:
            self._uncommitted.setdefault(name, []).append(block)

    def _append_rows(self, name: str, block: np.ndarray) -> None:
        array, begin = self._arrays[name], self._filled[name]
        stop = begin + len(block)
        if stop > array.shape[0]:
            self._resize(array, max(stop, 2 * array.shape[0]))
        self._write(array, begin, block)
        self._filled[name] = stop

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        # Stored as JSON text, not as a JSON object, so every format holds the very same bytes.
        self._set_attr(METADATA_KEY, metadata_to_json(metadata))

    def commit(self, transitions: int, episodes: int) -> None:
        """Mark the first ``transitions`` steps and ``episodes`` episodes complete, durably: the first commit
        in the file, the next ones in the journal (where the backend keeps one)."""
        if self._journal is None:
            self._mark(transitions, episodes)
            if self._journal_at is not None:
                self._journal = journal.Journal(self._journal_at, self._token, _layout(self._arrays))
        else:
            self._journal.append(self._committed, (transitions, episodes), self._uncommitted)
            for name, blocks in self._uncommitted.items():
                self._waiting.setdefault(name, []).extend(blocks)
                self._waiting_bytes += sum(block.nbytes for block in blocks)
            self._uncommitted = {}
        self._committed = (transitions, episodes)  # durable from here on, whatever moving the rows meets
        if self._waiting_bytes >= JOURNAL_BYTES:
            self._store_waiting(transitions, episodes)

    def _mark(self, transitions: int, episodes: int) -> None:
        self._flush()
        self._write_mark(transitions, episodes)
        self._flush()

    def _store_waiting(self, transitions: int, episodes: int) -> None:
        """Move the journal's rows into the arrays, mark them committed there, and empty the journal."""
        for name, blocks in self._waiting.items():
            self._append_rows(name, np.concatenate(blocks))
        self._mark(transitions, episodes)
        self._journal.reset()
        self._waiting, self._waiting_bytes = {}, 0  # only now: a failure above keeps the journal

    def close(self) -> None:
        try:
            if self._journal is not None:
                if self._waiting:
                    self._store_waiting(*self._committed)
                self._journal.close()
                self._journal = None
                self._journal_at.unlink()
            for name, array in self._arrays.items():
                if array.shape[0] != self._filled[name]:
                    self._resize(array, self._filled[name])
        except BaseException:  # a full disk: release the file, keeping what was committed (and the journal)
            self.abort()
            raise
        self._close()

    def abort(self) -> None:
        self._drop_journal()
        self._close()

    def _drop_journal(self) -> None:
        """Stop journaling after a failure: a journal holding commits stays for readers, an empty one goes."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            if not self._waiting:
                self._journal_at.unlink(missing_ok=True)
