"""HDF5 through h5py: one dataset per field at the file's root, metadata as a JSON attribute.

Arrays stay lazy (h5py datasets) and are chunked along the rows for batch reading.
"""
from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ...core.arrays import ArrayLike
from ...core.errors import UnreadableError
from ...core.field import Field
from ...core.rules import Finding
from ...core.schema import shown
from ..atomic import remove, replace, temporary
from .base import COMMIT_KEY, METADATA_KEY, Capabilities, Coverage, Raw, WriteOptions, metadata_from_json, oversized
from .chunked import ChunkedSink, add_journal, as_read, commit_mark, journal_of, missing_chunks

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: The commit mark's attribute naming the token of the file's journal.
JOURNAL_KEY = "journal"


class _Rows:
    """An h5py dataset whose row slices are read straight into a new array: ``read_direct`` skips most of
    h5py's selection machinery (twice as fast here for block reads). The dataset is opened for each read,
    not held open: an open HDF5 dataset costs about 20 KB, and a peer file may hold one per episode."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self._file, self._name = ds.file, ds.name.encode()
        self.shape, self.dtype = ds.shape, ds.dtype

    @property
    def _ds(self) -> h5py.Dataset:
        # The low-level open: h5py's path lookup costs five times as much, a fifth of a peer file's read.
        return h5py.Dataset(h5py.h5d.open(self._file.id, self._name))

    def will_need(self, start: int, stop: int) -> None:
        """Ask the kernel to start reading the chunks that hold rows ``start:stop`` (h5py reads one
        request at a time, so a reader that knows what comes next saves waiting on the disk)."""
        ds = self._ds  # opened once: each access opens the dataset again
        if not ds.chunks or stop <= start:
            return
        rows = ds.chunks[0]
        fd = os.open(ds.file.filename, os.O_RDONLY)
        try:
            for first in range(start // rows * rows, stop, rows):
                info = ds.id.get_chunk_info_by_coord((first,) + (0,) * (len(self.shape) - 1))
                if info.byte_offset is not None:
                    os.posix_fadvise(fd, info.byte_offset, info.size, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop > start:
            self._ds.read_direct(out, np.s_[start:stop])

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, slice) and key.step in (None, 1)):
            return self._ds[key]
        start, stop, _ = key.indices(self.shape[0])
        out = np.empty((max(0, stop - start),) + self.shape[1:], dtype=self.dtype)
        self.read_into(start, stop, out)
        return out


def _compression_label(ds: h5py.Dataset) -> str:
    if ds.compression is None:
        return "none"
    return f"{ds.compression}:{ds.compression_opts}" if ds.compression_opts is not None else ds.compression


def _left_by_streaming_writer(path: Path) -> bool:
    """Whether the file's superblock says a SWMR writer still has it open: a streaming writer that was
    killed or stopped by a full disk. (Only such files are opened as a SWMR reader would: a SWMR reader
    retries damaged structures a hundred times, which makes other damaged files slow to refuse.)"""
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[:8] == _SIGNATURE and head[8] >= 2 and bool(head[11] & 0b101)


def _open(path: Path) -> h5py.File:
    """Open for reading. A file that a streaming writer left open (killed), or cut short (its disk full: the
    end of file it recorded lies past the bytes written), is read as a SWMR reader reads a file being
    written: up to its last commit mark, which lies within the bytes written."""
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for some damaged superblocks
        if not _left_by_streaming_writer(path):
            raise UnreadableError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        return h5py.File(path, "r", swmr=True)
    except (OSError, RuntimeError) as exc:
        raise UnreadableError(f"{path}: not a readable HDF5 file ({exc})") from None


def _link_outside(f: h5py.File, path: str, depth: int = 0) -> str | None:
    """How following ``path`` inside ``f`` would leave the file (an external link somewhere along it), found
    without following any link out of it; ``None`` when the path stays inside."""
    if depth > 8:
        return "soft links nested too deeply to follow"
    current = "/"
    for part in (p for p in path.split("/") if p):
        link = f[current].get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            return f"an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.SoftLink):
            target = link.path if link.path.startswith("/") else f"{current.rstrip('/')}/{link.path}"
            why = _link_outside(f, target, depth + 1)
            if why:
                return why
            current = target
        elif link is None:
            return None  # a dangling link: reading it fails, inside the file
        else:
            current = f"{current.rstrip('/')}/{part}"
    return None


def outside(ds: h5py.Dataset) -> str | None:
    """How a dataset's data would come from outside its file, if it would."""
    if ds.external:
        return f"its data is stored in external files ({', '.join(str(e[0]) for e in ds.external)[:200]})"
    if ds.is_virtual:
        sources = {vs.file_name for vs in ds.virtual_sources()} - {"."}
        if sources:
            return f"it is a virtual dataset mapped onto other files ({', '.join(sorted(sources))[:200]})"
    return None


