"""Zarr (format 3): a group with one array per field and metadata in its attributes.

Two backends: ``zarr``, a directory store (``.zarr``), written in place and streamable, and ``zarr-zip``,
a zip store (``.zarr.zip``), one file to share, written once. Arrays stay lazy and are chunked along the
rows; Zstandard at level 1 by default, which decodes far faster than a disk reads.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.codecs
import zarr.storage

from ..atomic import remove
from ..errors import UnreadableError
from .base import METADATA_KEY, Capabilities, Raw, WriteOptions, metadata_from_json
from .chunked import ChunkedSink, as_read, committed

_CODECS = {"zstd": lambda level: zarr.codecs.ZstdCodec(level=1 if level is None else level),
           "gzip": lambda level: zarr.codecs.GzipCodec(level=5 if level is None else level)}


def _is_zip(path: Path) -> bool:
    return str(path).lower().endswith(".zip")


def _open_for_reading(path: Path) -> Any:
    return zarr.storage.ZipStore(path, mode="r") if _is_zip(path) else zarr.storage.LocalStore(path, read_only=True)


def _compression_label(array: zarr.Array) -> str:
    codecs = [c for c in array.compressors]
    if not codecs:
        return "none"
    codec = codecs[0]
    name = type(codec).__name__.replace("Codec", "").lower()
    level = getattr(codec, "level", None)
    return f"{name}:{level}" if level is not None else name


def read(path: Path) -> Raw:
    store = None
    try:
        store = _open_for_reading(path)
        group = zarr.open_group(store, mode="r", zarr_format=3)
        arrays = dict(group.arrays())
        fields = {name: as_read(a, a.attrs) for name, a in arrays.items()}
        storage = {name: {"chunks": list(a.chunks), "compression": _compression_label(a)} for name, a in arrays.items()}
        text = group.attrs.get(METADATA_KEY)
        mark = committed(group.attrs)
    except Exception as exc:  # zarr reports a broken store with many exception types
        if store is not None:
            store.close()
        raise UnreadableError(f"{path}: not a readable Zarr v3 store ({type(exc).__name__}: {exc})") from None
    metadata = metadata_from_json(text, path) if text is not None else {}
    return Raw(fields, metadata, path.parent, "zarr-zip" if _is_zip(path) else "zarr", storage, store.close, mark)


def sniff_directory(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").is_file()


def sniff_zip(path: Path) -> bool:
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return "zarr.json" in zf.namelist()
    return False


def _pack(folder: Path, path: Path) -> None:
    """Zip a directory store: a zip store holds the same keys, uncompressed (chunks are compressed already)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(folder).as_posix())


class ZarrSink(ChunkedSink):
    """Writes a directory store, every file replaced atomically by zarr, so a killed writer leaves the
    store as of its last commit. A zip store is written as a directory beside it and zipped on close,
    because a zip member cannot be rewritten and metadata is rewritten as arrays grow."""

    def __init__(self, path: Path, options: WriteOptions, append: bool = False) -> None:
        super().__init__(options, options.codec(BACKEND))
        self._zip = path if _is_zip(path) else None
        self._folder = path.with_name(path.name + ".d") if self._zip else path
        self._store = zarr.storage.LocalStore(self._folder)
        self._group = zarr.open_group(self._store, mode="r+" if append else "w", zarr_format=3)

    def _existing(self) -> dict[str, Any]:
        return dict(self._group.arrays())

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        method, level = self._compression
        compressors = None if method == "none" else _CODECS[method](level)
        # Every chunk is written, even one that equals the fill value: checking each chunk for it took more
        # than half of an uncompressed write.
        return self._group.create_array(name, shape=shape, dtype=dtype, chunks=chunks, compressors=compressors,
                                        fill_value=0, attributes=attrs, config={"write_empty_chunks": True})

    def _resize(self, array: Any, rows: int) -> None:
        array.resize((rows,) + array.shape[1:])

    def _set_attr(self, key: str, text: str) -> None:
        self._group.attrs[key] = text

    def _close(self) -> None:
        self._store.close()
        if self._zip is not None:
            _pack(self._folder, self._zip)
            remove(self._folder)

    def abort(self) -> None:
        self._store.close()
        if self._zip is not None:
            remove(self._folder)


class _Zarr:
    name = "zarr"
    suffixes = (".zarr",)
    compressions = ("none", "zstd", "gzip")
    default_compression = "zstd"
    # Streamed chunks of 1 MiB, because an episode rewrites its last, partly filled chunk.
    capabilities = Capabilities(streaming=True, resume=True, streaming_options=WriteOptions(chunk_bytes=2**20))
    sniff = staticmethod(sniff_directory)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> ZarrSink:
        return ZarrSink(path, options)

    def reopen(self, path: Path, transitions: int, episodes: int, per: dict[str, str]) -> ZarrSink:
        return ZarrSink(path, WriteOptions(), append=True).resume(transitions, episodes, per)


class _ZarrZip:
    """A zip member cannot be rewritten, so a zip store is neither streamed nor appended to."""

    name = "zarr-zip"
    suffixes = (".zarr.zip",)
    compressions = _Zarr.compressions
    default_compression = _Zarr.default_compression
    capabilities = Capabilities()
    sniff = staticmethod(sniff_zip)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> ZarrSink:
        return ZarrSink(path, options)


BACKEND = _Zarr()
ZIP_BACKEND = _ZarrZip()
