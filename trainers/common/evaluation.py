"""Evaluating a policy on an env: mean and std of the return over seeded episodes."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from expertdata.envs import make

#: Evaluation seeds start here, far from the seeds recordings use (0, 1, ...), so a policy is judged on
#: episodes it was not shown.
EVAL_SEED = 10_000


def episode_returns(act: Callable[[np.ndarray], Any], env: Any, n_episodes: int, seed: int = EVAL_SEED) -> np.ndarray:
    """Returns of ``n_episodes`` episodes, episode ``i`` from ``reset(seed=seed + i)``."""
    env = make(env)
    returns = np.zeros(n_episodes)
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns[i] += float(reward)
            done = terminated or truncated
    return returns