def _coverage(rows_of: "_Rows") -> Coverage:
    """Chunks (or contiguous storage) never written within a dataset's first rows: HDF5 would read them as
    zeros."""
    def missing(rows: int) -> tuple[int, int] | None:
        ds = rows_of._ds
        if rows == 0 or ds.size == 0:
            return None
        if ds.chunks is None:
            return None if ds.id.get_storage_size() else (1, 0)
        return missing_chunks(rows, ds.chunks, ds.shape,
                              (ds.id.get_chunk_info(i).chunk_offset[0] // ds.chunks[0]
                               for i in range(ds.id.get_num_chunks())))
    return missing


def _mark(f: h5py.File) -> tuple[tuple[int, int] | None, str | None]:
    """The file's commit mark and its journal token, each ``None`` when absent; ``ValueError`` when the
    mark is malformed."""
    if COMMIT_KEY not in f:
        mark = f.attrs.get(COMMIT_KEY)  # files streamed before commit marks were datasets
        return (None if mark is None else commit_mark(mark)), None
    token = f[COMMIT_KEY].attrs.get(JOURNAL_KEY)
    return commit_mark(f[COMMIT_KEY][()]), token.decode() if isinstance(token, bytes) else None


#: How deep ``read`` looks into groups (a field's name has at most 9 parts; peer formats nest one or two levels).
MAX_NESTING = 8


def _datasets(f: h5py.File, trusted: bool, raw: Raw, group: str = "",
              depth: int = 0) -> Iterator[tuple[str, h5py.Dataset]]:
    """The datasets to read, by path: the root's and those in groups below it. A link that
    leads out of the file is withheld with a finding, never followed. (A path's groups were checked on the
    way down, so only links other than plain hard links need the full walk.)"""
    parent = f[group or "/"]
    for key in parent.keys():
        name = f"{group}/{key}" if group else key
        if name == COMMIT_KEY:
            continue
        link = parent.get(key, getlink=True)
        why = None if trusted or isinstance(link, h5py.HardLink) else _link_outside(f, name)
        if why:
            raw.findings.append(Finding("outside-reference", why, name))
            raw.withheld.add(name)
            continue
        obj = parent.get(key)
        if obj is None:
            raise KeyError(f"'{name}' is a link to nothing")
        if isinstance(obj, h5py.Dataset):
            yield name, obj
        elif isinstance(obj, h5py.Group) and depth < MAX_NESTING:
            yield from _datasets(f, trusted, raw, name, depth + 1)


