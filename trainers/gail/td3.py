"""The off-policy generator for Box actions: TD3 (Fujimoto et al. 2018) on every transition so far, each rewarded
by the discriminator's current reward when it is replayed (Discriminator-Actor-Critic, Kostrikov et al. 2019).

The actor is the trainer's ``Policy``: its deterministic action (the Gaussian head's mean, squashed into the action
space's bounds) is TD3's actor, so a GAIL model with this generator predicts, evaluates and saves as any other.
Twin critics take the normalised observation and the action; targets follow by Polyak averaging. A transition
that ended the episode in a terminal state leads to the absorbing state, whose value is the discounted reward of
staying there for ever (``gamma * r_abs / (1 - gamma)``), so the learned reward, not the env's termination, decides
whether ending pays; a transition cut by a time limit bootstraps from its next observation as any other.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from expertdata import observations

from ..common.nets import mlp, observation_encoder
from ..common.optim import Adam
from ..common.policy import Policy


class Critics(nn.Module):
    """Twin Q networks on (normalised observation, action)."""

    def __init__(self, observation_space: dict, action_size: int, net_arch: tuple[int, ...]) -> None:
        super().__init__()
        self.observations = observation_encoder(observation_space)
        sizes = [self.observations.out_dim + action_size, *net_arch, 1]
        self.q1, self.q2 = mlp(sizes, "relu", last_activation=False), mlp(sizes, "relu", last_activation=False)

    def set_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.observations.set_stats(mean, std)

    def forward(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.observations(obs), actions.reshape(actions.shape[0], -1)], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class Replay:
    """Every generator transition so far (up to ``capacity``, the oldest overwritten): observation, action, next
    observation, and whether it ended in a terminal state. Observations of a composite space are kept per leaf."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.size, self.at = int(capacity), 0, 0
        self.obs: Any = None
        self.next_obs: Any = None
        self.actions: np.ndarray | None = None
        self.terminated = np.zeros(self.capacity, bool)

    def _store(self, buffer: Any, rows: Any) -> Any:
        def one(store: np.ndarray | None, new: np.ndarray) -> np.ndarray:
            if store is None:
                store = np.empty((self.capacity,) + new.shape[1:], new.dtype)
            places = (self.at + np.arange(len(new))) % self.capacity
            store[places] = new
            return store
        if isinstance(rows, dict):
            return {path: one(None if buffer is None else buffer[path], leaf) for path, leaf in rows.items()}
        return one(buffer, rows)

    def add(self, obs: Any, actions: np.ndarray, next_obs: Any, terminated: np.ndarray) -> None:
        self.obs, self.next_obs = self._store(self.obs, obs), self._store(self.next_obs, next_obs)
        self.actions = self._store(self.actions, actions)
        places = (self.at + np.arange(len(actions))) % self.capacity
        self.terminated[places] = terminated
        self.at = int((self.at + len(actions)) % self.capacity)
        self.size = min(self.capacity, self.size + len(actions))

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Any, np.ndarray, Any, np.ndarray]:
        rows = rng.integers(0, self.size, n)
        pick = lambda a: a[rows]  # noqa: E731
        return (observations.apply(pick, self.obs), self.actions[rows], observations.apply(pick, self.next_obs),
                self.terminated[rows])

    def terminal_share(self) -> float:
        """The share of absorbing states among the transitions kept and the absorbing states they lead to."""
        ends = int(self.terminated[:self.size].sum())
        return ends / (self.size + ends) if self.size else 0.0

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of it (the kept rows only)."""
        if self.actions is None:
            return {}
        kept = lambda a: a[:self.size]  # noqa: E731
        out = {"actions": kept(self.actions), "terminated": kept(self.terminated),
               "position": np.array([self.at, self.size])}
        for name, buffer in (("obs", self.obs), ("next_obs", self.next_obs)):
            out.update({f"{name}/{path}".rstrip("/"): kept(leaf) for path, leaf in
                        (buffer.items() if isinstance(buffer, dict) else [("", buffer)])})
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        if "actions" not in arrays:
            return
        self.at, self.size = (int(v) for v in arrays["position"])

        def full(part: np.ndarray) -> np.ndarray:
            store = np.empty((self.capacity,) + part.shape[1:], part.dtype)
            store[:len(part)] = part
            return store

        self.actions, self.terminated = full(arrays["actions"]), full(arrays["terminated"])
        for name in ("obs", "next_obs"):
            leaves = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + "/")}
            setattr(self, name, {p: full(v) for p, v in leaves.items()} if leaves else full(arrays[name]))


class TD3:
    """TD3's networks and updates around ``policy`` (the actor): critics and their target, the actor's target,
    their optimisers, and the update count (the actor moves every ``policy_delay`` critic updates)."""

    def __init__(self, policy: Policy, net_arch: tuple[int, ...], learning_rate: float) -> None:
        head = policy.head
        self.policy, self.head = policy, head
        self.critics = Critics(policy.observation_space, head.size, net_arch)
        self.critics_target = copy.deepcopy(self.critics)
        self.actor_target = copy.deepcopy(policy)
        for frozen in (self.critics_target, self.actor_target):
            frozen.requires_grad_(False)
        self.actor_params = [p for n, p in policy.named_parameters() if p.requires_grad and not n.endswith("log_std")]
        self.critic_params = list(self.critics.parameters())
        self.actor_optimizer = Adam(self.actor_params, learning_rate)
        self.critic_optimizer = Adam(self.critic_params, learning_rate)
        self.updates = 0

    def set_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        for module in (self.policy, self.actor_target, self.critics, self.critics_target):
            module.set_observation_stats(mean, std)

    def _noisy(self, actions: torch.Tensor, scale: float, clip: float | None = None) -> torch.Tensor:
        """Actions plus Gaussian noise of ``scale`` times each dimension's half range (clipped at ``clip`` times
        it), kept inside the bounds."""
        noise = torch.randn_like(actions) * scale
        if clip is not None:
            noise = noise.clamp(-clip, clip)
        noisy = actions + noise * self.head.radius
        return torch.maximum(torch.minimum(noisy, self.head.high), self.head.low)

    @torch.no_grad()
    def explore(self, obs: Any, noise: float) -> np.ndarray:
        """The actor's actions for a batch, with exploration noise (stored form)."""
        mean = self.policy(observations.apply(torch.as_tensor, obs))
        return self._noisy(mean, noise).numpy().reshape((-1,) + tuple(self.head.shape))

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"critics": self.critics.state_dict(), "critics_target": self.critics_target.state_dict(),
                "actor_target": self.actor_target.state_dict(), "actor_optimizer": self.actor_optimizer.state(),
                "critic_optimizer": self.critic_optimizer.state(),
                "updates": {"count": torch.tensor(self.updates)}}

    def load_state_dicts(self, parts: dict[str, dict[str, Any]]) -> None:
        if not parts.get("critics"):
            return
        self.critics.load_state_dict(parts["critics"])
        self.critics_target.load_state_dict(parts["critics_target"])
        self.actor_target.load_state_dict(parts["actor_target"])
        self.actor_optimizer.load_state(parts["actor_optimizer"])
        self.critic_optimizer.load_state(parts["critic_optimizer"])
        self.updates = int(parts["updates"]["count"])

    def sync_targets(self) -> None:
        """The targets set to the networks (after the actor was warm-started)."""
        self.actor_target.load_state_dict(self.policy.state_dict())
        self.critics_target.load_state_dict(self.critics.state_dict())

    def update(self, batch: tuple[Any, np.ndarray, Any, np.ndarray], rewards: torch.Tensor, absorbing_value: float,
               config: Any, world: Any, actor: bool = True,
               expert: tuple[Any, torch.Tensor] | None = None) -> dict[str, float]:
        """One critic update (and, every ``policy_delay``, one actor update, unless ``actor`` is false, and the
        targets' Polyak step) on a replayed batch whose ``rewards`` the discriminator gave now; gradients averaged
        over ranks. With ``expert`` transitions, the actor's loss is TD3+BC's (Fujimoto and Gu 2021): the critic's
        value, scaled to ``config.bc_alpha`` over its mean size, against the squared error of the actor's actions on
        the expert's states, which holds the actor near the expert where the critic is not yet right."""
        obs, actions, next_obs, terminated = batch
        obs, next_obs = (observations.apply(torch.as_tensor, o) for o in (obs, next_obs))
        actions, ended = torch.as_tensor(actions).float(), torch.as_tensor(terminated).float()
        with torch.no_grad():
            following = self._noisy(self.actor_target(next_obs), config.target_noise, config.noise_clip)
            q1, q2 = self.critics_target(next_obs, following)
            target = rewards + config.gamma * ((1 - ended) * torch.minimum(q1, q2) + ended * absorbing_value)
        q1, q2 = self.critics(obs, actions)
        critic_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        self.critic_optimizer.step(world.average(torch.autograd.grad(critic_loss, self.critic_params)))
        self.updates += 1
        stats = {"critic_loss": float(critic_loss.detach()), "q": float(q1.detach().mean())}
        if self.updates % config.policy_delay == 0:
            if actor:
                value = self.critics(obs, self.policy(obs))[0]
                actor_loss = -value.mean()
                if expert is not None:
                    scale = config.bc_alpha / value.detach().abs().mean().clamp_min(1e-6)
                    actor_loss = scale * actor_loss + self.head.squared_error(self.policy(expert[0]), expert[1]).mean()
                self.actor_optimizer.step(world.average(torch.autograd.grad(actor_loss, self.actor_params)))
                stats["actor_loss"] = float(actor_loss.detach())
            with torch.no_grad():
                for source, target_net in ((self.critics, self.critics_target), (self.policy, self.actor_target)):
                    for p, t in zip(source.parameters(), target_net.parameters()):
                        t.mul_(1 - config.tau).add_(p.detach(), alpha=config.tau)
        return stats
