"""robomimic's HDF5 layout, both ways. No real robomimic file is at hand (its datasets are gigabytes), so the
file here is written with h5py as robomimic's ``dataset_states_to_obs.py`` writes one; our export is read by
robomimic's own ``SequenceDataset`` (robomimic 0.3.0, installed for the test without its heavy dependencies)."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import expertdata
from expertdata import ExpertDataset

CARTPOLE = Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz"
DEMOS = [(0, 5), (1, 7), (10, 4), (2, 6)]  # (number, steps), stored out of order as robomimic files may be


def write_robomimic(path, demos=DEMOS, obs=True):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for number, steps in demos:
            demo = data.create_group(f"demo_{number}")
            if obs:
                leaves = {"robot0_eef_pos": rng.normal(size=(steps + 1, 3)),
                          "agentview_image": rng.integers(0, 255, (steps + 1, 8, 8, 3), dtype=np.uint8)}
                for key, rows in leaves.items():
                    demo.create_dataset(f"obs/{key}", data=rows[:-1])
                    demo.create_dataset(f"next_obs/{key}", data=rows[1:])
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            demo.create_dataset("rewards", data=np.r_[np.zeros(steps - 1), 1.0])
            demo.create_dataset("dones", data=np.r_[np.zeros(steps - 1, np.int64), 1])
            demo.create_dataset("states", data=rng.normal(size=(steps, 32)))
            demo.attrs["num_samples"] = steps
            demo.attrs["model_file"] = f"<mujoco model='demo {number}'/>"
        data.attrs["total"] = sum(steps for _, steps in demos)
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "env_type": 1, "env_kwargs": {"control_freq": 20}})
        f.create_dataset("mask/train", data=np.array([b"demo_0", b"demo_1", b"demo_10"]))
        f.create_dataset("mask/valid", data=np.array([b"demo_2"]))
    return path


def walk(group, prefix=""):
    out = {}
    for key, item in group.items():
        out.update(walk(item, f"{prefix}{key}/") if isinstance(item, h5py.Group) else {prefix + key: item[()]})
    return out


@pytest.fixture
def source(tmp_path):
    return write_robomimic(tmp_path / "low_dim.hdf5")


def test_import_orders_demos_by_number_and_keeps_every_array(source):
    with expertdata.load(source) as ds, h5py.File(source) as f:
        assert ds.format == "robomimic" and ds.n_episodes == 4 and ds.n_transitions == 22
        assert ds.episodes.lengths.tolist() == [5, 7, 6, 4]  # demo_0, demo_1, demo_2, demo_10
        assert ds["demo"][:].tolist() == [0, 1, 2, 10]
        assert np.array_equal(ds["obs/agentview_image"][5:12], f["data/demo_1/obs/agentview_image"][()])
        assert np.array_equal(ds["final_obs/robot0_eef_pos"][3], f["data/demo_10/next_obs/robot0_eef_pos"][-1])
        assert np.array_equal(ds["states"][18:22], f["data/demo_10/states"][()])
        assert ds["model_file"][3] == "<mujoco model='demo 10'/>"
        assert ds["episode_returns"][:].tolist() == [1.0] * 4
        space = ds.metadata["observation_space"]
        assert space["spaces"]["agentview_image"] == {"type": "Box", "shape": [8, 8, 3], "dtype": "|u1", "low": 0,
                                                      "high": 255}
        assert ds.metadata["action_space"]["low"] == -1.0 and ds.metadata["flags"] == "unknown"
        assert ds.metadata["splits"] == {"train": [0, 1, 3], "valid": [2]}
        assert ds.metadata["user"]["robomimic"]["env_args"]["env_kwargs"] == {"control_freq": 20}
    report = expertdata.validate(source)
    assert report.errors == () and {p.rule.id for p in report.problems} == {"W106", "W109"}  # no checksums, no card


def test_masks_are_named_splits_that_expert_dataset_serves(source, tmp_path):
    data = ExpertDataset(source, split=("train", "valid"), verbose=0, batch_size=4)
    assert data.split_size("train") == 5 + 7 + 4 and data.split_size("val") == 6
    with pytest.raises(expertdata.UsageError, match="no split named 'test' \\(it has 'train', 'valid'\\)"):
        ExpertDataset(source, split=("train", "test"), verbose=0)
    limited = ExpertDataset(source, split=("train", "valid"), traj_limitation=2, verbose=0)
    assert limited.split_size("train") == 12 and limited.split_size("val") == 0
    data.close()
    limited.close()
    first_two = expertdata.convert(source, tmp_path / "two.zarr", traj_limitation=2)
    assert expertdata.load(first_two.path).metadata["splits"] == {"train": [0, 1], "valid": []}
    with expertdata.load(source) as ds:
        fields = {name: array[:] for name, array in ds.fields.items()}
        with pytest.raises(expertdata.InvalidDatasetError, match=r"E013 bad-metadata: dataset: splits\['train'\] must "
                                                                 "list episode numbers from 0 to 3"):
            expertdata.Dataset.from_arrays({**ds.metadata, "splits": {"train": [4]}}, **fields)


def test_round_trip_through_zarr_gives_back_every_array_bit_for_bit(source, tmp_path):
    ours = expertdata.convert(source, tmp_path / "d.zarr")
    back = expertdata.convert(ours.path, tmp_path / "back.hdf5", format="robomimic")
    assert back.digest == ours.digest and back.notes == ()
    with h5py.File(source) as a, h5py.File(back.path) as b:
        original, written = walk(a), walk(b)
        assert set(original) <= set(written)
        assert {k for k in written if k not in original} == {f"data/demo_{n}/expertdata/episode_returns"
                                                             for n, _ in DEMOS}
        assert all(np.array_equal(original[k], written[k]) for k in original)
        assert json.loads(b["data"].attrs["env_args"]) == json.loads(a["data"].attrs["env_args"])
        assert b["data/demo_10"].attrs["num_samples"] == 4 and b["data"].attrs["total"] == 22


def test_a_dataset_of_ours_is_written_with_what_robomimic_needs(tmp_path):
    """CartPole demonstrations (a plain observation, no next_obs, no dones): robomimic's keys are made up and
    said so, and reading the file back gives the very dataset written."""
    result = expertdata.convert(CARTPOLE, tmp_path / "cartpole.hdf5", format="robomimic")
    assert {n.split(" is made up")[0] for n in result.notes} == {"'dones'", "'states'"}
    with h5py.File(result.path) as f:
        assert sorted(f["data/demo_0"]) == ["actions", "dones", "expertdata", "next_obs", "obs", "rewards", "states"]
        assert list(f["data/demo_0/obs"]) == ["obs"] and f["data/demo_0/dones"][-1] == 1
        assert np.array_equal(f["data/demo_0/next_obs/obs"][:-1], f["data/demo_0/obs/obs"][1:])
    assert expertdata.digest(expertdata.load(result.path)) == expertdata.digest(expertdata.load(CARTPOLE))


def test_robomimics_own_loader_reads_our_export(source, tmp_path):
    target = tmp_path / "robomimic"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    "robomimic==0.3.0", "termcolor==3.3.0"], check=True, capture_output=True)
    exported = expertdata.convert(expertdata.convert(source, tmp_path / "d.zarr").path, tmp_path / "out.hdf5",
                                  format="robomimic").path
    script = f"""
