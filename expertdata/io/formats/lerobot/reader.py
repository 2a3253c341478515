"""LeRobot datasets (Hugging Face's robot-learning format, versions 2.1 and 3.0), read.

A dataset folder holds ``meta/info.json`` (features, fps, path templates), the frames in parquet files
(2.1: one per episode, ``data/chunk-XXX/episode_NNNNNN.parquet``; 3.0: many episodes per file, located by
``meta/episodes/*.parquet``'s ``dataset_from_index``/``dataset_to_index``), the tasks (2.1:
``meta/tasks.jsonl`` and each episode's ``tasks`` in ``meta/episodes.jsonl``; 3.0: ``meta/tasks.parquet``) and,
for ``video`` features, mp4 files (2.1: one per episode; 3.0: several episodes per file, each at its
``from_timestamp``).

Read: ``observation.*`` features become the observation (a Dict of them, keyed without the ``observation.``
prefix, where there are several), ``action`` the actions, ``next.reward`` the rewards (without it the
demonstrations have none), episodes come from ``episode_index``; ``timestamp``, ``frame_index``, ``index``,
``task_index`` and any other feature are kept as step extras, each episode's task(s) as the text extra
``task``; fps and the robot type go into ``metadata["user"]["lerobot"]``. Flags are unknown (``next.done``,
where present, is kept as an extra). Video frames are decoded with PyAV, lazily and in order (an episode's
frames are decoded once when read in order); an episode whose video holds another number of frames than its
rows is an error naming it. A video feature with files missing is not imported, said so (``W108``);
timestamps that stray from ``frame_index / fps`` are reported (``W110``). Needs the ``[robot]`` extra (pyarrow,
PyAV).
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ....core import guard, spaces
from ....core.errors import CountMismatchError, ExpertDataError, OutsideError, UnreadableError, UsageError
from ....core.rules import Finding
from ....core.schema import shown
from ..base import Raw
from ..peer import PEER_KEY, checked, chosen_episodes, episode_id_clash, space_of
from .video import VideoFrames

VERSIONS = ("v2.1", "v3.0")
#: A timestamp may stray from ``frame_index / fps`` by this many frame periods before it is reported.
TIMESTAMP_TOLERANCE = 0.5
#: The placeholders each version's path templates may hold, and what a placeholder's format may ask (``03d``).
PLACEHOLDERS = {"v2.1": ("episode_chunk", "episode_index", "video_key"),
                "v3.0": ("chunk_index", "file_index", "video_key")}
_SPEC = re.compile(r"0?[0-9]{0,2}d?")
#: A path made from a template may be at most this long.
MAX_PATH = 1024
#: A parquet file's rows may decompress to at most this many times its bytes (and a MiB).
MAX_PARQUET_RATIO = 1032
#: Where our metadata and the fields LeRobot has no name for are kept, beside its files.
SIDECAR = "meta/expertdata"


def sniff(path: Path) -> bool:
    scope = guard.Scope(path)
    if not (path.is_dir() and scope.is_file("meta/info.json")):
        return False
    try:
        info = scope.json("meta/info.json")
        return isinstance(info, dict) and info.get("codebase_version") in VERSIONS
    except OutsideError:
        return True  # a LeRobot folder by its layout, whose reader refuses the link (E015)
    except ExpertDataError:
        return False


def pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("LeRobot datasets need pyarrow: pip install \"expertdata[robot]\"") from None
    return pq


def _info(scope: guard.Scope) -> dict[str, Any]:
    """``meta/info.json``, checked against the shape LeRobot writes before anything else trusts it."""
    where = scope.root / "meta" / "info.json"
    info = checked(scope.json("meta/info.json"), dict, "meta/info.json", where)
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise UnreadableError(f"{scope.root}: a LeRobot dataset of version {shown(str(version))}; versions "
                              f"{', '.join(VERSIONS)} are read")
    info["fps"] = float(checked(info.get("fps"), (int, float), "fps", where, low=0, high=10**6))
    info["chunks_size"] = checked(info.get("chunks_size", 1000), int, "chunks_size", where, low=1, high=10**9)
    features = checked(info.get("features"), dict, "features", where)
    for name, spec in features.items():
        checked(spec, dict, f"features[{shown(name)}]", where)
        checked(spec.get("dtype"), str, f"features[{shown(name)}].dtype", where)
        shape = checked(spec.get("shape", [1]), list, f"features[{shown(name)}].shape", where)
        for d in shape:
            checked(d, int, f"features[{shown(name)}].shape", where, low=1, high=spaces.MAX_ROW_ENTRIES)
        if int(np.prod(shape, dtype=object)) > spaces.MAX_ROW_ENTRIES:
            raise UnreadableError(f"{where}: features[{shown(name)}] claims {shape} values a frame; at most "
                                  f"{spaces.MAX_ROW_ENTRIES:,} are read")
    for key in ("data_path",) + (("video_path",) if any(s["dtype"] == "video" for s in features.values()) else ()):
        template(checked(info.get(key), str, key, where), PLACEHOLDERS[version], f"{where}: {key}")
    return info


def template(text: str, allowed: Sequence[str], where: Any, **values: Any) -> str:
    """A path template of LeRobot's (``data/chunk-{episode_chunk:03d}/...``) checked, then filled with ``values``
    (checked only, when none are given): placeholders among ``allowed``, formats no wider than a few digits, the
    result a path of at most ``MAX_PATH`` characters, never more."""
    if len(text) > MAX_PATH:
        raise UnreadableError(f"{where}: a template of {len(text):,} characters")
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UnreadableError(f"{where}: {shown(text)} is not a path template ({exc})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed or conversion or not _SPEC.fullmatch(spec or ""):
            field = shown("{" + name + (":" + spec if spec else "") + "}")
            raise UnreadableError(f"{where}: {shown(text)} holds {field}; a template names {', '.join(allowed)}, "
                                  "formatted at most as {name:099d}")
    if not values:
        return text
    filled = text.format(**values)
    if len(filled) > MAX_PATH:
        raise UnreadableError(f"{where}: {shown(text)} makes a path of {len(filled):,} characters")
    return filled


def _episodes(scope: guard.Scope, info: dict, chosen: Sequence[int] | None) -> list[dict[str, Any]]:
    """Per episode: index, length, tasks, and (3.0) its rows and video segments, in episode order; only the
    ``chosen`` positions in that order, when given (a partial download's complete episodes, say)."""
    if info["codebase_version"] == "v2.1":
        episodes = scope.json_lines("meta/episodes.jsonl")
    else:
        episodes = [row for f in scope.files("meta/episodes", ".parquet")
                    for row in _parquet(scope, f, lambda name: not name.startswith("stats/")).to_pylist()]
        if not episodes:
            raise UnreadableError(f"{scope.root}: a LeRobot 3.0 dataset without meta/episodes/*.parquet")
    where = scope.root / "meta" / ("episodes.jsonl" if info["codebase_version"] == "v2.1" else "episodes")
    for e in episodes:
        checked(e, dict, "an episode", where)
        checked(e.get("episode_index"), int, "episode_index", where, low=0, high=10**12)
        checked(e.get("length"), int, f"episode {e['episode_index']}: length", where, low=1, high=10**12)
        checked(e.get("tasks") or [], list, f"episode {e['episode_index']}: tasks", where)
    episodes.sort(key=lambda e: e["episode_index"])
    episode_id_clash([(f"entry {n}", e["episode_index"]) for n, e in enumerate(episodes)], where)
    total = info.get("total_episodes")
    if isinstance(total, int) and not isinstance(total, bool) and total != len(episodes):
        raise CountMismatchError(f"{where}: E018 count-mismatch: info.json declares {total:,} episodes; "
                                 f"{len(episodes):,} are listed")
    frames = info.get("total_frames")
    listed = sum(e["length"] for e in episodes)
    if isinstance(frames, int) and not isinstance(frames, bool) and frames != listed:
        raise CountMismatchError(f"{where}: E018 count-mismatch: info.json declares {frames:,} frames; the episodes "
                                 f"listed hold {listed:,}")
    return chosen_episodes(episodes, chosen, scope.root)


def _parquet(scope: guard.Scope, file: Path, keep: Any = None, rows: int | None = None) -> Any:
    """A parquet file as a pyarrow table (only the columns ``keep`` accepts), once its footer is checked: its rows
    against ``rows`` where the caller knows them (E018), and what they decompress to against the file's bytes."""
    pq = pyarrow_parquet()
    with scope.open(file) as f, guard.reading(file):
        size = os.fstat(f.fileno()).st_size
        parquet = pq.ParquetFile(f)
        meta = parquet.metadata
        if rows is not None and meta.num_rows != rows:
            raise CountMismatchError(f"{file}: E018 count-mismatch: its footer claims {meta.num_rows:,} rows; the "
                                     f"episodes it holds have {rows:,}")
        unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if unpacked > MAX_PARQUET_RATIO * size + 2**20 or meta.num_rows > MAX_PARQUET_RATIO * size + 2**20:
            raise UnreadableError(f"{file}: its {meta.num_rows:,} rows would decompress to {unpacked:,} bytes from "
                                  f"{size:,}: out of proportion")
        columns = [c for c in parquet.schema_arrow.names if keep is None or keep(c)]
        return parquet.read(columns=columns)


def _frames(scope: guard.Scope, info: dict, episodes: list[dict]) -> Any:
    """The chosen episodes' frames, in episode order, as one pyarrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    where = scope.root / "meta" / "info.json"
    if info["codebase_version"] == "v2.1":
        chunk = info["chunks_size"]
        tables = [_parquet(scope, scope.root / template(info["data_path"], PLACEHOLDERS["v2.1"], where,
                                                         episode_chunk=e["episode_index"] // chunk,
                                                         episode_index=e["episode_index"]), rows=e["length"])
                  for e in episodes]
    else:
        files: dict[tuple[int, int], list[dict]] = {}
        for e in episodes:
            key = tuple(checked(e.get(k), int, f"episode {e['episode_index']}: {k}", where, low=0, high=10**9)
                        for k in ("data/chunk_index", "data/file_index"))
            files.setdefault(key, []).append(e)
        tables = []
        for (c, f), held in sorted(files.items()):
            table = _parquet(scope, scope.root / template(info["data_path"], PLACEHOLDERS["v3.0"], where,
                                                          chunk_index=c, file_index=f))
            if "episode_index" not in table.column_names:
                raise UnreadableError(f"{scope.root}: its frames hold no episode_index")
            tables.append(table.filter(pc.is_in(table.column("episode_index").cast(pa.int64()),
                                                pa.array([e["episode_index"] for e in held], pa.int64()))))
    with guard.reading(scope.root / "data"):
        return pa.concat_tables(tables, promote_options="default")


def _column(table: Any, name: str, shape: list[int]) -> np.ndarray:
    """A feature's column as numpy rows of ``shape`` (a feature of shape [1] as one value a row)."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    while pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        column = column.flatten()
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)):
        raise UnreadableError(f"feature {shown(name)} holds {column.type}, not numbers")
    values = column.to_numpy(zero_copy_only=False)
    rows, per_row = table.num_rows, int(np.prod(shape))
    if values.size != rows * per_row:
        raise CountMismatchError(f"feature {shown(name)} holds {values.size:,} values for {rows:,} frames of "
                                 f"{list(shape)}")
    return values.reshape((rows,) + tuple(int(d) for d in shape)) if per_row != 1 else values.reshape(rows)


