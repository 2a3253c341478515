"""Behaviour cloning: maximise the likelihood of the expert's actions (SB2's ``pretrain``, reborn) with the
shape every trainer has (``trainers.protocol.Trainer``)."""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from expertdata import TrainingData, UsageError, World

from ..common.cloning import History, fit, reached_parameters
from ..common.data import as_training_data, training_spaces
from ..common.evaluation import EVAL_SEED
from ..common.policy import Policy
from ..common.threads import threads_for, torch_threads
from ..protocol import Callback
from .config import BCConfig

POLICY_NAMES = ("MlpPolicy", "CnnPolicy")


class BC:
    """Behaviour cloning of a dataset into a ``Policy``, with SB2's model API.

    :param policy: ``None`` (or ``"MlpPolicy"``/``"CnnPolicy"``: the network follows the observation
        space), or a ``Policy`` to train further.
    :param env: a gymnasium env or env id: its spaces must fit the dataset's, and ``evaluate`` uses it;
        ``None`` takes the spaces the dataset declares.
    :param expert_dataset: an ``ExpertDataset`` (any ``TrainingData``), or a path in any format.
    :param config: a ``BCConfig``, or its fields as keywords.
    :param check: refuse, before training, a dataset that breaks the format's rules or holds no transition.
    """

    def __init__(self, policy: Any = None, env: Any = None, expert_dataset: TrainingData | str | Path | None = None,
                 *, config: BCConfig | None = None, verbose: int = 0, check: bool = True, **config_kwargs: Any) -> None:
        if config is not None and config_kwargs:
            raise UsageError(f"pass config or its fields ({', '.join(config_kwargs)}), not both")
        if policy is not None and not isinstance(policy, Policy) and policy not in POLICY_NAMES:
            raise UsageError(f"policy must be None, {' or '.join(POLICY_NAMES)} or a Policy, not {policy!r}")
        self.config = config or BCConfig(**config_kwargs)
        self.env, self.verbose, self.world = env, verbose, World()
        self.num_timesteps, self.logs = 0, []
        self.history: History | None = None
        if self.config.seed is not None:
            torch.manual_seed(self.config.seed)
        self.expert_dataset = as_training_data(expert_dataset, self.config.seed)
        given = policy if isinstance(policy, Policy) else None
        self.policy: Policy | None = given
        if self.expert_dataset is None and env is None and given is None:
            return
        obs_space, act_space = training_spaces(self.expert_dataset, env, (given.observation_space, given.action_space)
                                               if given is not None else None, check)
        self.config = self.config.resolved_for(act_space)
        if given is None:
            self.policy = Policy(obs_space, act_space, self.config.net_arch, self.config.activation)
            normalise = self.config.resolved(act_space)[1]
            if normalise != "none" and self.expert_dataset is not None:
                mean, std = self.expert_dataset.observation_stats()
                floor = self.config.std_floor if normalise == "shrink" else 0.0
                self.policy.set_observation_stats(mean, np.maximum(std, floor))

    def learn(self, total_timesteps: int | None = None, callback: Callback | None = None, log_interval: int = 1,
              reset_num_timesteps: bool = True, progress: bool = False) -> "BC":
        """Train on the expert dataset.

        :param total_timesteps: expert transitions to train on, over every rank (``None``: ``n_epochs``
            passes over the training split).
        :param callback: called with each log record (every ``val_interval`` epochs); returning a false
            value other than ``None`` stops training.
        :param log_interval: with ``verbose``, print every this many log records.
        :param reset_num_timesteps: start the ``num_timesteps`` count again from 0.
        """
        if self.expert_dataset is None or self.policy is None:
            raise UsageError("learn needs an expert dataset: BC(policy, env, expert_dataset), or "
                             "BC.load(path, expert_dataset=...)")
        if reset_num_timesteps:
            self.num_timesteps = 0
        head, policy = self.policy.head, self.policy
        if self.config.resolved(policy.action_space)[0] == "nll":
            def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
                return head.nll(policy(obs), act)
        else:
            def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
                return head.squared_error(policy(obs), act).mean()
        with torch_threads(threads_for(policy.features, self.config.torch_threads)):
            self.history = fit(loss_fn, reached_parameters(loss_fn, policy, self.expert_dataset), self.expert_dataset,
                               self.config, policy, progress, self.world, callback, total_timesteps,
                               self.num_timesteps, log_interval, self.verbose)
        self.logs.extend(self.history.logs)
        if self.history.logs:
            self.num_timesteps = self.history.logs[-1].timesteps
        return self

    def predict(self, observation: Any, state: Any = None, mask: Any = None, deterministic: bool = False) -> Any:
        return self._trained().predict(observation, state, mask, deterministic)

    def action_probability(self, observation: Any, state: Any = None, mask: Any = None, actions: Any = None,
                           logp: bool = False) -> Any:
        return self._trained().action_probability(observation, state, mask, actions, logp)

    def evaluate(self, env: Any = None, n_episodes: int = 20, seed: int = EVAL_SEED) -> tuple[float, float]:
        env = env if env is not None else self.env
        if env is None:
            raise UsageError("evaluate needs an env")
        return self._trained().evaluate(env, n_episodes, seed)

    def _trained(self) -> Policy:
        if self.policy is None:
            raise UsageError("there is no policy yet: give BC an env or an expert dataset, then learn()")
        return self.policy

    def get_parameters(self) -> dict[str, np.ndarray]:
        """The policy's parameters and buffers, by name."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self._trained().state_dict().items()}

    def load_parameters(self, parameters: Mapping[str, Any]) -> None:
        self._trained().load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in parameters.items()})

    def save(self, path: str | Path) -> Path:
        """Write the policy directory (weights and config, no pickle)."""
        return self._trained().save(path, {"trainer": "bc", "config": json.loads(json.dumps(asdict(self.config)))})

    @classmethod
    def load(cls, path: str | Path, env: Any = None, expert_dataset: TrainingData | str | Path | None = None,
             **overrides: Any) -> "BC":
        """Load what ``save`` (or ``expertdata train bc --out``) wrote; with ``env``, refuse other spaces; with
        ``expert_dataset``, ``learn`` trains further. ``overrides`` replace saved config fields."""
        policy = Policy.load(path, env)
        saved = policy.saved_config.get("config", {})
        known = {f.name for f in fields(BCConfig)}
        config = BCConfig(**{**{k: v for k, v in saved.items() if k in known}, **overrides})
        return cls(policy, env, expert_dataset, config=config)