import json, sys
sys.path.insert(0, {str(target)!r})
import robomimic.utils.obs_utils as ObsUtils
from robomimic.utils.dataset import SequenceDataset
ObsUtils.initialize_obs_modality_mapping_from_dict({{"low_dim": ["robot0_eef_pos"], "rgb": ["agentview_image"]}})
ds = SequenceDataset({str(exported)!r}, obs_keys=["robot0_eef_pos", "agentview_image"], hdf5_use_swmr=False,
                     dataset_keys=("actions", "rewards", "dones"), filter_by_attribute="train")
item = ds[len(ds) - 1]
print(json.dumps({{"demos": ds.demos, "n": len(ds), "action": item["actions"][0].tolist(),
                  "image": item["obs"]["agentview_image"][0].tolist()}}))
"""
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded["demos"] == ["demo_0", "demo_1", "demo_10"] and loaded["n"] == 16
    with h5py.File(source) as f:
        assert loaded["action"] == f["data/demo_10/actions"][-1].tolist()
        assert loaded["image"] == f["data/demo_10/obs/agentview_image"][-1].tolist()


@pytest.mark.parametrize("damage, message", [
    (lambda f: _replace(f, "data/demo_1/rewards", np.zeros(3)), "demo_1: 'rewards' do not have one row per action"),
    (lambda f: f.__delitem__("data/demo_2/obs/robot0_eef_pos"), "demo_2: no 'obs/robot0_eef_pos'"),
])
def test_inconsistent_files_are_refused_in_one_line(source, tmp_path, damage, message):
    with h5py.File(source, "a") as f:
        damage(f)
    result = subprocess.run([sys.executable, "-m", "expertdata", "convert", str(source), str(tmp_path / "o.zarr")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.zarr").exists()


def test_robosuites_raw_demo_file_is_refused_with_what_to_do(tmp_path):
    path = write_robomimic(tmp_path / "demo.hdf5", obs=False)
    with pytest.raises(expertdata.UnreadableError, match="hold no observations .* dataset_states_to_obs.py"):
        expertdata.load(path)


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)
