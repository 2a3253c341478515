"""Demonstrations without rewards (robot data, imitation's Trajectory): declared in the metadata, valid,
shown as such, trained on, and refused in one line by formats that need rewards unless filled."""
from __future__ import annotations

import numpy as np
import pytest

import expertdata
from expertdata.core.errors import InvalidDatasetError, UsageError

from .conftest import run_cli

FIXTURE = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "pendulum.npz"


def reward_free(path=FIXTURE) -> expertdata.Dataset:
    """The fixture's demonstrations with their rewards taken away."""
    with expertdata.load(path) as source:
        fields = {k: np.asarray(v[:]) for k, v in source.fields.items() if k not in ("rewards", "episode_returns")}
        return expertdata.Dataset.from_arrays({**source.metadata, "rewards": "absent"}, **fields)


def test_a_dataset_without_rewards_is_valid_and_says_so(tmp_path):
    data = reward_free()
    assert not data.has_rewards and data.n_episodes == 10
    assert expertdata.validate(data).ok
    expertdata.save(data, tmp_path / "demo.zarr")
    result = run_cli("info", tmp_path / "demo.zarr", "--no-digest")
    assert "returns min/mean/max  no rewards" in result.stdout
    assert run_cli("plot", tmp_path / "demo.zarr", "--out", tmp_path / "demo.png").returncode == 0
    dataset = expertdata.ExpertDataset(tmp_path / "demo.zarr", verbose=0)
    assert dataset.returns is None and np.isnan(dataset.avg_ret)


def test_rewards_stored_although_declared_absent_are_an_error():
    data = reward_free()
    with pytest.raises(InvalidDatasetError, match="says the rewards are absent, but 'rewards' is stored"):
        expertdata.Dataset.from_arrays(dict(data.metadata), rewards=np.zeros(data.n_transitions),
                                       **{k: v for k, v in data.fields.items()})


@pytest.mark.parametrize("format", ["npz", "d4rl", "minari"])
def test_formats_that_need_rewards_refuse_unless_they_are_filled(tmp_path, format):
    data = reward_free()
    out = tmp_path / ("demo.npz" if format == "npz" else "demo-v0")
    with pytest.raises(UsageError, match="needs rewards"):
        expertdata.save(data, out, format=format)
    assert not out.exists()
    expertdata.save(data, out, format=format, fill_rewards=0)
    with expertdata.load(out) as filled:
        assert filled.has_rewards and not filled["rewards"][:].any() and not filled["episode_returns"][:].any()
        assert filled.metadata["lineage"][-1]["fill_rewards"] == 0.0


def test_the_command_line_refuses_in_one_line_and_fills_on_request(tmp_path):
    expertdata.save(reward_free(), tmp_path / "demo.zarr")
    refused = run_cli("convert", tmp_path / "demo.zarr", tmp_path / "demo.npz")
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1 and "--fill-rewards" in refused.stderr
    assert run_cli("convert", tmp_path / "demo.zarr", tmp_path / "demo.npz", "--fill-rewards", "0").returncode == 0


def test_imitation_trajectories_without_rewards_round_trip(tmp_path):
    data = reward_free()
    expertdata.save(data, tmp_path / "rollouts.npz", format="imitation")
    with np.load(tmp_path / "rollouts.npz") as written:
        assert "rews" not in written.files
    with expertdata.load(tmp_path / "rollouts.npz") as back:
        assert not back.has_rewards and back.n_episodes == data.n_episodes


def test_bc_and_gail_train_on_demonstrations_without_rewards(tmp_path):
    from trainers.bc import BC
    from trainers.gail import GAIL

    expertdata.save(reward_free(), tmp_path / "demo.zarr")
    assert BC(None, "Pendulum-v1", tmp_path / "demo.zarr", seed=0).learn(500).num_timesteps >= 500
    assert GAIL(None, "Pendulum-v1", tmp_path / "demo.zarr", seed=0, n_envs=2, n_steps=64).learn(256).num_timesteps
