"""One storage interface, one thin module per format (``npz``, ``hdf5``, ``zarr``), chosen by suffix.

A backend reads a path into a ``Raw`` (lazy arrays, metadata, how each array is stored) and writes
through a ``Sink`` that takes each field's rows in order, block by block, so nothing needs the whole
dataset in memory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..arrays import ArrayLike
from ..errors import UnreadableError, UsageError

#: Default chunk size along the rows: large enough that per-chunk overhead vanishes (2 MB chunks made
#: Zarr writes three times slower here), small enough that a shuffle buffer holds many chunks.
CHUNK_BYTES = 8 * 2**20
#: Name under which metadata is stored (npz member, HDF5 attribute, Zarr attribute).
METADATA_KEY = "expertdata_metadata"
#: Attribute naming the numpy dtype of a text array stored as UTF-32 code points.
TEXT_DTYPE_KEY = "expertdata_dtype"
#: File attribute marking how many transitions and episodes a streaming writer has completed.
COMMIT_KEY = "expertdata_committed"


@dataclass
class Raw:
    """What a backend read: arrays (lazy where the format allows), metadata and storage details."""

    fields: dict[str, ArrayLike]
    metadata: dict[str, Any]
    root: Path
    format: str
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    closer: Callable[[], None] | None = None
    committed: tuple[int, int] | None = None

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


@dataclass(frozen=True)
class WriteOptions:
    """How a backend lays arrays out.

    :param chunk_rows: rows per chunk (HDF5, Zarr); ``None`` picks about ``chunk_bytes`` per chunk.
    :param compression: ``none``, ``gzip[:level]``, ``lzf`` (HDF5), ``zstd[:level]`` (Zarr) or
        ``None`` for the format's default.
    :param chunk_bytes: the chunk size aimed at when ``chunk_rows`` is not given (8 MB by default).
    """

    chunk_rows: int | None = None
    compression: str | None = None
    chunk_bytes: int = CHUNK_BYTES

    def rows_per_chunk(self, dtype: np.dtype, row_shape: tuple[int, ...]) -> int:
        if self.chunk_rows:
            return int(self.chunk_rows)
        per_row = max(1, np.dtype(dtype).itemsize * int(np.prod(row_shape, dtype=np.int64)))
        return max(1, self.chunk_bytes // per_row)

    def codec(self, backend: "Backend") -> tuple[str, int | None]:
        """The compression name and level to use for ``backend``, checked against what it offers."""
        spec = self.compression or backend.default_compression
        name, _, level = spec.partition(":")
        if name not in backend.compressions:
            raise UsageError(f"compression '{spec}' is not available for {backend.name}; "
                             f"choose from {', '.join(backend.compressions)}")
        try:
            return name, int(level) if level else None
        except ValueError:
            raise UsageError(f"compression level in '{spec}' must be a whole number") from None


class Sink(Protocol):
    """Receives a dataset field by field: ``add_field``, then its rows in order through ``append``."""

    def add_field(self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], n_rows: int | None) -> None: ...

    def append(self, name: str, block: np.ndarray) -> None: ...

    def set_metadata(self, metadata: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Release the file after a failure, without finishing it."""


class Backend(Protocol):
    name: str
    suffixes: tuple[str, ...]
    compressions: tuple[str, ...]
    default_compression: str

    def sniff(self, path: Path) -> bool: ...

    def read(self, path: Path) -> Raw: ...

    def writer(self, path: Path, options: WriteOptions) -> Sink: ...


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Metadata as strict JSON (no NaN), the same text in every format."""
    try:
        return json.dumps(metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"metadata must be plain JSON (no NaN, no objects): {exc}") from None


def metadata_from_json(text: Any, path: Path) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode()
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        raise UnreadableError(f"{path}: metadata is not valid JSON ({exc})") from None
    return value


def _backends() -> tuple[Backend, ...]:
    from . import hdf5, npz, zarr

    return (npz.BACKEND, hdf5.BACKEND, zarr.BACKEND)


def names() -> tuple[str, ...]:
    return tuple(b.name for b in _backends())


def by_name(name: str) -> Backend:
    for backend in _backends():
        if backend.name == name:
            return backend
    raise UsageError(f"unknown format '{name}'; choose from {', '.join(names())}")


def for_path(path: Path | str, format: str | None = None) -> Backend:
    """The backend for writing ``path``: ``format`` if given, else the one whose suffix ends the name."""
    if format:
        return by_name(format)
    lower = str(path).lower().rstrip("/")
    for backend in _backends():
        if lower.endswith(backend.suffixes):
            return backend
    known = ", ".join(s for b in _backends() for s in b.suffixes)
    raise UsageError(f"{path}: cannot tell the format from the name; use a suffix ({known}) or --format")


def read_raw(path: Path | str, format: str | None = None) -> Raw:
    """Open ``path`` with the backend its content (or ``format``) names. Raises ``UnreadableError``."""
    path = Path(path)
    if not path.exists():
        raise UnreadableError(f"{path}: no such file or directory")
    backend = by_name(format) if format else next((b for b in _backends() if b.sniff(path)), None)
    if backend is None and path.is_file():  # a damaged file: its suffix's reader says what is wrong with it
        backend = next((b for b in _backends() if str(path).lower().endswith(b.suffixes)), None)
    if backend is None:
        raise UnreadableError(f"{path}: not a dataset in any known format ({', '.join(names())})")
    return _cut_to_commit(backend.read(path))


def field_per(name: str, metadata: dict[str, Any]) -> str:
    """``step`` or ``episode``: which count a field's rows follow (undeclared extras: ``step``)."""
    from ..schema import FIELDS_BY_NAME

    known = FIELDS_BY_NAME.get(name)
    if known is not None:
        return known.per
    extras = metadata.get("extras")
    return extras.get(name, "step") if isinstance(extras, dict) else "step"


def _cut_to_commit(raw: Raw) -> Raw:
    """Cut every array to what a streaming writer marked complete: rows past the mark belong to an
    episode that was still being written when the writer stopped."""
    if raw.committed is None:
        return raw
    from ..arrays import RowWindow

    transitions, episodes = raw.committed
    for name, array in raw.fields.items():
        rows = transitions if field_per(name, raw.metadata) == "step" else episodes
        if array.shape[0] != rows:
            raw.fields[name] = RowWindow(array, slice(0, rows))
    return raw


