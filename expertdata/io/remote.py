"""Datasets where they live: fsspec URLs (``https://``, ``s3://``, ``gs://``, ``hf://``, chained caching such as
``simplecache::https://...``), read lazily and written by upload.

Zarr is the remote format: it is read from its consolidated metadata (servers without directory listings
serve it) and its chunks are fetched as rows are read. HDF5 is read through fsspec file objects (ranged
reads). ``.npz`` and ``.zarr.zip`` files are downloaded to the cache first (``EXPERTDATA_CACHE``, else
``~/.cache/expertdata``), said so in one line. Writing uploads a Zarr store written here, its root metadata
(what makes it a dataset) last, so a reader never sees a half-written dataset.

Storage options (credentials, ``anon``, ``endpoint_url`` for MinIO or R2) come as ``storage_options``, or
from the environment variable ``EXPERTDATA_STORAGE_OPTIONS`` (a JSON object), which the command line's
``--storage-options`` sets.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..core import guard
from ..core.errors import ExpertDataError, UnreadableError, UsageError, WriteError
from .network import timeouts, with_limits

if TYPE_CHECKING:
    from .formats import Raw

OPTIONS_VARIABLE = "EXPERTDATA_STORAGE_OPTIONS"
#: Suffixes of files that are downloaded whole before they are read (zip archives are read from their end).
DOWNLOADED = (".npz", ".zarr.zip", ".zip")


def is_url(path: Any) -> bool:
    """Whether ``path`` names a dataset through fsspec (``scheme://...`` or a chained ``a::b``) rather than a
    local path."""
    return isinstance(path, str) and ("://" in path or "::" in path)


def local_path(url: str) -> str | None:
    """The local path a URL names where its last file system is this machine's (``file://...``, or a chain
    ending in one, such as ``simplecache::file://...``): it is read as a local dataset, through the local readers'
    checks (a link out of it refused), not through fsspec, which follows links. ``None`` for a remote URL."""
    last = url.split("::")[-1]
    if last.startswith("file://"):
        return last[len("file://"):]
    if "://" not in last and "::" in url:  # a chain ending in a bare path (simplecache::/data/x.zarr)
        return last
    return None


def storage_options(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """``given``, else the JSON object in ``EXPERTDATA_STORAGE_OPTIONS``, else none."""
    if given is not None:
        return dict(given)
    return parse_storage_options(os.environ.get(OPTIONS_VARIABLE))


def parse_storage_options(text: str | None) -> dict[str, Any]:
    """Storage options given as JSON text (``--storage-options``): a JSON object, or a one-line ``UsageError``."""
    if not text:
        return {}
    try:
        found = guard.parse_json(text, OPTIONS_VARIABLE, limit=2**16, depth=8)
    except ExpertDataError as exc:
        raise UsageError(f"{OPTIONS_VARIABLE} must be a JSON object ({exc})") from None
    if not isinstance(found, dict):
        raise UsageError(f"{OPTIONS_VARIABLE} must be a JSON object, not {text[:80]!r}")
    return found


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{url}: reading datasets where they live needs fsspec: pip install "
                         "\"expertdata[remote]\"") from None
    try:
        return fsspec.core.url_to_fs(url, **with_limits(url, options))
    except (ImportError, ValueError, TypeError) as exc:
        raise UsageError(f"{url}: {exc}") from None


def failure(url: str, exc: BaseException) -> ExpertDataError:
    """A network or storage error as one line: what happened, where."""
    if isinstance(exc, ExpertDataError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return UnreadableError(f"{url}: not found (404)")
    if isinstance(exc, PermissionError):
        return UnreadableError(f"{url}: access denied (403): check the credentials or storage options")
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return UnreadableError(f"{url}: access denied ({status}): check the credentials or storage options")
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        silent, whole = timeouts()
        return UnreadableError(f"{url}: the server did not answer in time (silent for {silent:g} s, or a request over "
                               f"{whole:g} s; --timeout and --request-timeout set them)")
    if isinstance(exc, (ConnectionError, OSError)) or "Connect" in type(exc).__name__:
        return UnreadableError(f"{url}: cannot connect ({type(exc).__name__}: {exc})")
    return UnreadableError(f"{url}: {type(exc).__name__}: {exc}")


def open_raw(path: Any, format: str | None = None, trusted: bool = False,
             options: dict[str, Any] | None = None, episodes: Any = None) -> Raw:
    """What a backend reads from ``path``: a local path through ``expertdata.io.formats.read_raw`` (``episodes``: only
    those, where the backend can), a URL through ``read_raw`` here."""
    from . import formats

    local = local_path(path) if is_url(path) else path
    if local is not None:
        return formats.read_raw(local, format, trusted, episodes)
    if format not in (None, "zarr", "hdf5", "npz", "zarr-zip"):
        raise UsageError(f"{path}: peer formats are read from local copies; download it first")
    return read_raw(path, options)


def read_raw(url: str, options: dict[str, Any] | None = None) -> Raw:
    """Open the dataset at ``url`` (by its suffix: Zarr, HDF5, or a file downloaded first)."""
    from .formats import hdf5, zarr
    from .formats import read_raw as read_local

    options = storage_options(options)
    name = url.rstrip("/").lower()
    try:
        if name.endswith(DOWNLOADED):
            raw = read_local(download(url, options))
        elif name.endswith((".h5", ".hdf5")):
            fs, path = _filesystem(url, options)
            handle = fs.open(path, "rb")
            try:
                raw = hdf5.read(url, remote=handle)
            except BaseException:
                handle.close()
                raise
            closer = raw.closer
            raw.closer = lambda: (closer() if closer else None, handle.close())
        else:
            raw = zarr.read_remote(url.rstrip("/"), options)
    except Exception as exc:
        raise failure(url, exc) from None
    if any(np.dtype(raw.fields[name].dtype).kind == "U" for name in ("obs", "final_obs") if name in raw.fields):
        raw.close()  # text in obs is paths of image files beside the dataset, which are not fetched
        raise UnreadableError(f"{url}: its observations are image paths: images kept as files are not read where "
                              "they live; convert the dataset locally first")
    return raw


def cache_folder() -> Path:
    return Path(os.environ.get("EXPERTDATA_CACHE") or Path.home() / ".cache" / "expertdata")


def download(url: str, options: dict[str, Any]) -> Path:
    """The file at ``url`` in the cache (downloaded once, atomically; a later call reuses it while its size and
    modification stamp are the server's), said so on standard error."""
    from . import atomic

    fs, path = _filesystem(url, options)
    try:
        info = fs.info(path)
    except Exception as exc:
        raise failure(url, exc) from None
    size = info.get("size")
    if not isinstance(size, int) or size < 0:
        raise UnreadableError(f"{url}: the server does not say how large it is; a file is downloaded only to the size "
                              "announced (download it yourself, then read the copy)")
    stamp = json.dumps([url, size, str(info.get("LastModified") or info.get("mtime") or info.get("ETag") or "")])
    target = cache_folder() / hashlib.sha256(stamp.encode()).hexdigest()[:24] / Path(path.rstrip("/")).name
    if not target.is_file():
        print(f"expertdata: downloading {url} to the cache ({target.parent})", file=sys.stderr)
        with atomic.destination(target, overwrite=True) as tmp:  # a failed download leaves nothing behind
            try:
                _copy(fs, path, tmp, size, url)
            except Exception as exc:
                raise failure(url, exc) from None
    return target


def _copy(fs: Any, path: str, target: Path, size: int, url: str) -> None:
    """Copy ``size`` bytes from ``path`` into ``target`` in blocks; a body that runs past its announced size, or
    stops short of it, is refused."""
    block, written = 8 * 2**20, 0
    with fs.open(path, "rb", block_size=block) as source, open(target, "wb") as out:
        while written <= size:
            chunk = source.read(min(block, size + 1 - written))
            if not chunk:
                break
            written += len(chunk)
            out.write(chunk)
    if written != size:
        raise UnreadableError(f"{url}: {written:,} bytes came of the {size:,} announced")


def upload(folder: Path, url: str, options: dict[str, Any] | None, overwrite: bool) -> None:
    """Put the Zarr store ``folder`` at ``url``: every file but the root ``zarr.json`` first, that one last, so
    an interrupted upload leaves no dataset there (only chunks a later upload replaces)."""
    claim(url, options, overwrite)
    put(folder, url, options)


def claim(url: str, options: dict[str, Any] | None, overwrite: bool) -> None:
    """Make way for a dataset at ``url``: one there is refused unless ``overwrite``, else removed, its root
    ``zarr.json`` first (the dataset is gone before any of its chunks change)."""
    fs, root = _filesystem(url, storage_options(options))
    root = root.rstrip("/")
    with _writing(url):
        if fs.exists(f"{root}/zarr.json"):
            if not overwrite:
                raise UsageError(f"{url} already exists; pass overwrite=True to replace it")
            fs.rm(f"{root}/zarr.json")
            fs.rm(root, recursive=True)


def put(folder: Path, url: str, options: dict[str, Any] | None, root: bool = True) -> None:
    """Put every file of the Zarr store ``folder`` at ``url``, the root ``zarr.json`` last (``root=False``: not
    at all, so that what is there is not yet a dataset)."""
    fs, at = _filesystem(url, storage_options(options))
    at = at.rstrip("/")
    last = folder / "zarr.json"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != last)
    with _writing(url):
        for file in files + [last] * root:
            fs.put_file(str(file), f"{at}/{file.relative_to(folder).as_posix()}")


def discard(url: str, options: dict[str, Any] | None) -> None:
    """Remove what a failed write left at ``url`` (never a dataset: its root ``zarr.json`` is written last), as
    far as the store lets us; what stays is chunks that a later write replaces."""
    try:
        fs, root = _filesystem(url, storage_options(options))
        if not fs.exists(f"{root.rstrip('/')}/zarr.json"):
            fs.rm(root.rstrip("/"), recursive=True)
    except Exception:  # nothing there, or the store unreachable: the error that brought us here is the one to tell
        pass


@contextlib.contextmanager
def _writing(url: str) -> Iterator[None]:
    """A storage error while writing as one line."""
    try:
        yield
    except ExpertDataError:
        raise
    except Exception as exc:
        error = failure(url, exc)
        raise WriteError(str(error)) from None
