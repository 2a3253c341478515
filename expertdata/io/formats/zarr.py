"""Zarr (format 3): a group with one array per field and metadata in its attributes.

Two backends: ``zarr``, a directory store (``.zarr``), written in place and streamable, and ``zarr-zip``,
a zip store (``.zarr.zip``), one file to share, written once. Arrays stay lazy and are chunked along the
rows; Zstandard at level 1 by default, which decodes far faster than a disk reads.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numcodecs
import numpy as np
import zarr
import zarr.codecs
import zarr.errors
import zarr.storage

from ...core.arrays import ArrayLike
from ...core.errors import UnreadableError
from ...core.field import Field
from ...core.rules import Finding
from ...core.schema import MAX_METADATA_BYTES, shown
from ..atomic import remove
from .base import COMMIT_KEY, METADATA_KEY, Capabilities, Coverage, Raw, WriteOptions, metadata_from_json, oversized
from .chunked import ChunkedSink, add_journal, as_read, commit_mark, journal_of, journal_token, missing_chunks

#: Blocks of a remote dataset worth reading at once: each waits on the network, not on this machine.
REMOTE_READS = 8
#: How deep ``read`` looks into groups (a field's name has at most 9 parts).
MAX_NESTING = 8
_CODECS = {"zstd": lambda level: zarr.codecs.ZstdCodec(level=1 if level is None else level),
           "gzip": lambda level: zarr.codecs.GzipCodec(level=5 if level is None else level)}
_V2_CODECS = {"zstd": lambda level: numcodecs.Zstd(level=1 if level is None else level),
              "gzip": lambda level: numcodecs.GZip(level=5 if level is None else level)}


def _is_zip(path: Path) -> bool:
    return str(path).lower().endswith(".zip")


def _open_for_reading(path: Path) -> Any:
    return zarr.storage.ZipStore(path, mode="r") if _is_zip(path) else zarr.storage.LocalStore(path, read_only=True)


def _compression_label(array: zarr.Array) -> str:
    codecs = [c for c in array.compressors if not isinstance(c, zarr.codecs.Crc32cCodec)]
    if not codecs:
        return "none"
    codec = codecs[0]
    name = type(codec).__name__.replace("Codec", "").lower()
    level = getattr(codec, "level", None)
    return f"{name}:{level}" if level is not None else name


def _keys(path: Path, zip_names: list[str] | None) -> list[str]:
    """Every key of the store, as paths relative to its root."""
    if zip_names is not None:
        return [n for n in zip_names if not n.endswith("/")]
    return [str(Path(folder, name).relative_to(path)) for folder, _, names in os.walk(path) for name in names]


#: Group metadata keys: a link there makes the whole group come from outside the store.
_GROUP_KEYS = ("zarr.json", ".zgroup", ".zattrs")


def _links_outside(path: Path) -> dict[str, str]:
    """Symbolic links in a directory store whose targets lie outside it, by their path in the store
    (``""`` for a group's own metadata)."""
    root, found = os.path.realpath(path), {}
    for folder, dirs, names in os.walk(path):
        for name in dirs + names:
            link = os.path.join(folder, name)
            target = os.path.realpath(link)
            if os.path.islink(link) and os.path.commonpath([root, target]) != root:
                key = Path(link).relative_to(path).as_posix()
                owner = "" if name in _GROUP_KEYS else key
                found.setdefault(owner, f"{key} -> {target}")
    return found


def _outside(name: str, links: dict[str, str]) -> str | None:
    """The link that would lead array ``name``'s data out of the store, if one does."""
    return next((why for key, why in links.items() if key and (name == key or name.startswith(key + "/") or
                                                                key.startswith(name + "/"))), None)


def _coverage(array: zarr.Array, keys: list[str]) -> Coverage:
    """Chunks never written within an array's first rows: zarr would read them as the fill value."""
    if array.metadata.zarr_format == 2:
        separator, default = array.metadata.dimension_separator or ".", False
    else:
        encoding = array.metadata.chunk_key_encoding
        separator = getattr(encoding, "separator", "/")
        default = getattr(encoding, "name", "default") == "default"
    prefix = f"{array.name.strip('/')}/" + ("c" + separator if default else "")
    grid = array.shards or array.chunks

    def row_chunk(key: str) -> int | None:
        head = key[len(prefix):].split(separator, 1)[0]
        return int(head) if head.isdigit() else None

    rows_of_chunks = [k for k in (row_chunk(key) for key in keys if key.startswith(prefix)) if k is not None]
    return lambda rows: None if rows == 0 or array.size == 0 else missing_chunks(rows, grid, array.shape,
                                                                                  rows_of_chunks)


def _close_quietly(store: Any) -> None:
    """Close a store that may have failed to open (zarr's zip store then fails to close as well)."""
    try:
        if store is not None:
            store.close()
    except Exception:  # nothing is left to release
        pass


def _arrays(group: zarr.Group, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, zarr.Array]]:
    """The group's arrays by path, those of the groups below it included (files that are not Zarr's, such as
    a dataset card's README.md, are passed over without zarr's warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is not recognized as a component of a Zarr hierarchy")
        arrays, groups = list(group.arrays()), list(group.groups()) if depth < MAX_NESTING else []
    for name, array in arrays:
        yield prefix + name, array
    for name, child in groups:
        yield from _arrays(child, f"{prefix}{name}/", depth + 1)


def read(path: Path, trusted: bool = False, zarr_format: int | None = None) -> Raw:
    """Open our Zarr layout (format 3, or 2 where it was asked for): arrays named by their paths, ``obs/image``
    in group ``obs`` (a leaf of a Dict observation; peer formats nest their arrays likewise)."""
    store = None
    outside = {} if trusted or _is_zip(path) else _links_outside(path)
    if "" in outside:
        raise UnreadableError(f"{path}: E015 outside-reference: a group's own metadata is a link out of the store "
                              f"({outside['']}); pass trusted=True to read it anyway")
    try:
        store = _open_for_reading(path)
        zip_names = zipfile.ZipFile(path).namelist() if _is_zip(path) else None
        # Local stores are listed, never read from consolidated metadata, which a resumed recording outdates.
        group = zarr.open_group(store, mode="r", zarr_format=zarr_format, use_consolidated=False)
        raw = Raw({}, {}, path.parent, "zarr-zip" if _is_zip(path) else "zarr", closer=store.close)
        keys = _keys(path, zip_names)
        arrays, field, mark = _fill(raw, group, str(path), outside, lambda array: _coverage(array, keys))
    except Exception as exc:  # zarr reports a broken store with many exception types
        _close_quietly(store)
        if isinstance(exc, UnreadableError):
            raise
        raise UnreadableError(f"{path}: not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    if zip_names is None:
        add_journal(raw, journal_of(path), journal_token(mark), arrays, field, trusted)
    return raw


def read_remote(url: str, storage_options: dict[str, Any]) -> Raw:
    """Open our Zarr layout where it lives (``https://``, ``s3://``, ... through fsspec), from its consolidated
    metadata: servers without directory listings (a CDN, the Hub) serve it as well. Chunks are fetched as rows
    are read, several at a time; a chunk that is missing is an error, never read as zeros."""
    try:
        _check_remote_metadata(url, storage_options)
        store = _remote_store(url, storage_options)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            group = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=True)
        raw = Raw({}, {}, Path("."), "zarr", closer=store.close)
        _fill(raw, group, url, {}, lambda array: lambda rows: None, REMOTE_READS)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise UnreadableError(f"{url}: no Zarr dataset there (404: no zarr.json at its root)") from None
    except ValueError as exc:
        raise UnreadableError(f"{url}: not a readable remote Zarr dataset ({exc}); one is read from its root "
                              "zarr.json with consolidated metadata, as expertdata writes it") from None
    return raw


def remote_fields(url: str, storage_options: dict[str, Any], names: list[str]) -> Raw:
    """Arrays ``names`` of a Zarr store being written where it lives, opened alone (its root metadata, which makes
    it a dataset, is not there yet): what a cluster's workers wrote there, read back to be checked."""
    store = _remote_store(url, storage_options)
    raw = Raw({}, {}, Path("."), "zarr", closer=store.close)
    try:
        for name in names:
            array = zarr.open_array(store, path=name, mode="r", zarr_format=3)
            raw.fields[name] = Field(as_read(array, array.attrs), f"{url}: field {shown(name)}", REMOTE_READS)
    except BaseException:
        raw.close()
        raise
    return raw


def writable_store(place: str, storage_options: dict[str, Any] | None) -> Any:
    """The store a cluster's worker writes chunks into: a local folder, or (``storage_options`` given) a URL through
    fsspec, with the remote limits."""
    if storage_options is None:
        return zarr.storage.LocalStore(place)
    from ..network import with_limits

    return zarr.storage.FsspecStore.from_url(place, storage_options=with_limits(place, storage_options),
                                             read_only=False)


def _check_remote_metadata(url: str, storage_options: dict[str, Any]) -> None:
    """Refuse a root ``zarr.json`` larger than metadata may be, reading no more of it than that (a range)."""
    import fsspec

    from ..network import with_limits

    fs, path = fsspec.core.url_to_fs(f"{url}/zarr.json", **with_limits(url, storage_options))
    head = fs.cat_file(path, start=0, end=MAX_METADATA_BYTES + 1)
    if len(head) > MAX_METADATA_BYTES:
        raise UnreadableError(f"{url}: its zarr.json holds more than {MAX_METADATA_BYTES:,} bytes; metadata larger "
                              "than that is not read")


def _remote_store(url: str, storage_options: dict[str, Any]) -> Any:
    """A read-only fsspec store that raises for missing keys; a chained URL (``simplecache::https://...``),
    whose file system is not asynchronous, through fsspec's asynchronous wrapper. The remote limits apply
    (``expertdata.io.remote.with_limits``)."""
    from ..network import with_limits

    storage_options = with_limits(url, storage_options)
    if "::" not in url:
        return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options, read_only=True,
                                                 allowed_exceptions=())
    import fsspec
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was not created with `asynchronous=True`")
        return zarr.storage.FsspecStore(fs=AsyncFileSystemWrapper(fs), path=path, read_only=True,
                                        allowed_exceptions=())


