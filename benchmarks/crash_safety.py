"""Crash safety, tested the way it failed: many kills at random moments.

    python benchmarks/crash_safety.py [--kills 20] [--formats h5,zarr,npz]

- Recording: a streamed CartPole recording (a hand-written expert, episodes reported as they are
  committed) killed with SIGKILL, or SIGTERM, at a random moment between 1 and 4 s: every file must open
  and validate, and hold at least every episode reported finished (for ``.npz``, the staging store that
  the killed recording leaves beside it).
- Converting: a 64 MB conversion killed with SIGKILL at a random moment, then the same conversion run
  again: the killed process's temporaries must be gone after the second run; and SIGTERM, after which
  none may be left at all.
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import expertdata

RECORDER = """
import sys
import gymnasium
from expertdata.recording.episode_writer import EpisodeWriter
from expertdata.recording.experts import cartpole
from expertdata.recording.recorder import _serial, recording_metadata
env = gymnasium.make("CartPole-v1")
metadata = recording_metadata(env, cartpole, 0, True)
writer = EpisodeWriter(sys.argv[1], metadata)
for episode in _serial(env, cartpole, list(range(10**6)), metadata["observation_space"], metadata["action_space"]):
    writer.write(episode)
    print(writer.n_episodes, flush=True)
"""


def recording_trials(folder: Path, suffix: str, kills: int, how: signal.Signals) -> dict:
    unreadable = lost = reported_total = 0
    for trial in range(kills):
        path = folder / f"rec-{how.name}-{trial}{suffix}"
        run = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True)
        time.sleep(random.uniform(1.0, 4.0))
        run.send_signal(how)
        out = run.communicate()[0].split()
        reported = int(out[-1]) if out else 0
        reported_total += reported
        if not path.exists():  # a killed .npz recording leaves its staging store (.recording-*.zarr)
            path = next(folder.glob(f".recording-*-{path.name}.zarr"), path)
        try:
            with expertdata.load(path) as kept:
                lost += max(0, reported - kept.n_episodes)
                unreadable += not expertdata.validate(kept).ok
        except expertdata.ExpertDataError:
            unreadable += 1
            lost += reported
    return {"trials": kills, "unreadable": unreadable, "episodes reported": reported_total, "lost": lost}


def conversion_trials(folder: Path, kills: int) -> dict:
    rows = 2**26 // 64
    arrays = {"obs": np.random.default_rng(0).standard_normal((rows, 16)).astype(np.float32),
              "actions": np.zeros((rows, 1), np.float32), "rewards": np.zeros(rows),
              "episode_starts": np.eye(1, rows, 0, bool)[0], "episode_returns": np.zeros(1)}
    src = expertdata.save(expertdata.Dataset.from_arrays({}, None, **arrays), folder / "src.zarr").path
    left = {"SIGKILL, after the next run": 0, "SIGTERM": 0}
    for trial in range(kills):
        for how in (signal.SIGKILL, signal.SIGTERM):
            out = folder / f"out{trial}.npz"
            run = subprocess.Popen([sys.executable, "-m", "expertdata", "convert", str(src), str(out),
                                    "--compression", "deflate:6"], stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0.8, 2.5))
            run.send_signal(how)
            run.wait()
            if how == signal.SIGKILL:
                subprocess.run([sys.executable, "-m", "expertdata", "convert", str(src), str(out), "--overwrite"],
                               check=True, capture_output=True)
                left["SIGKILL, after the next run"] += len(list(folder.glob(".partial-*")))
            else:
                left["SIGTERM"] += len(list(folder.glob(".partial-*")))
            for path in folder.glob("out*"):
                path.unlink()
    return {"trials": kills, "temporaries left": left}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--formats", default="h5,zarr,npz")
    args = parser.parse_args()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in args.formats.split(","):
            for how in (signal.SIGKILL, signal.SIGTERM):
                result = recording_trials(Path(tmp), f".{suffix}", args.kills, how)
                print(f"recording to .{suffix}, {how.name} at random moments: {result}", flush=True)
        print(f"converting, killed at random moments: {conversion_trials(Path(tmp), args.kills)}")


if __name__ == "__main__":
    main()