def read(path: Path | str, trusted: bool = False, remote: Any = None) -> Raw:
    """Open our HDF5 layout: datasets named by their paths (``obs/image``, a leaf of a Dict observation; and
    how peer formats such as D4RL's store ``infos/qpos``). ``remote``: an open file object of a dataset where
    it lives (fsspec), ``path`` then naming it in messages."""
    if remote is not None:
        try:
            f = h5py.File(remote, "r")
        except OSError as exc:
            raise UnreadableError(f"{path}: not a readable HDF5 file ({exc})") from None
    else:
        f = _open(path)
    raw = Raw({}, {}, Path(".") if remote is not None else path.parent, "hdf5", closer=f.close)
    stored: dict[str, _Rows] = {}

    def field(name: str, rows: ArrayLike, attrs: Any = None) -> ArrayLike:
        return Field(as_read(rows, f[name].attrs if attrs is None else attrs), f"{path}: field {shown(name)}")

    try:
        for name, obj in _datasets(f, trusted, raw):
            why = None if trusted else outside(obj)
            if why:
                raw.findings.append(Finding("outside-reference", why, name))
                raw.withheld.add(name)
                continue
            large = oversized(obj.chunks, obj.dtype)
            if large is not None:
                raw.findings.append(Finding(large.rule, large.message, name))
                raw.withheld.add(name)
                continue
            stored[name] = _Rows(obj)
            raw.fields[name] = field(name, stored[name], obj.attrs)
            raw.storage[name] = {"chunks": list(obj.chunks) if obj.chunks else None,
                                 "compression": _compression_label(obj), "checksum": bool(obj.fletcher32)}
            raw.coverage[name] = _coverage(stored[name])
        text = f.attrs.get(METADATA_KEY)
        raw.metadata = metadata_from_json(text, path) if text is not None else {}
        try:
            raw.committed, token = _mark(f)
        except ValueError as exc:
            raw.findings.append(Finding("bad-metadata", str(exc)))
            token = None
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        f.close()
        raise UnreadableError(f"{path}: corrupt HDF5 file ({exc})") from None
    except UnreadableError:
        f.close()
        raise
    if remote is None:
        add_journal(raw, journal_of(path), token, stored, field, trusted)
    return raw


def sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(_SIGNATURE)) == _SIGNATURE


#: File format versions written: HDF5 1.10's, the oldest that single-writer/multiple-reader (SWMR) mode needs.
LIBVER = ("v110", "v110")


def fixed_text(text: str) -> np.bytes_:
    """Text as a fixed-length HDF5 string. A Python ``str`` would be stored variable-length, in HDF5's
    global heap, whose reader can loop forever on a damaged file; files written here keep nothing there."""
    return np.bytes_(text.encode())


def _write_failure(exc: BaseException) -> OSError:
    """HDF5's report of a failed write (it sometimes comes as a ``RuntimeError``) as the ``OSError`` it is."""
    found = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    return OSError(int(found.group(1)), found.group(2)) if found else OSError(errno.EIO, str(exc).split("\n")[0])


