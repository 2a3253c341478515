"""Shared test helpers: small datasets built in memory, and the SB2 fixtures beside the repo."""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import expertdata

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SB2_PENDULUM = SHARED_FIXTURES / "sb2" / "expert_pendulum.npz"
# other projects' files, each named once (fixtures/README.md in ../shared says what each is)
BRIDGE = SHARED_FIXTURES / "rlds" / "bridge_dataset" / "1.0.0"
LEROBOT30 = SHARED_FIXTURES / "lerobot" / "v3.0_record-test"
MINARI_HDF5 = SHARED_FIXTURES / "minari" / "cartpole" / "expert-v0"
MINARI_ARROW = SHARED_FIXTURES / "minari" / "pendulum" / "expert-arrow-v0"
IMITATION = SHARED_FIXTURES / "imitation" / "cartpole_0_final.npz"
PUSHT = SHARED_FIXTURES / "diffusion_policy" / "pusht_cchi_v7_replay.zarr"

needs_sb2 = pytest.mark.skipif(not SB2_PENDULUM.exists(),
                               reason=f"SB2 fixtures not found at {SHARED_FIXTURES} (they live in ../shared)")

def run_cli(*args, mpi: int = 0) -> subprocess.CompletedProcess:
    """Run the real ``expertdata`` command in a fresh interpreter, as a user would (on ``mpi`` ranks)."""
    command = [sys.executable, "-m", "expertdata", *map(str, args)]
    if mpi:
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(mpi)] + command
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def invoke(*args, env=None) -> subprocess.CompletedProcess:
    """Run the ``expertdata`` command in this process (no interpreter to start), with what ``run_cli``
    returns: the exit code, standard output and standard error apart."""
    from click.testing import CliRunner

    from expertdata.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


SUFFIXES = {"npz": ".npz", "hdf5": ".h5", "zarr": ".zarr", "zarr-zip": ".zarr.zip"}


def make_arrays(lengths=(4, 4), obs="vector", actions="box", seed=0, root: Path | None = None) -> dict:
    """Arrays of a valid dataset with episodes of the given lengths.

    :param obs: ``vector`` (float32, 3 values), ``image`` (uint8 8x8x3) or ``paths`` (files under ``root``).
    :param actions: ``box`` (float32, 2 values) or ``discrete`` (int64, shape (N, 1)).
    """
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    starts = np.zeros(n, dtype=bool)
    starts[np.cumsum((0,) + tuple(lengths[:-1]))] = True
    if obs == "vector":
        observations = rng.standard_normal((n, 3)).astype(np.float32)
    elif obs == "image":
        observations = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    else:
        observations = np.array([f"images/{i:04d}.png" for i in range(n)])
        (root / "images").mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(observations):
            (root / path).write_bytes(bytes([i % 256]) * 16)
    acts = (rng.integers(0, 2, (n, 1)) if actions == "discrete"
            else rng.uniform(-1, 1, (n, 2)).astype(np.float32))
    rewards = rng.standard_normal(n)
    returns = np.array([r.sum() for r in np.split(rewards, np.flatnonzero(starts)[1:])])
    return {"obs": observations, "actions": acts, "rewards": rewards, "episode_starts": starts,
            "episode_returns": returns}


def make_dataset(root: Path | None = None, metadata=None, **kwargs) -> expertdata.Dataset:
    return expertdata.Dataset.from_arrays(metadata, root, **make_arrays(root=root, **kwargs))


def assert_same_arrays(a: expertdata.Dataset, b: expertdata.Dataset) -> None:
    """Every field present in both, with the same dtype, shape and bytes."""
    assert sorted(a.fields) == sorted(b.fields)
    for name in a.fields:
        x, y = np.asarray(a[name][:]), np.asarray(b[name][:])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), name


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files only: a folder is 404 (no listings), ``forbidden/`` is 403; every path asked for is logged."""

    def list_directory(self, path):
        self.send_error(404, "no listings")

    def do_GET(self):
        self.server.requested.append(self.path)
        if self.path.startswith("/forbidden/"):
            self.send_error(403, "forbidden")
            return
        super().do_GET()

    def do_HEAD(self):
        self.server.requested.append(self.path)
        if self.path.startswith("/forbidden/"):
            self.send_error(403, "forbidden")
            return
        super().do_HEAD()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """``(folder, base URL, requested paths)`` of a loopback HTTP server without directory listings."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = lambda *args: _Handler(*args, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", server.requested
    server.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """``(bucket URL, storage options)`` of moto's S3-compatible server on loopback."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"key": "test", "secret": "test", "endpoint_url": f"http://127.0.0.1:{port}",
               "client_kwargs": {"region_name": "us-east-1"}}
    boto3.client("s3", endpoint_url=options["endpoint_url"], aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="bucket")
    yield "s3://bucket", options
    server.stop()
