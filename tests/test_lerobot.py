"""LeRobot datasets (versions 2.1 and 3.0), read from the real files in ../shared/fixtures/lerobot."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import expertdata

from .conftest import SHARED_FIXTURES

LEROBOT = SHARED_FIXTURES / "lerobot"
V21, V30 = LEROBOT / "v2.1_G1-policy-train", LEROBOT / "v3.0_record-test"
pytestmark = pytest.mark.skipif(not LEROBOT.is_dir(), reason=f"LeRobot fixtures not found at {LEROBOT}")
VIDEO = "videos/chunk-000/observation.images.cam_high/episode_000001.mp4"


def test_v3_reads_frames_episodes_tasks_and_fps_and_says_its_videos_are_missing():
    pq = pytest.importorskip("pyarrow.parquet")
    frames = pq.read_table(V30 / "data" / "chunk-000" / "file-000.parquet")
    episodes = pq.read_table(V30 / "meta" / "episodes" / "chunk-000" / "file-000.parquet",
                             columns=["episode_index", "length", "dataset_from_index"]).to_pylist()
    with expertdata.load(V30) as data:
        assert data.format == "lerobot" and (data.n_episodes, data.n_transitions) == (4, 1492)
        assert data.episodes.lengths.tolist() == [e["length"] for e in episodes]
        assert data.episodes.starts.tolist() == [e["dataset_from_index"] for e in episodes]
        state = np.asarray(frames.column("observation.state").to_pylist(), np.float32)
        assert np.array_equal(data["obs"][:], state) and data["actions"].shape == (1492, 6)
        assert data["task"][:].tolist() == ["Pick the orange cube and place it in the box"] * 4
        assert data.metadata["user"]["lerobot"] == {"codebase_version": "v3.0", "fps": 30.0,
                                                    "robot_type": "so101_follower"}
        assert not data.has_rewards and data.metadata["flags"] == "unknown"
        skipped = [n.split("'")[1] for n in data.notes if n.startswith("W108")]
        assert skipped == ["observation.images.front", "observation.images.top"]
    report = expertdata.validate(V30)
    assert report.errors == () and {p.rule.id for p in report.problems} == {"W108", "W109", "W111"}


def test_v21_reads_every_episode_and_converts_to_zarr_and_back_exactly(tmp_path):
    with expertdata.load(V21) as data:
        assert (data.n_episodes, data.n_transitions) == (100, 35965) and data["obs"].shape == (35965, 26)
        assert data.episodes.lengths[:3].tolist() == [479, 393, 343]
        assert data["task"][0] == "Pick up the yellow bottle on the table."
        digest = expertdata.digest(data)
    copy = expertdata.convert(V21, tmp_path / "g1.zarr")
    assert copy.digest == digest and expertdata.validate(copy.path).errors == ()
    assert expertdata.convert(copy.path, tmp_path / "g1.h5").digest == digest
    back = expertdata.convert(copy.path, tmp_path / "g1-lerobot", format="lerobot")  # written as 3.0
    assert back.digest == digest and json.loads((back.path / "meta" / "info.json").read_text())["fps"] == 30


def _one_episode(tmp_path, extra_rows=0):
    """The v2.1 fixture's episode 1 alone, with its AV1 video (the one the fixture keeps)."""
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("av")
    folder = tmp_path / "g1"
    (folder / "meta").mkdir(parents=True)
    shutil.copy(V21 / "meta" / "tasks.jsonl", folder / "meta" / "tasks.jsonl")
    table = pq.read_table(V21 / "data" / "chunk-000" / "episode_000001.parquet")
    if extra_rows:
        import pyarrow as pa

        table = pa.concat_tables([table, table.slice(table.num_rows - extra_rows)])
    info = json.loads((V21 / "meta" / "info.json").read_text())
    info.update(total_episodes=1, total_frames=table.num_rows)
    (folder / "meta" / "info.json").write_text(json.dumps(info))
    (folder / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(table, folder / "data" / "chunk-000" / "episode_000001.parquet")
    (folder / "meta" / "episodes.jsonl").write_text(json.dumps(
        {"episode_index": 1, "tasks": ["Pick up the yellow bottle on the table."], "length": table.num_rows}) + "\n")
    (folder / VIDEO).parent.mkdir(parents=True)
    shutil.copy(V21 / VIDEO, folder / VIDEO)
    return folder


def test_video_frames_are_decoded_lazily_one_per_row(tmp_path):
    folder = _one_episode(tmp_path)
    with expertdata.load(folder) as data:
        assert list(data.leaf_fields()) == ["images.cam_high", "state"] and data.notes == ()
        video = data["obs/images.cam_high"]
        assert video.shape == (393, 480, 640, 3) and video.dtype == np.uint8
        first = video[0:1][0]
        assert abs(float(first.mean()) - 114.117) < 0.01
        frames = video[0:393]  # in order: every frame once
        assert np.array_equal(frames[0], first) and frames[-1].std() > 0
        assert np.array_equal(video[390:393], frames[390:393])
        assert data.metadata["observation_space"]["spaces"]["images.cam_high"]["dtype"] == "|u1"


def test_decoding_threads_are_a_setting_that_changes_no_frame(tmp_path, monkeypatch):
    folder = _one_episode(tmp_path)
    with expertdata.load(folder) as data:
        chosen = data["obs/images.cam_high"][0:10]
    monkeypatch.setenv("EXPERTDATA_DECODE_THREADS", "1")  # what a cluster's local workers use
    with expertdata.load(folder) as data:
        assert np.array_equal(data["obs/images.cam_high"][0:10], chosen)
    monkeypatch.setenv("EXPERTDATA_DECODE_THREADS", "many")
    with expertdata.load(folder) as data, pytest.raises(expertdata.UsageError, match="a whole number of threads"):
        data["obs/images.cam_high"][0:1]


def test_an_episode_whose_video_is_short_of_its_rows_is_named(tmp_path):
    folder = _one_episode(tmp_path, extra_rows=7)
    with expertdata.load(folder) as data, pytest.raises(expertdata.UnreadableError,
                                                        match="episode 0's video holds 393 frames; its rows are 400"):
        data["obs/images.cam_high"][0:400]


def test_timestamps_off_fps_are_reported(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    folder = tmp_path / "v30"
    shutil.copytree(V30, folder)
    table = pq.read_table(folder / "data" / "chunk-000" / "file-000.parquet")
    stamps = table.column("timestamp").to_numpy().copy()
    stamps[400] += 0.5
    table = table.set_column(table.column_names.index("timestamp"), "timestamp", [stamps])
    pq.write_table(table, folder / "data" / "chunk-000" / "file-000.parquet")
    found = [p for p in expertdata.validate(folder).problems if p.rule.id == "W110"]
    assert len(found) == 1 and found[0].position == 400 and "the first in episode 1" in found[0].message


def test_export_v3_holds_the_formats_invariants_and_reads_back_exactly(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    av = pytest.importorskip("av")
    import gymnasium as gym

    from expertdata import envs, generate_expert_traj

    generate_expert_traj(envs.dict_cartpole_expert, tmp_path / "d.zarr",
                         gym.make(envs.DICT_ENV_ID, max_episode_steps=40),
                         n_episodes=3, seed=0)
    written = expertdata.convert(tmp_path / "d.zarr", tmp_path / "lerobot", format="lerobot")
    folder = written.path
    assert written.digest == expertdata.digest(expertdata.load(folder))  # lossless: the very dataset back
    info = json.loads((folder / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and (info["total_episodes"], info["total_frames"]) == (3, 120)
    assert info["features"]["observation.view"]["dtype"] == "video"
    assert info["features"]["observation.view"]["info"]["video.codec"] == "lossless"
    frames = pq.read_table(folder / "data" / "chunk-000" / "file-000.parquet")
    assert sorted(frames.column_names) == sorted(k for k, f in info["features"].items() if f["dtype"] != "video")
    episodes = pq.read_table(folder / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    index, frame = frames.column("episode_index").to_pylist(), frames.column("frame_index").to_pylist()
    stamps = frames.column("timestamp").to_numpy()
    for e in episodes:
        rows = range(e["dataset_from_index"], e["dataset_to_index"])
        assert e["length"] == len(rows) and {index[r] for r in rows} == {e["episode_index"]}
        assert [frame[r] for r in rows] == list(range(len(rows)))
        assert e["videos/observation.view/from_timestamp"] == pytest.approx(e["dataset_from_index"] / info["fps"])
    assert np.allclose(stamps, np.asarray(frame) / info["fps"])
    with av.open(str(folder / "videos" / "observation.view" / "chunk-000" / "file-000.mp4")) as video:
        assert sum(1 for _ in video.decode(video.streams.video[0])) == 120
    stats = json.loads((folder / "meta" / "stats.json").read_text())
    assert np.shape(stats["observation.view"]["mean"]) == (3, 1, 1) and stats["action"]["count"] == [120]
    assert pq.read_table(folder / "meta" / "tasks.parquet").column_names == ["task_index", "task"]


def test_a_lossy_video_codec_says_its_error(tmp_path):
    pytest.importorskip("av")
    import gymnasium as gym

    from expertdata import envs, generate_expert_traj

    generate_expert_traj(envs.dict_cartpole_expert, tmp_path / "d.zarr",
                         gym.make(envs.DICT_ENV_ID, max_episode_steps=40),
                         n_episodes=2, seed=0)
    result = expertdata.convert(tmp_path / "d.zarr", tmp_path / "lossy", format="lerobot",
                                options=expertdata.WriteOptions(compression="h264:30"))
    (note,) = [n for n in result.notes if n.startswith("observation.view")]
    assert note.startswith("observation.view: h264 at quality 30: mean absolute error") and "(of 255)" in note
    with expertdata.load(result.path) as back, expertdata.load(tmp_path / "d.zarr") as source:
        assert back["obs/view"].shape == source["obs/view"].shape  # the frames differ a little, as said
        assert np.array_equal(back["obs/cart"][:], source["obs/cart"][:])
        assert "digest" not in back.metadata and back.metadata["lineage"][-1]["lossy"] == "h264:30"
    assert expertdata.validate(result.path).errors == ()


def test_recorded_statistics_that_contradict_themselves_are_reported():
    (found,) = [p for p in expertdata.validate(V30).problems if p.rule.id == "W111"]
    assert "episode 0, 'observation.images.front'" in found.message  # per-episode image std of 0, min < max


def test_strict_refuses_a_dataset_whose_videos_are_missing_and_round_trips_v3(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "expertdata", "convert", str(V30), str(tmp_path / "d.zarr"),
                             "--strict"], capture_output=True, text=True)
    assert result.returncode == 2 and "W108 not-imported" in result.stderr and "strict" in result.stderr
    assert not (tmp_path / "d.zarr").exists()
    copy = expertdata.convert(V30, tmp_path / "d.zarr")
    back = expertdata.convert(copy.path, tmp_path / "again", format="lerobot")
    assert back.digest == copy.digest == expertdata.digest(expertdata.load(tmp_path / "again"))


def test_our_sidecar_is_read_without_trusting_its_headers(tmp_path):
    """Our fields beside an export (meta/expertdata/fields.npz) go through the npz backend's checked reader: a
    member whose header claims more rows than the archive holds is refused before anything is allocated."""
    import io
    import zipfile

    folder = expertdata.convert(Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz",
                                tmp_path / "lerobot", format="lerobot").path
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(folder / "meta" / "expertdata" / "fields.npz", "w") as archive:
        archive.writestr("episode_returns.npy", header.getvalue() + bytes(8))
    with pytest.raises(expertdata.UnreadableError, match="claims 1000000000000 rows of float64"):
        expertdata.load(folder)


def test_a_partial_download_selects_and_trains_on_its_complete_episodes(tmp_path):
    """LeRobot's usual partial download: every parquet, the videos of some episodes. Episodes chosen by number are
    read alone, so those whose videos are there keep their camera."""
    from .conftest import invoke
    from .hostile_inputs import lerobot21

    folder = lerobot21(tmp_path / "partial", episodes=4, frames=5, videos=(1, 3))
    with expertdata.load(folder) as whole:  # read whole, the camera is skipped, said so
        assert "obs/images.cam" not in whole.fields and "all there: 1, 3" in whole.notes[0]
    result = invoke("select", folder, tmp_path / "two.zarr", "--episodes", "1,3")
    assert result.returncode == 0, result.stderr
    with expertdata.load(tmp_path / "two.zarr") as two, expertdata.load(folder, episodes=[1, 3]) as chosen:
        assert two.n_episodes == 2 and two["obs/images.cam"].shape == (10, 16, 16, 3)
        assert np.array_equal(two["obs/images.cam"][:], chosen["obs/images.cam"][:])
        assert two.metadata["lineage"][-1]["criteria"] == {"episodes": "1,3"}
    data = expertdata.ExpertDataset(folder, episodes=[1, 3], verbose=0)
    assert data.num_traj == 2 and data.observations["images.cam"].shape == (10, 16, 16, 3)
    with pytest.raises(expertdata.UsageError, match="episode 4 is outside"):
        expertdata.load(folder, episodes=[4])
