"""Files written by Stable Baselines 2 itself load unchanged; files we write are what SB2's loader expects."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import expertdata

from .conftest import SB2_PENDULUM, SUFFIXES, assert_same_arrays, make_dataset, needs_sb2

SB2_DTYPES = {"obs": np.float32, "actions": np.float32, "rewards": np.float64, "episode_starts": np.bool_,
              "episode_returns": np.float64}


@needs_sb2
def test_sb2_file_loads_and_validates_unchanged():
    before = hashlib.sha256(SB2_PENDULUM.read_bytes()).hexdigest()
    with expertdata.load(SB2_PENDULUM) as ds:
        assert (ds.n_transitions, ds.n_episodes) == (20000, 100)
        assert ds.episodes.lengths.tolist() == [200] * 100
        assert {k: ds[k].dtype for k in SB2_DTYPES} == {k: np.dtype(v) for k, v in SB2_DTYPES.items()}
        assert np.mean(ds["episode_returns"][:]) == pytest.approx(-149.87, abs=0.01)
    assert [p.rule.id for p in expertdata.validate(SB2_PENDULUM).problems] == ["W109"]  # no card: no licence
    assert hashlib.sha256(SB2_PENDULUM.read_bytes()).hexdigest() == before


@needs_sb2
@pytest.mark.parametrize("name", [n for n in SUFFIXES if n != "npz"])
def test_sb2_file_converts_to_each_format_and_back_bit_identical(tmp_path, name):
    there = expertdata.convert(SB2_PENDULUM, tmp_path / f"p{SUFFIXES[name]}")
    back = expertdata.convert(there.path, tmp_path / "back.npz")
    with expertdata.load(SB2_PENDULUM) as original, expertdata.load(back.path) as copy:
        assert_same_arrays(original, copy)
        assert expertdata.digest(copy) == expertdata.digest(original) == there.digest == back.digest
        assert [e["operation"] for e in copy.metadata["lineage"]] == ["convert", "convert"]
        assert copy.metadata["lineage"][0]["parent_digest"] == there.digest


def _sb2_loader(path):
    """What SB2's ExpertDataset.__init__ read from a file: its five keys, by name, shapes it reshaped."""
    traj_data = np.load(path, allow_pickle=False)
    observations, actions = traj_data["obs"], traj_data["actions"]
    if len(observations.shape) > 2:
        observations = np.reshape(observations, [-1, np.prod(observations.shape[1:])])
    if len(actions.shape) > 2:
        actions = np.reshape(actions, [-1, np.prod(actions.shape[1:])])
    episode_starts = traj_data["episode_starts"]
    returns = traj_data["episode_returns"]
    assert len(observations) == len(actions) == len(episode_starts)
    return {k: traj_data[k] for k in SB2_DTYPES}, sum(returns) / len(returns)


def test_npz_we_write_has_the_keys_dtypes_and_shapes_sb2_expects(tmp_path):
    for actions in ("box", "discrete"):
        dataset = make_dataset(actions=actions, lengths=(6, 4))
        path = expertdata.save(dataset, tmp_path / f"{actions}.npz").path
        arrays, avg_ret = _sb2_loader(path)
        for key, array in arrays.items():
            assert array.dtype == dataset[key].dtype and array.shape == dataset[key].shape
            assert np.array_equal(array, dataset[key])
        assert avg_ret == pytest.approx(np.mean(dataset["episode_returns"]))
        assert set(np.load(path).files) == set(SB2_DTYPES) | {"expertdata_metadata"}
    assert arrays["actions"].shape == (10, 1) and arrays["actions"].dtype == np.int64
