"""Batch-serving throughput, in memory and out of core, beside baselines measured in the same run.

    python benchmarks/batches.py [--runs 3] [--gigabytes 2.0] [--skip-out-of-core]

In memory: 1M transitions of 17-dim float32 observations (and 6-dim float32 actions), batches of 256,
shuffled: transitions/s of our DataLoader over one epoch, beside (a) a plain numpy gather of the same
indices into preallocated buffers (the limit) and (b) torch's DataLoader over a map-style dataset that
returns one transition per index (what most users write). Goals: at least half of (a), 20 times (b).

Out of core: about 2 GB of 84x84x3 uint8 images in Zarr and in HDF5 (uncompressed), the page cache
emptied for the files before each measurement: MB/s of shuffled batches (one epoch) beside a sequential
read of the same file and beside per-transition random reads, and the peak memory of the batch process
above an idle one. Goals: half the sequential read, 10 times the random reads, memory bounded by the
shuffle buffer. Each out-of-core measurement runs in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N, OBS_DIM, ACT_DIM, BATCH = 1_000_000, 17, 6, 256
IMAGE = (84, 84, 3)


def in_memory(runs: int) -> dict:
    import torch

    from expertdata import DataLoader

    rng = np.random.default_rng(0)
    obs = rng.standard_normal((N, OBS_DIM), dtype=np.float32)
    act = rng.standard_normal((N, ACT_DIM), dtype=np.float32)
    indices = np.arange(N)

    def numpy_gather() -> float:
        order = rng.permutation(indices)
        out_obs, out_act = np.empty((BATCH, OBS_DIM), np.float32), np.empty((BATCH, ACT_DIM), np.float32)
        start = time.perf_counter()
        for begin in range(0, N - BATCH + 1, BATCH):
            rows = order[begin:begin + BATCH]
            np.take(obs, rows, axis=0, out=out_obs)
            np.take(act, rows, axis=0, out=out_act)
        return (N // BATCH * BATCH) / (time.perf_counter() - start)

    def ours() -> float:
        loader = DataLoader(indices, obs, act, BATCH, infinite_loop=False, shuffle=True, seed=0)
        start = time.perf_counter()
        served = sum(len(o) for o, _ in loader)
        return served / (time.perf_counter() - start)

    class PerItem(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return N

        def __getitem__(self, i: int):
            return obs[i], act[i]

    def torch_per_item(limit: int = 100_000) -> float:
        loader = torch.utils.data.DataLoader(PerItem(), batch_size=BATCH, shuffle=True)
        start, served = time.perf_counter(), 0
        for o, _ in loader:
            served += len(o)
            if served >= limit:
                break
        return served / (time.perf_counter() - start)

    results = {name: [] for name in ("numpy gather (limit)", "expertdata DataLoader", "torch per-item DataLoader")}
    for _ in range(runs):
        results["numpy gather (limit)"].append(numpy_gather())
        results["expertdata DataLoader"].append(ours())
        results["torch per-item DataLoader"].append(torch_per_item())
    return {name: statistics.median(v) for name, v in results.items()}


def make_images(folder: Path, gigabytes: float) -> dict[str, Path]:
    import expertdata

    n = int(gigabytes * 1e9 / np.prod(IMAGE)) // 500 * 500
    rng = np.random.default_rng(0)
    paths = {}
    for name, suffix in (("zarr", ".zarr"), ("hdf5", ".h5")):
        paths[name] = folder / f"images{suffix}"
        starts = np.zeros(n, dtype=bool)
        starts[::500] = True
        fields = {"obs": n, "actions": n, "rewards": n, "episode_starts": n, "episode_returns": n // 500}
        backend = expertdata.io.formats.for_path(paths[name])
        sink = backend.writer(paths[name], expertdata.WriteOptions(compression="none"))
        sink.set_metadata({})
        sink.add_field("obs", np.dtype(np.uint8), IMAGE, n)
        for begin in range(0, n, 2000):
            sink.append("obs", rng.integers(0, 256, (min(2000, n - begin),) + IMAGE, dtype=np.uint8))
        for name_, rows in fields.items():
            if name_ == "obs":
                continue
            value = {"actions": np.zeros((rows, 1), np.int64), "rewards": np.zeros(rows),
                     "episode_starts": starts, "episode_returns": np.zeros(rows)}[name_]
            sink.add_field(name_, value.dtype, value.shape[1:], rows)
            sink.append(name_, value)
        sink.close()
    return paths


CHILD = r"""
import os, sys, time, json
import numpy as np
from pathlib import Path

