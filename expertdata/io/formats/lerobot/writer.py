"""LeRobot 3.0 dataset folders, written: one data file, one video file per image feature, the episodes, tasks and
statistics LeRobot keeps, and a sidecar (``reader.SIDECAR``) with what LeRobot has no name for."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ....core.arrays import iter_blocks
from ....core.errors import UsageError
from ....core.schema import shown
from ..base import metadata_to_json
from ..peer import PEER_KEY
from .reader import SIDECAR, pyarrow_parquet
from .video import VIDEO_CODECS, encode


def _feature(name: str, array: Any, video: bool, fps: float, codec: str) -> dict:
    shape = [int(d) for d in array.shape[1:]] or [1]
    if not video:
        return {"dtype": np.dtype(array.dtype).name, "shape": shape, "names": None}
    return {"dtype": "video", "shape": shape, "names": ["height", "width", "channels"],
            "info": {"video.height": shape[0], "video.width": shape[1], "video.codec": codec,
                     "video.pix_fmt": VIDEO_CODECS[codec][1], "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": shape[2], "has_audio": False}}


def _stats(array: Any, video: bool, label: str) -> dict[str, list]:
    """min, max, mean, std and count of a feature in one pass, per dimension (per channel, scaled to [0, 1],
    shaped (C, 1, 1) for videos, as LeRobot keeps them)."""
    low = high = None
    total = squares = 0.0
    count = 0
    for block in iter_blocks(array, label=label):
        rows = (block.reshape(-1, block.shape[-1]) / 255.0 if video else
                block.reshape(len(block), -1)).astype(np.float64)
        low = rows.min(0) if low is None else np.minimum(low, rows.min(0))
        high = rows.max(0) if high is None else np.maximum(high, rows.max(0))
        total, squares, count = total + rows.sum(0), squares + (rows * rows).sum(0), count + len(rows)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean * mean, 0.0))
    shape = (-1, 1, 1) if video else np.shape(mean)
    return {"min": np.reshape(low, shape).tolist(), "max": np.reshape(high, shape).tolist(),
            "mean": np.reshape(mean, shape).tolist(), "std": np.reshape(std, shape).tolist(),
            "count": [int(count // (array.shape[1] * array.shape[2]) if video else count)]}


def export(dataset: Any, metadata: dict, path: Path, codec: str, level: int | None) -> list[str]:
    """Write ``dataset`` as a LeRobot 3.0 dataset folder (one data file, one video file per image feature);
    returns notes on what was made up and, for a lossy codec, the error measured."""
    import pyarrow as pa

    pq = pyarrow_parquet()
    leaves = dataset.leaf_fields()
    nested = [p for p in leaves if "/" in p]
    if nested:
        raise UsageError(f"{dataset.source}: LeRobot names features flatly; the leaves {', '.join(map(shown, nested))} "
                         "are nested")
    lerobot = (metadata.get("user") or {}).get("lerobot") or {}
    fps = float(lerobot.get("fps") or 0)
    notes, synthesized = [], []
    if fps <= 0:
        fps = 30.0
        notes.append("the dataset records no frame rate: fps 30 is written")
    n, starts = dataset.n_transitions, np.asarray(dataset["episode_starts"][:])
    first = np.flatnonzero(starts)
    lengths = np.diff(np.r_[first, n])
    episode_of = np.repeat(np.arange(len(first)), lengths)
    frame_of = np.arange(n) - np.repeat(first, lengths)
    made = {"timestamp": (frame_of / fps).astype(np.float32), "frame_index": frame_of.astype(np.int64),
            "episode_index": episode_of.astype(np.int64), "index": np.arange(n, dtype=np.int64)}
    tasks_text = np.asarray(dataset["task"][:]) if "task" in dataset else np.full(len(first), "")
    tasks = sorted(set(tasks_text.tolist()))
    made["task_index"] = np.asarray([tasks.index(t) for t in tasks_text], np.int64)[episode_of]
    synthesized += [k for k in made if k not in dataset] + ([] if "task" in dataset else ["task"])
    columns, features, videos = {}, {}, {}
    for leaf, name in leaves.items():
        key = "observation." + (leaf or ("image" if is_video(dataset[name]) else "state"))
        if is_video(dataset[name]):
            videos[key] = dataset[name]
        else:
            columns[key] = np.asarray(dataset[name][:])
    columns["action"] = np.asarray(dataset["actions"][:])
    if "rewards" in dataset:
        columns["next.reward"] = np.asarray(dataset["rewards"][:])
    for key in made:
        columns[key] = np.asarray(dataset[key][:]) if key in dataset else made[key]
    for key, array in columns.items():
        features[key] = _feature(key, array, False, fps, codec)
    for key, array in videos.items():
        features[key] = _feature(key, array, True, fps, codec)
    table = pa.table({key: _arrow(a) for key, a in columns.items()})
    (path / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(table, path / "data" / "chunk-000" / "file-000.parquet")
    episodes: dict[str, list] = {"episode_index": columns["episode_index"][first].tolist(),
                                 "tasks": [[t] for t in tasks_text.tolist()],
                                 "length": lengths.tolist(), "data/chunk_index": [0] * len(first),
                                 "data/file_index": [0] * len(first), "dataset_from_index": first.tolist(),
                                 "dataset_to_index": (first + lengths).tolist()}
    for key, array in videos.items():
        error, largest = encode(array, path / "videos" / key / "chunk-000" / "file-000.mp4", fps, codec, level,
                                 f"{dataset.source}: {key}")
        if codec != "lossless":
            notes.append(f"{key}: {codec} at quality {level if level is not None else 23}: mean absolute error "
                         f"{error:.3g}, largest {largest} (of 255)")
        episodes.update({f"videos/{key}/chunk_index": [0] * len(first), f"videos/{key}/file_index": [0] * len(first),
                         f"videos/{key}/from_timestamp": (first / fps).tolist(),
                         f"videos/{key}/to_timestamp": ((first + lengths) / fps).tolist()})
    episodes.update({"meta/episodes/chunk_index": [0] * len(first), "meta/episodes/file_index": [0] * len(first)})
    (path / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(episodes), path / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": list(range(len(tasks))), "task": tasks}), path / "meta" / "tasks.parquet")
    stats = {key: _stats(array, False, key) for key, array in columns.items()}
    stats.update({key: _stats(array, True, key) for key, array in videos.items()})
    (path / "meta" / "stats.json").write_text(json.dumps(stats))
    info = {"codebase_version": "v3.0", "robot_type": lerobot.get("robot_type"), "total_episodes": len(first),
            "total_frames": n, "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 500, "fps": fps, "splits": {"train": f"0:{len(first)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": features}
    (path / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    _sidecar(dataset, metadata, path, set(leaves.values()) | {"actions", "rewards", "episode_starts", *made},
             synthesized, codec)
    return notes


def is_video(array: Any) -> bool:
    return np.dtype(array.dtype) == np.uint8 and len(array.shape) == 4 and array.shape[-1] == 3


def _arrow(array: np.ndarray) -> Any:
    import pyarrow as pa

    if array.ndim == 1:
        return pa.array(array)
    flat = pa.array(array.reshape(len(array), -1).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(array.shape[1:])))


def _sidecar(dataset: Any, metadata: dict, path: Path, written: set[str], synthesized: list[str], codec: str) -> None:
    """Our metadata and the fields LeRobot has no name for, beside its files (LeRobot reads neither), so reading
    the folder back gives the very dataset written."""
    folder = path / SIDECAR
    folder.mkdir(parents=True)
    rest = {name: np.asarray(dataset[name][:]) for name in dataset.fields if name not in written}
    np.savez(folder / "fields.npz", **{name.replace("/", "|"): array for name, array in rest.items()})
    shapes = {name: list(dataset[name].shape[1:]) for name in written if name in dataset}  # (N, 1) reads as (N,)
    note = {"format": "lerobot", "synthesized": synthesized, "codec": codec, "row_shapes": shapes}
    (folder / "metadata.json").write_text(metadata_to_json({**metadata, PEER_KEY: note}))
