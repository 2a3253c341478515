"""``.npz``: the format Stable Baselines 2 wrote, read and written so SB2's loader sees what it expects.

Uncompressed members (SB2 never compressed) stay lazy: rows are read from the file when sliced, with
plain positioned reads rather than a memory map, so streaming a large file does not pin it in memory.
Compressed members are read into memory. Object arrays are never unpickled: their header is read, their data refused.
Members are written one after another through ``zipfile``, a block at a time.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnreadableError
from .base import METADATA_KEY, Capabilities, Raw, WriteOptions, metadata_from_json, metadata_to_json

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class RefusedArray:
    """Stands for an object array: its shape and dtype are known, reading it would need unpickling."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        raise UnreadableError(f"'{self.name}' is an object array; reading it would unpickle, which is refused")


class NpyRows:
    """The rows of an uncompressed C-order ``.npy`` member, read from the file when sliced."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._path, self._offset = path, offset
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        with open(self._path, "rb", buffering=0) as f:
            f.seek(self._offset + start * self._row_bytes)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise UnreadableError(f"{self._path}: truncated while reading rows {start}-{stop}")

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.shape[0] if key < 0 else 0)
            return self[index:index + 1][0]
        if not isinstance(key, slice):
            raise TypeError("rows of a .npy member are read by slices")
        start, stop, step = key.indices(self.shape[0])
        out = np.empty((max(0, stop - start),) + self.shape[1:], dtype=self.dtype)
        self.read_into(start, stop, out)
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


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    name = info.filename[:-4]
    shape, fortran, dtype, header_len = _member_header(zf, info)
    if dtype.hasobject:
        return RefusedArray(name, shape, dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info.compress_type != zipfile.ZIP_STORED or nbytes == 0 or fortran or not shape:
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    offset = _data_offset(path, info) + header_len
    if offset + nbytes > path.stat().st_size or info.file_size != header_len + nbytes:
        raise ValueError(f"member '{name}' is truncated")
    return NpyRows(path, offset, shape, dtype)


def read(path: Path) -> Raw:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableError(f"{path}: not a readable .npz archive ({exc})") from None
    try:
        fields = {info.filename[:-4]: _read_member(path, zf, info)
                  for info in zf.infolist() if info.filename.endswith(".npy")}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        zf.close()
        raise UnreadableError(f"{path}: corrupt .npz ({exc})") from None
    zf.close()
    text = fields.pop(METADATA_KEY, None)
    metadata = metadata_from_json(np.asarray(text).item(), path) if text is not None else {}
    storage = {info.filename[:-4]: {"chunks": None, "compression": "none" if info.compress_type == zipfile.ZIP_STORED
                                    else "deflate"} for info in zf.infolist() if info.filename[:-4] in fields}
    return Raw(fields, metadata, path.parent, "npz", storage)


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
    compressions = ("none", "deflate")
    default_compression = "none"
    capabilities = Capabilities(images_as_files=True)
    sniff = staticmethod(sniff)
    read = staticmethod(read)

    def writer(self, path: Path, options: WriteOptions) -> NpzSink:
        return NpzSink(path, options)


BACKEND = _Npz()
