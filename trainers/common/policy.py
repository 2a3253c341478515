"""The policy every trainer produces: features (MLP or CNN) and an action head for the action space,
with SB2's ``predict`` and ``action_probability``, evaluation, and saving that never pickles.

A saved policy is a directory: ``policy.json`` (spaces, architecture, trainer config) and
``weights.npz`` (every tensor, read back with ``allow_pickle=False``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from expertdata import UnreadableError, UsageError, atomic, envs, observations, spaces

from .evaluation import EVAL_SEED, episode_returns
from .heads import GaussianHead, head_for
from .nets import features_for

CONFIG_FILE, WEIGHTS_FILE = "policy.json", "weights.npz"


def env_spaces(env: Any) -> tuple[dict, dict]:
    """An env's (single) observation and action spaces as JSON."""
    env = envs.make(env)
    obs = getattr(env, "single_observation_space", env.observation_space)
    act = getattr(env, "single_action_space", env.action_space)
    try:
        return spaces.to_json(obs), spaces.to_json(act)
    except spaces.SpaceError as exc:
        raise UsageError(str(exc)) from None


def check_spaces(have: tuple[dict, dict], want: tuple[dict, dict], have_name: str, want_name: str) -> None:
    """Refuse mismatched spaces with a message naming both sides."""
    for label, a, b in (("observation", have[0], want[0]), ("action", have[1], want[1])):
        if a is not None and b is not None and not spaces.same(a, b):
            raise UsageError(f"{label} spaces differ: {have_name} has {json.dumps(a)}, {want_name} has "
                             f"{json.dumps(b)}")