def read(path: Path, trusted: bool = False, episodes: Sequence[int] | None = None) -> Raw:
    """Read a LeRobot folder; ``episodes``: only these (positions in episode order), whose files alone are opened
    and judged (a partial download's complete episodes read whole)."""
    scope = guard.Scope(path, trusted)
    info = _info(scope)
    version, features, fps = info["codebase_version"], info["features"], info["fps"]
    ours = _ours(scope)
    chosen = _episodes(scope, info, episodes)
    table = _frames(scope, info, chosen)
    raw = Raw({}, {}, path, "lerobot")
    plain = {name: spec for name, spec in features.items() if spec["dtype"] != "video"}
    missing = [name for name in plain if name not in table.column_names] + [
        name for name in ("episode_index", "action") if name not in plain]
    if missing:
        raise UnreadableError(f"{path}: features {', '.join(map(shown, missing))} are not in the data (LeRobot "
                              "datasets hold episode_index and action)")
    with guard.reading(path / "data"):
        columns = {name: _column(table, name, spec.get("shape") or [1]) for name, spec in plain.items()}
    index = columns["episode_index"]
    starts = np.r_[True, index[1:] != index[:-1]] if len(index) else np.zeros(0, bool)
    lengths = np.diff(np.r_[np.flatnonzero(starts), len(index)])
    order = [e["episode_index"] for e in chosen]
    if index[starts].tolist() != order or lengths.tolist() != [e["length"] for e in chosen]:
        raise CountMismatchError(f"{path}: E018 count-mismatch: the frames' episode_index does not follow meta's "
                                 f"episodes ({len(order)} episodes of {sum(e['length'] for e in chosen):,} frames "
                                 f"listed, {int(starts.sum())} of {len(index):,} found)")
    observed = {}
    for name, spec in features.items():
        if not name.startswith("observation."):
            continue
        if spec["dtype"] == "video":
            frames = _video(scope, info, name, spec, chosen, raw)
            if frames is not None:
                observed[name] = frames
        else:
            observed[name] = columns.pop(name)
    _recorded_stats(raw, scope, version)
    composite = ours is not None and spaces.is_composite(ours[0].get("observation_space"))
    _fields(raw, observed, columns, starts, chosen, features, composite)
    videos = [a for a in observed.values() if isinstance(a, VideoFrames)]
    raw.closer = lambda: [v.close() for v in videos] and None
    raw.metadata["user"] = {"lerobot": {"codebase_version": version, "fps": fps, "robot_type": info.get("robot_type")}}
    if fps > 0 and "timestamp" in columns and "frame_index" in columns:
        _timestamps(raw, columns["timestamp"], columns["frame_index"], starts, fps)
    if ours is not None and episodes is None:  # our own export: our metadata and fields back, what we made up dropped
        metadata, note, rest = ours
        raw.metadata = metadata
        for name in note.get("synthesized", []):
            raw.fields.pop(name, None)
        for name, shape in (note.get("row_shapes") or {}).items():
            array = raw.fields.get(name)
            if isinstance(array, np.ndarray) and int(np.prod(shape)) == int(np.prod(array.shape[1:])):
                raw.fields[name] = array.reshape((len(array),) + tuple(int(d) for d in shape))
        raw.fields.update(rest)
    return raw


