"""Peer formats: real D4RL and imitation files in, through every format of ours, and back out exactly; our
datasets out in their layouts, loaded as their own loaders load them; broken peer files refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import expertdata
from expertdata.core.errors import UnreadableError, UsageError

from .conftest import IMITATION, MINARI_ARROW, MINARI_HDF5, PUSHT, SB2_PENDULUM, SHARED_FIXTURES, SUFFIXES, assert_same_arrays, run_cli

DOOR = SHARED_FIXTURES / "d4rl" / "door-v0_demos_clipped.hdf5"
MAZE = SHARED_FIXTURES / "d4rl" / "maze2d-open-sparse.hdf5"
needs_peers = pytest.mark.skipif(not DOOR.exists(), reason=f"peer fixtures not found at {SHARED_FIXTURES}")
OURS = ("npz", "hdf5", "zarr", "zarr-zip")
CARTPOLE = Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz"


def _h5_arrays(path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}

    def take(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            found[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(take)
    return found


def _through(source, mid, back, peer: str):
    """Convert a peer file into one of our formats, and that back into the peer's."""
    expertdata.convert(source, mid)
    expertdata.convert(mid, back, format=peer)
    return mid, back


@needs_peers
def test_a_d4rl_file_reads_as_episodes_cut_at_its_flags():
    direct = _h5_arrays(DOOR)
    with expertdata.load(DOOR) as door:
        assert door.format == "d4rl" and (door.n_transitions, door.n_episodes) == (6729, 50)
        ends = np.flatnonzero(direct["terminals"] | direct["timeouts"])
        assert np.array_equal(np.flatnonzero(door["episode_starts"][:]), np.append(0, ends[:-1] + 1))
        assert np.array_equal(door["obs"][:], direct["observations"])
        assert np.array_equal(door["terminated"][:], direct["terminals"])
        assert np.array_equal(door["truncated"][:], direct["timeouts"])
        assert np.array_equal(door["infos.qpos"][:], direct["infos/qpos"])
        returns = [direct["rewards"][a:b + 1].sum(dtype=np.float64) for a, b in zip(np.append(0, ends[:-1] + 1), ends)]
        assert np.allclose(door["episode_returns"][:], returns)


@needs_peers
def test_d4rl_flags_that_contradict_the_observations_are_reported_with_their_rows():
    report = expertdata.validate(DOOR)
    disagree = [p for p in report.problems if p.rule.id == "W107"]
    assert report.ok and len(disagree) == 1
    assert disagree[0].position == 199 and "rows 199, 499, 799" in disagree[0].message
    assert "'terminals' ends it at row 299" in disagree[0].message
    with expertdata.load(DOOR) as door:  # nothing fixed: the timeouts still cut where they say
        assert door["episode_starts"][200]


@needs_peers
@pytest.mark.parametrize("ours", OURS)
def test_d4rl_through_each_of_our_formats_and_back_is_exact(tmp_path, ours):
    mid, back = _through(DOOR, tmp_path / f"door{SUFFIXES[ours]}", tmp_path / "door.hdf5", "d4rl")
    original, written = _h5_arrays(DOOR), _h5_arrays(back)
    for name, array in original.items():
        assert written[name].dtype == array.dtype and np.array_equal(written[name], array), name
    with expertdata.load(DOOR) as a, expertdata.load(back) as b:
        assert_same_arrays(a, b)
    with expertdata.load(mid) as copy:
        entry = copy.metadata["lineage"][-1]
        assert (entry["from_format"], entry["source"]) == ("d4rl", DOOR.name)


