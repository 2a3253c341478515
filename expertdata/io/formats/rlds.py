"""RLDS / Open X-Embodiment datasets (TFDS folders: ``dataset_info.json``, ``features.json`` and
``NAME-SPLIT.tfrecord-NNNNN-of-MMMMM`` shards), read without TensorFlow.

Each record of a shard is one episode, a ``tf.train.Example`` whose ``steps/*`` features hold every step's
values one after another and whose ``episode_metadata/*`` features hold the episode's. Records are framed by
hand (length, masked CRC-32C of the length, data, masked CRC-32C of the data: four lines; every length is
checked against the bytes left and every CRC with the ``crc32c`` package, so a damaged or hostile shard is
refused rather than allocated for); the ``Example`` messages are decoded by protobuf, with the message
classes the ``tfrecord`` package ships.

Read: ``steps/observation/*`` become the leaves of a Dict observation (images decoded from JPEG or PNG with
pillow as rows are read), ``steps/action`` the actions, ``steps/reward`` the rewards; ``is_terminal`` becomes
``terminated`` and ``is_last`` without it ``truncated`` (RLDS's meaning); ``is_first``, ``discount``,
``language_instruction`` (text) and the other steps' features are step extras, ``episode_metadata/*`` episode
extras; the splits (``train``, ``val``, ...) become named splits. A dataset that never sets ``is_last`` (cut
episodes, as Octo's Bridge sample) is reported (``W101``).
"""
from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...core import guard, spaces
from ...core.arrays import LazyRows
from ...core.errors import CountMismatchError, UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import shown
from .base import Capabilities, Raw
from .peer import Peer, checked, chosen_episodes, space_of

_SHARD = re.compile(r"(?P<name>.+)-(?P<split>[A-Za-z0-9_]+)\.tfrecord-(?P<index>\d{5})-of-(?P<count>\d{5})")
_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
           "bool": np.bool_, "int8": np.int8, "int16": np.int16, "uint16": np.uint16}
#: The protobuf list each kind of value is stored in (``tf.train.Feature``'s ``kind``).
_KINDS = {"float32": "float_list", "float64": "float_list", "string": "bytes_list"}
#: An episode record may hold at most this many bytes (a header claiming more is refused unread).
MAX_RECORD = 2**31


def sniff(path: Path) -> bool:
    return path.is_dir() and (path / "features.json").is_file() and any(
        _SHARD.fullmatch(p.name) for p in path.iterdir())


def _masked_crc(data: bytes) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(scope: guard.Scope, file: Path) -> list[tuple[int, int]]:
    """Each record's (offset of its data, length), every length's checksum checked against its header; the data
    is skipped here, and checked against its own checksum by ``_example`` when it is read."""
    found = []
    with scope.open(file) as f:
        size, at = os.fstat(f.fileno()).st_size, 0
        while at < size:
            header = f.read(12)
            if len(header) != 12:
                raise UnreadableError(f"{file}: truncated at byte {at:,} (a record's header)")
            length, crc = struct.unpack("<QI", header)
            if crc != _masked_crc(header[:8]):
                raise UnreadableError(f"{file}: the record at byte {at:,} has a corrupt length (CRC mismatch)")
            if length > min(MAX_RECORD, size - at - 16):
                raise UnreadableError(f"{file}: the record at byte {at:,} claims {length:,} bytes; "
                                      f"{max(0, size - at - 16):,} are left")
            f.seek(at + 16 + length)
            found.append((at + 12, length))
            at += 16 + length
    return found


def _example(scope: guard.Scope, file: Path, offset: int, length: int) -> Any:
    """One record's ``tf.train.Example`` features, its data checked against its checksum first (protobuf
    containers: nothing is copied into Python lists)."""
    from tfrecord import example_pb2

    with scope.open(file) as f:
        f.seek(offset)
        data = f.read(length)
        (crc,) = struct.unpack("<I", f.read(4))
    if crc != _masked_crc(data):
        raise UnreadableError(f"{file}: the record at byte {offset - 12:,} is corrupt (CRC mismatch)")
    example = example_pb2.Example()
    try:
        example.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UnreadableError(f"{file}: a record at byte {offset - 12:,} is not a tf.train.Example ({exc})") from None
    return example.features.feature


