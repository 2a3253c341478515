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
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import LazyRows
from ..errors import UnreadableError, UsageError
from ..schema import MAX_METADATA_BYTES, shown
from .base import Capabilities, Finding, Raw
from .peer import Peer, space_of

_SHARD = re.compile(r"(?P<name>.+)-(?P<split>[A-Za-z0-9_]+)\.tfrecord-(?P<index>\d{5})-of-(?P<count>\d{5})")
_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
           "bool": np.bool_, "int8": np.int8, "int16": np.int16, "uint16": np.uint16}
#: An episode record may hold at most this many bytes (a header claiming more is refused unread).
MAX_RECORD = 2**31


def sniff(path: Path) -> bool:
    return path.is_dir() and (path / "features.json").is_file() and any(
        _SHARD.fullmatch(p.name) for p in path.iterdir())


def _masked_crc(data: bytes) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(file: Path) -> list[tuple[int, int]]:
    """Each record's (offset of its data, length), every framing checksum checked."""
    found, size = [], file.stat().st_size
    with open(file, "rb") as f:
        at = 0
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
            data = f.read(length)
            (crc,) = struct.unpack("<I", f.read(4))
            if crc != _masked_crc(data):
                raise UnreadableError(f"{file}: the record at byte {at:,} is corrupt (CRC mismatch)")
            found.append((at + 12, length))
            at += 16 + length
    return found


def _example(file: Path, offset: int, length: int) -> dict[str, Any]:
    """One record's features by name, as lists of values (bytes, floats or ints)."""
    from tfrecord import example_pb2

    with open(file, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    example = example_pb2.Example()
    try:
        example.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UnreadableError(f"{file}: a record at byte {offset - 12:,} is not a tf.train.Example ({exc})") from None
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value) if kind else []
    return out


def _features(node: dict, path: str = "") -> dict[str, dict]:
    """features.json's leaves by their flattened name (``steps/observation/image_0``)."""
    out: dict[str, dict] = {}
    if "featuresDict" in node:
        for key, child in node["featuresDict"]["features"].items():
            out.update(_features(child, f"{path}/{key}" if path else key))
    elif "sequence" in node:
        out.update(_features(node["sequence"]["feature"], path))
    else:
        kind = node.get("pythonClassName", "").rsplit(".", 1)[-1]
        spec = node.get("tensor") or node.get("image") or {}
        out[path] = {"kind": kind, "dtype": spec.get("dtype", "string" if kind == "Text" else None),
                     "shape": [int(d) for d in (spec.get("shape") or {}).get("dimensions", [])],
                     "encoding": spec.get("encodingFormat")}
    return out


class DecodedImages(LazyRows):
    """A ``steps/...`` image feature, decoded with pillow as rows are read (each episode's record parsed once per
    read)."""

    def __init__(self, key: str, where: list[tuple[Path, int, int]], lengths: np.ndarray,
                 shape: tuple[int, ...]) -> None:
        self._key, self._where = key, where
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.dtype, self.shape = np.dtype(np.uint8), (int(self._starts[-1]),) + tuple(shape)

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        from PIL import Image

        row = start
        while row < stop:
            episode = int(np.searchsorted(self._starts, row, side="right")) - 1
            begin, end = int(self._starts[episode]), int(self._starts[episode + 1])
            encoded = _example(*self._where[episode])[self._key]
            for step in range(row - begin, min(stop, end) - begin):
                with Image.open(io.BytesIO(encoded[step])) as image:
                    frame = np.asarray(image.convert("RGB") if image.mode != "L" else image)
                if frame.shape != self.shape[1:]:
                    raise UnreadableError(f"{self._where[episode][0]}: episode {episode}, step {step}: "
                                          f"{self._key} is {frame.shape}, features.json says {self.shape[1:]}")
                out[begin + step - start] = frame
            row = min(stop, end)


def read(path: Path, trusted: bool = False) -> Raw:
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("crc32c", "tfrecord", "PIL")):
        raise UsageError("reading RLDS datasets needs crc32c and tfrecord: pip install \"expertdata[robot]\"")
    for name in ("features.json", "dataset_info.json"):
        if (path / name).is_file() and (path / name).stat().st_size > MAX_METADATA_BYTES:
            raise UnreadableError(f"{path / name}: too large to be metadata")
    features = _features(json.loads((path / "features.json").read_text()))
    shards = sorted((p for p in path.iterdir() if _SHARD.fullmatch(p.name)),
                    key=lambda p: (_SHARD.fullmatch(p.name)["split"] != "train", p.name))
    where, split_of = [], []
    for shard in shards:
        for offset, length in records(shard):
            where.append((shard, offset, length))
            split_of.append(_SHARD.fullmatch(shard.name)["split"])
    if not where:
        raise UnreadableError(f"{path}: no episodes in its shards")
    step_keys = [k for k in features if k.startswith("steps/")]
    images = {k for k, spec in features.items() if spec["kind"] == "Image"}
    # Every record is parsed once here for its numbers and text; images are decoded from the file when read.
    episodes = [{k: v for k, v in _example(*w).items() if k not in images} for w in where]
    lengths = np.asarray([len(e.get("steps/is_first", [])) for e in episodes], np.int64)
    raw = Raw({}, {}, path, "rlds")
    columns: dict[str, Any] = {}
    for key in step_keys:
        spec = features[key]
        if spec["kind"] == "Image":
            columns[key] = DecodedImages(key, where, lengths, tuple(spec["shape"]))
        elif spec["kind"] == "Text":
            columns[key] = np.asarray([v.decode("utf-8", "replace") for e in episodes for v in e.get(key, [])],
                                      dtype=str)
        else:
            values = np.concatenate([np.asarray(e.get(key, []), dtype=_DTYPES[spec["dtype"]]) for e in episodes])
            columns[key] = values.reshape((int(lengths.sum()),) + tuple(spec["shape"]))
    wrong = [k for k, a in columns.items() if a.shape[0] != lengths.sum()]
    if wrong:
        raise UnreadableError(f"{path}: {', '.join(map(shown, wrong))} do not hold one value per step")
    _fields(raw, columns, lengths, episodes, features, split_of)
    return raw


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
            values = [e.get(key, [None])[0] if e.get(key) else None for e in episodes]
            name = key.replace("/", ".")
            raw.fields[name] = (np.asarray([(v or b"").decode("utf-8", "replace") for v in values], dtype=str)
                                if spec["kind"] == "Text" else np.asarray(values, _DTYPES[spec["dtype"]]))
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
               sniff, read, export, {"none": None}, capabilities=Capabilities(exports=True))
