"""The data side on a Dask cluster: one process, one worker, two workers, on work that keeps a core busy.

    python benchmarks/scale.py [--runs 3] [--episodes 100] [--frames 240] [--recordings 1000] [--rlds-copies 32]
                               [--more-workers 4,8] [--bridge FOLDER] [--workloads lerobot,recording,rlds]

- a LeRobot-style import: ``--episodes`` episodes of ``--frames`` frames with a 96x96 video each (H.264, written here
  with PyAV as LeRobot writes its 2.1 layout), converted to Zarr: decoding the videos is the work;
- the RLDS fixture's train split ``--rlds-copies`` times over (its JPEG images decoded), converted to Zarr;
- a recording of ``--recordings`` CartPole episodes with the reference expert.

Each is timed as the plain command does it (no cluster), then with a local cluster of 1 and of 2 worker processes
(one thread each), the cluster started before the clock starts and a first run untimed (imports and caches warmed
in the workers, as the plain command's are in this process; start-up and first runs are reported apart), medians
of ``--runs``, with the cores each kept busy (CPU seconds of every process over wall seconds: the plain command and
one worker overlap reading with hashing and writing, so 2 workers on 2 cores can gain at most 2 / that); every
output's content digest is checked equal to the plain command's. Goals (issue 30): 2 workers at least 1.7x 1 worker
on these 2 cores; 1 worker at most 1.1x the plain command. ``--more-workers`` times larger local clusters too (on a
machine with the cores for them).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT.parent / "shared" / "fixtures" / "rlds" / "bridge_dataset" / "1.0.0"


def lerobot_videos(folder: Path, episodes: int, frames: int = 60, size: int = 96) -> Path:
    """A LeRobot 2.1 folder of ``episodes`` episodes, each with a state, an action and an H.264 video."""
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    (folder / "meta").mkdir(parents=True)
    features = {"observation.state": {"dtype": "float32", "shape": [4], "names": None},
                "action": {"dtype": "float32", "shape": [2], "names": None},
                "observation.images.cam": {"dtype": "video", "shape": [size, size, 3], "names": None},
                **{k: {"dtype": "int64", "shape": [1], "names": None} for k in ("frame_index", "episode_index")}}
    info = {"codebase_version": "v2.1", "total_episodes": episodes, "total_frames": episodes * frames,
            "chunks_size": 1000, "fps": 30, "features": features,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}
    (folder / "meta" / "info.json").write_text(json.dumps(info))
    lines = []
    for e in range(episodes):
        table = pa.table({"observation.state": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(frames * 4).astype(np.float32)), 4),
            "action": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(frames * 2).astype(np.float32)), 2),
            "frame_index": pa.array(np.arange(frames)), "episode_index": pa.array(np.full(frames, e))})
        (folder / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        lines.append(json.dumps({"episode_index": e, "tasks": ["move"], "length": frames}))
        video = folder / "videos" / "chunk-000" / "observation.images.cam" / f"episode_{e:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for t in range(frames):
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
    (folder / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def rlds_copies(source: Path, folder: Path, copies: int) -> Path:
    """The Bridge fixture's train split (in ``source``) ``copies`` times over, as that many shards of one split."""
    folder.mkdir(parents=True)
    for name in ("features.json", "dataset_info.json"):
        shutil.copyfile(source / name, folder / name)
    train = source / "bridge_dataset-train.tfrecord-00000-of-00001"
    for k in range(copies):
        shutil.copyfile(train, folder / f"bridge_dataset-train.tfrecord-{k:05d}-of-{copies:05d}")
    return folder