def _per_episode_stats(scope: guard.Scope, version: str) -> list[tuple[Any, dict[str, dict[str, Any]]]]:
    """Each episode's recorded statistics by feature (2.1: ``episodes_stats.jsonl``; 3.0: the ``stats/*`` columns
    of ``meta/episodes``)."""
    if version == "v2.1":
        if not scope.exists("meta/episodes_stats.jsonl"):
            return []
        rows = [r for r in scope.json_lines("meta/episodes_stats.jsonl") if isinstance(r, dict)]
        return [(r.get("episode_index"), r.get("stats") if isinstance(r.get("stats"), dict) else {}) for r in rows]
    found = []
    for f in scope.files("meta/episodes", ".parquet"):
        keep = lambda c: c == "episode_index" or c.startswith("stats/") and c.rsplit("/", 1)[-1] in (  # noqa: E731
            "min", "max", "std")
        for row in _parquet(scope, f, keep).to_pylist():
            stats: dict[str, dict[str, Any]] = {}
            for name in (n for n in row if n != "episode_index"):
                feature, kind = name[len("stats/"):].rsplit("/", 1)
                stats.setdefault(feature, {})[kind] = row[name]
            found.append((row.get("episode_index"), stats))
    return found


def _recorded_stats(raw: Raw, scope: guard.Scope, version: str) -> None:
    """W111 where an episode's recorded statistics contradict themselves: a standard deviation of 0 for values
    that range from a minimum to a larger maximum (LeRobot's image statistics have it)."""
    bad: list[tuple[Any, str]] = []
    for episode, stats in _per_episode_stats(scope, version):
        for feature, values in stats.items():
            try:
                low, high, std = (np.asarray(values[k], np.float64) for k in ("min", "max", "std"))
                if np.any((std == 0) & (high > low)):
                    bad.append((episode, feature))
            except (KeyError, TypeError, ValueError):
                continue
    if bad:
        features = sorted({f for _, f in bad})
        raw.findings.append(Finding("stats-inconsistent", f"{len(bad):,} recorded episode statistics give a standard "
                                    f"deviation of 0 to values that vary ({', '.join(map(shown, features))}; the "
                                    f"first: episode {bad[0][0]}, {shown(bad[0][1])}); normalising by them would "
                                    "divide by 0"))