def _values(feature: Any, key: str, spec: dict, where: str) -> Any:
    """A feature's stored values: its protobuf list, once it is the kind ``features.json`` declares."""
    if feature is None:
        return []
    kind = feature.WhichOneof("kind")
    want = "bytes_list" if spec["kind"] == "Image" else _KINDS.get(spec["dtype"], "int64_list")
    if kind is None:
        return []
    if kind != want:
        raise UnreadableError(f"{where}: {shown(key)} is stored as {kind}; features.json declares {spec['dtype']} "
                              f"({want})")
    return getattr(feature, kind).value


def _features(node: Any, where: Path, path: str = "", depth: int = 0) -> dict[str, dict]:
    """features.json's leaves by their flattened name (``steps/observation/image_0``), each checked: a known dtype,
    whole dimensions, a row of at most ``spaces.MAX_ROW_ENTRIES`` values."""
    checked(node, dict, f"feature {shown(path or '/')}", where)
    if depth > 16:
        raise UnreadableError(f"{where}: features nest deeper than 16 levels")
    out: dict[str, dict] = {}
    if "featuresDict" in node:
        children = checked(checked(node["featuresDict"], dict, "featuresDict", where).get("features"), dict,
                           f"{shown(path or '/')}: features", where)
        for key, child in children.items():
            out.update(_features(child, where, f"{path}/{key}" if path else key, depth + 1))
    elif "sequence" in node:
        out.update(_features(checked(node["sequence"], dict, "sequence", where).get("feature"), where, path,
                             depth + 1))
    else:
        kind = str(node.get("pythonClassName", "")).rsplit(".", 1)[-1]
        spec = node.get("tensor") or node.get("image") or {}
        checked(spec, dict, f"{shown(path)}: its tensor", where)
        dtype = spec.get("dtype", "string" if kind == "Text" else None)
        if dtype not in _DTYPES and dtype != "string":
            raise UnreadableError(f"{where}: {shown(path)} has dtype {shown(str(dtype))}; {', '.join(_DTYPES)} and "
                                  "string are read")
        dimensions = checked((spec.get("shape") or {}), dict, f"{shown(path)}: shape", where).get("dimensions", [])
        shape = []
        for d in checked(dimensions, list, f"{shown(path)}: dimensions", where):
            if not (isinstance(d, (int, str)) and str(d).isdigit() and 0 < int(d) <= spaces.MAX_ROW_ENTRIES):
                raise UnreadableError(f"{where}: {shown(path)} has a dimension {shown(str(d))}; whole sizes are read")
            shape.append(int(d))
        if int(np.prod(shape, dtype=object)) > spaces.MAX_ROW_ENTRIES:
            raise UnreadableError(f"{where}: {shown(path)} claims {shape} values a step; at most "
                                  f"{spaces.MAX_ROW_ENTRIES:,} are read")
        out[path] = {"kind": kind, "dtype": dtype, "shape": shape, "encoding": spec.get("encodingFormat")}
    return out


class DecodedImages(LazyRows):
    """A ``steps/...`` image feature, decoded with pillow as rows are read (each episode's record parsed once per
    read); an image whose header gives another size than ``features.json`` is refused before it is decoded."""

    def __init__(self, scope: guard.Scope, key: str, spec: dict, where: list[tuple[Path, int, int]],
                 lengths: np.ndarray, numbers: Sequence[int]) -> None:
        self._scope, self._key, self._spec, self._where, self._numbers = scope, key, spec, where, numbers
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.dtype, self.shape = np.dtype(np.uint8), (int(self._starts[-1]),) + tuple(spec["shape"])

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        from PIL import Image

        row = start
        while row < stop:
            episode = int(np.searchsorted(self._starts, row, side="right")) - 1
            begin, end = int(self._starts[episode]), int(self._starts[episode + 1])
            file, offset, length = self._where[episode]
            label = f"{file}: episode {self._numbers[episode]}"
            encoded = _values(_example(self._scope, *self._where[episode]).get(self._key), self._key, self._spec,
                              label)
            if len(encoded) != end - begin:
                raise CountMismatchError(f"{label}: E018 count-mismatch: {shown(self._key)} holds {len(encoded):,} "
                                         f"images for {end - begin:,} steps")
            for step in range(row - begin, min(stop, end) - begin):
                with guard.reading(f"{label}, step {step}: {self._key}"), \
                        Image.open(io.BytesIO(encoded[step])) as image:
                    height, width = self.shape[1:3]
                    if image.size != (width, height):
                        raise UnreadableError(f"{label}, step {step}: {shown(self._key)} is {image.size[0]}x"
                                              f"{image.size[1]}; features.json says {width}x{height}")
                    frame = np.asarray(image.convert("RGB") if image.mode != "L" else image)
                if frame.shape != self.shape[1:]:
                    raise UnreadableError(f"{label}, step {step}: {self._key} is {frame.shape}, features.json says "
                                          f"{self.shape[1:]}")
                out[begin + step - start] = frame
            row = min(stop, end)


