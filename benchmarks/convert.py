"""Conversion throughput and peak memory on a generated dataset of about 1 GB.

    python benchmarks/convert.py [--gigabytes 1.0] [--runs 3] [--compression none] [--workdir DIR]
                                [--warm-gigabytes 4]

Converts .npz -> Zarr -> HDF5 -> .npz, each step in a fresh process, and prints medians over the runs:
throughput in MB/s and its ratio to a plain file copy of the same .npz measured in the same run (the
median of the per-run ratios), peak resident memory beside the idle baseline of a process that imports
the same modules, and the CPU seconds used. One more row times the source's content digest alone (read
and hash, nothing written): a conversion does that twice, for the source and for the copy it reads back.
Timing starts after the imports, so it measures the conversion's throughput, not the interpreter's
start-up. Goals (with compression off): at least half the copy's throughput; peak memory under a quarter
of the dataset.

Every step, the copy included, writes a new output under the same conditions: its previous output is
deleted and dirty pages are written back (``sync``). Then memory is warmed: this machine is a VM that
hands freed memory back to its host, and memory the guest has not touched for a few seconds costs several
times more to fill (about 0.5 GB/s here), which would make every step, the copy included, as slow as that.
The parent touches ``--warm-gigabytes`` of memory and frees it just before each step, so every step runs
as on a machine where memory is simply free; ``--warm-gigabytes 0`` leaves memory as it is (cold after a
few idle seconds).
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
from pathlib import Path

import numpy as np

OBS_DIM, ACT_DIM, EPISODE = 60, 6, 1000
IDLE = "idle (imports only)"  # a memory baseline: its timing means nothing


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


def warm(gigabytes: float) -> None:
    """Touch and free ``gigabytes`` of memory, so that the next few seconds' allocations find it warm."""
    if gigabytes > 0:
        np.ones(int(gigabytes * 1e9), dtype=np.uint8)


def measure(code: str) -> tuple[float, int, float]:
    """Run ``code`` in a fresh interpreter; returns (seconds inside it, peak RSS in bytes, CPU seconds).

    The peak is the child's own high-water mark (VmHWM), which starts afresh at exec; getrusage's
    maxrss would carry over the parent's.
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, peak_kb, cpu = out.strip().splitlines()[-1].split()
    return float(seconds), int(peak_kb) * 1024, float(cpu)


def timed(body: str) -> str:
    """Code that times ``body`` after importing every backend, so each step starts from the same state."""
    return ("import os, time, shutil, expertdata, expertdata.io.formats.hdf5, expertdata.io.formats.zarr\n"
            "c = os.times()\nt = time.perf_counter()\n"
            f"{body}\n"
            "t = time.perf_counter() - t\nd = os.times()\n"
            "cpu = d.user + d.system - c.user - c.system\n"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]\n"
            "print(t, hwm, cpu)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", default="none", help="for Zarr and HDF5 (npz is written uncompressed)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--warm-gigabytes", type=float, default=4.0, help="memory touched before each step")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expertdata-bench-", dir=args.workdir))
    try:
        src = work / "src.npz"
        size = generate(src, args.gigabytes)
        options = f"expertdata.WriteOptions(compression={args.compression!r})"
        copy, zarr, hdf5, back = (work / name for name in ("copy.npz", "d.zarr", "d.h5", "back.npz"))
        steps = {  # name: (code, the output it writes)
            "copy .npz (baseline)": (timed(f"shutil.copyfile({str(src)!r}, {str(copy)!r})"), copy),
            "npz -> zarr": (timed(f"expertdata.convert({str(src)!r}, {str(zarr)!r}, options={options})"), zarr),
            "zarr -> hdf5": (timed(f"expertdata.convert({str(zarr)!r}, {str(hdf5)!r}, options={options})"), hdf5),
            "hdf5 -> npz": (timed(f"expertdata.convert({str(hdf5)!r}, {str(back)!r})"), back),
            "digest .npz (no write)": (timed(f"expertdata.digest(expertdata.load({str(src)!r}))"), None),
            IDLE: (timed("pass"), None),
        }
        results: dict[str, list[tuple[float, int, float]]] = {name: [] for name in steps}
        for _ in range(args.runs):
            for name, (code, output) in steps.items():
                if output is not None and output.is_dir():
                    shutil.rmtree(output)
                elif output is not None:
                    output.unlink(missing_ok=True)
                os.sync()
                warm(args.warm_gigabytes)
                results[name].append(measure(code))
        idle_rss = statistics.median(m for _, m, _ in results[IDLE])
        print(f"dataset: {size / 1e9:.2f} GB of arrays, compression {args.compression}, "
              f"median of {args.runs} runs, each step in a fresh process")
        print(f"{'step':<22}{'seconds':>9}{'MB/s':>9}{'x copy':>8}{'CPU s':>7}{'peak RSS MB':>13}"
              f"{'above idle MB':>15}{'x dataset':>11}")
        summary = {}
        for name, runs in results.items():
            rss = statistics.median(m for _, m, _ in runs)
            above = rss - idle_rss
            summary[name] = {"peak_rss_bytes": rss, "above_idle_bytes": above}
            timing = f"{'-':>9}{'-':>9}{'-':>8}{'-':>7}"
            if name != IDLE:
                seconds = statistics.median(t for t, _, _ in runs)
                cpu = statistics.median(c for _, _, c in runs)
                ratio = statistics.median(c / t for (c, _, _), (t, _, _) in zip(results["copy .npz (baseline)"], runs))
                summary[name].update(seconds=seconds, mb_per_s=size / seconds / 1e6, ratio_to_copy=ratio,
                                     cpu_seconds=cpu)
                timing = f"{seconds:>9.2f}{size / seconds / 1e6:>9.0f}{ratio:>8.2f}{cpu:>7.2f}"
            print(f"{name:<22}{timing}{rss / 1e6:>13.0f}{above / 1e6:>15.0f}{above / size:>11.3f}")
        print(json.dumps({"dataset_bytes": size, "steps": summary}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