def _fill(raw: Raw, group: zarr.Group, label: str, outside: dict[str, str],
          coverage: Callable[[zarr.Array], Coverage],
          reads: int | None = None) -> tuple[dict[str, zarr.Array], Callable[..., ArrayLike], Any]:
    """Every array of ``group`` into ``raw`` (lazy, guarded; ``reads``: worth reading at once), with its storage,
    coverage and the metadata; returns the arrays, the function that wraps one, and the commit mark."""
    arrays = dict(_arrays(group))

    def field(name: str, rows: ArrayLike) -> ArrayLike:
        return Field(as_read(rows, arrays[name].attrs), f"{label}: field {shown(name)}", reads)

    for name, array in arrays.items():
        why = _outside(name, outside)
        if why:
            raw.findings.append(Finding("outside-reference", f"a link out of the store: {why}", name))
            raw.withheld.add(name)
            continue
        large = oversized(tuple(array.chunks), array.dtype)
        if large is not None:
            raw.findings.append(Finding(large.rule, large.message, name))
            raw.withheld.add(name)
            continue
        raw.fields[name] = field(name, array)
        raw.storage[name] = {"chunks": list(array.chunks), "compression": _compression_label(array),
                             "checksum": any(isinstance(c, zarr.codecs.Crc32cCodec) for c in array.compressors)}
        raw.coverage[name] = coverage(array)
    text = group.attrs.get(METADATA_KEY)
    mark = group.attrs.get(COMMIT_KEY)
    raw.metadata = metadata_from_json(text, label) if text is not None else {}
    if mark is not None:
        try:
            raw.committed = commit_mark(mark)
        except ValueError as exc:
            raw.findings.append(Finding("bad-metadata", str(exc)))
    return arrays, field, mark


