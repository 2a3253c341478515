"""Peer formats: reading them through expertdata against reading their arrays directly, and batches from an
imported Minari dataset against Minari's own route.

    python benchmarks/interop.py [--gigabytes 1.0] [--runs 3] [--batches 1000] [--workdir DIR]

1. Each real fixture in ../shared/fixtures (D4RL, imitation, Minari HDF5 and Arrow): MB/s reading every
   field through ``expertdata.load`` (lazy arrays, block by block) beside a plain read of the same arrays
   with h5py, numpy or pyarrow, and the import into Zarr (``convert``: read, write, read back, digests).
2. A generated Minari HDF5 dataset of about ``--gigabytes`` (1,000-step episodes, Minari's own layout):
   the same, each step in a fresh process, with its peak memory above an idle process's (goal: bounded by
   a block, not the file) and the read's ratio to the plain h5py read (goal: at least 0.5x).
3. Batches of 256 transitions from the real Minari CartPole dataset: ``ExpertDataset`` on the Minari
   folder as it is, against Minari's route (``sample_episodes`` of up to 256 episodes, then 256 random steps
   of them),
   per 1,000 batches (goal: at least 100x faster).
4. LeRobot: decoding the v2.1 fixture's AV1 video through expertdata's lazy frames (``VideoFrames``, as an
   imported dataset reads them) against PyAV decoding the same file alone, in frames/s (goal: at least 0.8x);
   and BC on the imported v2.1 dataset (35,965 transitions) against the same data converted to Zarr, in
   transitions/s of training.

Medians over ``--runs``; ratios are medians of per-run ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from convert import measure, timed, warm

import expertdata

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
REAL = {"d4rl door": FIXTURES / "d4rl/door-v0_demos_clipped.hdf5",
        "imitation cartpole": FIXTURES / "imitation/cartpole_0_final.npz",
        "minari cartpole (hdf5)": FIXTURES / "minari/cartpole/expert-v0",
        "minari pendulum (arrow)": FIXTURES / "minari/pendulum/expert-arrow-v0"}
OBS_DIM, ACT_DIM, EPISODE = 240, 6, 1000


def plain_read(path: Path) -> str:
    """Code reading every array of a peer file with its own library, nothing else."""
    if path.suffix == ".npz":
        return f"import numpy as np\nz = np.load({str(path)!r})\n[z[k] for k in z.files if k != 'infos']"
    if path.is_dir() and (path / "data" / "main_data.hdf5").exists():
        path = path / "data" / "main_data.hdf5"
    if path.is_dir():
        return ("import pyarrow as pa, pyarrow.ipc\n"
                f"[pa.ipc.open_file(pa.memory_map(str(p))).read_all().to_pandas() "
                f"for p in __import__('pathlib').Path({str(path)!r}).rglob('*.arrow')]")
    return ("import h5py\nf = h5py.File(" + repr(str(path)) + ")\n"
            "def read(n, o):\n    if isinstance(o, h5py.Dataset):\n        o[()]\n"
            "f.visititems(read)")


def our_read(path: Path) -> str:
    return (f"from expertdata.core.arrays import iter_blocks\nd = expertdata.load({str(path)!r})\n"
            "for a in d.fields.values():\n    for b in iter_blocks(a):\n        pass")


def array_bytes(path: Path) -> int:
    import expertdata

    with expertdata.load(path) as data:
        return sum(np.dtype(a.dtype).itemsize * int(np.prod(a.shape)) for a in data.fields.values())


def generate_minari(folder: Path, gigabytes: float) -> None:
    """A Minari HDF5 dataset in Minari's own layout, written with h5py as Minari writes it."""
    import json

    import h5py

    per_step = 4 * OBS_DIM + 4 * ACT_DIM + 8 + 2
    episodes = max(1, int(gigabytes * 1e9 / per_step) // EPISODE)
    rng = np.random.default_rng(0)
    (folder / "data").mkdir(parents=True)
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        for e in range(episodes):
            group = f.create_group(f"episode_{e}")
            group.attrs.update(id=e, total_steps=EPISODE, seed=e)
            group["observations"] = rng.standard_normal((EPISODE + 1, OBS_DIM), dtype=np.float32)
            group["actions"] = rng.uniform(-1, 1, (EPISODE, ACT_DIM)).astype(np.float32)
            group["rewards"] = rng.standard_normal(EPISODE)
            group["terminations"] = np.zeros(EPISODE, bool)
            group["truncations"] = np.arange(EPISODE) == EPISODE - 1
    box = {"type": "Box", "dtype": "float32", "low": -np.inf, "high": np.inf}
    (folder / "data" / "metadata.json").write_text(json.dumps({
        "total_episodes": episodes, "total_steps": episodes * EPISODE, "data_format": "hdf5", "jpeg_encoding": False,
        "observation_space": json.dumps({**box, "shape": [OBS_DIM], "low": [-np.inf] * OBS_DIM,
                                         "high": [np.inf] * OBS_DIM}),
        "action_space": json.dumps({**box, "shape": [ACT_DIM], "low": [-1.0] * ACT_DIM, "high": [1.0] * ACT_DIM}),
        "dataset_id": "bench/generated-v0", "minari_version": "0.5.4"}))


def throughput(name: str, path: Path, work: Path, runs: int, warm_gb: float) -> None:
    size = array_bytes(path)
    out = work / "import.zarr"
    steps = {"plain read": timed(plain_read(path)), "expertdata read": timed(our_read(path)),
             "import to zarr": timed(f"expertdata.convert({str(path)!r}, {str(out)!r}, overwrite=True)"),
             "idle": timed("pass")}
    results: dict[str, list] = {step: [] for step in steps}
    for _ in range(runs):
        for step, code in steps.items():
            shutil.rmtree(out, ignore_errors=True)
            warm(warm_gb)
            results[step].append(measure(code))
    idle = statistics.median(m for _, m, _ in results["idle"])
    print(f"{name}: {size / 1e6:,.1f} MB of arrays")
    for step in ("plain read", "expertdata read", "import to zarr"):
        seconds = statistics.median(t for t, _, _ in results[step])
        ratio = statistics.median(p / t for (p, _, _), (t, _, _) in zip(results["plain read"], results[step]))
        above = statistics.median(m for _, m, _ in results[step]) - idle
        print(f"  {step:<16} {seconds:7.2f} s {size / seconds / 1e6:8.0f} MB/s  {ratio:5.2f}x plain read  "
              f"peak {above / 1e6:6.0f} MB above idle ({above / size:.3f}x the arrays)", flush=True)


def batches(path: Path, count: int, runs: int) -> None:
    import minari

    import expertdata

    ours, theirs = [], []
    for _ in range(runs):
        data = expertdata.ExpertDataset(path, batch_size=256, verbose=0, seed=0)
        data.get_next_batch("train")
        start = time.perf_counter()
        for _ in range(count):
            data.get_next_batch("train")
        ours.append(time.perf_counter() - start)
        data.close()
        dataset = minari.MinariDataset(path / "data")
        dataset.set_seed(0)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(count // 10):  # a tenth, scaled: Minari's route is slow
            episodes = dataset.sample_episodes(min(256, dataset.total_episodes))
            picks = [(e, rng.integers(len(e.actions))) for e in rng.choice(episodes, 256)]
            np.stack([e.observations[s] for e, s in picks])
            np.stack([e.actions[s] for e, s in picks])
        theirs.append((time.perf_counter() - start) * 10)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"batches of 256 from {path.name}, per {count:,}: ExpertDataset {a:.2f} s, Minari's sample_episodes route "
          f"{b:.1f} s: {statistics.median(t / o for o, t in zip(ours, theirs)):,.0f}x faster")


LEROBOT = FIXTURES / "lerobot" / "v2.1_G1-policy-train"
VIDEO = LEROBOT / "videos/chunk-000/observation.images.cam_high/episode_000001.mp4"


def lerobot(work: Path, runs: int) -> None:
    import av

    from expertdata.io.formats.lerobot.video import VideoFrames
    from trainers.bc import BC

    def pyav() -> float:
        start = time.perf_counter()
        with av.open(str(VIDEO)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return len(frames) / (time.perf_counter() - start)

    def ours() -> float:
        frames = VideoFrames([(VIDEO, 0.0, 393)], (480, 640, 3), 30.0, True)
        start = time.perf_counter()
        block = frames[0:393]
        seconds = time.perf_counter() - start
        frames.close()
        return len(block) / seconds

    found = [(pyav(), ours()) for _ in range(runs)]
    alone, through = statistics.median(a for a, _ in found), statistics.median(b for _, b in found)
    ratio = statistics.median(b / a for a, b in found)
    print(f"lerobot video (AV1, 393 frames of 480x640): PyAV alone {alone:.0f} frames/s, through expertdata "
          f"{through:.0f} frames/s, ratio {ratio:.2f} (goal 0.8)")
    zarr_copy = work / "g1.zarr"
    expertdata.convert(LEROBOT, zarr_copy)

    def bc(path: Path) -> float:
        model = BC(None, None, str(path), seed=0, n_epochs=3, learning_rate=1e-3, early_stopping=None)
        return model.learn().history.logs[-1]["transitions_per_second"]

    pairs = [(bc(LEROBOT), bc(zarr_copy)) for _ in range(runs)]
    print(f"BC on the imported v2.1 dataset: {statistics.median(a for a, _ in pairs):,.0f} transitions/s; on its Zarr "
          f"copy {statistics.median(b for _, b in pairs):,.0f}; ratio {statistics.median(a / b for a, b in pairs):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--warm-gigabytes", type=float, default=4.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expertdata-interop-", dir=args.workdir))
    try:
        for name, path in REAL.items():
            if path.exists():
                throughput(name, path, work, args.runs, 0.0)
            else:
                print(f"{name}: skipped, {path} is absent")
        generated = work / "generated-v0"
        generate_minari(generated, args.gigabytes)
        throughput(f"generated Minari HDF5 ({args.gigabytes} GB)", generated, work, args.runs, args.warm_gigabytes)
        shutil.rmtree(generated)
        if REAL["minari cartpole (hdf5)"].exists():
            batches(REAL["minari cartpole (hdf5)"], args.batches, args.runs)
        if VIDEO.exists():
            lerobot(work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
