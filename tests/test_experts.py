"""The built-in reference experts score as experts: measured here, on the seeds the docs name."""
from __future__ import annotations

import numpy as np
import pytest

import expertdata
from expertdata.recording.experts import BUILTIN, resolve
from expertdata.recording.recorder import generate_expert_traj


def test_cartpole_expert_scores_500_on_every_seed():
    ds = generate_expert_traj(resolve("cartpole"), None, "CartPole-v1", n_episodes=20, seed=0)
    assert ds["episode_returns"][:].tolist() == [500.0] * 20


def test_pendulum_expert_mean_return_is_at_least_minus_200_over_20_seeds():
    ds = generate_expert_traj(resolve("pendulum"), None, "Pendulum-v1", n_episodes=20, seed=0)
    assert np.mean(ds["episode_returns"][:]) >= -200


def test_pixel_cartpole_expert_plays_from_pictures():
    env_id, expert = BUILTIN["pixel-cartpole"]
    ds = generate_expert_traj(expert, None, env_id, n_episodes=3, seed=0)
    assert ds["obs"].shape[1:] == (16, 16, 3) and ds["episode_returns"][:].tolist() == [500.0] * 3


def test_experts_resolve_from_module_paths_and_unknown_names_are_refused():
    assert resolve("expertdata.recording.experts:pendulum") is BUILTIN["pendulum"][1]
    with pytest.raises(expertdata.UsageError, match="unknown expert 'nope'"):
        resolve("nope")
    with pytest.raises(expertdata.UsageError, match="cannot import expert"):
        resolve("no_such_module:f")
