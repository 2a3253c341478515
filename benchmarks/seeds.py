"""What the learning benchmarks share: runs over seeds in parallel processes, and a uniform random
policy's demonstrations (GAIL's control)."""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from expertdata.recording.recorder import generate_expert_traj


def _one_thread(_: int = 0) -> None:
    import torch

    torch.set_num_threads(1)


def over_seeds(function: Callable[..., Any], seeds: list[int], jobs: int, *args: Any, **kwargs: Any) -> list:
    """``function(*args, seed=s, **kwargs)`` for each seed, in ``jobs`` processes (one torch thread each)
    when ``jobs`` > 1. They are spawned, not forked: a fork copies the locks of threads that the parent
    started (recording the random demonstrations does), and the children waited on them for ever."""
    if jobs == 1:
        return [function(*args, seed=seed, **kwargs) for seed in seeds]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        return [f.result() for f in [pool.submit(function, *args, seed=seed, **kwargs) for seed in seeds]]


def random_demonstrations(env_id: str, folder: Path) -> Path:
    """10 episodes of a uniform random policy (actions seeded 0), written to ``folder``."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    path = folder / f"random-{env_id}.npz"
    generate_expert_traj(lambda obs: env.action_space.sample(), path, env_id, n_episodes=10, seed=0, overwrite=True)
    return path


def setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON (a bare word stays a string)."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
