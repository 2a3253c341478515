"""Datasets where they live: real servers on loopback, started here: an HTTP server without directory listings
(as CDNs and the Hub serve files) and an S3-compatible server (moto's)."""
import gzip
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import expertdata
from expertdata import ExpertDataset

from .conftest import free_port, invoke

CARTPOLE = Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz"


def cli(*args, options=None):
    return invoke(*args, env={"EXPERTDATA_STORAGE_OPTIONS": json.dumps(options) if options else ""})


def test_a_zarr_dataset_is_read_over_http_without_listings_metadata_first(http_root):
    folder, base, requested = http_root
    sent = expertdata.convert(CARTPOLE, folder / "c.zarr")
    info = cli("info", f"{base}/c.zarr", "--no-digest")
    assert info.returncode == 0 and "transitions           5,000" in info.stdout
    fetched = {path.split("/")[2] for path in requested if "/c/" in path}  # arrays whose chunks were fetched
    assert fetched <= {"episode_starts", "episode_returns"}  # metadata and the episode index: no obs, no actions
    assert cli("verify", f"{base}/c.zarr", "--digest", sent.digest).returncode == 0
    remote_data = ExpertDataset(f"{base}/c.zarr", verbose=0, seed=0, in_memory=False)
    local_data = ExpertDataset(folder / "c.zarr", verbose=0, seed=0, in_memory=False)
    for (obs_a, act_a), (obs_b, act_b) in zip(remote_data.batches("train", 256, infinite=False),
                                              local_data.batches("train", 256, infinite=False)):
        assert np.array_equal(obs_a, obs_b) and np.array_equal(act_a, act_b)
    remote_data.close()
    local_data.close()


def test_hdf5_is_read_by_ranges_and_npz_downloaded_first(http_root, monkeypatch, tmp_path):
    folder, base, _ = http_root
    expertdata.convert(CARTPOLE, folder / "c.h5")
    expertdata.convert(CARTPOLE, folder / "c.npz")
    digest = expertdata.digest(expertdata.load(CARTPOLE))
    assert expertdata.digest(expertdata.load(f"{base}/c.h5")) == digest
    monkeypatch.setenv("EXPERTDATA_CACHE", str(tmp_path / "cache"))
    result = cli("verify", f"{base}/c.npz", "--digest", digest)
    assert result.returncode == 0 and result.stderr.startswith(f"expertdata: downloading {base}/c.npz to the cache")
    assert cli("verify", f"{base}/c.npz", "--digest", digest).stderr == ""  # the cached copy is reused


@pytest.mark.parametrize("where, message", [
    ("/missing.zarr", "no Zarr dataset there (404"),
    ("/missing.h5", "not found (404)"),
    ("/forbidden/c.zarr", "access denied (403)"),
])
def test_network_errors_are_one_line_with_exit_code_2(http_root, where, message):
    _, base, _ = http_root
    result = cli("info", base + where)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_connection_refused_and_a_chunk_missing_remotely(http_root):
    folder, base, _ = http_root
    refused = cli("info", f"http://127.0.0.1:{free_port()}/c.zarr")
    assert refused.returncode == 2 and "cannot connect" in refused.stderr and refused.stderr.count("\n") == 1
    expertdata.convert(CARTPOLE, folder / "c.zarr")
    (folder / "c.zarr" / "obs" / "c" / "0" / "0").unlink()  # a chunk lost on the server
    with pytest.raises(expertdata.UnreadableError, match="field 'obs'"):
        expertdata.load(f"{base}/c.zarr")["obs"][0:10]
    report = cli("validate", f"{base}/c.zarr")
    assert report.returncode == 2
    assert "E100 unreadable: dataset: field 'obs': cannot read: FileNotFoundError" in report.stderr


def test_upload_to_s3_then_read_it_there(s3, tmp_path):
    bucket, options = s3
    sent = cli("convert", CARTPOLE, f"{bucket}/cartpole.zarr", options=options)
    assert sent.returncode == 0, sent.stderr
    digest = sent.stdout.split("digest ")[1].strip()
    assert cli("verify", f"{bucket}/cartpole.zarr", "--digest", digest, options=options).returncode == 0
    again = cli("convert", CARTPOLE, f"{bucket}/cartpole.zarr", options=options)
    assert again.returncode == 2 and "already exists" in again.stderr
    back = expertdata.convert(f"{bucket}/cartpole.zarr", tmp_path / "back.npz", storage_options=options)
    assert back.digest == digest
    refused = cli("info", f"{bucket}/cartpole.zarr")  # no credentials, no endpoint: not moto's bucket
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1


def test_an_interrupted_upload_leaves_no_dataset(s3, monkeypatch):
    import s3fs

    bucket, options = s3
    calls = []
    real = s3fs.S3FileSystem.put_file

    def failing(self, lpath, rpath, *args, **kwargs):
        calls.append(rpath)
        if len(calls) == 5:
            raise ConnectionError("the link went down")
        return real(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "put_file", failing)
    with pytest.raises(expertdata.core.errors.WriteError, match="cannot connect"):
        expertdata.convert(CARTPOLE, f"{bucket}/cut.zarr", storage_options=options)
    monkeypatch.undo()
    assert len(calls) == 5 and not any(c.endswith("cut.zarr/zarr.json") for c in calls)
    with pytest.raises(expertdata.UnreadableError, match="no Zarr dataset there"):
        expertdata.load(f"{bucket}/cut.zarr", storage_options=options)