def drop_cache(path):
    os.sync()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)

import expertdata
from expertdata import DataLoader
path, mode = Path(sys.argv[1]), sys.argv[2]
ds = expertdata.load(path)
obs = ds["obs"]
n, row = obs.shape[0], int(np.prod(obs.shape[1:]))
drop_cache(path)
hwm0 = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
start = time.perf_counter()
if mode == "batches":
    loader = DataLoader(np.arange(n), obs, ds["actions"], 256, infinite_loop=False, shuffle=True, seed=0)
    served = sum(len(o) for o, _ in loader) * row
elif mode == "sequential":
    served = 0
    for begin in range(0, n, 400):
        served += np.asarray(obs[begin:begin + 400]).nbytes
else:
    rows = np.random.default_rng(0).choice(n, 1500, replace=False)
    served = sum(np.asarray(obs[int(i):int(i) + 1]).nbytes for i in rows)
seconds = time.perf_counter() - start
hwm = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
print(json.dumps({"mb_per_s": served / seconds / 1e6, "peak_above_start": hwm - hwm0}))
"""


def out_of_core(runs: int, gigabytes: float, workdir: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="expertdata-batches-", dir=workdir))
    try:
        paths = make_images(folder, gigabytes)
        results = {}
        for name, path in paths.items():
            for mode in ("batches", "sequential", "random"):
                measured = [json.loads(subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True,
                                                      capture_output=True, text=True).stdout) for _ in range(runs)]
                results[(name, mode)] = {k: statistics.median(m[k] for m in measured) for k in measured[0]}
        return {"bytes": sum(os.path.getsize(p) for p in folder.rglob("*") if p.is_file()) / 2, "results": results}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-out-of-core", action="store_true")
    args = parser.parse_args()
    memory = in_memory(args.runs)
    limit, ours, torch_rate = (memory["numpy gather (limit)"], memory["expertdata DataLoader"],
                               memory["torch per-item DataLoader"])
    print(f"in memory: {N:,} transitions, {OBS_DIM}-dim float32 obs, batches of {BATCH}, median of {args.runs}")
    for name, rate in memory.items():
        print(f"  {name:<28}{rate / 1e6:>8.2f} M transitions/s")
    print(f"  ours / numpy gather = {ours / limit:.2f} (goal >= 0.5); ours / torch per-item = "
          f"{ours / torch_rate:.0f} (goal >= 20)")
    report = {"in_memory": memory}
    if not args.skip_out_of_core:
        ooc = out_of_core(args.runs, args.gigabytes, args.workdir)
        from expertdata.core.arrays import BLOCK_BYTES

        buffer_mb = 8 * BLOCK_BYTES / 2**20  # DataLoader's default shuffle_buffer of 8 blocks
        print(f"out of core: {ooc['bytes'] / 1e9:.2f} GB of {IMAGE} uint8 images per format, page cache dropped, "
              f"median of {args.runs}; the loader holds two shuffle buffers of {buffer_mb:.0f} MB")
        for name in ("zarr", "hdf5"):
            r = {mode: ooc["results"][(name, mode)] for mode in ("batches", "sequential", "random")}
            print(f"  {name}: shuffled batches {r['batches']['mb_per_s']:.0f} MB/s, sequential read "
                  f"{r['sequential']['mb_per_s']:.0f} MB/s, random single reads {r['random']['mb_per_s']:.1f} MB/s; "
                  f"batches / sequential = {r['batches']['mb_per_s'] / r['sequential']['mb_per_s']:.2f} "
                  f"(goal >= 0.5), batches / random = {r['batches']['mb_per_s'] / r['random']['mb_per_s']:.0f} "
                  f"(goal >= 10), peak memory of the batch process {r['batches']['peak_above_start'] / 1e6:.0f} MB "
                  f"above its start")
        report["out_of_core"] = {f"{k[0]}/{k[1]}": v for k, v in ooc["results"].items()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