def _shards(scope: guard.Scope) -> list[Path]:
    """The shards, train's first; every split's shards must all be there (``-00000-of-00002`` alone is half)."""
    shards = [p for p in scope.entries() if _SHARD.fullmatch(p.name)]
    for shard in shards:
        scope.file(shard.name)  # a link or a FIFO in a shard's place is refused
    by_split: dict[str, set[tuple[int, int]]] = {}
    for p in shards:
        match = _SHARD.fullmatch(p.name)
        by_split.setdefault(match["split"], set()).add((int(match["index"]), int(match["count"])))
    for split, found in by_split.items():
        counts = {count for _, count in found}
        indices = {index for index, _ in found}
        if len(counts) != 1 or indices != set(range(next(iter(counts)))):
            expected = max(counts)
            raise CountMismatchError(f"{scope.root}: E018 count-mismatch: split {shown(split)} has "
                                     f"{len(indices)} of its {expected} shards ({', '.join(map(str, sorted(indices)))} "
                                     "found); the rest of the split is missing")
    return sorted(shards, key=lambda p: (_SHARD.fullmatch(p.name)["split"] != "train", p.name))


def read(path: Path, trusted: bool = False, episodes: Sequence[int] | None = None) -> Raw:
    """Read an RLDS folder; ``episodes``: only these (positions in shard order, train's first), whose records alone
    are read, checked and parsed (the others' lengths are checked, their data skipped)."""
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("crc32c", "tfrecord", "PIL")):
        raise UsageError("reading RLDS datasets needs crc32c and tfrecord: pip install \"expertdata[robot]\"")
    scope = guard.Scope(path, trusted)
    if scope.exists("dataset_info.json"):
        checked(scope.json("dataset_info.json"), dict, "dataset_info.json", path / "dataset_info.json")
    features = _features(scope.json("features.json"), path / "features.json")
    missing = [k for k in ("steps/action", "steps/is_first") if k not in features]
    if missing:
        raise UnreadableError(f"{path}: features.json declares no {', '.join(map(shown, missing))}; an RLDS dataset "
                              "has both")
    where, split_of = [], []
    for shard in _shards(scope):
        for offset, length in records(scope, shard):
            where.append((shard, offset, length))
            split_of.append(_SHARD.fullmatch(shard.name)["split"])
    if not where:
        raise UnreadableError(f"{path}: no episodes in its shards")
    numbers = chosen_episodes(list(range(len(where))), episodes, path)
    where, split_of = [where[n] for n in numbers], [split_of[n] for n in numbers]
    step_keys = [k for k in features if k.startswith("steps/")]
    if not any(k.startswith("steps/observation/") for k in step_keys):
        raise UnreadableError(f"{path}: features.json declares no steps/observation/*")
    images = {k for k, spec in features.items() if spec["kind"] == "Image"}
    # Every record is parsed once here for its numbers and text; images are decoded from the file when read.
    episodes, lengths = [], []
    for n, w in zip(numbers, where):
        stored = _example(scope, *w)
        label = f"{w[0]}: episode {n}"
        values = {k: _values(stored.get(k), k, features[k], label) for k in features if k not in images}
        lengths.append(len(values["steps/is_first"]))
        if not lengths[-1]:
            raise UnreadableError(f"{label}: no steps (its steps/is_first is empty)")
        episodes.append({k: _array(v, features[k], label, k, lengths[-1]) for k, v in values.items()})
    lengths = np.asarray(lengths, np.int64)
    raw = Raw({}, {}, path, "rlds")
    columns: dict[str, Any] = {}
    for key in step_keys:
        spec = features[key]
        if spec["kind"] == "Image":
            columns[key] = DecodedImages(scope, key, spec, where, lengths, numbers)
        else:
            columns[key] = np.concatenate([e[key] for e in episodes])
    _fields(raw, columns, lengths, episodes, features, split_of)
    return raw


