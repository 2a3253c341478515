"""Behaviour cloning: maximise the likelihood of the expert's actions (SB2's ``pretrain``, reborn).

``fit`` is the loop: it takes any loss of a batch, so the same code trains our policy (``BC``) and
warm-starts any torch policy that returns an action distribution (``pretrain``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from expertdata import DataLoader, ExpertDataset
from expertdata.arrays import iter_blocks
from expertdata.errors import UsageError

from ..common.distributed import World
from ..common.evaluation import EVAL_SEED
from ..common.nets import VectorFeatures
from ..common.optim import Adam
from ..common.policy import Policy, check_spaces, env_spaces

LOSSES = ("nll", "mse")


@dataclass
class BCConfig:
    """Behaviour-cloning hyperparameters; the first four are SB2's ``pretrain`` parameters, with its defaults.

    :param n_epochs: passes over the training split.
    :param learning_rate: Adam's step size.
    :param adam_epsilon: Adam's epsilon.
    :param val_interval: report training and validation loss every this many epochs (``None``: a tenth
        of ``n_epochs``).
    :param batch_size: transitions per gradient step (when the trainer builds the dataset).
    :param net_arch: hidden layer sizes of the MLP (vector observations).
    :param activation: ``tanh`` or ``relu``.
    :param loss: ``nll`` (negative log-likelihood: cross-entropy for discrete actions, Gaussian for Box)
        or ``mse`` (squared error of the deterministic action).
    :param normalize_obs: normalise vector observations by the dataset's mean and std.
    :param weight_decay: L2 penalty in Adam.
    :param early_stopping: stop after this many validation reports without improvement, keeping the best
        parameters (``None``: never).
    :param train_fraction: share of episodes for training (when the trainer builds the dataset).
    :param seed: seeds the network, the split and the batches: the same seed repeats a run.
    :param torch_threads: torch's intra-op threads while training (restored after); ``None`` uses one for
        an MLP, whose small matrices lose more to thread hand-offs than they gain, and leaves a CNN alone.
    """

    n_epochs: int = 10
    learning_rate: float = 1e-4
    adam_epsilon: float = 1e-8
    val_interval: int | None = None
    batch_size: int = 64
    net_arch: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    loss: str = "nll"
    normalize_obs: bool = True
    weight_decay: float = 0.0
    early_stopping: int | None = None
    train_fraction: float = 0.7
    seed: int | None = None
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UsageError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.n_epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise UsageError("n_epochs and batch_size must be at least 1 and learning_rate positive")
        self.net_arch = tuple(int(n) for n in self.net_arch)


@dataclass
class Report:
    """One line of the training log."""

    epoch: int
    steps: int
    train_loss: float
    val_loss: float | None
    seconds: float
    transitions_per_second: float


@dataclass
class History:
    reports: list[Report] = field(default_factory=list)
    best_val_loss: float | None = None
    stopped_early: bool = False


def as_dataset(dataset: ExpertDataset | str | Path, config: BCConfig, traj_limitation: int = -1) -> ExpertDataset:
    """An ``ExpertDataset`` as given, or built from a path with the config's batch size, split and seed."""
    if isinstance(dataset, ExpertDataset):
        return dataset
    return ExpertDataset(dataset, train_fraction=config.train_fraction, batch_size=config.batch_size,
                         traj_limitation=traj_limitation, verbose=0, seed=config.seed)


