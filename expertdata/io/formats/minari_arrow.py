"""Minari's Arrow backend, read and written: one folder per episode, ``data/<id>/part-0.arrow`` (an Arrow IPC file of
T+1 rows: the observations, then actions, rewards and flags padded by one row, and ``infos``) and
``data/<id>/metadata.json`` (its seed). The files are memory-mapped, so columns become numpy arrays without
a copy; each file is validated in full before use. Needs pyarrow (``pip install "expertdata[arrow]"``).

The arrays come out named as Minari's HDF5 backend names them (``episode_<id>/<key>``), so the rest of
the import is shared (``expertdata.io.formats.minari``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...core import guard, spaces
from ...core.errors import UnreadableError, UsageError
from ...core.rules import Finding
from .base import Raw
from .peer import episode_id_clash

PADDED = ("actions", "rewards", "terminations", "truncations")
#: Where our fields that Minari has no name for are kept (as in the HDF5 backend's episode groups).
SIDECAR = "expertdata"
#: An episode's metadata file is a few numbers: larger ones are not read.
MAX_EPISODE_METADATA = 2**16


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401  (loads the submodule)
    except ImportError:
        raise UsageError('reading a Minari dataset stored as Arrow needs pyarrow: pip install "expertdata[arrow]"') \
            from None
    return pyarrow


def episode_folders(folder: Path, scope: guard.Scope | None = None) -> list[tuple[int, Path]]:
    """The episode folders of an Arrow dataset, by episode id; two folders naming one id (``3``, ``03``) are
    refused (E019), and so is a folder that is a link (through ``scope``, when given)."""
    found = sorted((int(p.name), p) for p in (scope.entries(folder) if scope else folder.iterdir())
                   if p.name.isdigit() and len(p.name) <= 12 and (p.is_dir() or p.is_symlink()))
    if scope is not None:
        episode_id_clash([(p.name, id_) for id_, p in found], folder)
        for _, p in found:
            scope.folder(p)
    return found


#: What an IPC record batch's buffers may decompress to, at most, against the file's bytes (and a MiB).
MAX_UNPACKED_RATIO = 1032


def _u32(data: memoryview, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def _table_field(data: memoryview, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffer table at ``table`` is, or ``None`` when it is absent."""
    vtable = table - int.from_bytes(data[table:table + 4], "little", signed=True)
    size = int.from_bytes(data[vtable:vtable + 2], "little")
    if 4 + 2 * index >= size:
        return None
    offset = int.from_bytes(data[vtable + 4 + 2 * index:vtable + 6 + 2 * index], "little")
    return table + offset if offset else None


def _unpacked_bytes(message: Any, body: Any) -> int:
    """What a record batch message's body holds once decompressed, read from the message's flatbuffer (Arrow's
    ``Message`` -> ``RecordBatch``: its ``buffers`` and ``compression``) and, where compressed, the length each
    buffer's first 8 bytes declare, without decompressing anything."""
    data = memoryview(message.metadata.to_pybytes())
    root = _u32(data, 0)
    header = _table_field(data, root, 2)
    if header is None:
        return 0
    batch = header + _u32(data, header)
    buffers_at = _table_field(data, batch, 2)
    compressed = _table_field(data, batch, 3) is not None
    if buffers_at is None or not compressed:
        return int(message.body.size) if message.body is not None else 0
    vector = buffers_at + _u32(data, buffers_at)
    total, raw = 0, memoryview(body)
    for i in range(_u32(data, vector)):
        entry = vector + 4 + 16 * i
        offset, length = (int.from_bytes(data[entry + k:entry + k + 8], "little", signed=True) for k in (0, 8))
        if length <= 0:
            continue
        if offset < 0 or offset + 8 > len(raw):
            raise ValueError("a buffer lies outside its message's body")
        declared = int.from_bytes(raw[offset:offset + 8], "little", signed=True)
        total += length - 8 if declared == -1 else declared
    return total


def _checked_table(pa: Any, file: Path) -> Any:
    """The Arrow IPC file's table, memory-mapped, once every record batch's decompressed size is known to be in
    proportion to the file (a compressed batch could otherwise claim gigabytes), then validated in full."""
    source = pa.memory_map(str(file))
    size = source.size()
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(source.read_buffer(size))[8:])
    unpacked = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        if message is None:
            break
        if message.type == "record batch":
            unpacked += _unpacked_bytes(message, message.body)
            if unpacked > MAX_UNPACKED_RATIO * size + 2**20:
                raise UnreadableError(f"{file}: its record batches would decompress to more than {unpacked:,} "
                                      f"bytes from {size:,}: out of proportion")
    table = pa.ipc.open_file(source).read_all()
    table.validate(full=True)
    return table


def _column(pa: Any, column: Any, name: str, shape: tuple[int, ...] | None, file: Path) -> np.ndarray:
    """A column as numpy rows (zero-copy where Arrow allows), fixed-size lists reshaped to ``shape``."""
    if column.null_count:
        raise UnreadableError(f"{file}: column {name!r} holds nulls")
    if pa.types.is_fixed_size_list(column.type):
        flat = column.flatten().to_numpy(zero_copy_only=False)
        rows = flat.reshape(len(column), -1)
        if shape is not None and rows.shape[1] != int(np.prod(shape, dtype=np.int64)):
            raise UnreadableError(f"{file}: column {name!r} has {rows.shape[1]} values a row; its space {shape}")
        return rows.reshape((len(column),) + (tuple(shape) if shape is not None else rows.shape[1:]))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        return column.to_numpy(zero_copy_only=False)
    raise UnreadableError(f"{file}: column {name!r} is {column.type}, not numbers")