def _array(values: Any, spec: dict, where: str, key: str, steps: int) -> np.ndarray:
    """A record's values of one feature as numpy: text decoded, numbers reshaped to (steps, *shape); a count that is
    not one row per step (or, for ``episode_metadata``, one value) is E018."""
    rows = steps if key.startswith("steps/") else 1
    per_row = int(np.prod(spec["shape"], dtype=np.int64))
    if key.startswith("episode_metadata/") and len(values) == 0:
        return np.zeros(0, str if spec["dtype"] == "string" else _DTYPES[spec["dtype"]])
    if len(values) != rows * per_row:
        raise CountMismatchError(f"{where}: E018 count-mismatch: {shown(key)} holds {len(values):,} values for "
                                 f"{rows:,} rows of {spec['shape']}")
    if spec["dtype"] == "string":
        return np.asarray([v.decode("utf-8", "replace") for v in values], dtype=str)
    dtype = _DTYPES[spec["dtype"]]
    stored = np.float32 if spec["dtype"] == "float32" else np.float64 if spec["dtype"] == "float64" else np.int64
    return np.fromiter(values, stored, count=len(values)).astype(dtype).reshape((rows,) + tuple(spec["shape"]))


def _fields(raw: Raw, columns: dict[str, Any], lengths: np.ndarray, episodes: list[dict], features: dict,
            split_of: list[str]) -> None:
    starts = np.zeros(int(lengths.sum()), bool)
    starts[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    observed = {k[len("steps/observation/"):]: columns.pop(k) for k in sorted(columns)
                if k.startswith("steps/observation/")}
    raw.fields.update({f"obs/{k}": a for k, a in observed.items()})
    raw.fields["actions"] = columns.pop("steps/action")
    raw.fields["episode_starts"] = starts
    if "steps/reward" in columns:
        raw.fields["rewards"] = columns.pop("steps/reward")
        raw.fields["episode_returns"] = np.add.reduceat(raw.fields["rewards"].astype(np.float64),
                                                        np.flatnonzero(starts))
    else:
        raw.metadata["rewards"] = "absent"
    last = columns.pop("steps/is_last", np.zeros(len(starts), bool)).astype(bool)
    terminal = columns.pop("steps/is_terminal", np.zeros(len(starts), bool)).astype(bool)
    raw.fields["terminated"], raw.fields["truncated"] = terminal & last, last & ~terminal
    if not last.any():
        raw.findings.append(Finding("last-episode-cut", "is_last is never set: every episode was cut short of its "
                                    "end (RLDS marks the last step of a whole episode)", "truncated"))
    extras = {}
    for key, array in columns.items():
        raw.fields[key[len("steps/"):]] = array
        extras[key[len("steps/"):]] = "step"
    for key, spec in features.items():
        if key.startswith("episode_metadata/"):
            values = [e[key] for e in episodes]
            name = key.replace("/", ".")
            if spec["dtype"] == "string":
                raw.fields[name] = np.asarray([v[0] if len(v) else "" for v in values], dtype=str)
            elif all(len(v) for v in values):
                raw.fields[name] = np.concatenate(values)
            else:
                raw.findings.append(Finding("not-imported", f"{shown(key)} is skipped: some episodes hold none"))
                continue
            extras[name] = "episode"
    splits: dict[str, list[int]] = {}
    for e, split in enumerate(split_of):
        splits.setdefault(split, []).append(e)
    raw.metadata.update({
        "observation_space": {"type": "Dict", "spaces": {k: space_of(a) for k, a in observed.items()}},
        "action_space": space_of(raw.fields["actions"]), "extras": extras, "splits": splits,
        "user": {"rlds": {"features": sorted(features)}}})


def export(dataset: Any, metadata: dict, path: Path, options: Any) -> list[str]:
    raise UsageError("RLDS datasets are read, not written; convert to Zarr, HDF5 or another peer format")


BACKEND = Peer("rlds", "RLDS / Open X-Embodiment TFDS folders (read, without TensorFlow): steps/observation/* become a "
               "Dict observation (JPEG and PNG images decoded), is_terminal/is_last the flags, splits named splits.",
               sniff, read, export, {"none": None}, capabilities=Capabilities(exports=True, selective=True))
