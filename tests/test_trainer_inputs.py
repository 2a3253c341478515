"""Every trainer checks its input before the first gradient step, and says what is wrong in one line:
datasets that break the format's rules, datasets with nothing in them, spaces that do not fit (SB2 files
declare none), discrete observations, and datasets served out of core."""
from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import expertdata
from expertdata import ExpertDataset
from expertdata.recording.recorder import generate_expert_traj
from trainers.bc import BC
from trainers.gail import GAIL

from .conftest import SB2_PENDULUM, needs_sb2, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL = dict(n_envs=2, n_steps=64, batch_size=64, n_epochs=2)


def _copy(tmp_path: Path, name: str, metadata: dict | None = None, **changes) -> Path:
    """The cartpole fixture's arrays, changed, saved under ``name`` (with no metadata unless given: an SB2 file)."""
    with expertdata.load(FIXTURES / "cartpole.npz") as ds:
        arrays = {k: np.asarray(ds[k][:]) for k in ("obs", "actions", "rewards", "episode_starts", "episode_returns")}
    arrays.update(changes)
    return expertdata.save(expertdata.Dataset.from_arrays(metadata, None, **arrays), tmp_path / name).path


def _one_line_failure(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("trainer", ["bc", "gail"])
def test_an_sb2_file_with_a_mismatched_env_is_refused_naming_both_shapes(tmp_path, trainer):
    sb2_like = _copy(tmp_path, "cartpole_sb2.npz")
    result = run_cli("train", trainer, sb2_like, "--env", "Pendulum-v1", "--out", tmp_path / "out", "--steps", "256")
    _one_line_failure(result, 2, "declares no observation space", "(4,)", "(3,)")
    assert not (tmp_path / "out").exists()
    fits = BC(None, "CartPole-v1", sb2_like, n_epochs=1)  # the env's spaces are taken where the rows fit them
    assert fits.policy.observation_space["shape"] == [4]


@needs_sb2
def test_stable_baselines_2s_own_file_trains_and_refuses_another_env(tmp_path):
    with pytest.raises(expertdata.UsageError, match=r"rows of shape \(3,\) do not fit the Box space's row shape \(4,"):
        GAIL(None, "CartPole-v1", SB2_PENDULUM, **SMALL)
    bc = BC(None, "Pendulum-v1", ExpertDataset(SB2_PENDULUM, traj_limitation=2, verbose=0), n_epochs=1).learn()
    assert bc.num_timesteps > 0


def test_a_dataset_that_breaks_the_rules_is_refused_unless_asked(tmp_path):
    with expertdata.load(FIXTURES / "cartpole.npz") as ds:
        obs = np.asarray(ds["obs"][:]).copy()
        metadata = dict(ds.metadata)
    obs[2] = np.nan
    broken = _copy(tmp_path, "nan.npz", metadata, obs=obs)
    refused = run_cli("train", "bc", broken, "--out", tmp_path / "out")
    _one_line_failure(refused, 1, "E007", "--no-check")
    assert not (tmp_path / "out").exists()
    anyway = run_cli("train", "bc", broken, "--out", tmp_path / "out", "--no-check", "--n-epochs", "1")
    assert anyway.returncode == 0, anyway.stderr
    text = (tmp_path / "out" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"summary.json holds {name}"))
    assert summary["last_log"]["train_loss"] is None  # NaN, written as null: the file stays JSON
    with pytest.raises(expertdata.InvalidDatasetError, match="E007"):
        GAIL(None, "CartPole-v1", broken, **SMALL)


def test_a_dataset_with_no_transitions_is_refused_at_once(tmp_path):
    empty = {"obs": np.zeros((0, 4), np.float32), "actions": np.zeros((0, 1), np.int64), "rewards": np.zeros(0),
             "episode_starts": np.zeros(0, bool), "episode_returns": np.zeros(0)}
    path = expertdata.save(expertdata.Dataset.from_arrays(None, None, **empty), tmp_path / "empty.npz").path
    result = run_cli("train", "bc", path, "--env", "CartPole-v1", "--out", tmp_path / "out")
    _one_line_failure(result, 1, "holds no transitions")
    with pytest.raises(expertdata.InvalidDatasetError, match="holds no transitions"):
        GAIL(None, "CartPole-v1", path, **SMALL)


def test_discrete_observations_train_from_the_command_line(tmp_path):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    optimal = {0: 1, 4: 1, 8: 2, 9: 1, 13: 2, 14: 2}
    generate_expert_traj(lambda obs: optimal[int(obs)], tmp_path / "lake.h5", env, n_episodes=5)
    result = run_cli("train", "bc", tmp_path / "lake.h5", "--env", "FrozenLake-v1", "--out", tmp_path / "bc",
                     "--n-epochs", "200", "--learning-rate", "1e-2", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "bc" / "summary.json").read_text())["eval_return_mean"] > 0
    gail = GAIL(None, "FrozenLake-v1", tmp_path / "lake.h5", seed=0, **SMALL).learn(384)
    assert gail.num_timesteps == 384 and gail.predict(0)[0].shape == ()


def test_gail_trains_from_a_dataset_served_out_of_core(tmp_path, monkeypatch):
    """Out of core, expert transitions come from a bounded pool of rows read in random blocks, renewed once
    drawn from as many times as it holds rows; every episode is drawn from in turn."""
    import expertdata.serving.expert_dataset as module

    path = expertdata.convert(FIXTURES / "pendulum.npz", tmp_path / "pendulum.zarr").path
    monkeypatch.setattr(module, "SAMPLE_POOL_BYTES", 64 * 16)  # 64 rows of obs and actions
    dataset = ExpertDataset(path, in_memory=False, verbose=0, seed=0)
    assert not dataset.in_memory
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        obs, actions = dataset.sample(32, rng)
        assert obs.shape == (32, 3) and actions.shape == (32, 1)
        assert len(dataset._pool[1]) <= 64  # the pool never holds more than its bytes
        seen.update(map(bytes, obs))
    assert len(seen) > 1000  # far more distinct transitions than one pool holds
    model = GAIL(None, "Pendulum-v1", dataset, seed=0, **SMALL).learn(2 * 384)
    assert model.num_timesteps == 768 and np.isfinite(model.logs[-1]["d_loss"])
