"""Batches from a Zarr dataset where it lives, beside the same dataset on local disk, measured in the same run.

    python benchmarks/remote.py [--runs 3] [--megabytes 400] [--latency-ms 20]

The dataset: 84x84x3 uint8 images and 6-dim float32 actions, written by ``expertdata.save`` (Zarr, zstd:1),
served over loopback HTTP by a server (a process of its own) without directory listings that waits
``--latency-ms`` before answering each request (a distant object store). Measured: MB/s of one shuffled epoch
of batches of 256 from ``ExpertDataset(url, in_memory=False)`` against ``ExpertDataset(local path,
in_memory=False)``; medians of ``--runs`` runs each, alternated. Goal: at least 0.5x the local throughput.
"""
from __future__ import annotations

import argparse
import http.server
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE, BATCH = (84, 84, 3), 256


class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    latency = 0.02

    def list_directory(self, path):
        self.send_error(404, "no listings")

    def do_GET(self):
        time.sleep(self.latency)
        super().do_GET()

    def do_HEAD(self):
        time.sleep(self.latency)
        super().do_HEAD()

    def log_message(self, *args):
        pass


def _dataset(folder: Path, megabytes: float) -> Path:
    import expertdata

    n = int(megabytes * 2**20 // int(np.prod(IMAGE)))
    rng = np.random.default_rng(0)
    starts = np.zeros(n, bool)
    starts[::500] = True
    episodes = int(starts.sum())
    frames = rng.integers(0, 256, (n,) + IMAGE, dtype=np.uint8)
    frames[:, ::2] = 0  # half of every image is flat, as camera images compress (some)
    data = expertdata.Dataset.from_arrays(
        {"env_id": "none"}, obs=frames, actions=rng.standard_normal((n, 6)).astype(np.float32),
        rewards=np.zeros(n), episode_starts=starts, episode_returns=np.zeros(episodes))
    return expertdata.save(data, folder / "images.zarr").path


def _epoch(where: str) -> float:
    from expertdata import ExpertDataset

    data = ExpertDataset(where, batch_size=BATCH, verbose=0, seed=0, in_memory=False, train_fraction=1.0)
    start = time.perf_counter()
    served = 0
    for obs, actions in data.batches("train", infinite=False):
        served += obs.nbytes + actions.nbytes
    seconds = time.perf_counter() - start
    data.close()
    return served / 2**20 / seconds


def serve(folder: str, latency_ms: float) -> None:
    """The server process: print the port, then serve ``folder`` until killed."""
    _SlowHandler.latency = latency_ms / 1000
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _SlowHandler(*a, directory=folder))
    print(server.server_address[1], flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=400)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--serve", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency_ms)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = _dataset(Path(tmp), args.megabytes)
        server = subprocess.Popen([sys.executable, __file__, "--serve", tmp, "--latency-ms", str(args.latency_ms)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{int(server.stdout.readline())}/{local.name}"
            found: dict[str, list[float]] = {"local": [], "remote": []}
            for _ in range(args.runs):
                found["local"].append(_epoch(str(local)))
                found["remote"].append(_epoch(url))
        finally:
            server.kill()
    local_mb, remote_mb = (statistics.median(found[k]) for k in ("local", "remote"))
    report = {"megabytes": args.megabytes, "latency_ms": args.latency_ms, "runs": found,
              "local_mb_s": local_mb, "remote_mb_s": remote_mb, "ratio": remote_mb / local_mb}
    print(json.dumps(report, indent=2))
    print(f"remote over HTTP (+{args.latency_ms:g} ms a request): {remote_mb:.0f} MB/s; local disk: {local_mb:.0f} "
          f"MB/s; ratio {remote_mb / local_mb:.2f} (goal 0.5)", file=sys.stderr)


if __name__ == "__main__":
    main()