@contextmanager
def _writing() -> Iterator[None]:
    """Raise HDF5's failed writes as ``_write_failure`` says."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise _write_failure(exc) from None


def _rewrite(path: Path) -> None:
    """Copy a file (datasets and root attributes) into a fresh one that takes its place atomically: how a
    file that a killed writer left marked open becomes writable again."""
    tmp = temporary(path)
    try:
        with h5py.File(path, "r", swmr=True) as src, h5py.File(tmp, "w", libver=LIBVER) as dst:
            dst.attrs.update(dict(src.attrs))
            for name, obj in src.items():
                if isinstance(obj, h5py.Dataset):
                    src.copy(obj, dst, name=name)
        replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


class Hdf5Sink(ChunkedSink):
    """Writes an HDF5 file; ``append=True`` continues an existing one. Every chunk carries a Fletcher-32
    checksum.

    A streamed file (``commit``) switches to SWMR mode at its first commit: HDF5 then orders its writes so
    that the file on disk is consistent at every moment, and a writer killed at any point leaves every
    committed episode readable (without it, a kill while a compressed chunk was rewritten in place lost
    the file). The commit mark is then a small dataset, since SWMR mode cannot change attributes.
    Commits after the first go to a journal beside the file (``journal_of``).
    """

    def __init__(self, path: Path, options: WriteOptions, append: bool = False) -> None:
        super().__init__(options, options.codec(BACKEND), journal_of(path))
        self._path = path
        self._file = h5py.File(path, "a" if append else "w", libver=LIBVER)

    def _existing(self) -> dict[str, Any]:
        return {name: obj for name, obj in self._file.items() if isinstance(obj, h5py.Dataset) and name != COMMIT_KEY}

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        method, level = self._compression
        ds = self._file.create_dataset(name, shape=shape, maxshape=(None,) + shape[1:], dtype=dtype, chunks=chunks,
                                       compression=None if method == "none" else method,
                                       compression_opts=level if method == "gzip" else None, fletcher32=True)
        for key, text in attrs.items():
            ds.attrs.create(key, fixed_text(text))
        return ds

    def _resize(self, array: Any, rows: int) -> None:
        array.resize(rows, axis=0)

    def _write(self, array: Any, begin: int, block: np.ndarray) -> None:
        if len(block):
            with _writing():
                array.write_direct(np.ascontiguousarray(block), dest_sel=np.s_[begin:begin + len(block)])

    def _set_attr(self, key: str, text: str) -> None:
        self._file.attrs.create(key, fixed_text(text))

    def _write_mark(self, transitions: int, episodes: int) -> None:
        if not self._file.swmr_mode:
            if COMMIT_KEY in self._file.attrs:  # a file streamed before commit marks were datasets
                del self._file.attrs[COMMIT_KEY]
            if COMMIT_KEY not in self._file:
                self._file.create_dataset(COMMIT_KEY, data=np.zeros(2, np.int64))
            self._file[COMMIT_KEY].attrs[JOURNAL_KEY] = fixed_text(self._token)
            self._file.swmr_mode = True
        with _writing():
            self._file[COMMIT_KEY][...] = (transitions, episodes)

    def _stored_mark(self) -> tuple[tuple[int, int] | None, str | None]:
        return _mark(self._file)

    def _flush(self) -> None:
        with _writing():
            self._file.flush()

    def _close(self) -> None:
        try:  # every write happens here, before anything is closed: a failure leaves the file closable
            self._flush()
        except OSError:
            self.abort()
            raise
        self._file.close()

    def abort(self) -> None:
        """Close a file whose writes failed. The HDF5 library cannot: it keeps the unwritten chunks and
        crashes the process at exit trying to write them. So the file's descriptor is pointed at /dev/null
        first; its writes then succeed into nothing (the caller removes the file, or keeps what was
        committed before the failure)."""
        self._drop_journal()
        if not self._file.id.valid:
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._file.id.get_vfd_handle())
        finally:
            os.close(null)
        try:
            self._file.close()
        except (OSError, RuntimeError):
            pass


class _Hdf5:
    name = "hdf5"
    suffixes = (".h5", ".hdf5")
    compressions = {"none": None, "gzip": (0, 9), "lzf": None}
    default_compression = "none"
    # Streamed chunks of 64 KiB, because each move of rows from the journal rewrites the last, partly filled
    # one, and compressed, because HDF5 stores a partly filled chunk whole.
    summary = "HDF5, chunked, a checksum per chunk. Lossless; streams and resumes recordings."
    capabilities = Capabilities(streaming=True, resume=True,
                                streaming_options=WriteOptions(compression="gzip:1", chunk_bytes=2**16))
    sniff = staticmethod(sniff)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> Hdf5Sink:
        return Hdf5Sink(path, options)

    def reopen(self, path: Path, transitions: int, episodes: int, per: dict[str, str]) -> Hdf5Sink:
        try:
            sink = Hdf5Sink(path, WriteOptions(), append=True)
        except OSError as exc:
            if "already open for write" not in str(exc):
                raise
            _rewrite(path)  # left marked open by a killed streaming writer, which HDF5 will not reopen
            sink = Hdf5Sink(path, WriteOptions(), append=True)
        return sink.resume(transitions, episodes, per)


BACKEND = _Hdf5()