def _ours(scope: guard.Scope) -> tuple[dict, dict, dict[str, np.ndarray]] | None:
    """What an export of ours left beside LeRobot's files: our metadata, its note, and our other fields."""
    if not scope.exists(f"{SIDECAR}/metadata.json"):
        return None
    metadata = scope.json(f"{SIDECAR}/metadata.json")
    note = metadata.pop(PEER_KEY, None) if isinstance(metadata, dict) else None
    if not isinstance(note, dict) or note.get("format") != "lerobot":
        return None
    from .. import npz

    # The npz backend's reader checks each member's claimed size against the bytes the archive holds.
    stored = npz.read(scope.file(f"{SIDECAR}/fields.npz"))
    try:
        rest = {key.replace("|", "/"): array if isinstance(array, np.ndarray) else array[:]
                for key, array in stored.fields.items()}
    finally:
        stored.close()
    return metadata, note, rest


def _video(scope: guard.Scope, info: dict, name: str, spec: dict, episodes: list[dict], raw: Raw) -> VideoFrames | None:
    """A video feature's frames, or ``None`` (said so, with the episodes whose files are there) where any of its
    files is missing; a file that is a link or not a plain file is refused (E015)."""
    version, where = info["codebase_version"], scope.root / "meta" / "info.json"
    if len(spec["shape"]) != 3 or spec["shape"][2] != 3:
        raise UnreadableError(f"{where}: video feature {shown(name)} has shape {spec['shape']}; LeRobot's videos are "
                              "[height, width, 3]")
    segments = []
    for e in episodes:
        if version == "v2.1":
            relative = template(info["video_path"], PLACEHOLDERS[version], where, video_key=name,
                                episode_chunk=e["episode_index"] // info["chunks_size"],
                                episode_index=e["episode_index"])
            start = 0.0
        else:
            label = f"episode {e['episode_index']}: videos/{name}"
            relative = template(info["video_path"], PLACEHOLDERS[version], where, video_key=name,
                                chunk_index=checked(e.get(f"videos/{name}/chunk_index"), int, label, where, low=0),
                                file_index=checked(e.get(f"videos/{name}/file_index"), int, label, where, low=0))
            start = float(checked(e.get(f"videos/{name}/from_timestamp"), (int, float), label, where, low=0))
        segments.append((relative, start, int(e["length"])))
    files = sorted({r for r, *_ in segments})
    present = {r for r in files if scope.is_file(r)}
    for r in present:
        scope.file(r)  # a link, a FIFO: refused in one line
    if len(present) < len(files):
        absent = [r for r in files if r not in present]
        complete = [e["episode_index"] for e, (r, *_) in zip(episodes, segments) if r in present]
        shown_complete = (", ".join(map(str, complete[:20])) + (", ..." if len(complete) > 20 else "")) or "none"
        raw.findings.append(Finding("not-imported", f"video feature {shown(name)} is skipped: {len(absent)} of its "
                                    f"{len(files)} files are missing (first: {absent[0]}); episodes whose videos are "
                                    f"all there: {shown_complete} (select them: --episodes)"))
        return None
    return VideoFrames([(scope.root / r, start, n) for r, start, n in segments], tuple(spec["shape"]), info["fps"],
                       whole_files=version == "v2.1")