def test_chained_local_caching_reads_each_chunk_once(http_root, tmp_path):
    folder, base, requested = http_root
    sent = expertdata.convert(CARTPOLE, folder / "c.zarr")
    options = {"simplecache": {"cache_storage": str(tmp_path / "cache")}}
    url = f"simplecache::{base}/c.zarr"
    with expertdata.load(url, storage_options=options) as data:
        assert expertdata.digest(data) == sent.digest
    fetched = len(requested)
    with expertdata.load(url, storage_options=options) as data:
        assert expertdata.digest(data) == sent.digest
    assert len(requested) == fetched  # the second pass came from the local cache


def test_text_fields_other_than_image_paths_are_read_where_they_live(http_root):
    folder, base, _ = http_root
    with expertdata.load(CARTPOLE) as source:
        arrays = {name: array[:] for name, array in source.fields.items()}
        metadata = {**source.metadata, "extras": {"task": "episode"}}
    tasks = np.asarray([f"balance {e}" for e in range(len(arrays["episode_returns"]))])
    expertdata.save(expertdata.Dataset.from_arrays(metadata, **arrays, task=tasks), folder / "t.zarr")
    with expertdata.load(f"{base}/t.zarr") as data:
        assert data["task"][:].tolist() == tasks.tolist()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A server that misbehaves on purpose, by path: ``/stall`` never answers, ``/endless`` sends a body without
    end, ``/trickle`` one byte a second, ``/gzip/...`` a gzip body (a Zarr chunk that inflates a thousandfold),
    ``/redirect/...`` sends the client to ``server.elsewhere``; anything else is served from ``server.folder``
    (its ``zarr.json`` padded to 64 MiB under ``/big/``). Every request's headers are logged."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_GET(self, body=True):
        self.server.seen.append((self.path, dict(self.headers)))
        path = self.path
        if path.startswith("/stall"):
            time.sleep(30)
            return
        if path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.server.elsewhere + path[len("/redirect"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith(("/endless", "/trickle")):
            self.send_response(200)
            if path.startswith("/trickle"):  # a size announced, then one byte a second
                self.send_header("Content-Length", str(10**6))
            self.end_headers()
            try:
                while body:
                    self.wfile.write(b"x" * (2**16 if path.startswith("/endless") else 1))
                    self.wfile.flush()
                    if path.startswith("/trickle"):
                        time.sleep(1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        file = self.server.folder / path.lstrip("/").removeprefix("gzip/").removeprefix("big/")
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        if path.startswith("/big/") and file.name == "zarr.json":
            data = data + b" " * (64 * 2**20)
        encoding = None
        if path.startswith("/gzip/") and "/c/" in path:
            data, encoding = gzip.compress(b"\0" * 2**30, compresslevel=1), "gzip"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if body:
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass


@pytest.fixture
def hostile(tmp_path):
    """``(base URL, requests seen)`` of a misbehaving server on loopback serving a CartPole dataset as ``c.zarr``,
    with a second, well-behaved server behind ``/redirect/``."""
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
        server.daemon_threads = True
        server.folder, server.seen = tmp_path, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    servers[0].elsewhere = f"http://127.0.0.1:{servers[1].server_address[1]}"
    expertdata.convert(CARTPOLE, tmp_path / "c.zarr")
    yield f"http://127.0.0.1:{servers[0].server_address[1]}", servers[0].seen, servers[1].seen
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("where, says", [
    ("/stall/c.zarr", "did not answer in time"),
    ("/endless/c.zarr", "runs past the 16,777,217 bytes asked for"),
    ("/trickle/c.zarr", "did not answer in time"),
    ("/big/c.zarr", "runs past the 16,777,217 bytes asked for"),  # the server ignores the range asked for
    ("/gzip/c.zarr", "field"),
])
def test_a_misbehaving_server_is_one_line_in_bounded_time_and_memory(hostile, where, says):
    base, _, _ = hostile
    code = ("import re, sys\nfrom expertdata.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
            "    peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]\n"
            "    print(f'PEAK {int(peak) * 1024}', file=sys.stderr)\n")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code, "--timeout", "1", "--request-timeout", "3", "validate",
                          base + where], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    lines = run.stderr.splitlines()
    peak = int(lines[-1].split()[1])
    assert run.returncode == 2 and says in run.stdout + run.stderr, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and seconds < 20 and peak < 600 * 2**20, (seconds, peak / 2**20)


def test_credentials_are_not_sent_to_another_host_on_redirect(hostile):
    base, first, second = hostile
    options = {"headers": {"Authorization": "Bearer secret-token"}}
    with expertdata.load(f"{base}/redirect/c.zarr", storage_options=options) as data:
        assert data.n_episodes > 0
    assert any(headers.get("Authorization") == "Bearer secret-token" for _, headers in first)
    assert second and not any("Authorization" in headers for _, headers in second)


def test_a_failed_download_leaves_nothing_in_the_cache(hostile, monkeypatch, tmp_path):
    base, _, _ = hostile
    expertdata.convert(CARTPOLE, tmp_path / "c.npz")
    monkeypatch.setenv("EXPERTDATA_CACHE", str(tmp_path / "cache"))
    result = cli("--timeout", "1", "--request-timeout", "3", "info", f"{base}/trickle/c.npz")
    assert result.returncode == 2 and result.stderr.count("\n") == 2  # the download line, then the error
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] if (tmp_path / "cache").exists() else []
    assert left == []
