"""Builders of damaged, hostile and odd peer-format inputs for ``test_hostile_peers``: each writes a small valid
dataset the way its project lays one out (or copies a real one from ../shared/fixtures), then breaks one thing."""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np

import expertdata

from .conftest import BRIDGE, SHARED_FIXTURES, make_arrays

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "fixtures" / "cartpole.npz"
LEROBOT21 = SHARED_FIXTURES / "lerobot" / "v2.1_G1-policy-train"
SECRET = "outside-the-dataset-secret"


def outside(tmp: Path) -> Path:
    """A folder beside the dataset, holding a file no reader may reach."""
    folder = tmp / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "secret.txt").write_text(SECRET)
    return folder


def link_out(path: Path, tmp: Path) -> None:
    """Move ``path`` out of its dataset and leave a symbolic link to it in its place."""
    moved = outside(tmp) / path.name
    os.rename(path, moved)
    os.symlink(moved, path)


def fifo_at(path: Path) -> None:
    """A FIFO in the place of ``path``: opening it for reading would wait for a writer for ever."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.mkfifo(path)


# -- LeRobot ----------------------------------------------------------------------------------------------------

def _video(file: Path, frames: int, size: int = 16) -> None:
    import av

    file.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(file), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": "0"}
        for i in range(frames):
            frame = np.full((size, size, 3), (i * 7) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def lerobot21(folder: Path, episodes: int = 3, frames: int = 6, videos: tuple[int, ...] | None = None,
              video_frames: dict[int, int] | None = None) -> Path:
    """A LeRobot 2.1 dataset laid out as LeRobot writes one: a parquet file per episode, ``meta/info.json``,
    ``episodes.jsonl``, ``tasks.jsonl``, ``episodes_stats.jsonl``, and a 16x16 video per episode (only those in
    ``videos``: a partial download)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    videos = tuple(range(episodes)) if videos is None else videos
    rng = np.random.default_rng(0)
    (folder / "meta").mkdir(parents=True)
    features = {"observation.state": {"dtype": "float32", "shape": [3], "names": None},
                "action": {"dtype": "float32", "shape": [2], "names": None},
                "observation.images.cam": {"dtype": "video", "shape": [16, 16, 3],
                                           "names": ["height", "width", "channels"]},
                **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (
                    ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                    ("index", "int64"), ("task_index", "int64"))}}
    info = {"codebase_version": "v2.1", "robot_type": "test", "total_episodes": episodes,
            "total_frames": episodes * frames, "total_tasks": 1, "chunks_size": 1000, "fps": 10,
            "splits": {"train": f"0:{episodes}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features}
    (folder / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    lines, stats = [], []
    for e in range(episodes):
        state = rng.standard_normal((frames, 3)).astype(np.float32)
        table = pa.table({
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 3),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(frames * 2).astype(np.float32)),
                                                        2),
            "timestamp": pa.array(np.arange(frames, dtype=np.float32) / 10),
            "frame_index": pa.array(np.arange(frames, dtype=np.int64)),
            "episode_index": pa.array(np.full(frames, e, np.int64)),
            "index": pa.array(np.arange(e * frames, (e + 1) * frames, dtype=np.int64)),
            "task_index": pa.array(np.zeros(frames, np.int64))})
        (folder / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        lines.append(json.dumps({"episode_index": e, "tasks": ["reach"], "length": frames}))
        stats.append(json.dumps({"episode_index": e, "stats": {"observation.state": {
            "min": state.min(0).tolist(), "max": state.max(0).tolist(), "std": state.std(0).tolist()}}}))
        if e in videos:
            _video(folder / "videos" / "chunk-000" / "observation.images.cam" / f"episode_{e:06d}.mp4",
                   (video_frames or {}).get(e, frames))
    (folder / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "meta" / "episodes_stats.jsonl").write_text("\n".join(stats) + "\n")
    (folder / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "reach"}) + "\n")
    return folder


def edit_json(file: Path, change) -> None:
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def parquet_claiming(file: Path, rows: int) -> None:
    """Rewrite a parquet file's footer so that it (and its row group) claim ``rows`` rows: the thrift compact
    encoding of ``num_rows`` (field 3 of FileMetaData and of RowGroup, a zigzag varint after the header 0x16)."""
    def varint(n: int) -> bytes:
        n, out = n << 1, bytearray()  # zigzag of a non-negative number
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    import pyarrow.parquet as pq

    actual = pq.ParquetFile(file).metadata.num_rows
    data = file.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - length:-8].replace(b"\x16" + varint(actual), b"\x16" + varint(rows))
    file.write_bytes(data[:-8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1")


# -- the other peers ------------------------------------------------------------------------------------------

def copy_of(source: Path, tmp: Path, name: str | None = None) -> Path:
    target = tmp / (name or source.name)
    (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    return target


def robomimic(path: Path, names: tuple[str, ...] = ("demo_0", "demo_1"), steps: int = 5,
              num_samples: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name in names:
            demo = data.create_group(name)
            demo.create_dataset("obs/pos", data=rng.normal(size=(steps, 3)))
            demo.create_dataset("next_obs/pos", data=rng.normal(size=(steps, 3)))
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 2)))
            demo.create_dataset("rewards", data=np.zeros(steps))
            demo.attrs["num_samples"] = steps if num_samples is None else num_samples
        data.attrs["total"] = steps * len(names) if num_samples is None else num_samples * len(names)
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "env_type": 1, "env_kwargs": {}})
        f.create_dataset("mask/train", data=np.array([n.encode() for n in names]))
    return path


def d4rl(path: Path) -> Path:
    arrays = make_arrays((6, 6))
    ends = np.zeros(12, bool)
    ends[[5, 11]] = True
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = arrays["obs"], arrays["actions"], arrays["rewards"]
        f["terminals"], f["timeouts"] = ends, np.zeros(12, bool)
    return path


def diffusion_policy(folder: Path) -> Path:
    return expertdata.convert(CARTPOLE, folder, format="diffusion_policy").path


def with_h5_external_link(path: Path, name: str, tmp: Path) -> None:
    """Replace dataset ``name`` of an HDF5 file by an external link to a copy outside it."""
    other = outside(tmp) / "other.h5"
    with h5py.File(path, "a") as f:
        values = f[name][()]
        with h5py.File(other, "a") as g:
            g[name.replace("/", "_")] = values
        del f[name]
        f[name] = h5py.ExternalLink(str(other), "/" + name.replace("/", "_"))


def rlds_small(folder: Path) -> Path:
    """Three episodes of the Bridge fixture (two in train, one in val), re-framed into shards of their own."""
    from expertdata.core import guard
    from expertdata.io.formats import rlds

    folder.mkdir(parents=True)
    for name in ("features.json", "dataset_info.json"):
        shutil.copyfile(BRIDGE / name, folder / name)
    scope = guard.Scope(BRIDGE)
    train = BRIDGE / "bridge_dataset-train.tfrecord-00000-of-00001"
    with open(train, "rb") as f:
        data = f.read()
    records = [data[offset:offset + length] for offset, length in rlds.records(scope, train)[:3]]
    for split, chosen in (("train", records[:2]), ("val", records[2:])):
        with open(folder / f"bridge_dataset-{split}.tfrecord-00000-of-00001", "wb") as out:
            for record in chosen:
                head = struct.pack("<Q", len(record))
                out.write(head + struct.pack("<I", rlds._masked_crc(head)) + record +
                          struct.pack("<I", rlds._masked_crc(record)))
    return folder
