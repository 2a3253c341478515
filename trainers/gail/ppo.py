"""The generator: PPO on an actor (``Policy``) and a critic, from rollouts of a vector env.

Rollouts come from a gymnasium vector env in ``SAME_STEP`` autoreset mode, so the observation after a
truncated episode's last step is at hand (``final_obs``) and its value bootstraps the return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from expertdata import World, observations

from ..common.nets import features_for
from ..common.optim import Adam
from ..common.policy import Policy


class ActorCritic(nn.Module):
    """The policy and a critic with its own network, both on observations normalised the same way."""

    def __init__(self, observation_space: dict, action_space: dict, net_arch: tuple[int, ...],
                 activation: str = "tanh") -> None:
        super().__init__()
        self.policy = Policy(observation_space, action_space, net_arch, activation)
        self.critic_features = features_for(observation_space, list(net_arch), activation)
        self.value_head = nn.Linear(self.critic_features.out_dim, 1)

    def set_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.policy.set_observation_stats(mean, std)
        self.critic_features.set_stats(mean, std)

    def value(self, obs: Any) -> torch.Tensor:
        return self.value_head(self.critic_features(observations.apply(torch.as_tensor, obs))).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled actions (stored form), their log-probabilities and the values, for a batch (an array, or a
        dict of them by leaf path)."""
        x = observations.apply(torch.as_tensor, obs)
        params = self.policy(x)
        actions = self.policy.head.sample(params, deterministic=False)
        return actions.numpy(), self.policy.head.log_prob(params, actions).numpy(), self.value(x).numpy()


@dataclass
class Rollout:
    """``n_steps`` steps of ``n_envs`` envs, time-major; ``obs`` is a dict of arrays for a composite space."""

    obs: Any
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    env_rewards: np.ndarray  # the env's own rewards: logged, never learned from
    dones: np.ndarray
    terminated: np.ndarray  # the episode ended in a terminal state (not cut by a time limit)
    bootstrap: np.ndarray  # gamma * V(final obs) where an episode was truncated, else 0
    last_values: np.ndarray

    def flat(self, name: str) -> Any:
        """A field with its steps and envs as one axis of rows."""
        return observations.apply(lambda a: a.reshape((-1,) + a.shape[2:]), getattr(self, name))


def gae(rewards: np.ndarray, rollout: Rollout, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns (time-major arrays)."""
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        following = rollout.last_values if t == len(rewards) - 1 else rollout.values[t + 1]
        alive = 1.0 - rollout.dones[t]
        delta = rewards[t] + rollout.bootstrap[t] + gamma * following * alive - rollout.values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages, advantages + rollout.values


def ppo_update(model: ActorCritic, optimizer: Adam, params: list[nn.Parameter], rollout: Rollout,
               advantages: np.ndarray, returns: np.ndarray, config: Any, rng: np.random.Generator,
               world: World) -> dict[str, float]:
    """Up to ``n_epochs`` passes of clipped-objective minibatch updates; gradients averaged over ranks.

    With ``config.target_kl``, the update stops before a minibatch step once the policy has moved more
    than 1.5 times that from the rollout's (by the KL estimate ``E[(r - 1) - log r]``, averaged over
    ranks with the gradients, so every rank stops at the same step).
    """
    obs, actions = observations.apply(torch.as_tensor, rollout.flat("obs")), torch.as_tensor(rollout.flat("actions"))
    old_logp = torch.as_tensor(rollout.flat("log_probs"))
    adv, ret = torch.as_tensor(advantages.reshape(-1)), torch.as_tensor(returns.reshape(-1))
    n = len(actions)
    head, policy = model.policy.head, model.policy
    stats = np.zeros(5)
    updates = 0
    for rows in _minibatches(n, config.batch_size, config.n_epochs, rng):
        batch = observations.apply(lambda a: a[rows], obs)
        params_ = policy(batch)
        logp = head.log_prob(params_, actions[rows])
        a = adv[rows]
        a = (a - a.mean()) / (a.std() + 1e-8)
        log_ratio = logp - old_logp[rows]
        ratio = torch.exp(log_ratio)
        policy_loss = -torch.min(ratio * a, ratio.clamp(1 - config.clip_range, 1 + config.clip_range) * a).mean()
        value_loss = ((model.value(batch) - ret[rows]) ** 2).mean()
        entropy = head.entropy(params_).mean()
        loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        kl = ((ratio - 1) - log_ratio).mean().detach().reshape(1)
        *grads, kl = world.average(list(torch.autograd.grad(loss, params)) + [kl])
        if config.target_kl is not None and float(kl) > 1.5 * config.target_kl:
            break
        norm = _clip(grads, config.max_grad_norm)
        optimizer.step(grads)
        stats += (float(policy_loss.detach()), float(value_loss.detach()), float(entropy.detach()), float(norm),
                  float(kl))
        updates += 1
    stats /= max(updates, 1)
    return {"policy_loss": stats[0], "value_loss": stats[1], "entropy": stats[2], "grad_norm": stats[3],
            "approx_kl": stats[4], "policy_updates": updates}


def _minibatches(n: int, size: int, epochs: int, rng: np.random.Generator) -> Iterator[torch.Tensor]:
    """Row indices of ``epochs`` shuffled passes over ``n`` rows, ``size`` at a time (a short tail is left out)."""
    for _ in range(epochs):
        order = rng.permutation(n)
        for begin in range(0, n - size + 1, size):
            yield torch.as_tensor(order[begin:begin + size])


def _clip(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients in place so their global norm is at most ``max_norm``; returns the norm before."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / (norm + 1e-6))
    return norm
