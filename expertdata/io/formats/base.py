"""The storage interface every backend implements: what a read returns (``Raw``), how rows are written
(``Sink``), how a layout is chosen (``WriteOptions``) and what a backend can do (``Capabilities``).

Backends import this module only; the registry (``expertdata.io.formats``) imports the backends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ...core import guard
from ...core.arrays import ArrayLike
from ...core.errors import UsageError
from ...core.rules import Finding

#: Default chunk size along the rows: large enough that per-chunk overhead vanishes (2 MB chunks made
#: Zarr writes three times slower here), small enough that a shuffle buffer holds many chunks.
CHUNK_BYTES = 8 * 2**20
#: A stored chunk may decompress to at most this many bytes: a larger one, which a few compressed bytes can claim,
#: is not read (a chunk is decompressed whole, whatever rows are asked for).
MAX_CHUNK_BYTES = 256 * 2**20
#: Name under which metadata is stored (npz member, HDF5 attribute, Zarr attribute).
METADATA_KEY = "expertdata_metadata"
#: Attribute naming the numpy dtype of a text array stored as UTF-32 code points.
TEXT_DTYPE_KEY = "expertdata_dtype"
#: File attribute marking how many transitions and episodes a streaming writer has completed.
COMMIT_KEY = "expertdata_committed"


#: Given a field's row count, the number of its chunks not stored within those rows and the first row of
#: the first one, or ``None`` when every chunk is there.
Coverage = Callable[[int], "tuple[int, int] | None"]


@dataclass
class Raw:
    """What a backend read: arrays (lazy where the format allows), metadata and storage details.

    :param storage: per field, ``chunks``, ``compression`` and ``checksum`` (whether a stored checksum lets
        corruption of its bytes be detected).
    :param findings: problems seen on opening: references outside the file, a malformed commit mark,
        missing chunks (``expertdata.io.formats.read_raw`` adds the last).
    :param withheld: fields that must not be read (their data is outside the file, or not there).
    :param coverage: per field, how to find chunks missing from its rows.
    :param integrity: a full pass over stored checksums that the reading path skips (a zip's CRCs).
    :param selected: only the episodes asked for were read (``Capabilities.selective``).
    """

    fields: dict[str, ArrayLike]
    metadata: Any
    root: Path
    format: str
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    closer: Callable[[], None] | None = None
    committed: tuple[int, int] | None = None
    findings: list[Finding] = field(default_factory=list)
    withheld: set[str] = field(default_factory=set)
    coverage: dict[str, Coverage] = field(default_factory=dict)
    integrity: Callable[[], list[Finding]] | None = None
    selected: bool = False

    def withhold(self, finding: Finding) -> None:
        """Record ``finding`` and stop its field from being read."""
        self.findings.append(finding)
        if finding.field is not None and finding.field in self.fields:
            self.withheld.add(finding.field)
            del self.fields[finding.field]

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
    :param zarr_format: Zarr's format version (3; 2 for tools that read only version 2).
    """

    chunk_rows: int | None = None
    compression: str | None = None
    chunk_bytes: int = CHUNK_BYTES
    zarr_format: int = 3

    def rows_per_chunk(self, dtype: np.dtype, row_shape: tuple[int, ...]) -> int:
        if self.chunk_rows:
            return int(self.chunk_rows)
        per_row = max(1, np.dtype(dtype).itemsize * int(np.prod(row_shape, dtype=np.int64)))
        return max(1, self.chunk_bytes // per_row)

    def codec(self, backend: "Backend") -> tuple[str, int | None]:
        """The compression name and level to use for ``backend``, checked against what it offers."""
        spec = self.compression or backend.default_compression
        name, colon, text = spec.partition(":")
        offered = ", ".join(f"{n}[:{lo}-{hi}]" if levels else n for n, levels in backend.compressions.items()
                            for lo, hi in [levels or (0, 0)])
        if name not in backend.compressions:
            raise UsageError(f"compression '{spec}' is not available for {backend.name}; choose from {offered}")
        levels = backend.compressions[name]
        if not colon:
            return name, None
        if levels is None:
            raise UsageError(f"compression '{spec}': {name} takes no level; choose from {offered}")
        try:
            level = int(text)
        except ValueError:
            raise UsageError(f"compression '{spec}': the level must be a whole number from {levels[0]} to "
                             f"{levels[1]}") from None
        if not levels[0] <= level <= levels[1]:
            raise UsageError(f"compression '{spec}': {name} takes a level from {levels[0]} to {levels[1]}")
        return name, level


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do: writers ask for an ability, never for a format's name.

    :param streaming: fields of unknown length can be appended to, and whole episodes committed durably,
        so a writer stopped at any point leaves every committed episode readable (``StreamingSink``).
    :param resume: an existing dataset can be reopened and appended to after its last commit.
    :param images_as_files: image observations are written as image files beside the dataset, their
        relative paths in ``obs`` (as SB2 stored them in ``.npz``), not as arrays.
    :param streaming_options: the layout a streamed recording uses unless the caller chooses one.
    :param needs_rewards: the layout has no place for demonstrations without rewards (its readers expect them).
    :param exports: a peer format written from a whole dataset at once (``Exporter.export``), not field by
        field through a sink: its layout interleaves or derives fields.
    :param composite_obs: observations of a Dict or Tuple space (one field per leaf) can be written.
    :param lossy: compressions that do not give back what was written (a video codec at a quality level): a save
        with one measures and says its error instead of comparing digests.
    :param selective: ``read`` takes ``episodes`` and reads only their files or records (a partial download's
        complete episodes read, whatever else is missing; a cluster's worker reads its block alone).
    """

    streaming: bool = False
    resume: bool = False
    images_as_files: bool = False
    streaming_options: WriteOptions | None = None
    exports: bool = False
    needs_rewards: bool = False
    composite_obs: bool = True
    lossy: tuple[str, ...] = ()
    selective: bool = False


class Sink(Protocol):
    """Receives a dataset field by field: ``add_field``, then its rows in order through ``append``."""

    def add_field(self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], n_rows: int | None) -> None: ...

    def append(self, name: str, block: np.ndarray) -> None: ...

    def set_metadata(self, metadata: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Release the file after a failure, without finishing it."""


class StreamingSink(Sink, Protocol):
    """A sink of a ``streaming`` backend: rows of every field may be appended in any order of fields."""

    def commit(self, transitions: int, episodes: int) -> None:
        """Mark the first ``transitions`` steps and ``episodes`` episodes complete, durably."""


class Backend(Protocol):
    name: str
    suffixes: tuple[str, ...]
    #: compression name -> its (lowest, highest) level, or ``None`` when it takes no level
    compressions: dict[str, tuple[int, int] | None]
    default_compression: str
    capabilities: Capabilities
    #: what the format keeps and loses, one line for ``expertdata formats``
    summary: str

    def sniff(self, path: Path) -> bool: ...

    def read(self, path: Path, trusted: bool = False) -> Raw:
        """Open ``path``; unless ``trusted``, references to data outside it are found and withheld."""

    def writer(self, path: Path, options: WriteOptions) -> Sink: ...


class Whole(Protocol):
    """What an exporter reads: a dataset (``expertdata.Dataset``) as a whole."""

    fields: Any
    source: str
    n_transitions: int
    n_episodes: int

    def __getitem__(self, name: str) -> ArrayLike: ...

    def __contains__(self, name: object) -> bool: ...

    def field_per(self, name: str) -> str: ...


class Exporter(Protocol):
    """A peer format (``exports``): read like any backend, written from a whole dataset."""

    name: str
    compressions: dict[str, tuple[int, int] | None]
    default_compression: str
    capabilities: Capabilities
    summary: str

    def sniff(self, path: Path) -> bool: ...

    def read(self, path: Path, trusted: bool = False) -> Raw: ...

    def export(self, dataset: Whole, metadata: dict[str, Any], path: Path, options: WriteOptions) -> list[str]:
        """Write ``dataset`` with ``metadata`` to ``path``; returns notes on what had to be made up."""


class ResumableBackend(Backend, Protocol):
    """A backend with the ``resume`` capability."""

    def reopen(self, path: Path, transitions: int, episodes: int, per: dict[str, str]) -> StreamingSink:
        """Continue a ``resume``-capable dataset after its committed counts (``per``: each field's
        ``step`` or ``episode``)."""


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Metadata as strict JSON (no NaN), the same text in every format."""
    try:
        return json.dumps(metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"metadata must be plain JSON (no NaN, no objects): {exc}") from None


def oversized(chunks: tuple[int, ...] | None, dtype: Any) -> Finding | None:
    """The finding for chunks larger than ``MAX_CHUNK_BYTES``, or ``None``."""
    if not chunks:
        return None
    size = int(np.prod(chunks, dtype=object)) * np.dtype(dtype).itemsize
    if size <= MAX_CHUNK_BYTES:
        return None
    return Finding("unreadable", f"its chunks hold {size:,} bytes each; at most {MAX_CHUNK_BYTES:,} are decompressed")


def metadata_from_json(text: Any, path: Path | str) -> Any:
    """Parse stored metadata text, refusing text larger or deeper than the schema's limits."""
    return guard.parse_json(text, path)
