"""Beyond one machine: convert, validate, verify and record on a Dask cluster of separate processes over TCP on
loopback (as on several machines), the same bytes as one process; and the faults: a worker killed in a task, the
client killed, the scheduler unreachable, a path a worker cannot read."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import expertdata
from expertdata.io.cluster import cluster, run, task_prefixes

from .conftest import BRIDGE, MINARI_ARROW, invoke, make_arrays
from .hostile_inputs import lerobot21

pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "fixtures" / "cartpole.npz"
DASK = Path(sys.executable).parent / "dask"


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory):
    """A scheduler and two single-threaded workers, each its own process, speaking TCP on loopback; the workers run
    in a folder of their own (a relative path of the test's means nothing to them)."""
    folder = tmp_path_factory.mktemp("cluster")
    file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([str(DASK), "scheduler", "--scheduler-file", str(file), "--host", "127.0.0.1",
                                  "--port", "0", "--dashboard-address", "127.0.0.1:0"], **quiet)
    deadline = time.monotonic() + 60
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    (folder / "elsewhere").mkdir()
    workers = subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(file), "--nworkers", "2", "--nthreads",
                                "1", "--no-dashboard"], cwd=folder / "elsewhere", start_new_session=True, **quiet)
    import distributed

    with distributed.Client(scheduler_file=str(file), timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    yield str(file)
    os.killpg(workers.pid, signal.SIGTERM)
    scheduler.terminate()
    workers.wait(timeout=60)
    scheduler.wait(timeout=60)


def _digest(path) -> str:
    with expertdata.load(path) as data:
        return data.metadata.get("digest") or expertdata.digest(data)


def test_convert_validate_verify_and_record_on_a_cluster_give_one_process_bytes(scheduler_file, tmp_path):
    import distributed

    on = ("--scheduler-file", scheduler_file)
    serial = expertdata.convert(CARTPOLE, tmp_path / "one.zarr").digest
    assert invoke("convert", CARTPOLE, tmp_path / "c.zarr", "--chunk-rows", "300", *on).returncode == 0
    assert invoke("convert", CARTPOLE, tmp_path / "c.h5", *on).returncode == 0
    assert _digest(tmp_path / "c.zarr") == _digest(tmp_path / "c.h5") == serial
    with expertdata.load(tmp_path / "c.zarr") as parallel, expertdata.load(tmp_path / "one.zarr") as one:
        assert parallel.metadata["episode_digests"] == one.metadata["episode_digests"]
    robot = lerobot21(tmp_path / "robot", episodes=6, frames=5)
    assert invoke("convert", robot, tmp_path / "robot.zarr", *on).returncode == 0
    assert _digest(tmp_path / "robot.zarr") == expertdata.convert(robot, tmp_path / "robot-one.zarr").digest
    assert invoke("verify", tmp_path / "c.zarr", "--digest", serial, *on).returncode == 0
    broken = tmp_path / "broken.npz"
    arrays = make_arrays((6, 6, 6))
    arrays["obs"][3] = np.nan
    arrays["actions"][12:18] = arrays["actions"][:6]
    arrays["obs"][12:18] = arrays["obs"][:6]
    np.savez(broken, **arrays)
    alone, spread = invoke("validate", broken, "--json"), invoke("validate", broken, "--json", *on)
    assert alone.returncode == spread.returncode == 1 and json.loads(alone.stdout) == json.loads(spread.stdout)
    assert invoke("record", "CartPole-v1", "--expert", "cartpole", "--episodes", "12", "--out", tmp_path / "r1.zarr",
                  "--seed", "3").returncode == 0
    assert invoke("record", "CartPole-v1", "--expert", "cartpole", "--episodes", "12", "--out", tmp_path / "r2.zarr",
                  "--seed", "3", *on).returncode == 0
    assert _digest(tmp_path / "r1.zarr") == _digest(tmp_path / "r2.zarr")
    with distributed.Client(scheduler_file=scheduler_file) as client:  # the scheduler ran the work
        assert {"expertdata-write-block", "expertdata-validate-field", "expertdata-hash-block",
                "expertdata-record-block"} <= task_prefixes(client)


def test_a_destination_where_it_lives_is_written_in_place_by_the_workers(scheduler_file, s3, tmp_path, monkeypatch):
    import distributed

    from expertdata.io import remote

    bucket, options = s3
    put = remote.put
    sent: list[str] = []  # what the client itself uploads

    def watched(folder, url, storage_options, root=True):
        sent.extend(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        put(folder, url, storage_options, root)

    monkeypatch.setattr(remote, "put", watched)
    serial = expertdata.convert(CARTPOLE, tmp_path / "one.zarr").digest
    with distributed.Client(scheduler_file=scheduler_file) as client:
        written = expertdata.convert(CARTPOLE, f"{bucket}/c.zarr", storage_options=options, client=client,
                                     options=expertdata.WriteOptions(chunk_rows=300))
        again = pytest.raises(expertdata.UsageError, expertdata.convert, CARTPOLE, f"{bucket}/c.zarr",
                              storage_options=options, client=client)
    assert written.digest == serial and "already exists" in str(again.value)
    with expertdata.load(f"{bucket}/c.zarr", storage_options=options) as there:
        assert expertdata.digest(there) == serial and there["obs"].shape == (5000, 4)
    assert "episode_returns/c/0" in sent and not any(name.startswith(("obs/c", "actions/c")) for name in sent)

    def cut_before_the_commit(folder, url, storage_options, root=True):
        if root:
            raise ConnectionResetError("the connection was reset")
        put(folder, url, storage_options, root)

    monkeypatch.setattr(remote, "put", cut_before_the_commit)
    with distributed.Client(scheduler_file=scheduler_file) as client:
        pytest.raises(ConnectionResetError, expertdata.convert, CARTPOLE, f"{bucket}/d.zarr", storage_options=options,
                      client=client)
    import s3fs

    there = s3fs.S3FileSystem(**options)
    there.invalidate_cache()
    assert there.exists("bucket/c.zarr/obs/c/0") and not there.exists("bucket/d.zarr")  # the workers' chunks gone


def test_select_and_merge_on_a_cluster_give_one_process_bytes(scheduler_file, tmp_path):
    on = ("--scheduler-file", scheduler_file)
    runs = (("s", ("select", CARTPOLE), ("--episodes", "1,3")), ("m", ("merge", CARTPOLE, CARTPOLE), ()))
    for name, args, chosen in runs:
        assert invoke(*args, tmp_path / f"{name}1.zarr", *chosen).returncode == 0
        spread = invoke(*args, tmp_path / f"{name}2.zarr", *chosen, *on)
        assert spread.returncode == 0, spread.stderr
        assert _digest(tmp_path / f"{name}1.zarr") == _digest(tmp_path / f"{name}2.zarr")


@pytest.mark.skipif(not (BRIDGE.is_dir() and MINARI_ARROW.is_dir()), reason=f"peer fixtures not found at {BRIDGE}")
@pytest.mark.parametrize("source", [BRIDGE, MINARI_ARROW], ids=["rlds", "minari-arrow"])
def test_a_peer_import_reads_each_block_s_episodes_alone_on_its_worker(scheduler_file, tmp_path, source):
    from expertdata.io import parallel

    with expertdata.load(source) as data:  # what a block's task opens on its worker: its episodes' records alone
        source_of_block = parallel.block_source(data, (5, 10), "a-command")
        assert source_of_block.kwargs["episodes"] == [5, 6, 7, 8, 9] and source_of_block.token is None
        rows = slice(int(data.episodes.starts[5]), int(data.episodes.ends[9]))
        with source_of_block.open() as block:
            assert block.n_episodes == 5 and np.array_equal(block["actions"][:], data["actions"][rows])
    spread = invoke("convert", source, tmp_path / "spread.zarr", "--scheduler-file", scheduler_file)
    assert spread.returncode == 0, spread.stderr
    assert _digest(tmp_path / "spread.zarr") == expertdata.convert(source, tmp_path / "one.zarr").digest


def test_a_path_only_the_client_sees_is_one_line(scheduler_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expertdata.convert(CARTPOLE, tmp_path / "here.zarr")
    result = invoke("convert", "here.zarr", "there.zarr", "--scheduler-file", scheduler_file)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "a worker cannot read it" in result.stderr and not (tmp_path / "there.zarr").exists()


def _dies_once(marker: str, value: int) -> int:
    """A task whose first run kills its worker's process."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return value * 2


def test_a_task_whose_worker_dies_runs_again_elsewhere(tmp_path):
    with cluster(workers=2) as client:
        assert run(client, _dies_once, [(str(tmp_path / "marker"), 21)], "dies-once") == [42]


def _environment() -> tuple:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("EXPERTDATA_DECODE_THREADS")


def test_a_lone_local_worker_allocates_and_decodes_as_one_process_does(monkeypatch):
    """Dask's default MALLOC_TRIM_THRESHOLD_ made the same blocks compute 20-40% slower; a lone worker gets ffmpeg's
    choice of decoding threads, as one process does (docs/results/scale.md)."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("EXPERTDATA_DECODE_THREADS", raising=False)
    with cluster(workers=1) as client:
        assert list(client.run(_environment).values()) == [(None, "0")]


def _big(folder: Path) -> Path:
    rows = 200_000
    arrays = {**make_arrays((rows // 2, rows // 2)), "obs": np.random.default_rng(0).random((rows, 64), np.float32)}
    data = expertdata.Dataset.from_arrays({}, None, **arrays)
    return expertdata.save(data, folder / "big.zarr", options=expertdata.WriteOptions(chunk_rows=8192,
                                                                                       compression="none")).path


def test_the_client_killed_leaves_no_dataset_and_its_temporaries_are_reaped(tmp_path):
    source = _big(tmp_path)
    command = [sys.executable, "-m", "expertdata", "convert", str(source), str(tmp_path / "out.zarr"), "--workers", "2"]
    client = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".partial-") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(client.pid, signal.SIGKILL)  # the client and the local cluster it started
    client.wait(timeout=60)
    assert not (tmp_path / "out.zarr").exists()
    assert expertdata.convert(source, tmp_path / "out.zarr").digest == _digest(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zarr", "out.zarr"]  # the killed one's reaped


def test_an_unreachable_scheduler_is_one_line_and_nothing_is_written(tmp_path):
    result = invoke("convert", CARTPOLE, tmp_path / "x.zarr", "--scheduler", "tcp://127.0.0.1:1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot reach the Dask scheduler" in \
        result.stderr
    missing = invoke("validate", CARTPOLE, "--scheduler-file", tmp_path / "none.json")
    assert missing.returncode == 2 and "no scheduler file there" in missing.stderr
    assert list(tmp_path.iterdir()) == []


class _Counted:
    """An array that remembers the most rows read at once."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows, self.dtype, self.shape, self.most = rows, rows.dtype, rows.shape, 0

    def __getitem__(self, index: slice) -> np.ndarray:
        self.most = max(self.most, index.stop - index.start)
        return self.rows[index]


def test_a_task_holds_a_chunk_of_rows_at_a_time_and_hashes_episodes_as_one_process(tmp_path):
    from expertdata.core.digest import rows_hash
    from expertdata.io.parallel import write_block

    arrays = make_arrays((1000,))
    obs = arrays["obs"]
    field = _Counted(obs)
    starts, ends = np.array([100, 130, 130, 600]), np.array([130, 130, 600, 950])  # an empty episode too
    hashes, pieces = write_block({"obs": field}, None, {"obs": obs.dtype}, {}, (0, 4), (starts, ends))["obs"]
    assert hashes == [rows_hash(obs[s:e]) for s, e in zip(starts, ends)] and pieces == []
    field.most = 0
    written = expertdata.Dataset.from_arrays({}, None, **{**arrays, "obs": np.zeros_like(obs)})
    expertdata.save(written, tmp_path / "w.zarr", options=expertdata.WriteOptions(chunk_rows=64))
    hashes, pieces = write_block({"obs": field}, (str(tmp_path / "w.zarr"), None), {"obs": obs.dtype}, {"obs": 64},
                                 (0, 4), (starts, ends))["obs"]
    assert field.most == 64 and hashes == [rows_hash(obs[s:e]) for s, e in zip(starts, ends)]
    assert [(start, len(rows)) for start, rows in pieces] == [(100, 28), (896, 54)]  # the shared chunks' rows
    with expertdata.load(tmp_path / "w.zarr") as back:
        assert np.array_equal(back["obs"][128:896], obs[128:896])


def test_text_a_block_reads_narrower_than_the_whole_is_hashed_at_the_whole_s_width():
    from expertdata.core.digest import rows_hash
    from expertdata.io.parallel import write_block

    task = np.array(["push", "push", "lift the red block"])  # the whole dataset's column
    alone = np.array(["push", "push"])  # what a block of the first episode reads: a narrower dtype
    found = write_block({"task": alone}, None, {"task": task.dtype}, {}, (0, 1), (np.array([0]), np.array([2])))
    assert alone.dtype != task.dtype and found["task"][0] == [rows_hash(task[:2])]


def test_a_source_read_whole_is_opened_once_per_worker_for_a_command_and_closed_at_its_end():
    import dataclasses

    from expertdata.core.digest import rows_hash
    from expertdata.io import parallel

    opened, closed = [], []

    def counting_load(path):  # as a source that is parsed whole when it opens
        opened.append(path)
        return dataclasses.replace(expertdata.load(path), closer=lambda: closed.append(path))

    data = dataclasses.replace(expertdata.load(CARTPOLE), origin=(counting_load, (CARTPOLE,), {}))
    blocks = parallel.episode_blocks(data, data.n_transitions // 3)
    index, dtypes, token = data.episodes, {"actions": np.dtype(data["actions"].dtype)}, "a-command"
    for block in blocks:
        found = parallel.write_block(parallel.block_source(data, block, token), None, dtypes, {}, block,
                                     (index.starts[block[0]:block[1]], index.ends[block[0]:block[1]]))
        assert found["actions"][0] == [rows_hash(data["actions"][s:e])
                                       for s, e in zip(index.starts[block[0]:block[1]], index.ends[block[0]:block[1]])]
    assert len(blocks) >= 3 and opened == [CARTPOLE] and closed == []
    other = threading.Thread(target=lambda: parallel.block_source(data, blocks[0], token).open())
    other.start()
    other.join()  # a worker's second thread reads with a source of its own (readers keep state)
    assert opened == [CARTPOLE, CARTPOLE]
    parallel._forget(token)
    assert closed == [CARTPOLE, CARTPOLE] and not parallel._KEPT


def test_a_cluster_gone_at_the_end_of_a_command_raises_nothing_more():
    from distributed.comm.core import CommClosedError

    from expertdata.io import parallel
    from expertdata.io.cluster import ClusterError

    class Gone:
        def run(self, *args, **kwargs):
            raise CommClosedError("in <TCP (closed)>: Stream is closed")

    with pytest.raises(ClusterError, match="lost the work"):  # the error the command was raising is the one seen
        with parallel.kept_open(Gone()):
            raise ClusterError("the cluster lost the work (CommClosedError); nothing was written")


def test_a_dataset_of_a_few_blocks_is_cut_in_a_multiple_of_the_workers():
    """Three blocks on two workers leave one worker idle while the other reads the last: the RLDS fixture 32 times
    over (8,000 rows, 682 a chunk of its images) made 3 blocks of 4 chunks; it makes 4 on 2 workers."""
    from expertdata.io import parallel

    assert parallel.balanced_block_rows(8000, 2728, 1) == 2667 and parallel.balanced_block_rows(8000, 2728, 2) == 2000
    assert parallel.balanced_block_rows(100, 1000, 4) == 25 and parallel.balanced_block_rows(0, 10, 2) == 1
    data = expertdata.load(CARTPOLE)  # 10 episodes of 500 rows
    assert len(parallel.episode_blocks(data, 2000)) == 3  # 2,000 + 2,000 + 1,000 rows
    assert len(parallel.episode_blocks(data, parallel.balanced_block_rows(data.n_transitions, 2000, 2))) == 4

    class TwoWorkers:
        def scheduler_info(self):
            return {"workers": {"tcp://a": {}, "tcp://b": {}}}

    # what a write and a hash of the episodes (verify, validate) share: 10 episodes make 4 blocks, not 3 or 5
    assert parallel._blocks(TwoWorkers(), data, 2000) == [(0, 3), (3, 6), (6, 9), (9, 10)]