@needs_peers
def test_a_truncated_d4rl_file_is_refused_in_one_line(tmp_path):
    result = run_cli("convert", MAZE, tmp_path / "maze.zarr")
    assert result.returncode == 2 and "truncated file" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_our_dataset_written_for_d4rl_has_next_observations_and_flags(tmp_path):
    out = tmp_path / "cartpole.hdf5"
    expertdata.convert(CARTPOLE, out, format="d4rl")
    written = _h5_arrays(out)
    with expertdata.load(CARTPOLE) as source:
        obs, final = source["obs"][:], source["final_obs"][:]
        starts = np.flatnonzero(source["episode_starts"][:])
        last = np.append(starts[1:] - 1, len(obs) - 1)
        expected = np.concatenate([obs[1:], obs[-1:]])
        expected[last] = final
        assert np.array_equal(written["next_observations"], expected)
        assert np.array_equal(written["observations"], obs)
        assert np.array_equal(written["terminals"], source["terminated"][:])
        assert np.array_equal(written["timeouts"], source["truncated"][:])
        with expertdata.load(out) as back:
            assert_same_arrays(source, back)


@needs_peers
def test_flags_an_sb2_file_never_recorded_are_made_up_for_d4rl_and_said_so(tmp_path):
    out = tmp_path / "pendulum.hdf5"
    result = run_cli("convert", SB2_PENDULUM, out, "--to", "d4rl")
    assert result.returncode == 0 and "'timeouts' is set at every episode's end" in result.stderr
    written = _h5_arrays(out)
    assert written["timeouts"].sum() == 100 and not written["terminals"].any()
    with expertdata.load(out) as back:  # made-up flags are dropped again on reading
        assert "terminated" not in back and "truncated" not in back and back.n_episodes == 100


@needs_peers
def test_an_imitation_file_reads_with_final_observations_and_its_infos_skipped():
    with np.load(IMITATION) as direct:
        obs, acts, indices = direct["obs"], direct["acts"], direct["indices"]
        terminal = direct["terminal"]
    pieces = np.split(obs, indices + np.arange(len(indices)) + 1)
    with expertdata.load(IMITATION) as data:
        assert data.format == "imitation" and (data.n_transitions, data.n_episodes) == (26964, 57)
        assert np.array_equal(data["obs"][:], np.concatenate([p[:-1] for p in pieces]))
        assert np.array_equal(data["final_obs"][:], np.stack([p[-1] for p in pieces]))
        assert np.array_equal(data["actions"][:], acts) and np.array_equal(data["terminal"][:], terminal)
        assert "infos" not in data and any("'infos' is skipped" in note for note in data.notes)
    assert [p.rule.id for p in expertdata.validate(IMITATION).problems] == ["W108", "W109"]


@needs_peers
@pytest.mark.parametrize("ours", OURS)
def test_imitation_through_each_of_our_formats_and_back_loads_with_imitations_own_logic(tmp_path, ours):
    _, back = _through(IMITATION, tmp_path / f"rollouts{SUFFIXES[ours]}", tmp_path / "imitation.npz", "imitation")
    with np.load(IMITATION) as original, np.load(back, allow_pickle=True) as written:  # imitation's types.load
        for name in ("obs", "acts", "rews", "indices", "terminal"):
            assert written[name].dtype == original[name].dtype and np.array_equal(written[name], original[name])
        trajectories = len(written["indices"]) + 1
        assert len(np.split(written["infos"], written["indices"])) == trajectories
    with expertdata.load(IMITATION) as a, expertdata.load(back) as b:
        assert_same_arrays(a, b)


@needs_peers
def test_writing_imitation_without_final_observations_is_refused(tmp_path):
    out = tmp_path / "pendulum.npz"
    with pytest.raises(UsageError, match="no final_obs"):
        expertdata.convert(SB2_PENDULUM, out, format="imitation")
    assert not out.exists()


def _d4rl_file(path, rows=10, **changes) -> None:
    ends = np.eye(rows, dtype=bool)
    arrays = {"observations": np.zeros((rows, 3), np.float32), "actions": np.zeros((rows, 1), np.float32),
              "rewards": np.ones(rows, np.float32), "terminals": ends[4] | ends[-1], "timeouts": np.zeros(rows, bool),
              **changes}
    with h5py.File(path, "w") as f:
        for name, array in arrays.items():
            if array is not None:
                f[name] = array