def _infos(pa: Any, column: Any, prefix: str, raw: Raw, file: Path) -> None:
    """Numeric leaves of the ``infos`` struct as ``<prefix>/<path>`` arrays; the rest skipped (W108)."""
    for index in range(column.type.num_fields):
        child, name = column.field(index), column.type.field(index).name
        if pa.types.is_struct(child.type):
            _infos(pa, child, f"{prefix}/{name}", raw, file)
            continue
        try:
            raw.fields[f"{prefix}/{name}"] = _column(pa, child, name, None, file)
        except UnreadableError as exc:
            raw.findings.append(Finding("not-imported", f"info {prefix[prefix.index('/') + 1:]}/{name} is skipped: "
                                        f"{str(exc).split(': ', 1)[1]}"))


def read(scope: guard.Scope, folder: Path, episodes: list[tuple[int, Path]], observation_space: dict | None,
         action_space: dict | None, row_shapes: dict[str, list[int]] | None = None) -> Raw:
    """The arrays of ``episodes`` (``episode_folders``' entries, or some of them: no other file is opened);
    ``row_shapes`` (from our own export) restores rows Minari stores flat (a Discrete action kept as (1,))."""
    pa = _pyarrow()
    shapes = {"observations": spaces.row_shape(observation_space) if observation_space else None,
              "actions": spaces.row_shape(action_space) if action_space and action_space["type"] != "Discrete"
              else None}
    raw = Raw({}, {}, folder, "minari")
    for id_, episode in episodes:
        files = [p for p in scope.entries(episode) if p.name.startswith("part-") and p.name.endswith(".arrow")]
        if len(files) != 1:
            raise UnreadableError(f"{episode}: {len(files)} Arrow files; one per episode is read")
        file = scope.file(files[0])
        try:
            table = _checked_table(pa, file)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UnreadableError(f"{file}: not a readable Arrow file ({exc})") from None
        for name in table.column_names:
            column = table.column(name).combine_chunks()
            key = f"episode_{id_}/{name}"
            if name == "infos" and pa.types.is_struct(column.type):
                _infos(pa, column, key, raw, file)
            elif name == "observations" or name in PADDED or name.startswith(f"{SIDECAR}/"):
                rows = _column(pa, column, name, shapes.get(name), file)
                rows = rows if name == "observations" else rows[:-1]
                if (row_shapes or {}).get(name) is not None:
                    rows = rows.reshape((len(rows),) + tuple(row_shapes[name]))
                raw.fields[key] = rows
                raw.storage[key] = {"chunks": None, "compression": "none", "checksum": False}
            else:
                raw.findings.append(Finding("not-imported", f"column {name!r} of {file.name} is skipped: not a "
                                            "column Minari writes"))
    return raw


def seeds(scope: guard.Scope, folders: list[tuple[int, Path]]) -> Callable[[list[int]], list[Any]]:
    """Each episode's seed, from its ``metadata.json`` in its folder (``episode_folders``' entries; ``None`` where it
    has none; a link or a file that is not a small JSON object is refused)."""
    names = dict(folders)

    def read_seeds(ids: list[int]) -> list[Any]:
        found = []
        for id_ in ids:
            file = names[id_] / "metadata.json"
            meta = scope.json(file, MAX_EPISODE_METADATA) if scope.exists(file) else {}
            found.append(meta.get("seed") if isinstance(meta, dict) else None)
        return found
    return read_seeds


def _array(pa: Any, rows: np.ndarray, flat: bool = False) -> Any:
    """Rows as Minari encodes them: a fixed-size list per row, or plain values for one number a row."""
    if rows.ndim == 1 or (flat and rows.shape[1:] == (1,)):
        return pa.array(rows.reshape(len(rows)))
    values = np.ascontiguousarray(rows).reshape(len(rows), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _struct(pa: Any, leaves: dict[str, np.ndarray]) -> Any:
    """``infos`` leaves by path (``a/b``) as nested structs."""
    children: dict[str, Any] = {}
    for path in sorted({p.split("/", 1)[0] for p in leaves}):
        inner = {p.split("/", 1)[1]: v for p, v in leaves.items() if p.startswith(path + "/")}
        children[path] = _struct(pa, inner) if inner else _array(pa, leaves[path])
    return pa.StructArray.from_arrays(list(children.values()), names=list(children))


def write_episode(folder: Path, episode: int, rows: dict[str, np.ndarray], discrete_actions: bool) -> None:
    """One episode's folder: its Arrow file (T+1 rows; actions, rewards, flags and our fields padded by one
    row, as Minari pads them) and its ``metadata.json`` (id, steps, seed)."""
    pa = _pyarrow()
    steps = len(rows["rewards"])
    columns: dict[str, Any] = {"observations": _array(pa, rows["observations"])}
    for name, array in rows.items():
        if name == "observations" or name.startswith("infos/"):
            continue
        if name.startswith(f"{SIDECAR}/") and len(array) != steps:  # a per-episode field: its value first
            array = np.concatenate([array, np.zeros((steps - len(array),) + array.shape[1:], array.dtype)])
        padded = np.concatenate([array, np.zeros((1,) + array.shape[1:], array.dtype)])
        columns[name] = _array(pa, padded, flat=name == "actions" and discrete_actions)
    infos = {name[len("infos/"):]: array for name, array in rows.items() if name.startswith("infos/")}
    if infos:
        columns["infos"] = _struct(pa, infos)
    table = pa.table(columns)
    folder.mkdir(parents=True)
    with pa.ipc.new_file(str(folder / "part-0.arrow"), table.schema) as writer:
        writer.write_table(table)
    meta: dict[str, Any] = {"id": episode, "total_steps": steps}
    if f"{SIDECAR}/seed" in rows:
        meta["seed"] = int(rows[f"{SIDECAR}/seed"][0])
    (folder / "metadata.json").write_text(json.dumps(meta))
