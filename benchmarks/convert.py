"""Conversion throughput and peak memory on a generated dataset of about 1 GB.

    python benchmarks/convert.py [--gigabytes 1.0] [--runs 3] [--compression none] [--workdir DIR]

Converts .npz -> Zarr -> HDF5 -> .npz, each step in a fresh process, and prints medians over the runs:
throughput in MB/s beside a plain file copy of the same .npz measured in the same run, and each step's
peak resident memory beside the idle baseline of a process that imports the same modules. Timing starts
after the imports, so it measures the conversion's throughput, not the interpreter's start-up. Goals (with
compression off): at least half the copy's throughput; peak memory under a quarter of the dataset.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OBS_DIM, ACT_DIM, EPISODE = 60, 6, 1000


def generate(path: Path, gigabytes: float) -> int:
    """Write a valid dataset of about ``gigabytes`` to ``path``; returns its size in bytes."""
    import expertdata

    per_step = 4 * OBS_DIM + 4 * ACT_DIM + 8 + 1
    n = int(gigabytes * 1e9 / per_step) // EPISODE * EPISODE
    rng = np.random.default_rng(0)
    rewards = rng.standard_normal(n)
    starts = np.zeros(n, dtype=bool)
    starts[::EPISODE] = True
    dataset = expertdata.Dataset.from_arrays(
        {"env_id": "Benchmark-v0"}, obs=rng.standard_normal((n, OBS_DIM), dtype=np.float32),
        actions=rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32), rewards=rewards, episode_starts=starts,
        episode_returns=rewards.reshape(-1, EPISODE).sum(axis=1))
    expertdata.save(dataset, path, overwrite=True)
    return sum(a.nbytes for a in dataset.fields.values())


def measure(code: str) -> tuple[float, int]:
    """Run ``code`` in a fresh interpreter; returns (seconds inside it, peak RSS in bytes).

    The peak is the child's own high-water mark (VmHWM), which starts afresh at exec; getrusage's
    maxrss would carry over the parent's.
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, peak_kb = out.strip().splitlines()[-1].split()
    return float(seconds), int(peak_kb) * 1024


def timed(body: str) -> str:
    """Code that times ``body`` after importing every backend, so each step starts from the same state."""
    return ("import time, shutil, expertdata, expertdata.formats.hdf5, expertdata.formats.zarr\n"
            f"t = time.perf_counter()\n{body}\nt = time.perf_counter() - t\n"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]\n"
            "print(t, hwm)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", default="none", help="for Zarr and HDF5 (npz is written uncompressed)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expertdata-bench-", dir=args.workdir))
    try:
        src = work / "src.npz"
        size = generate(src, args.gigabytes)
        options = f"expertdata.WriteOptions(compression={args.compression!r})"
        steps = {
            "copy .npz (baseline)": timed(f"shutil.copyfile({str(src)!r}, {str(work / 'copy.npz')!r})"),
            "npz -> zarr": timed(f"expertdata.convert({str(src)!r}, {str(work / 'd.zarr')!r}, overwrite=True, "
                                 f"options={options})"),
            "zarr -> hdf5": timed(f"expertdata.convert({str(work / 'd.zarr')!r}, {str(work / 'd.h5')!r}, "
                                  f"overwrite=True, options={options})"),
            "hdf5 -> npz": timed(f"expertdata.convert({str(work / 'd.h5')!r}, {str(work / 'back.npz')!r}, "
                                 "overwrite=True)"),
            "idle (imports only)": timed("pass"),
        }
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in steps}
        for _ in range(args.runs):
            for name, code in steps.items():
                results[name].append(measure(code))
        copy_rate = size / statistics.median(t for t, _ in results["copy .npz (baseline)"]) / 1e6
        idle_rss = statistics.median(m for _, m in results["idle (imports only)"])
        print(f"dataset: {size / 1e9:.2f} GB of arrays, compression {args.compression}, "
              f"median of {args.runs} runs, each step in a fresh process")
        print(f"{'step':<22}{'seconds':>9}{'MB/s':>9}{'x copy':>8}{'peak RSS MB':>13}{'above idle MB':>15}"
              f"{'x dataset':>11}")
        summary = {}
        for name, runs in results.items():
            seconds = statistics.median(t for t, _ in runs)
            rss = statistics.median(m for _, m in runs)
            rate = size / seconds / 1e6
            above = rss - idle_rss
            print(f"{name:<22}{seconds:>9.2f}{rate:>9.0f}{rate / copy_rate:>8.2f}{rss / 1e6:>13.0f}"
                  f"{above / 1e6:>15.0f}{above / size:>11.3f}")
            summary[name] = {"seconds": seconds, "mb_per_s": rate, "ratio_to_copy": rate / copy_rate,
                             "peak_rss_bytes": rss, "above_idle_bytes": above}
        print(json.dumps({"dataset_bytes": size, "steps": summary}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
