"""HDF5 through h5py: one dataset per field at the file's root, metadata as a JSON attribute.

Arrays stay lazy (h5py datasets) and are chunked along the rows for batch reading.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UnreadableError
from .base import METADATA_KEY, Capabilities, Raw, WriteOptions, metadata_from_json
from .chunked import ChunkedSink, as_read, committed

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class _Rows:
    """An h5py dataset whose row slices are read straight into a new array: ``read_direct`` skips most of
    h5py's selection machinery (twice as fast here for block reads)."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self._ds = ds
        self.shape, self.dtype = ds.shape, ds.dtype

    def will_need(self, start: int, stop: int) -> None:
        """Ask the kernel to start reading the chunks that hold rows ``start:stop`` (h5py reads one
        request at a time, so a reader that knows what comes next saves waiting on the disk)."""
        if not self._ds.chunks or stop <= start:
            return
        rows = self._ds.chunks[0]
        fd = os.open(self._ds.file.filename, os.O_RDONLY)
        try:
            for first in range(start // rows * rows, stop, rows):
                info = self._ds.id.get_chunk_info_by_coord((first,) + (0,) * (len(self.shape) - 1))
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


def read(path: Path) -> Raw:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UnreadableError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        datasets = {name: obj for name, obj in f.items() if isinstance(obj, h5py.Dataset)}
        fields = {name: as_read(_Rows(ds), ds.attrs) for name, ds in datasets.items()}
        storage = {name: {"chunks": list(ds.chunks) if ds.chunks else None, "compression": _compression_label(ds)}
                   for name, ds in datasets.items()}
        text = f.attrs.get(METADATA_KEY)
        metadata = metadata_from_json(text, path) if text is not None else {}
        mark = committed(f.attrs)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        f.close()
        raise UnreadableError(f"{path}: corrupt HDF5 file ({exc})") from None
    except UnreadableError:
        f.close()
        raise
    return Raw(fields, metadata, path.parent, "hdf5", storage, f.close, mark)


def sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(_SIGNATURE)) == _SIGNATURE


class Hdf5Sink(ChunkedSink):
    """Writes an HDF5 file; ``append=True`` continues an existing one. Flushed at every commit."""

    def __init__(self, path: Path, options: WriteOptions, append: bool = False) -> None:
        super().__init__(options, options.codec(BACKEND))
        self._file = h5py.File(path, "a" if append else "w")

    def _existing(self) -> dict[str, Any]:
        return {name: obj for name, obj in self._file.items() if isinstance(obj, h5py.Dataset)}

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        method, level = self._compression
        ds = self._file.create_dataset(name, shape=shape, maxshape=(None,) + shape[1:], dtype=dtype, chunks=chunks,
                                       compression=None if method == "none" else method,
                                       compression_opts=level if method == "gzip" else None)
        ds.attrs.update(attrs)
        return ds

    def _resize(self, array: Any, rows: int) -> None:
        array.resize(rows, axis=0)

    def _write(self, array: Any, begin: int, block: np.ndarray) -> None:
        if len(block):
            array.write_direct(np.ascontiguousarray(block), dest_sel=np.s_[begin:begin + len(block)])

    def _set_attr(self, key: str, text: str) -> None:
        self._file.attrs[key] = text

    def _flush(self) -> None:
        self._file.flush()

    def _close(self) -> None:
        self._file.close()


class _Hdf5:
    name = "hdf5"
    suffixes = (".h5", ".hdf5")
    compressions = ("none", "gzip", "lzf")
    default_compression = "none"
    # Streamed chunks of 1 MiB, because an episode rewrites its last, partly filled chunk, and compressed,
    # because HDF5 stores a partly filled chunk whole.
    capabilities = Capabilities(streaming=True, resume=True,
                                streaming_options=WriteOptions(compression="gzip:1", chunk_bytes=2**20))
    sniff = staticmethod(sniff)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> Hdf5Sink:
        return Hdf5Sink(path, options)

    def reopen(self, path: Path, transitions: int, episodes: int, per: dict[str, str]) -> Hdf5Sink:
        return Hdf5Sink(path, WriteOptions(), append=True).resume(transitions, episodes, per)


BACKEND = _Hdf5()
