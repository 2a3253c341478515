"""An append-only journal of committed rows, so that a streamed recording commits each episode with one
small write rather than one file rewrite per field.

A chunked store rewrites whole chunk files, and an atomic file rewrite costs far more than a recorded
episode (about 0.4 ms each here, nine per episode for Zarr). The writer therefore appends each commit's
rows to the journal (one ``write``, durable against a kill as soon as it returns) and moves them into the
store only every megabyte or so, after which the store's commit mark covers them and the journal starts
again. A reader takes the store up to its mark, then every journal record after it.

Layout: a header (``MAGIC``, then the length and JSON of the fields' names, dtypes and row shapes), then
records: ``RECORD``, the record's length, the commit mark before and after it, each field's row count,
the rows' bytes field by field, and a CRC-32 of all of it. A record cut short by a kill is ignored, as
its commit had not returned.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core import guard
from ..core.errors import ExpertDataError

MAGIC = b"expertdata journal 1\n"
RECORD = b"EDJR"
_HEAD = struct.Struct("<4sQQQQQ")  # RECORD, record length, transitions and episodes before, then after
_COUNT = struct.Struct("<Q")
_CRC = struct.Struct("<I")
#: The most header text read: a few hundred bytes per field.
MAX_HEADER_BYTES = 2**20

Layout = dict[str, tuple[np.dtype, tuple[int, ...]]]


def _header(token: str, layout: Layout) -> bytes:
    text = json.dumps({"token": token, "fields": [[name, np.dtype(dtype).str, list(shape)]
                                                  for name, (dtype, shape) in layout.items()]})
    return MAGIC + _COUNT.pack(len(text)) + text.encode()


def _little(layout: Layout) -> Layout:
    return {name: (np.dtype(dtype).newbyteorder("<"), tuple(shape)) for name, (dtype, shape) in layout.items()}


class Journal:
    """Appends commits to the journal at ``path``, created empty (bar its header) for ``layout``.

    :param token: the dataset's commit mark holds the same token, so a journal left beside another
        dataset (an older one at the same path) is never read as this one's.
    """

    def __init__(self, path: Path, token: str, layout: Layout) -> None:
        self._layout = _little(layout)
        self._header = _header(token, self._layout)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0),
                           0o644)
        self._write(self._header)

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def append(self, before: tuple[int, int], after: tuple[int, int], rows: dict[str, list[np.ndarray]]) -> None:
        """Record one commit: the rows appended to each field since ``before``, which bring the store to
        ``after`` (transitions, episodes)."""
        blocks = [np.ascontiguousarray(np.concatenate(rows[name]) if rows[name] else
                                       np.empty((0,) + shape, dtype), dtype=dtype)
                  for name, (dtype, shape) in self._layout.items()]
        counts = b"".join(_COUNT.pack(len(block)) for block in blocks)
        length = _HEAD.size + len(counts) + sum(block.nbytes for block in blocks) + _CRC.size
        head = _HEAD.pack(RECORD, length, *before, *after)
        crc = zlib.crc32(counts, zlib.crc32(head))
        for block in blocks:
            crc = zlib.crc32(block, crc)
        self._write(b"".join([head, counts, *blocks, _CRC.pack(crc)]))  # one write: the record whole, or cut

    def reset(self) -> None:
        """Forget every record (the store's commit mark now covers them)."""
        os.ftruncate(self._fd, len(self._header))

    def close(self) -> None:
        os.close(self._fd)


def _header_of(text: bytes) -> tuple[str, Layout]:
    header = guard.parse_json(text, "its journal's header", limit=MAX_HEADER_BYTES)
    return str(header["token"]), _little({name: (dtype, shape) for name, dtype, shape in header["fields"]})


def _rows(body: bytes, layout: Layout) -> dict[str, np.ndarray] | None:
    """A record's rows per field, or ``None`` when its counts do not add up to its bytes."""
    counts = np.frombuffer(body, "<u8", len(layout)).tolist()
    sizes = [count * int(np.prod(shape, dtype=np.int64)) for count, (_, shape) in zip(counts, layout.values())]
    nbytes = [size * dtype.itemsize for size, (dtype, _) in zip(sizes, layout.values())]
    offset = _COUNT.size * len(layout)
    if offset + sum(nbytes) != len(body):
        return None
    rows = {}
    for (name, (dtype, shape)), count, size, n in zip(layout.items(), counts, sizes, nbytes):
        rows[name] = np.frombuffer(body, dtype, size, offset).reshape((count,) + shape)
        offset += n
    return rows


def read(handle: BinaryIO, token: str, layout: Layout,
         mark: tuple[int, int]) -> tuple[tuple[int, int], dict[str, np.ndarray], str]:
    """The commits recorded after ``mark`` in the journal at ``path``: the mark they bring the store to,
    each field's rows after ``mark``, and a problem found (``""`` when none). A journal with another
    ``token`` belongs to another dataset and is not read (no problem). Records up to ``mark`` are
    skipped; reading stops at the first record that does not follow on. A record cut short or failing its
    CRC at the end of the file is a commit that never returned and is not a problem; one before the end
    is, and so is a record whose length runs past the end while another record follows it (its length field
    damaged, not a kill). Nothing is allocated beyond the file's own size."""
    expected = _little(layout)
    tail: dict[str, list[np.ndarray]] = {name: [] for name in layout}
    reached, problem = mark, ""
    with handle as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(len(MAGIC)) != MAGIC:
            return mark, {}, "its journal does not start as one"
        (text_bytes,) = _COUNT.unpack(f.read(_COUNT.size).ljust(_COUNT.size, b"\0"))
        if text_bytes > min(MAX_HEADER_BYTES, size):
            return mark, {}, "its journal's header is longer than the file"
        try:
            written_for, stored = _header_of(f.read(text_bytes))
        except (ValueError, TypeError, KeyError, ExpertDataError):
            return mark, {}, "its journal's header is not a layout of fields"
        if written_for != token:
            return mark, {}, ""
        if stored != expected:
            return mark, {}, "its journal was written for other fields"
        while f.tell() + _HEAD.size <= size:
            start = f.tell()
            head = f.read(_HEAD.size)
            magic, length, t0, e0, t1, e1 = _HEAD.unpack(head)
            whole = magic == RECORD and _HEAD.size + _COUNT.size * len(stored) + _CRC.size <= length
            if whole and length > size - start:  # cut short by a kill, unless a record follows (a damaged length)
                if RECORD in f.read(size - f.tell()):
                    problem = f"its journal is damaged at byte {start:,} (a record's length)"
                break
            body = f.read(length - _HEAD.size) if whole else b""
            crc = zlib.crc32(body[:-_CRC.size], zlib.crc32(head))
            rows = _rows(body[:-_CRC.size], stored) if whole and crc == _CRC.unpack(body[-_CRC.size:])[0] else None
            if rows is None:
                if f.tell() < size:
                    problem = f"its journal is damaged at byte {start:,}"
                break
            if e1 <= mark[1]:
                continue
            if (t0, e0) != reached:
                problem = f"its journal skips from episode {reached[1]:,} to episode {e0:,}"
                break
            for name, block in rows.items():
                tail[name].append(block)
            reached = (t1, e1)
    return reached, {name: np.concatenate(blocks) if blocks else np.empty((0,) + expected[name][1], expected[name][0])
                     for name, blocks in tail.items()}, problem

