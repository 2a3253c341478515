"""``.npz``: the format Stable Baselines 2 wrote, read and written so SB2's loader sees what it expects.

Uncompressed members (SB2 never compressed) stay lazy: rows are read from the file when sliced, with
plain positioned reads rather than a memory map, so streaming a large file does not pin it in memory.
Compressed members are decompressed as their rows are read. Every header's claim is checked against the
bytes the archive holds before anything is allocated, and ``validate`` checks every member's CRC-32.
Object arrays are never unpickled: their header is read, their data refused. Members are written one
after another through ``zipfile``, a block at a time.
"""
from __future__ import annotations

import struct
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import field_name_problem
from .base import METADATA_KEY, Capabilities, Raw, WriteOptions, metadata_from_json, metadata_to_json

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
#: Deflate cannot expand its input more than about 1032 times: a header claiming more is refused unread.
MAX_DEFLATE_RATIO = 1032
#: A member that cannot be read by rows (no rows, or Fortran order) is read whole up to this size.
WHOLE_BYTES = 256 * 2**20


class RefusedArray:
    """Stands for an object array: its shape and dtype are known, reading it would need unpickling."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        raise UnreadableError(f"'{self.name}' is an object array; reading it would unpickle, which is refused")


class NpyRows:
    """The rows of an uncompressed C-order ``.npy`` member, read from the file when sliced. Rows read in order
    from the first are checked against the member's CRC-32 on the way (a convert, a digest, ``np.asarray``): a
    damaged member fails once its last row is read, before anything that read it in order is finished."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype, info: zipfile.ZipInfo,
                 header: bytes) -> None:
        self._path, self._offset, self._info = path, offset, info
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        self._header_crc = zlib.crc32(header)
        self._lock = threading.Lock()
        self._checked, self._crc = 0, self._header_crc  # bytes checked in order so far, and their CRC

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        with open(self._path, "rb", buffering=0) as f:
            f.seek(self._offset + start * self._row_bytes)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise UnreadableError(f"{self._path}: truncated while reading rows {start}-{stop}")
        self._check_in_order(start, out)

    def _check_in_order(self, start: int, out: np.ndarray) -> None:
        with self._lock:
            if start == 0:
                self._checked, self._crc = 0, self._header_crc
            if start * self._row_bytes != self._checked:
                return
            self._crc = zlib.crc32(memoryview(np.ascontiguousarray(out)).cast("B"), self._crc)
            self._checked += out.nbytes
            done = self._checked == self.shape[0] * self._row_bytes
        if done and self._crc != self._info.CRC:
            raise UnreadableError(f"{self._path}: member '{self._info.filename}' fails its CRC-32: its bytes were "
                                  "damaged since it was written")

    def __getitem__(self, key: Any) -> np.ndarray:
        return _rows(self, key)