class Policy(nn.Module):
    """Maps observations to an action distribution for the given spaces (JSON, as in dataset metadata).

    :param net_arch: hidden layer sizes of the MLP for vector observations.
    :param activation: ``tanh`` or ``relu``.
    """

    def __init__(self, observation_space: dict, action_space: dict, net_arch: tuple[int, ...] = (64, 64),
                 activation: str = "tanh") -> None:
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        self.net_arch, self.activation = tuple(int(n) for n in net_arch), activation
        self.features = features_for(observation_space, list(self.net_arch), activation)
        self.head = head_for(self.features.out_dim, action_space)

    def forward(self, obs: Any) -> torch.Tensor:
        """Distribution parameters (logits, or the Gaussian mean) for a batch of observations."""
        return self.head(self.features(obs))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.head.log_prob(self(obs), actions)

    def set_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Normalise Box vector observations by these statistics (from the dataset)."""
        self.features.set_stats(mean, std)

    # -- SB2's prediction API ----------------------------------------------------------------------

    def _batch(self, observation: Any) -> tuple[Any, bool]:
        """One observation or a batch, as a batch of tensors (a dict of them by leaf path for a composite
        space: the env's nested dicts and tuples, or a dict keyed by leaf path), and whether it was one."""
        space = self.observation_space
        if not spaces.is_composite(space):
            return _leaf_batch(space, observation, "")
        try:
            values = spaces.flatten(space, observation)
        except spaces.SpaceError as exc:
            raise UsageError(str(exc)) from None
        leaves = spaces.leaves(space)
        batches = {path: _leaf_batch(leaves[path], values[path], path) for path in leaves}
        singles = {single for _, single in batches.values()}
        if len(singles) > 1:
            raise UsageError("some leaves of the observation hold one observation, others a batch")
        return {path: tensor for path, (tensor, _) in batches.items()}, singles.pop()

    @torch.no_grad()
    def predict(self, observation: Any, state: Any = None, mask: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """``(action, None)`` for one observation, or a batch of actions for a batch (SB2's shapes: a
        Discrete action is an integer); Box actions are clipped to the bounds."""
        obs, single = self._batch(observation)
        action = self.head.sample(self(obs), deterministic).numpy()
        if self.action_space["type"] == "Discrete":
            action = action.reshape(-1)
        action = action.astype(spaces.row_dtype(self.action_space), copy=False)
        return (action[0] if single else action), None

    @torch.no_grad()
    def action_probability(self, observation: Any, state: Any = None, mask: Any = None, actions: Any = None,
                           logp: bool = False) -> Any:
        """SB2's semantics. Without ``actions``: the distribution (Discrete: each action's probability;
        MultiDiscrete: a list, one array per dimension; MultiBinary: each bit's probability of being 1;
        Box: ``(mean, std)``). With ``actions``: their probability (a density for Box), shape (n, 1), or its
        log with ``logp=True``."""
        obs, single = self._batch(observation)
        params = self(obs)
        if actions is None:
            if isinstance(self.head, GaussianHead):
                mean, std = (t.numpy() for t in self.head.mean_std(params))
                return (mean[0], std[0]) if single else (mean, std)
            probs = self.head.probabilities(params)
            if isinstance(probs, list):
                return [p.numpy()[0] if single else p.numpy() for p in probs]
            return probs.numpy()[0] if single else probs.numpy()
        acts = torch.as_tensor(np.asarray(actions)).reshape(observations.n_rows(obs), -1)
        result = self.head.log_prob(params, acts).reshape(-1, 1)
        result = (result if logp else result.exp()).numpy()
        return result[0] if single else result

    def act(self, obs: Any) -> Any:
        """The deterministic action for one observation, as the env takes it."""
        action, _ = self.predict(obs, deterministic=True)
        return action.item() if self.action_space["type"] == "Discrete" else action

    def evaluate(self, env: Any, n_episodes: int = 20, seed: int = EVAL_SEED) -> tuple[float, float]:
        """Mean and std of the return over ``n_episodes`` deterministic episodes (seeds ``seed``, ``seed+1``...)."""
        env = envs.make(env)  # once: an env id would otherwise be made for the check and again for the episodes
        check_spaces((self.observation_space, self.action_space), env_spaces(env), "the policy", "the env")
        returns = episode_returns(self.act, env, n_episodes, seed)
        return float(returns.mean()), float(returns.std())

    # -- saving ---------------------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the policy directory atomically (replacing it if it exists)."""
        from expertdata import __version__

        config = {"observation_space": self.observation_space, "action_space": self.action_space,
                  "net_arch": list(self.net_arch), "activation": self.activation, "expertdata_version": __version__,
                  **(extra or {})}
        path = Path(path)
        with atomic.destination(path, overwrite=True, replaceable=lambda p: (p / CONFIG_FILE).is_file()) as tmp:
            tmp.mkdir()
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
            np.savez(tmp / WEIGHTS_FILE, **{k: v.detach().cpu().numpy() for k, v in self.state_dict().items()})
        return path

    @classmethod
    def load(cls, path: str | Path, env: Any = None) -> "Policy":
        """Read a policy directory; with ``env``, refuse it if the env's spaces differ."""
        config, weights = read_saved(path)
        policy = cls(config["observation_space"], config["action_space"], tuple(config["net_arch"]),
                     config["activation"])
        policy.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        policy.saved_config = config
        if env is not None:
            check_spaces((policy.observation_space, policy.action_space), env_spaces(env), str(path), "the env")
        return policy


def _leaf_batch(space: dict, observation: Any, path: str) -> tuple[torch.Tensor, bool]:
    """One plain space's observation or batch as a batch tensor, and whether it was one."""
    obs = np.asarray(observation)
    if space["type"] == "Discrete" and obs.ndim <= 1:  # a value, or a batch of values
        return torch.as_tensor(obs.reshape(-1, 1)), obs.ndim == 0
    shape = spaces.row_shape(space)
    single = obs.shape == shape
    if not single and obs.shape[1:] != shape:
        raise UsageError(f"observation{' ' + repr(path) if path else ''} of shape {obs.shape} does not fit the "
                         f"policy's observation space {shape} (one observation, or a batch of them)")
    return torch.as_tensor(obs[None] if single else obs), single


def read_saved(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON config and the arrays of a saved directory, never unpickling."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as data:
            weights = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UnreadableError(f"{path}: not a saved policy ({exc})") from None
    return config, weights
