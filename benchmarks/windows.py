"""Sequence windows: expertdata beside diffusion_policy's ``SequenceSampler``, on diffusion_policy's own PushT replay.

    python benchmarks/windows.py [--runs 5] [--replay ../shared/fixtures/diffusion_policy/pusht_cchi_v7_replay.zarr]

Windows of 16 rows, ``pad_before=1``, ``pad_after=7`` (diffusion policy's PushT setting), of the low-dimensional
arrays (state, action, keypoint), each measured as windows per second over one shuffled epoch, medians of
``--runs``:

- in memory, one window at a time (what a torch ``Dataset.__getitem__`` does): ``SequenceSampler``, re-derived
  from diffusion_policy/common/sampler.py over numpy arrays (its fastest backing), beside ``Dataset.windows``;
  goal: at least 1x;
- in memory, batches of 256 (``Windows.batch``: one gather per field per batch);
- ``ExpertDataset.window_batches`` (batches of 256, one epoch, state and action) over the replay's episodes
  ``--tiles`` times over (200: 143 MB, several of the out-of-core pools) in a Zarr store on disk, in memory
  (``in_memory=True``) and out of core (``in_memory=False``), each in a fresh process with the page cache of the
  store dropped first (``posix_fadvise(DONTNEED)``); goal: out of core at least 0.8x in memory.

And, for issue 28's first goal, ``np.asarray(field)`` against ``field[:]`` on the replay's 2.8 GB of images is not
run (it would not fit this machine's page cache); it is measured on the state array: goal at most 1.2x.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPLAY = ROOT.parent / "shared" / "fixtures" / "diffusion_policy" / "pusht_cchi_v7_replay.zarr"
LENGTH, BEFORE, AFTER = 16, 1, 7
KEYS = {"obs": "state", "actions": "action", "keypoint": "keypoint"}


class SequenceSampler:
    """diffusion_policy's ``SequenceSampler`` (common/sampler.py), re-derived: ``create_indices`` then, per window,
    a slice of every key and edge padding where the window reaches past its episode."""

    def __init__(self, arrays: dict[str, np.ndarray], episode_ends: np.ndarray, length: int, before: int,
                 after: int) -> None:
        self.arrays, self.length = arrays, length
        indices = []
        for i, end in enumerate(episode_ends):
            start = 0 if i == 0 else int(episode_ends[i - 1])
            episode = int(end) - start
            for idx in range(-before, episode - length + after + 1):
                buffer_start, buffer_end = max(idx, 0) + start, min(idx + length, episode) + start
                indices.append((buffer_start, buffer_end, buffer_start - (idx + start),
                                length - ((idx + length + start) - buffer_end)))
        self.indices = np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        buffer_start, buffer_end, sample_start, sample_end = self.indices[i]
        out = {}
        for key, array in self.arrays.items():
            sample = array[buffer_start:buffer_end]
            data = sample
            if sample_start > 0 or sample_end < self.length:
                data = np.zeros((self.length,) + array.shape[1:], array.dtype)
                if sample_start > 0:
                    data[:sample_start] = sample[0]
                if sample_end < self.length:
                    data[sample_end:] = sample[-1]
                data[sample_start:sample_end] = sample
            out[key] = data
        return out


def _rate(items, order: np.ndarray) -> float:
    start = time.perf_counter()
    for i in order:
        items[int(i)]
    return len(order) / (time.perf_counter() - start)


def in_memory(replay: Path, runs: int) -> dict:
    import zarr

    import expertdata

    raw = zarr.open_group(str(replay), mode="r")
    arrays = {theirs: np.asarray(raw[f"data/{theirs}"][:]) for theirs in KEYS.values()}
    sampler = SequenceSampler(arrays, np.asarray(raw["meta/episode_ends"][:]), LENGTH, BEFORE, AFTER)
    with expertdata.load(replay) as lazy:
        memory = expertdata.Dataset.from_arrays(lazy.metadata, **{n: np.asarray(lazy[n]) for n in lazy.fields
                                                                  if n != "img"})
    windows = memory.windows(LENGTH, BEFORE, AFTER, fields=list(KEYS))
    assert len(windows) == len(sampler)
    order = np.random.default_rng(0).permutation(len(windows))
    theirs = [_rate(sampler, order) for _ in range(runs)]
    ours = [_rate(windows, order) for _ in range(runs)]
    batched = []
    for _ in range(runs):
        start = time.perf_counter()
        for begin in range(0, len(order), 256):
            windows.batch(order[begin:begin + 256])
        batched.append(len(order) / (time.perf_counter() - start))
    return {"windows": len(windows), "sampler": statistics.median(theirs), "ours": statistics.median(ours),
            "ours_batched": statistics.median(batched)}


OUT_OF_CORE = """
import json, os, sys, time
from pathlib import Path
import expertdata
replay, in_memory = Path(sys.argv[1]), sys.argv[2] == "memory"
os.sync()
for file in (p for p in replay.rglob("*") if p.is_file()):
    fd = os.open(file, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
data = expertdata.ExpertDataset(replay, verbose=0, seed=0, in_memory=in_memory, train_fraction=1.0)
batches = data.window_batches("all", 16, 256, pad_before=1, pad_after=7, infinite=False)
start = time.perf_counter()
served = sum(len(b["obs"]) for b in batches)
print(json.dumps({"windows_per_s": served / (time.perf_counter() - start), "windows": served}))
"""


def batches(replay: Path, runs: int, where: str) -> float:
    """Windows/s of one epoch of ``window_batches`` (batches of 256), ``where`` ``memory`` or ``stored``, each run
    in a fresh process with the replay's page cache dropped first."""
    found = [json.loads(subprocess.run([sys.executable, "-c", OUT_OF_CORE, str(replay), where], capture_output=True,
                                       text=True, check=True, cwd=ROOT).stdout) for _ in range(runs)]
    return statistics.median(f["windows_per_s"] for f in found)


def tiled(replay: Path, folder: Path, times: int) -> Path:
    """The replay's episodes (state and action) ``times`` over, as a Zarr dataset of ours: large enough that
    out-of-core batches read several pools."""
    import expertdata

    with expertdata.load(replay) as ds:
        arrays = {n: np.asarray(ds[n]) for n in ("obs", "actions", "episode_starts")}
        metadata = {k: v for k, v in ds.metadata.items() if k in ("observation_space", "action_space", "rewards")}
    big = {n: np.concatenate([a] * times) for n, a in arrays.items()}
    data = expertdata.Dataset.from_arrays({**metadata, "rewards": "absent"}, **big)
    return expertdata.save(data, folder / "tiled.zarr", overwrite=True).path


def asarray_cost(replay: Path, runs: int) -> dict:
    import expertdata

    with expertdata.load(replay) as ds:
        field = ds["obs"]
        timed = {"asarray": [], "slice": []}
        for _ in range(runs):
            for name, read in (("asarray", lambda: np.asarray(field)), ("slice", lambda: field[:])):
                start = time.perf_counter()
                read()
                timed[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replay", type=Path, default=REPLAY)
    parser.add_argument("--tiles", type=int, default=200,
                        help="the replay's episodes this many times over, out of core")
    args = parser.parse_args()
    if not args.replay.exists():
        raise SystemExit(f"{args.replay} is absent")
    memory = in_memory(args.replay, args.runs)
    print(f"in memory, {memory['windows']:,} windows of {LENGTH} rows, one at a time: SequenceSampler "
          f"{memory['sampler']:,.0f} windows/s, expertdata {memory['ours']:,.0f} "
          f"({memory['ours'] / memory['sampler']:.2f}x); in batches of 256: {memory['ours_batched']:,.0f} "
          f"({memory['ours_batched'] / memory['sampler']:.1f}x)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        big = tiled(args.replay, Path(folder), args.tiles)
        held, stored = batches(big, args.runs, "memory"), batches(big, args.runs, "stored")
    print(f"ExpertDataset.window_batches (state and action, the replay {args.tiles} times over: "
          f"{args.tiles * memory['windows']:,} windows), batches of 256, page cache dropped: in memory {held:,.0f} "
          f"windows/s, out of core {stored:,.0f} ({stored / held:.2f}x)", flush=True)
    cost = asarray_cost(args.replay, args.runs)
    print(f"np.asarray(field) {cost['asarray'] * 1e3:.2f} ms, field[:] {cost['slice'] * 1e3:.2f} ms "
          f"({cost['asarray'] / cost['slice']:.2f}x)")


if __name__ == "__main__":
    main()