def test_broken_peer_files_are_refused_in_one_line(tmp_path):
    _d4rl_file(tmp_path / "short_flags.hdf5", timeouts=np.zeros(7, bool))
    _d4rl_file(tmp_path / "no_flags.hdf5", terminals=None, timeouts=None)
    np.savez(tmp_path / "bad_obs.npz", obs=np.zeros((5, 2)), acts=np.zeros(4), indices=np.array([2]),
             terminal=np.ones(2, bool), rews=np.ones(4))
    np.savez(tmp_path / "bad_indices.npz", obs=np.zeros((6, 2)), acts=np.zeros(4), indices=np.array([9]),
             terminal=np.ones(2, bool), rews=np.ones(4))
    for name, message in [("short_flags.hdf5", "'timeouts' has 7 rows, 'observations' 10"),
                          ("no_flags.hdf5", "episodes cannot be told apart"),
                          ("bad_obs.npz", "'obs' has 5 rows; 2 trajectories of 4 actions need 6"),
                          ("bad_indices.npz", "'indices' must be increasing")]:
        with pytest.raises(UnreadableError, match=message):
            expertdata.load(tmp_path / name)
        result = run_cli("convert", tmp_path / name, tmp_path / "out.zarr")
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert not (tmp_path / "out.zarr").exists()


def test_a_small_d4rl_file_reads_and_names_the_cut_last_episode(tmp_path):
    _d4rl_file(tmp_path / "cut.hdf5", terminals=np.eye(10, dtype=bool)[4])
    with expertdata.load(tmp_path / "cut.hdf5") as data:
        assert data.n_episodes == 2 and list(data["episode_returns"][:]) == [5.0, 5.0]
    assert "W101" in [p.rule.id for p in expertdata.validate(tmp_path / "cut.hdf5").problems]


def test_formats_lists_every_format_with_what_it_keeps():
    result = run_cli("formats")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == set(expertdata.io.formats.names()) and "peer" in rows["d4rl"] and "infos is skipped" in rows[
        "imitation"]




