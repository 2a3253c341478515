"""The format registry: one thin module per format, chosen by suffix when writing and by content when
reading. Our own formats (``npz``, ``hdf5``, ``zarr``) are each a ``Backend`` (``expertdata.io.formats.base``);
peer formats (``d4rl``, ``imitation``, ``minari``, ``diffusion_policy``: other projects' layouts) are each
an ``Exporter``.

A backend reads a path into a ``Raw`` (lazy arrays, metadata, how each array is stored) and writes
through a ``Sink`` that takes each field's rows in order, block by block, so nothing needs the whole
dataset in memory; an exporter writes a whole dataset, since peer layouts interleave or derive fields.
Adding a format means adding its module and listing it in ``_backends`` or ``_peers``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...core import guard
from ...core.arrays import RowWindow
from ...core.errors import UnreadableError, UsageError
from ...core.field import Field
from ...core.rules import Finding
from ...core.schema import field_per, shown
from . import d4rl, diffusion_policy, hdf5, imitation, lerobot, minari, npz, rlds, robomimic, zarr
from .base import Backend, Capabilities, Exporter, Raw, ResumableBackend, Sink, StreamingSink, WriteOptions

__all__ = ["Backend", "Capabilities", "Exporter", "Finding", "Raw", "ResumableBackend", "Sink", "StreamingSink",
           "WriteOptions", "by_name", "every", "for_path", "locate", "names", "read_raw"]


def _backends() -> tuple[Backend, ...]:
    return (npz.BACKEND, hdf5.BACKEND, zarr.BACKEND, zarr.ZIP_BACKEND)


def _peers() -> tuple[Exporter, ...]:
    return (d4rl.BACKEND, imitation.BACKEND, minari.BACKEND, minari.ARROW, diffusion_policy.BACKEND, robomimic.BACKEND,
            lerobot.BACKEND, rlds.BACKEND)


def every() -> tuple[Backend | Exporter, ...]:
    """Every format, peers first: a peer's layout is a special case of a container (HDF5, zip) that one of
    ours also sniffs, so peers are tried first when reading."""
    return _peers() + _backends()


def names() -> tuple[str, ...]:
    return tuple(b.name for b in _backends() + _peers())


def by_name(name: str) -> Backend | Exporter:
    for backend in every():
        if backend.name == name:
            return backend
    raise UsageError(f"unknown format '{name}'; choose from {', '.join(names())}")


def for_path(path: Path | str, format: str | None = None) -> Backend | Exporter:
    """The backend for writing ``path``: ``format`` if given, else the one whose suffix ends the name."""
    if format:
        return by_name(format)
    lower = str(path).lower().rstrip("/")
    for backend in _backends():
        if lower.endswith(backend.suffixes):
            return backend
    known = ", ".join(s for b in _backends() for s in b.suffixes)
    raise UsageError(f"{path}: cannot tell the format from the name; use a suffix ({known}) or format=NAME")


def locate(path: Path | str) -> Path:
    """``path``, or where a name that is no path leads in a peer format (a Minari dataset id)."""
    path = Path(path)
    if path.exists():
        return path
    return next((found for peer in _peers() if (found := peer.locate(str(path))) is not None), path)


def read_raw(path: Path | str, format: str | None = None, trusted: bool = False,
             episodes: Sequence[int] | None = None) -> Raw:
    """Open ``path`` with the backend its content (or ``format``) names. Raises ``UnreadableError``.

    Fields whose data would come from outside the file (unless ``trusted``) or is not all stored are
    withheld, with a finding each; rows past a streaming writer's commit mark are cut off. ``episodes``: a backend
    that can (``Capabilities.selective``) reads only these episodes (``Raw.selected`` then says so).
    """
    path = locate(path)
    if not path.exists():
        raise UnreadableError(f"{path}: no such file or directory")
    backend = by_name(format) if format else backend_of(path)
    if backend is None:
        raise UnreadableError(f"{path}: not a dataset in any known format ({', '.join(names())})")
    with guard.reading(path):  # whatever a library raises on a damaged or hostile file: one line
        if episodes is not None and backend.capabilities.selective:
            raw = backend.read(path, trusted, episodes=list(episodes))
            raw.selected = True
        else:
            raw = _cut_to_commit(backend.read(path, trusted))
    raw.fields = {name: array if isinstance(array, (Field, np.ndarray)) else
                  Field(array, f"{path}: field {shown(name)}") for name, array in raw.fields.items()}
    for name, missing in raw.coverage.items():
        if name not in raw.fields or not raw.fields[name].shape:
            continue
        rows = raw.fields[name].shape[0]
        try:
            found = missing(rows)
        except Exception as exc:  # the chunk index itself is damaged
            raw.close()
            raise UnreadableError(f"{path}: field {shown(name)}: its chunk index is corrupt ({exc})") from None
        if found is not None:
            count, first = found
            raw.withhold(Finding("missing-data", f"{count:,} chunk{'s' * (count > 1)} of its {rows:,} rows are not "
                                 f"stored (the first from row {first:,}); they would read as zeros", name, first))
    return raw


def backend_of(path: Path) -> Backend | Exporter | None:
    """The backend whose layout ``path`` has (a damaged file: the one its suffix names, whose reader says what is
    wrong with it), or ``None``."""
    found = next((b for b in every() if _sniffs(b, path)), None)
    if found is None and path.is_file():
        found = next((b for b in _backends() if str(path).lower().endswith(b.suffixes)), None)
    return found


def selective(path: Path | str) -> bool:
    """Whether the dataset at ``path`` is read by a backend that reads chosen episodes alone."""
    found = backend_of(locate(path))
    return found is not None and found.capabilities.selective


def _sniffs(backend: Backend | Exporter, path: Path) -> bool:
    """Whether ``backend`` recognises ``path``; a file too damaged to tell is not recognised (the reader
    chosen by its suffix then says what is wrong)."""
    try:
        return backend.sniff(path)
    except Exception:  # zipfile, h5py: many ways to fail on a damaged header
        return False


def _cut_to_commit(raw: Raw) -> Raw:
    """Cut every array to what a streaming writer marked complete: rows past the mark belong to an
    episode that was still being written when the writer stopped."""
    if raw.committed is None:
        return raw
    transitions, episodes = raw.committed
    for name, array in raw.fields.items():
        rows = transitions if field_per(name, raw.metadata) == "step" else episodes
        if array.shape and array.shape[0] != rows:
            raw.fields[name] = RowWindow(array, slice(0, rows))
    return raw