class DeflatedRows:
    """The rows of a compressed ``.npy`` member, decompressed as they are read: nothing is allocated beyond
    the rows asked for, whatever the header claims. Reading in order costs one pass over the stream;
    reading earlier rows again starts it over."""

    def __init__(self, path: Path, info: zipfile.ZipInfo, header_len: int, shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self._path, self._info, self._header_len = path, info, header_len
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        self._lock = threading.Lock()
        self._zip: zipfile.ZipFile | None = None
        self._stream: Any = None

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        with self._lock:
            try:
                if self._stream is None:
                    self._zip = zipfile.ZipFile(self._path)
                    self._stream = self._zip.open(self._info)
                    self._stream.read(self._header_len)  # read, not sought: a seek turns zipfile's CRC check off
                target = self._header_len + start * self._row_bytes
                if self._stream.tell() != target:  # in order, zipfile checks the CRC-32 at the member's end
                    self._stream.seek(target)
                got = self._stream.readinto(memoryview(out).cast("B"))
            except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
                raise UnreadableError(f"{self._path}: member '{self._info.filename}' is corrupt ({exc})") from None
        if got != out.nbytes:
            raise UnreadableError(f"{self._path}: member '{self._info.filename}' ends before rows {start}-{stop}")

    def __getitem__(self, key: Any) -> np.ndarray:
        return _rows(self, key)

    def close(self) -> None:
        with self._lock:
            for handle in (self._stream, self._zip):
                if handle is not None:
                    handle.close()
            self._stream = self._zip = None


def _rows(array: Any, key: Any) -> np.ndarray:
    """``array[key]`` for a reader with ``read_into``: an integer row, or a slice of rows."""
    if isinstance(key, (int, np.integer)):
        index = int(key) + (array.shape[0] if key < 0 else 0)
        return _rows(array, slice(index, index + 1))[0]
    if not isinstance(key, slice):
        raise TypeError("rows of a .npy member are read by slices")
    start, stop, step = key.indices(array.shape[0])
    out = np.empty((max(0, stop - start),) + array.shape[1:], dtype=array.dtype)
    array.read_into(start, stop, out)
    return out[::step]


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        return shape, fortran, dtype, f.tell()


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise ValueError(f"bad local header for member {info.filename}")
    return info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]


