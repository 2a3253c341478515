"""Recording speed beside the bare env loop, in one run.

    python benchmarks/recording.py [--episodes 100] [--runs 5] [--env CartPole-v1]

Records ``--episodes`` episodes of a hand-written expert (``expertdata.recording.experts``) with
``generate_expert_traj``: in memory, to ``.npz``, Zarr and HDF5, and, when Minari is installed, with
Minari's ``DataCollector`` (HDF5). Each run times the bare loop (reset, expert, step; nothing kept) and
every recorder in turn, in the same process, then the ratio of each recorder to that run's bare loop; the
table shows medians over the runs, of wall time and of CPU time (every thread of the process, the kernel's
time included; steadier than wall time on a shared machine). Goal (issue 21): Zarr and HDF5 at most 1.5x
the bare loop, with every finished episode surviving a kill (``benchmarks/crash_safety.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym

import expertdata
from expertdata.recording.experts import BUILTIN


def play(env: gym.Env, env_id: str, episodes: int) -> None:
    """Run the env's expert for ``episodes`` episodes (seeds 0, 1, ...), keeping nothing."""
    expert = BUILTIN_BY_ENV[env_id]
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(expert(obs))
            done = terminated or truncated


def bare_loop(env_id: str, episodes: int, work: Path) -> None:
    play(gym.make(env_id), env_id, episodes)


def recorder(suffix: str | None) -> Callable[[str, int, Path], None]:
    def record(env_id: str, episodes: int, work: Path) -> None:
        path = None if suffix is None else work / f"demo{suffix}"
        dataset = expertdata.generate_expert_traj(BUILTIN_BY_ENV[env_id], path, env_id, n_episodes=episodes,
                                                  seed=0, progress=False)
        if dataset is not None:
            dataset.close()
    return record


def minari_collector(env_id: str, episodes: int, work: Path) -> None:
    import minari

    os.environ["MINARI_DATASETS_PATH"] = str(work / "minari")  # its datasets go to the run's folder
    env = minari.DataCollector(gym.make(env_id))
    play(env, env_id, episodes)
    env.create_dataset(dataset_id=f"bench/{env_id.split('-')[0].lower()}-expert-v0")
    env.close()


BUILTIN_BY_ENV = {env_id: expert for env_id, expert in BUILTIN.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", default="CartPole-v1", choices=sorted(BUILTIN_BY_ENV))
    args = parser.parse_args()
    steps: dict[str, Callable[[str, int, Path], None]] = {
        "bare env loop (baseline)": bare_loop, "in memory": recorder(None), ".npz": recorder(".npz"),
        "Zarr": recorder(".zarr"), "HDF5": recorder(".h5")}
    if importlib.util.find_spec("minari"):
        steps["Minari DataCollector (HDF5)"] = minari_collector
    else:
        print("Minari is not installed: its DataCollector is left out (pip install minari)")
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    seconds = {(name, clock): [] for name in steps for clock in clocks}
    ratios = {(name, clock): [] for name in steps for clock in clocks}
    for _ in range(args.runs):
        for name, step in steps.items():
            work = Path(tempfile.mkdtemp(prefix="expertdata-bench-"))
            try:
                start = {clock: now() for clock, now in clocks.items()}
                step(args.env, args.episodes, work)
                for clock, now in clocks.items():
                    seconds[name, clock].append(now() - start[clock])
            finally:
                shutil.rmtree(work)
        for key in seconds:
            ratios[key].append(seconds[key][-1] / seconds["bare env loop (baseline)", key[1]][-1])
    print(f"{args.env}, {args.episodes} episodes, median of {args.runs} runs")
    print(f"{'recorder':<30} {'wall s':>8} {'x bare':>7} {'CPU s':>8} {'x bare':>7}")
    for name in steps:
        print(f"{name:<30}" + "".join(f" {statistics.median(seconds[name, clock]):>8.3f} "
                                      f"{statistics.median(ratios[name, clock]):>7.2f}" for clock in clocks))


if __name__ == "__main__":
    main()