def observation_stats(dataset: ExpertDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the kept observations, read block by block."""
    total, total_sq, count = 0.0, 0.0, 0
    for block in iter_blocks(dataset.observations):
        rows = block.reshape(len(block), -1).astype(np.float64)
        total, total_sq, count = total + rows.sum(0), total_sq + (rows * rows).sum(0), count + len(rows)
    mean = total / max(count, 1)
    return mean, np.sqrt(np.maximum(total_sq / max(count, 1) - mean * mean, 0.0))


def _validation_loss(loss_fn: Callable, dataset: ExpertDataset, world: World) -> float | None:
    if not len(dataset.val_indices) and world.size == 1:
        return None
    loader = DataLoader(dataset.val_indices, dataset.observations, dataset.actions, 4096, infinite_loop=False,
                        sequential=True, image_root=dataset.source.root, to_torch=True)
    total = np.zeros(2)
    with torch.no_grad():
        for obs, act in loader:
            total += (float(loss_fn(obs, act)) * len(obs), len(obs))
    total = world.sum(total)
    return float(total[0] / total[1]) if total[1] else None


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` intra-op threads (``None``: unchanged), restoring the previous number."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def reached_parameters(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], module: torch.nn.Module,
                       dataset: ExpertDataset) -> list[torch.nn.Parameter]:
    """The trainable parameters the loss depends on, found on one transition: an actor-critic's value
    network, or the log std under ``loss="mse"``, would otherwise get no gradient."""
    candidates = [p for p in module.parameters() if p.requires_grad]
    obs, act = (torch.from_numpy(a) for a in next(iter(DataLoader(
        dataset.train_indices[:1], dataset.observations, dataset.actions, 1, sequential=True,
        image_root=dataset.source.root))))
    reached = torch.autograd.grad(loss_fn(obs, act), candidates, allow_unused=True)
    return [p for p, g in zip(candidates, reached) if g is not None]


Callback = Callable[[Report], "bool | None"]


def fit(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], params: Sequence[torch.nn.Parameter],
        dataset: ExpertDataset, config: BCConfig, module: torch.nn.Module | None = None,
        progress: bool = True, world: World | None = None, callback: Callback | None = None) -> History:
    """Minimise ``loss_fn(obs, actions)`` over the training split with Adam; report every ``val_interval``.

    Under MPI each rank takes its shard of the batches, gradients are averaged every step and every
    rank takes the same number of steps, so parameters stay identical (``module`` is broadcast first).
    ``callback(report)`` runs after each report; returning a false value other than ``None`` stops
    training. Its time is not counted in the reports' seconds.
    """
    world = world or World()
    if module is not None:
        world.broadcast(module)
    params = list(params)
    optimizer = Adam(params, config.learning_rate, config.adam_epsilon, config.weight_decay)
    loader = dataset.train_loader
    steps_per_epoch = world.min(max(1, -(-len(dataset.train_indices) // loader.batch_size)))
    interval = config.val_interval or max(1, config.n_epochs // 10)
    history, best_state, waited = History(), None, 0
    start, transitions, outside = time.perf_counter(), 0, 0.0
    bar = tqdm(range(config.n_epochs), desc="bc", unit="epoch", disable=None if progress and world.is_root else True)
    for epoch in bar:
        running = 0.0
        for _ in range(steps_per_epoch):
            obs, act = dataset.get_next_batch("train")
            loss = loss_fn(torch.from_numpy(obs), torch.from_numpy(act))
            grads = world.average(torch.autograd.grad(loss, params))
            optimizer.step(grads)
            running += float(loss.detach())
            transitions += len(obs)
        if (epoch + 1) % interval and epoch + 1 != config.n_epochs:
            continue
        train_loss = float(world.sum(np.array([running / steps_per_epoch]))[0] / world.size)
        val_loss = _validation_loss(loss_fn, dataset, world)
        seconds = time.perf_counter() - start - outside
        history.reports.append(Report(epoch + 1, (epoch + 1) * steps_per_epoch, train_loss, val_loss, seconds,
                                      world.size * transitions / seconds))
        if callback is not None:
            called = time.perf_counter()
            answer = callback(history.reports[-1])
            stop = answer is not None and not answer
            outside += time.perf_counter() - called
            if stop:
                break
        bar.set_postfix(train_loss=f"{train_loss:.4f}", val_loss="-" if val_loss is None else f"{val_loss:.4f}")
        if val_loss is not None and (history.best_val_loss is None or val_loss < history.best_val_loss):
            history.best_val_loss, waited = val_loss, 0
            best_state = [p.detach().clone() for p in params] if config.early_stopping is not None else None
        elif config.early_stopping is not None and val_loss is not None:
            waited += 1
            if waited >= config.early_stopping:
                history.stopped_early = True
                break
    if best_state is not None:
        with torch.no_grad():
            for p, best in zip(params, best_state):
                p.copy_(best)
    return history


class BC:
    """Behaviour cloning of a dataset into a ``Policy``: ``learn``, ``predict``, ``save``, ``load``.

    :param env: a gymnasium env or env id; its spaces must match the dataset's (checked before training).
    :param policy: a policy to train further; by default one is built from the dataset's spaces.
    """

    def __init__(self, env: Any = None, policy: Policy | None = None, config: BCConfig | None = None,
                 **config_kwargs: Any) -> None:
        self.config = config or BCConfig(**config_kwargs)
        self.env, self.policy = env, policy
        self.history: History | None = None

    def _spaces_of(self, dataset: ExpertDataset) -> tuple[dict, dict]:
        meta = dataset.source.metadata
        have = (meta.get("observation_space"), meta.get("action_space"))
        if self.env is not None:
            env = env_spaces(self.env)
            check_spaces(have, env, f"the dataset {dataset.source.source}", "the env")
            return env
        if None in have:
            raise UsageError(f"the dataset {dataset.source.source} does not declare its spaces (an SB2 file); "
                             "pass env= so they can be taken from the env")
        return have

    def learn(self, dataset: ExpertDataset | str | Path, traj_limitation: int = -1, progress: bool = True,
              callback: Callback | None = None) -> "BC":
        """Train on ``dataset`` (an ``ExpertDataset``, or a path in any format); ``callback(report)`` runs
        at every report and stops training by returning ``False``."""
        if self.config.seed is not None:
            torch.manual_seed(self.config.seed)
        world = World()
        dataset = as_dataset(dataset, self.config, traj_limitation)
        obs_space, act_space = self._spaces_of(dataset)
        if self.policy is None:
            self.policy = Policy(obs_space, act_space, self.config.net_arch, self.config.activation)
            if self.config.normalize_obs:
                self.policy.set_observation_stats(*observation_stats(dataset))
        else:
            check_spaces((self.policy.observation_space, self.policy.action_space), (obs_space, act_space),
                         "the policy", f"the dataset {dataset.source.source}")
        head, policy = self.policy.head, self.policy
        if self.config.loss == "nll":
            def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
                return head.nll(policy(obs), act)
        else:
            def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
                return head.squared_error(policy(obs), act).mean()
        threads = self.config.torch_threads or (1 if isinstance(policy.features, VectorFeatures) else None)
        with torch_threads(threads):
            self.history = fit(loss_fn, reached_parameters(loss_fn, policy, dataset), dataset, self.config, policy,
                               progress, world, callback)
        self.world = world
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
            raise UsageError("the policy is not trained yet: call learn(dataset) first")
        return self.policy

    def save(self, path: str | Path) -> Path:
        """Write the policy directory (weights and config, no pickle)."""
        return self._trained().save(path, {"trainer": "bc", "config": json.loads(json.dumps(asdict(self.config)))})


def load(path: str | Path, env: Any = None) -> BC:
    """Load what ``BC.save`` (or ``expertdata train bc --out``) wrote; with ``env``, check its spaces."""
    policy = Policy.load(path, env)
    saved = policy.saved_config.get("config", {})
    known = {f.name for f in fields(BCConfig)}
    return BC(env, policy, BCConfig(**{k: v for k, v in saved.items() if k in known}))


def pretrain(policy: torch.nn.Module, dataset: ExpertDataset | str | Path,
             log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], progress: bool = True,
             **config_kwargs: Any) -> History:
    """Warm-start any torch policy by behaviour cloning: maximise ``log_prob(obs, actions)`` (the
    log-likelihood of the expert's actions under the policy's distribution) over ``dataset``.

    SB2's ``model.pretrain(dataset, n_epochs=10, learning_rate=1e-4, adam_epsilon=1e-8, val_interval=None)``
    maps to ``pretrain(model.policy, dataset, log_prob, n_epochs=..., ...)``; ``trainers.bc.sb3`` gives
    ``log_prob`` for a Stable-Baselines3 policy.
    """
    config = BCConfig(**config_kwargs)
    if config.seed is not None:
        torch.manual_seed(config.seed)
    world = World()
    dataset = as_dataset(dataset, config)

    def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return -log_prob(obs, act).mean()

    return fit(loss_fn, reached_parameters(loss_fn, policy, dataset), dataset, config, policy, progress, world)