def _fields(raw: Raw, observed: dict[str, Any], columns: dict[str, np.ndarray], starts: np.ndarray,
            episodes: list[dict], features: dict, composite: bool = False) -> None:
    if not observed:
        raise UnreadableError(f"{raw.root}: no observation.* feature to read")
    observed = dict(sorted(observed.items()))  # a Dict space's keys sorted, as gymnasium orders them
    keys = {name: name[len("observation."):] for name in observed}
    if len(observed) == 1 and not composite:
        (array,) = observed.values()
        raw.fields["obs"] = array
        obs_space = space_of(array)
    else:
        raw.fields.update({f"obs/{keys[n]}": a for n, a in observed.items()})
        obs_space = {"type": "Dict", "spaces": {keys[n]: space_of(a) for n, a in observed.items()}}
    raw.fields["actions"] = columns.pop("action")
    raw.fields["episode_starts"] = starts
    if "next.reward" in columns:
        rewards = columns.pop("next.reward")
        raw.fields["rewards"] = rewards
        raw.fields["episode_returns"] = (np.add.reduceat(rewards.astype(np.float64), np.flatnonzero(starts))
                                         if len(rewards) else rewards.astype(np.float64))
    else:
        raw.metadata["rewards"] = "absent"
    raw.fields.update(columns)
    raw.fields["task"] = np.asarray([" | ".join(e.get("tasks") or []) for e in episodes], dtype=str)
    raw.metadata.update({"observation_space": obs_space, "action_space": space_of(raw.fields["actions"]),
                         "flags": "unknown", "extras": {**{n: "step" for n in columns}, "task": "episode"}})


def _timestamps(raw: Raw, timestamps: np.ndarray, frames: np.ndarray, starts: np.ndarray, fps: float) -> None:
    """W110 where a frame's timestamp strays from ``frame_index / fps`` by more than half a frame."""
    off = np.abs(timestamps.astype(np.float64) - frames.astype(np.float64) / fps) > TIMESTAMP_TOLERANCE / fps
    if off.any():
        row = int(np.argmax(off))
        episode = int(np.searchsorted(np.flatnonzero(starts), row, side="right")) - 1
        raw.findings.append(Finding("timestamps-off-fps", f"{int(off.sum()):,} frames' timestamps stray from "
                                    f"frame_index / fps ({fps:g}); the first in episode {episode}: frame "
                                    f"{int(frames[row])} at {float(timestamps[row]):.4g} s, not "
                                    f"{float(frames[row]) / fps:.4g} s", "timestamp", row))