@needs_peers
def test_a_minari_dataset_reads_with_exact_final_observations_spaces_and_seeds():
    with h5py.File(MINARI_HDF5 / "data" / "main_data.hdf5", "r") as f:
        episodes = [f[f"episode_{i}"] for i in range(20)]
        obs = np.concatenate([e["observations"][:-1] for e in episodes])
        final = np.stack([e["observations"][-1] for e in episodes])
        truncations = np.concatenate([e["truncations"][()] for e in episodes])
        seeds = [e.attrs["seed"] for e in episodes]
    with expertdata.load(MINARI_HDF5) as data:
        assert data.format == "minari" and (data.n_transitions, data.n_episodes) == (10000, 20)
        assert np.array_equal(data["obs"][:], obs) and np.array_equal(data["final_obs"][:], final)
        assert np.array_equal(data["truncated"][:], truncations) and list(data["seed"][:]) == seeds
        assert data.metadata["env_id"] == "CartPole-v1" and data.metadata["max_episode_steps"] == 500
        assert data.metadata["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
        assert data.metadata["observation_space"]["high"][1] == 3.4028235e38  # float32's largest, read from JSON
        assert data.metadata["provenance"]["minari"]["dataset_id"] == "cartpole/expert-v0"
    assert expertdata.validate(MINARI_HDF5).ok


@needs_peers
def test_a_minari_dataset_id_is_found_where_minari_looks(monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(SHARED_FIXTURES / "minari"))
    with expertdata.load("cartpole/expert-v0") as data:
        assert data.format == "minari" and data.n_episodes == 20
    result = run_cli("info", "cartpole/expert-v0", "--no-digest")
    assert result.returncode == 0 and "format                minari" in result.stdout
    assert run_cli("info", "cartpole/../../etc-v0").returncode == 2


@needs_peers
@pytest.mark.parametrize("ours", OURS)
def test_minari_through_each_of_our_formats_and_back_loads_with_minari_itself(tmp_path, ours, monkeypatch):
    minari = pytest.importorskip("minari")
    (tmp_path / "datasets" / "expertdata").mkdir(parents=True)
    _, back = _through(MINARI_HDF5, tmp_path / f"cartpole{SUFFIXES[ours]}",
                       tmp_path / "datasets" / "expertdata" / "cartpole-v0", "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    _same_in_minari(minari.MinariDataset(MINARI_HDF5 / "data"), minari.load_dataset("expertdata/cartpole-v0"))
    with expertdata.load(MINARI_HDF5) as a, expertdata.load(back) as b:
        assert_same_arrays(a, b)


def _same_in_minari(theirs, ours) -> None:
    """Minari reads the same episodes from both datasets (``minari.MinariDataset``s)."""
    assert (ours.total_episodes, ours.total_steps) == (theirs.total_episodes, theirs.total_steps)
    assert ours.observation_space == theirs.observation_space and ours.action_space == theirs.action_space
    for a, b in zip(theirs.iterate_episodes(), ours.iterate_episodes()):
        for name in ("observations", "actions", "rewards", "terminations", "truncations"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_writing_minari_needs_final_observations_and_spaces(tmp_path):
    data = expertdata.Dataset.from_arrays(obs=np.zeros((3, 2), np.float32), actions=np.zeros((3, 1), np.float32),
                                          rewards=np.ones(3), episode_starts=np.array([1, 0, 0], bool),
                                          episode_returns=np.array([3.0]), final_obs=np.zeros((1, 2), np.float32))
    with pytest.raises(UsageError, match="observation_space and action_space"):
        expertdata.save(data, tmp_path / "out", format="minari")
    with pytest.raises(UsageError, match="no final_obs"):
        expertdata.save(expertdata.Dataset.from_arrays(**{k: v[:] for k, v in data.fields.items() if k != "final_obs"}),
                        tmp_path / "out", format="minari")
    assert not list(tmp_path.iterdir())




@needs_peers
def test_a_minari_arrow_dataset_reads_as_minari_itself_reads_it(tmp_path):
    minari = pytest.importorskip("minari")
    pytest.importorskip("pyarrow")
    theirs = list(minari.MinariDataset(MINARI_ARROW / "data").iterate_episodes())
    with expertdata.load(MINARI_ARROW) as data:
        assert (data.n_transitions, data.n_episodes) == (2000, 10)
        starts = np.flatnonzero(data["episode_starts"][:])
        for e, episode in enumerate(theirs):
            rows = slice(starts[e], starts[e] + len(episode.actions))
            assert np.array_equal(data["obs"][rows], episode.observations[:-1])
            assert np.array_equal(data["final_obs"][e:e + 1][0], episode.observations[-1])
            for ours, name in (("actions", "actions"), ("rewards", "rewards"), ("truncated", "truncations")):
                assert np.array_equal(data[ours][rows], getattr(episode, name)), ours
        assert list(data["seed"][:]) == list(range(10))
    assert "W106" in [p.rule.id for p in expertdata.validate(MINARI_ARROW).problems]  # Arrow keeps no checksums


@needs_peers
def test_chosen_minari_episodes_are_read_alone(tmp_path):
    """What a cluster's worker opens of its block: the chosen episodes' Arrow files alone, so a damaged file elsewhere
    does not stop it (the whole read refuses it); an HDF5 dataset's chosen groups. Both as the whole read's rows."""
    import shutil

    pytest.importorskip("pyarrow")
    folder = tmp_path / "pendulum"
    shutil.copytree(MINARI_ARROW, folder)
    (folder / "data" / "0" / "part-0.arrow").write_bytes(b"ARROW1 but not really")
    with pytest.raises(UnreadableError, match="not a readable Arrow file"):
        expertdata.load(folder)
    for whole_at, chosen_at in ((MINARI_ARROW, folder), (MINARI_HDF5, MINARI_HDF5)):
        with expertdata.load(whole_at) as whole, expertdata.load(chosen_at, episodes=[2, 5, 9]) as alone:
            assert alone.n_episodes == 3 and "episode_id" not in alone.fields  # numbered 0, 1, ... as the whole
            picked = whole.take([2, 5, 9])
            for name in whole.fields:
                assert np.array_equal(picked[name][:], alone[name][:]), name
    with pytest.raises(UsageError, match="episode 10 is outside its episodes 0-9"):
        expertdata.load(folder, episodes=[10])


@needs_peers
def test_minari_arrow_through_our_formats_and_back_loads_with_minari_itself(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    pytest.importorskip("pyarrow")
    (tmp_path / "datasets" / "expertdata").mkdir(parents=True)
    _, back = _through(MINARI_ARROW, tmp_path / "pendulum.zarr", tmp_path / "datasets" / "expertdata" / "pendulum-v0",
                       "minari-arrow")
    assert expertdata.validate(tmp_path / "pendulum.zarr").ok
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    ours_back = minari.load_dataset("expertdata/pendulum-v0")
    assert ours_back.storage.metadata["data_format"] == "arrow"
    _same_in_minari(minari.MinariDataset(MINARI_ARROW / "data"), ours_back)
    with expertdata.load(MINARI_ARROW) as a, expertdata.load(back) as b:
        assert_same_arrays(a, b)


def test_a_minari_file_linked_out_of_its_folder_is_refused_unless_trusted(tmp_path):
    expertdata.convert(CARTPOLE, tmp_path / "elsewhere-v0", format="minari")
    (tmp_path / "linked-v0" / "data").mkdir(parents=True)
    for name in ("metadata.json", "main_data.hdf5"):
        (tmp_path / "linked-v0" / "data" / name).symlink_to(tmp_path / "elsewhere-v0" / "data" / name)
    with pytest.raises(expertdata.InvalidDatasetError, match="E015 outside-reference"):
        expertdata.load(tmp_path / "linked-v0")
    with expertdata.load(tmp_path / "linked-v0", trusted=True) as data:
        assert data.n_episodes == 10


def test_a_broken_minari_dataset_is_refused_in_one_line(tmp_path):
    expertdata.convert(CARTPOLE, tmp_path / "ok-v0", format="minari")
    with h5py.File(tmp_path / "ok-v0" / "data" / "main_data.hdf5", "a") as f:
        del f["episode_3/rewards"]
    with pytest.raises(UnreadableError, match="episode 3 has no 'rewards'"):
        expertdata.load(tmp_path / "ok-v0")
    (tmp_path / "dict-v0" / "data").mkdir(parents=True)
    (tmp_path / "dict-v0" / "data" / "main_data.hdf5").write_bytes(b"")
    (tmp_path / "dict-v0" / "data" / "metadata.json").write_text(json.dumps(
        {"data_format": "hdf5", "observation_space": json.dumps({"type": "Dict", "subspaces": {}})}))
    result = run_cli("info", tmp_path / "dict-v0")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "observation space: an empty Dict space holds nothing to store" in result.stderr
    (tmp_path / "dict-v0" / "data" / "metadata.json").write_text(json.dumps(
        {"data_format": "hdf5", "observation_space": json.dumps({"type": "Text", "max_length": 3})}))
    result = run_cli("info", tmp_path / "dict-v0")
    assert result.returncode == 2 and result.stderr.strip().endswith("observation space: a Text space cannot be stored")


def test_d4rl_flags_stored_as_numbers_read_as_booleans_and_other_values_are_refused(tmp_path):
    ends = np.zeros(10, np.float32)
    ends[[4, 9]] = 1.0
    _d4rl_file(tmp_path / "float.hdf5", terminals=ends)
    with expertdata.load(tmp_path / "float.hdf5") as data:
        assert data["terminated"].dtype == bool and list(np.flatnonzero(data["terminated"][:])) == [4, 9]
        assert data.n_episodes == 2
    ends[4] = 0.5
    _d4rl_file(tmp_path / "half.hdf5", terminals=ends)
    with pytest.raises(UnreadableError, match="values other than 0 and 1"):
        expertdata.load(tmp_path / "half.hdf5")


def test_a_d4rl_array_linked_out_of_the_file_is_refused_unless_trusted(tmp_path):
    with h5py.File(tmp_path / "elsewhere.h5", "w") as f:
        f["qpos"] = np.zeros((10, 2))
    _d4rl_file(tmp_path / "linked.hdf5")
    with h5py.File(tmp_path / "linked.hdf5", "a") as f:
        f["infos/qpos"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/qpos")
    report = expertdata.validate(tmp_path / "linked.hdf5")
    assert "E015" in [p.rule.id for p in report.problems] and report.exit_code == 1
    with expertdata.load(tmp_path / "linked.hdf5", trusted=True) as data:
        assert data["infos.qpos"].shape == (10, 2)




@needs_peers
def test_diffusion_policys_pusht_reads_without_rewards_and_with_every_array():
    import zarr

    group = zarr.open_group(str(PUSHT), mode="r", zarr_format=2)
    ends = group["meta/episode_ends"][:]
    with expertdata.load(PUSHT) as data:
        assert data.format == "diffusion_policy" and (data.n_transitions, data.n_episodes) == (25650, 206)
        assert not data.has_rewards and data.metadata["flags"] == "unknown"
        assert np.array_equal(np.flatnonzero(data["episode_starts"][:]), np.append(0, ends[:-1]))
        assert np.array_equal(data["obs"][:500], group["data/state"][:500])
        assert np.array_equal(data["actions"][:500], group["data/action"][:500])
        assert data["img"].shape == (25650, 96, 96, 3) and data.field_per("keypoint") == "step"



@pytest.fixture(scope="module")
def pusht_first(tmp_path_factory):
    """PushT's first two episodes in our Zarr (the whole file holds 2.8 GB of float32 images)."""
    first = tmp_path_factory.mktemp("pusht") / "first.zarr"
    with expertdata.load(PUSHT) as data:
        expertdata.save(data.take_episodes(2), first)
    return first


@needs_peers
def test_unknown_flags_are_not_guessed_at(pusht_first):
    problems = [p.rule.id for p in expertdata.validate(pusht_first).problems]
    assert "W101" not in problems and not any(p.startswith("E") for p in problems)  # the second episode is shorter


@needs_peers
def test_pusht_through_our_formats_and_back_slices_as_diffusion_policy_slices_it(tmp_path, pusht_first):
    import zarr

    first = pusht_first
    _, back = _through(first, tmp_path / "first.h5", tmp_path / "replay.zarr", "diffusion_policy")
    original, written = (zarr.open_group(str(p), mode="r", zarr_format=2) for p in (PUSHT, back))
    ends = written["meta/episode_ends"][:]
    assert list(ends) == list(original["meta/episode_ends"][:2])
    for key, ours in (("state", "obs"), ("action", "action"), ("img", "img"), ("keypoint", "keypoint")):
        episode = slice(ends[0], ends[1])  # the ReplayBuffer's get_episode(1)
        assert np.array_equal(written[f"data/{ours}"][episode], original[f"data/{key}"][episode]), key
    with expertdata.load(first) as a, expertdata.load(back) as b:
        assert_same_arrays(a, b)


def test_a_replay_buffer_whose_episode_ends_do_not_fit_its_data_is_refused(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w", zarr_format=2)
    group.create_array("data/state", data=np.ones((10, 2), np.float32))
    group.create_array("data/action", data=np.ones((10, 2), np.float32))
    group.create_array("meta/episode_ends", data=np.array([4, 12]))
    result = run_cli("info", tmp_path / "bad.zarr")
    assert result.returncode == 2 and "must increase and end at the data's 10 rows" in result.stderr


def test_a_replay_buffer_claiming_rows_it_does_not_store_is_refused_before_anything_is_allocated(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "claims.zarr"), mode="w", zarr_format=2)
    group.create_array("data/state", shape=(10**12, 2), chunks=(1000, 2), dtype="f4")
    group.create_array("data/action", shape=(10**12, 2), chunks=(1000, 2), dtype="f4")
    ends = group.create_array("meta/episode_ends", shape=(10**11,), chunks=(1000,), dtype="i8")
    ends[:3] = [4, 8, 10]
    result = run_cli("info", tmp_path / "claims.zarr")
    assert result.returncode == 2 and "chunks are not stored" in result.stderr
