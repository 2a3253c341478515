"""Evaluating a policy on an env: returns over seeded episodes, and scores normalised between a random
policy and the expert."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from expertdata import envs

#: Evaluation seeds start here, far from the seeds recordings use (0, 1, ...), so a policy is judged on
#: episodes it was not shown.
EVAL_SEED = 10_000


def episode_returns(act: Callable[[np.ndarray], Any], env: Any, n_episodes: int, seed: int = EVAL_SEED) -> np.ndarray:
    """Returns of ``n_episodes`` episodes, episode ``i`` from ``reset(seed=seed + i)``."""
    env = envs.make(env)
    returns = np.zeros(n_episodes)
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns[i] += float(reward)
            done = terminated or truncated
    return returns


def random_return(env_id: str, n_episodes: int, seed: int = EVAL_SEED) -> float:
    """Mean return of a uniform random policy (its action space seeded 0) over the evaluation episodes."""
    space = envs.make(env_id).action_space
    space.seed(0)
    return float(episode_returns(lambda obs: space.sample(), env_id, n_episodes, seed).mean())


@dataclass(frozen=True)
class NormalisedScore:
    """Maps a mean return onto a scale where a uniform random policy scores 0 and the expert 1."""

    random: float
    expert: float

    @classmethod
    def measure(cls, env_id: str, expert: Callable[[np.ndarray], Any], n_episodes: int,
                seed: int = EVAL_SEED) -> "NormalisedScore":
        """Both ends measured on the evaluation episodes a policy is scored on (the random policy's
        actions drawn from an action space seeded 0)."""
        return cls(random_return(env_id, n_episodes, seed),
                   float(episode_returns(expert, env_id, n_episodes, seed).mean()))

    def __call__(self, mean_return: float) -> float:
        return (mean_return - self.random) / (self.expert - self.random)