def sniff_directory(path: Path) -> bool:
    return path.is_dir() and ((path / "zarr.json").is_file() or (path / ".zgroup").is_file())


def sniff_zip(path: Path) -> bool:
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            return "zarr.json" in names or ".zgroup" in names
    return False


def _pack(folder: Path, path: Path) -> None:
    """Zip a directory store: a zip store holds the same keys, uncompressed (chunks are compressed already)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(folder).as_posix())


class ZarrSink(ChunkedSink):
    """Writes a directory store, every file replaced atomically by zarr, so a killed writer leaves the
    store as of its last commit. A zip store is written as a directory beside it and zipped on close,
    because a zip member cannot be rewritten and metadata is rewritten as arrays grow. On close, every array's
    metadata is consolidated into the root's (format 3), so the store can be read over HTTP without listings.

    Commits after the first go to a journal beside the store (``journal_of``).
    """

    def __init__(self, path: Path, options: WriteOptions, append: bool = False) -> None:
        self._zip = path if _is_zip(path) else None
        self._folder = path.with_name(path.name + ".d") if self._zip else path
        super().__init__(options, options.codec(BACKEND), None if self._zip else journal_of(path))
        self._store = zarr.storage.LocalStore(self._folder)
        self._group = zarr.open_group(self._store, mode="r+" if append else "w",
                                      zarr_format=None if append else options.zarr_format)

    def _existing(self) -> dict[str, Any]:
        # Every chunk is written, as when the arrays were created: a missing chunk then always means lost data.
        return {name: array.with_config({"write_empty_chunks": True}) for name, array in self._group.arrays()}

    def _create(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: tuple[int, ...],
                attrs: dict[str, str]) -> Any:
        method, level = self._compression
        if self._group.metadata.zarr_format == 2:  # one numcodecs compressor; no checksum older readers lack
            compressors: Any = _V2_CODECS[method](level) if method != "none" else None
        else:  # a CRC-32C of every chunk, so that a corrupted chunk fails to read rather than reading wrong values
            compressors = ((_CODECS[method](level),) if method != "none" else ()) + (zarr.codecs.Crc32cCodec(),)
        # Every chunk is written, even one that equals the fill value: checking each chunk for it took more
        # than half of an uncompressed write.
        return self._group.create_array(name, shape=shape, dtype=dtype, chunks=chunks, compressors=compressors,
                                        fill_value=0, attributes=attrs, config={"write_empty_chunks": True})

    def _resize(self, array: Any, rows: int) -> None:
        array.resize((rows,) + array.shape[1:])

    def _set_attr(self, key: str, text: str) -> None:
        self._group.attrs[key] = text

    def _write_mark(self, transitions: int, episodes: int) -> None:
        self._set_attr(COMMIT_KEY, json.dumps({"transitions": transitions, "episodes": episodes,
                                               "journal": self._token}))

    def _stored_mark(self) -> tuple[tuple[int, int] | None, str | None]:
        mark = self._group.attrs.get(COMMIT_KEY)
        return (None, None) if mark is None else (commit_mark(mark), journal_token(mark))

    def _close(self) -> None:
        if self._group.metadata.zarr_format == 3:  # every array's metadata in the root's: servers need no listing
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
                zarr.consolidate_metadata(self._store)
        self._store.close()
        if self._zip is not None:
            _pack(self._folder, self._zip)
            remove(self._folder)

    def abort(self) -> None:
        self._drop_journal()
        self._store.close()
        if self._zip is not None:
            remove(self._folder)


class _Zarr:
    name = "zarr"
    suffixes = (".zarr",)
    compressions = {"none": None, "zstd": (1, 22), "gzip": (0, 9)}
    default_compression = "zstd"
    # Streamed chunks of 1 MiB, because each move of rows from the journal rewrites the last, partly filled one.
    capabilities = Capabilities(streaming=True, resume=True, streaming_options=WriteOptions(chunk_bytes=2**20))
    summary = ("Zarr directory store (format 3; 2 on request), chunked and compressed. Lossless; streams and "
               "resumes recordings.")
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
    summary = "A Zarr store in one zip file, to send as one file. Lossless."
    sniff = staticmethod(sniff_zip)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> ZarrSink:
        return ZarrSink(path, options)


BACKEND = _Zarr()
ZIP_BACKEND = _ZarrZip()