def timed(work: Callable[[Any], str], workers: int | None, runs: int) -> tuple[float, float, float, float, str]:
    """Median seconds of ``work(client)`` over ``runs`` after a first, untimed one (imports and caches warmed, in
    the workers as in this process), that first run's seconds, the cluster's start-up, the median number of cores
    kept busy (CPU seconds of this process and every worker over the wall seconds), and the output's digest."""
    from expertdata.io.cluster import cluster

    begin = time.perf_counter()
    with cluster(workers=workers) as client:
        if client is not None:
            client.run(lambda: None)  # every worker up
        started = time.perf_counter() - begin

        def cpu() -> float:  # every thread's (ffmpeg's decoders, the prefetch and digest threads), every process's
            return time.process_time() + (sum(client.run(time.process_time).values()) if client is not None else 0.0)

        ready = time.perf_counter()
        digest = work(client)
        first = time.perf_counter() - ready
        seconds, cores = [], []
        for _ in range(runs):
            used, ready = cpu(), time.perf_counter()
            digest = work(client)
            seconds.append(time.perf_counter() - ready)
            cores.append((cpu() - used) / seconds[-1])
    return statistics.median(seconds), first, started, statistics.median(cores), digest


def main() -> None:
    import expertdata
    from expertdata.recording.experts import cartpole

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--frames", type=int, default=240, help="frames per LeRobot episode")
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--rlds-copies", type=int, default=32)
    parser.add_argument("--more-workers", default="", help="more local cluster sizes to time, comma-separated")
    parser.add_argument("--bridge", type=Path, default=BRIDGE, help="the RLDS Bridge fixture's version folder")
    parser.add_argument("--workloads", default="lerobot,recording,rlds", help="which to time, comma-separated")
    args = parser.parse_args()
    chosen = set(args.workloads.split(","))
    more = [int(n) for n in args.more_workers.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs: dict[str, Callable[[Any, Path], str]] = {}
        if "lerobot" in chosen:
            robot = lerobot_videos(folder / "robot", args.episodes, args.frames)
            jobs[f"LeRobot import, {args.episodes} episodes with video"] = lambda client, out: expertdata.convert(
                robot, out / "robot.zarr", client=client, overwrite=True).digest
        if "recording" in chosen:
            jobs[f"a recording of {args.recordings} CartPole episodes"] = \
                lambda client, out: expertdata.generate_expert_traj(
                    cartpole, out / "cartpole.zarr", "CartPole-v1", n_episodes=args.recordings, overwrite=True,
                    client=client).metadata.get("digest") or expertdata.digest(expertdata.load(out / "cartpole.zarr"))
        if "rlds" in chosen and args.bridge.is_dir():
            bridge = rlds_copies(args.bridge, folder / "bridge", args.rlds_copies)
            jobs[f"RLDS import, the Bridge fixture {args.rlds_copies} times over"] = \
                lambda client, out: expertdata.convert(bridge, out / "bridge.zarr", client=client,
                                                       overwrite=True).digest
        for name, job in jobs.items():
            out = folder / "out"
            out.mkdir(exist_ok=True)
            found = {w: timed(lambda client: job(client, out), w, args.runs) for w in (None, 1, 2, *more)}
            digests = {d for *_, d in found.values()}
            plain, one, two = (found[w][0] for w in (None, 1, 2))
            written = next(out.iterdir())
            size = sum(p.stat().st_size for p in written.rglob("*") if p.is_file())
            with expertdata.load(written) as data:
                raw = sum(a.nbytes for a in (data[n] for n in data))
                begin = time.perf_counter()
                expertdata.digest(data)
                serial = time.perf_counter() - begin
            print(f"{name}: one process {plain:.1f} s, 1 worker {one:.1f} s ({one / plain:.2f}x the plain command), "
                  f"2 workers {two:.1f} s ({one / two:.2f}x 1 worker); cores busy {found[None][3]:.2f}, "
                  f"{found[1][3]:.2f} and {found[2][3]:.2f}; first runs {found[None][1]:.1f}, "
                  f"{found[1][1]:.1f} and {found[2][1]:.1f} s; cluster start-up {found[1][2]:.1f} s and "
                  f"{found[2][2]:.1f} s; same digest: {len(digests) == 1}; {raw / 1e6:.0f} MB of rows "
                  f"({size / 1e6:.0f} MB stored): {raw / one / 1e6:.1f} MB/s per worker; the client's digest pass "
                  f"alone {raw / serial / 1e6:.0f} MB/s" + "".join(
                      f"; {w} workers {found[w][0]:.1f} s ({one / found[w][0]:.2f}x 1 worker, {found[w][3]:.2f} cores "
                      "busy)" for w in more), flush=True)
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