def _claimed(info: zipfile.ZipInfo, name: str, shape: tuple[int, ...], dtype: np.dtype, header_len: int) -> int:
    """The member's data bytes, once its header's claim is checked against the bytes the archive holds."""
    rows = "x".join(map(str, shape)) or "scalar"
    if any(n < 0 for n in shape) or dtype.itemsize == 0 and np.prod(shape, dtype=object) > 0:
        raise ValueError(f"member '{name}' claims an impossible shape {rows} of {dtype}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if info.file_size != header_len + nbytes:
        raise ValueError(f"member '{name}' claims {rows} rows of {dtype} ({nbytes:,} bytes) but holds "
                         f"{max(0, info.file_size - header_len):,}")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise ValueError(f"member '{name}' claims {nbytes:,} bytes from {info.compress_size:,} deflated bytes, more "
                         f"than deflate can expand ({MAX_DEFLATE_RATIO}x)")
    return nbytes


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    name = info.filename[:-4]
    shape, fortran, dtype, header_len = _member_header(zf, info)
    if dtype.hasobject:
        return RefusedArray(name, shape, dtype)
    nbytes = _claimed(info, name, shape, dtype, header_len)
    if fortran or not shape:  # not readable by rows: read whole, if it is small
        if nbytes > WHOLE_BYTES:
            raise ValueError(f"member '{name}' ({nbytes:,} bytes) cannot be read by rows (Fortran order or no rows) "
                             f"and is larger than {WHOLE_BYTES:,} bytes; re-save it in C order")
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    if info.compress_type != zipfile.ZIP_STORED:
        return DeflatedRows(path, info, header_len, shape, dtype)
    offset = _data_offset(path, info) + header_len
    if offset + nbytes > path.stat().st_size:
        raise ValueError(f"member '{name}' is truncated")
    with open(path, "rb") as f:
        f.seek(offset - header_len)
        header = f.read(header_len)
    return NpyRows(path, offset, shape, dtype, info, header)


def _crc_check(path: Path) -> list[Finding]:
    """Read every member through ``zipfile``, which checks its CRC-32 (the reading path does not)."""
    found = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            try:
                with zf.open(info) as f:
                    while f.read(2**23):
                        pass
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                found.append(Finding("unreadable", f"{path}: member '{info.filename}' is corrupt ({exc})",
                                     info.filename[:-4] if info.filename.endswith(".npy") else None))
    return found


def read(path: Path, trusted: bool = False) -> Raw:
    """Open an archive (``trusted`` changes nothing: a zip member cannot point outside it)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableError(f"{path}: not a readable .npz archive ({exc})") from None
    try:
        fields = {info.filename[:-4]: _read_member(path, zf, info)
                  for info in zf.infolist() if info.filename.endswith(".npy")}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as exc:
        raise UnreadableError(f"{path}: corrupt .npz ({exc})") from None
    finally:
        zf.close()
    text = fields.pop(METADATA_KEY, None)
    if text is not None and not (isinstance(text, np.ndarray) and text.ndim == 0 and text.dtype.kind in "US"):
        raise UnreadableError(f"{path}: its member '{METADATA_KEY}' is {getattr(text, 'shape', '?')} of "
                              f"{getattr(text, 'dtype', '?')}, not one text of JSON")
    metadata = metadata_from_json(text.item(), path) if text is not None else {}
    storage = {info.filename[:-4]: {"chunks": None, "checksum": True,
                                    "compression": "none" if info.compress_type == zipfile.ZIP_STORED else "deflate"}
               for info in zf.infolist() if info.filename[:-4] in fields}
    streams = [a for a in fields.values() if isinstance(a, DeflatedRows)]
    return Raw(fields, metadata, path.parent, "npz", storage, closer=lambda: [s.close() for s in streams],
               integrity=lambda: _crc_check(path))


def sniff(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith(".npy") for n in zf.namelist())


class NpzSink:
    """Writes each field as one ``.npy`` member; a field's length must be known when it is added."""

    def __init__(self, path: Path, options: WriteOptions) -> None:
        name, level = options.codec(BACKEND)
        method = zipfile.ZIP_DEFLATED if name == "deflate" else zipfile.ZIP_STORED
        self._zip = zipfile.ZipFile(path, "w", compression=method, compresslevel=level, allowZip64=True)
        self._member: Any = None
        self._left = 0
        self._metadata: dict[str, Any] = {}

    def _finish_member(self) -> None:
        if self._member is not None:
            if self._left:
                raise RuntimeError(f"field closed with {self._left} rows missing")
            self._member.close()
            self._member = None

    def add_field(self, name: str, dtype: np.dtype, row_shape: tuple[int, ...], n_rows: int | None) -> None:
        if n_rows is None:
            raise ValueError(".npz needs each field's length up front; it is written once, at the end")
        why = field_name_problem(name)
        if why:
            raise UsageError(why)
        self._finish_member()
        shape = (n_rows,) + tuple(row_shape)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        self._member = self._zip.open(f"{name}.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(self._member, header)
        self._left = n_rows

    def append(self, name: str, block: np.ndarray) -> None:
        self._member.write(memoryview(np.ascontiguousarray(block)).cast("B"))
        self._left -= len(block)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self._metadata = metadata

    def add_array(self, name: str, array: np.ndarray, allow_pickle: bool = False) -> None:
        """Write a whole member that is not a field (a peer format's own array; ``allow_pickle`` writes an
        object array, which a peer's reader expects and ours never reads)."""
        self._finish_member()
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, array, allow_pickle=allow_pickle)

    def abort(self) -> None:
        for handle in (self._member, self._zip):  # the member first: zipfile refuses to close around it
            try:
                if handle is not None:
                    handle.close()
            except (OSError, ValueError, RuntimeError):
                pass  # the half-written temporary file is deleted by the caller
        self._member = None

    def close(self) -> None:
        self._finish_member()
        with self._zip.open(f"{METADATA_KEY}.npy", "w") as f:
            np.lib.format.write_array(f, np.array(metadata_to_json(self._metadata)), allow_pickle=False)
        self._zip.close()


class _Npz:
    name = "npz"
    suffixes = (".npz",)
    compressions = {"none": None, "deflate": (0, 9)}
    default_compression = "none"
    capabilities = Capabilities(images_as_files=True, needs_rewards=True)
    summary = "SB2's layout, read by SB2's ExpertDataset. Lossless; image observations as files beside it."
    sniff = staticmethod(sniff)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> NpzSink:
        return NpzSink(path, options)


BACKEND = _Npz()
