"""Warm-starting a Stable-Baselines3 policy by behaviour cloning: SB2's ``model.pretrain(dataset)`` for
SB3 users, in place.

    from stable_baselines3 import PPO
    from trainers.bc.sb3 import pretrain_sb3

    model = PPO("MlpPolicy", "Pendulum-v1")
    pretrain_sb3(model, "fixtures/pendulum.npz", n_epochs=200, learning_rate=1e-3)
    model.learn(100_000)   # fine-tune from the cloned policy
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from expertdata import TrainingData

from ..common.cloning import History, pretrain


def sb3_log_prob(policy: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``log_prob(obs, actions)`` of an SB3 ``ActorCriticPolicy``, taking batches as ``expertdata`` serves
    them (images as (N, H, W, C) are transposed when the policy wants channels first, as SB3's
    ``VecTransposeImage`` does; Discrete actions stored as (N, 1) are flattened)."""
    from gymnasium import spaces

    want = tuple(policy.observation_space.shape)
    discrete = isinstance(policy.action_space, spaces.Discrete)

    def log_prob(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if tuple(obs.shape[1:]) != want and obs.dim() == 4 and tuple(obs.permute(0, 3, 1, 2).shape[1:]) == want:
            obs = obs.permute(0, 3, 1, 2)
        acts = actions.reshape(-1) if discrete else actions
        _, logp, _ = policy.evaluate_actions(obs.to(policy.device), acts.to(policy.device))
        return logp

    return log_prob


def pretrain_sb3(model: Any, dataset: TrainingData | str | Path, progress: bool = True, **config: Any) -> History:
    """Behaviour-clone ``dataset`` into an SB3 model's policy (or an ``ActorCriticPolicy``), in place;
    ``config`` takes ``trainers.common.configs.CloningConfig``'s fields (``n_epochs``, ``learning_rate``, ...)."""
    policy = getattr(model, "policy", model)
    policy.set_training_mode(True)
    try:
        return pretrain(policy, dataset, sb3_log_prob(policy), progress=progress, **config)
    finally:
        policy.set_training_mode(False)
