"""Behaviour cloning's loop, shared by ``trainers.bc`` and ``GAIL.pretrain``: minimise any loss of a batch
over a dataset's training split (or every kept transition), with validation, early stopping and MPI data parallelism.

``pretrain`` warm-starts any torch policy that gives the log-likelihood of actions (SB2's ``pretrain``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from expertdata import TrainingData, World, observations

from ..protocol import Callback, LogRecord
from .configs import AUTO_EPOCHS, AUTO_LOGS, CloningConfig
from .data import as_training_data
from .log_table import LogTable
from .optim import Adam
from .threads import torch_threads

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Transitions per batch when the validation loss is computed (no gradients, so large batches).
VALIDATION_BATCH = 4096
#: What ``verbose`` prints of each log record.
TABLE = {"iteration": "epoch", "timesteps": "transitions", "train_loss": "train loss", "val_loss": "val loss",
         "transitions_per_second": "transitions/s"}


@dataclass
class History:
    """What a cloning run logged: one record every ``val_interval`` epochs, and how it ended."""

    logs: list[LogRecord] = field(default_factory=list)
    best_val_loss: float | None = None
    stopped_early: bool = False


def _validation_loss(loss_fn: Loss, dataset: TrainingData, world: World, train_on: str) -> float | None:
    if train_on == "all" or not dataset.split_size("val") and world.size == 1:
        return None
    total = np.zeros(2)
    with torch.no_grad():
        for obs, act in dataset.batches("val", VALIDATION_BATCH, infinite=False, shuffle=False, to_torch=True):
            total += (float(loss_fn(obs, act)) * len(act), len(act))
    total = world.sum(total)
    return float(total[0] / total[1]) if total[1] else None


def reached_parameters(loss_fn: Loss, module: torch.nn.Module, dataset: TrainingData) -> list[torch.nn.Parameter]:
    """The trainable parameters the loss depends on, found on one transition: an actor-critic's value
    network, or the log std under ``loss="mse"``, would otherwise get no gradient."""
    candidates = [p for p in module.parameters() if p.requires_grad]
    obs, act = dataset.sample(1, np.random.default_rng(0))
    reached = torch.autograd.grad(loss_fn(observations.apply(torch.as_tensor, obs), torch.as_tensor(act)), candidates,
                                  allow_unused=True)
    return [p for p, g in zip(candidates, reached) if g is not None]


def fit(loss_fn: Loss, params: Sequence[torch.nn.Parameter], dataset: TrainingData, config: CloningConfig,
        module: torch.nn.Module | None = None, progress: bool = True, world: World | None = None,
        callback: Callback | None = None, total_timesteps: int | None = None, start_timesteps: int = 0,
        log_interval: int = 1, verbose: int = 0) -> History:
    """Minimise ``loss_fn(obs, actions)`` over the ``train_on`` split with Adam, logging every ``val_interval``
    epochs.

    :param total_timesteps: expert transitions to train on, over every rank (``None``: ``n_epochs``
        passes over the fitted split).
    :param start_timesteps: where the logs' ``timesteps`` count starts.
    :param callback: runs after each log record (its time is not counted in the records' seconds);
        returning a false value other than ``None`` stops training.
    :param log_interval: with ``verbose``, print every this many records.

    Under MPI each rank takes its shard of the batches, gradients are averaged every step and every rank
    takes the same number of steps, so parameters stay identical (``module`` is broadcast first).
    """
    world = world or World()
    if module is not None:
        world.broadcast(module)
    params = list(params)
    optimizer = Adam(params, config.learning_rate, config.adam_epsilon, config.weight_decay)
    loader = dataset.batches(config.train_on)
    steps_per_epoch = world.min(max(1, len(loader)))
    per_step = loader.batch_size * world.size
    if total_timesteps is not None:
        total_steps = max(1, -(-int(total_timesteps) // per_step))
    elif config.n_epochs is None:
        total_steps = max(AUTO_EPOCHS * steps_per_epoch, config.min_steps)
    else:
        total_steps = config.n_epochs * steps_per_epoch
    if config.val_interval:
        report_every = steps_per_epoch * config.val_interval
    elif config.n_epochs is None and total_timesteps is None:
        report_every = max(1, total_steps // AUTO_LOGS)
    else:
        report_every = steps_per_epoch * max(1, total_steps // steps_per_epoch // 10)
    history, best_state, waited = History(), None, 0
    start, transitions, outside, running, counted = time.perf_counter(), 0, 0.0, 0.0, 0
    bar = tqdm(total=total_steps * per_step, desc="bc", unit="transition", unit_scale=True,
               disable=None if progress and world.is_root else True)
    table = LogTable(TABLE, log_interval) if verbose and world.is_root else None
    try:
        for step in range(1, total_steps + 1):
            obs, act = next(loader)
            loss = loss_fn(observations.apply(torch.from_numpy, obs), torch.from_numpy(act))
            optimizer.step(world.average(torch.autograd.grad(loss, params)))
            running, counted, transitions = running + float(loss.detach()), counted + 1, transitions + len(act)
            bar.update(per_step)
            if step % report_every and step != total_steps:
                continue
            train_loss = float(world.sum(np.array([running / counted]))[0] / world.size)
            running, counted = 0.0, 0
            val_loss = _validation_loss(loss_fn, dataset, world, config.train_on)
            seconds = time.perf_counter() - start - outside
            record = LogRecord(math.ceil(step / steps_per_epoch), start_timesteps + step * per_step, seconds,
                               {"epoch": step / steps_per_epoch, "gradient_steps": step, "train_loss": train_loss,
                                "val_loss": val_loss, "transitions_per_second": world.size * transitions / seconds})
            history.logs.append(record)
            bar.set_postfix(train_loss=f"{train_loss:.4f}", val_loss="-" if val_loss is None else f"{val_loss:.4f}")
            if table is not None:
                table.add(record)
            if callback is not None:
                called = time.perf_counter()
                answer = callback(record)
                outside += time.perf_counter() - called
                if answer is not None and not answer:
                    break
            if val_loss is not None and (history.best_val_loss is None or val_loss < history.best_val_loss):
                history.best_val_loss, waited = val_loss, 0
                best_state = [p.detach().clone() for p in params] if config.early_stopping is not None else None
            elif config.early_stopping is not None and val_loss is not None:
                waited += 1
                if waited >= config.early_stopping:
                    history.stopped_early = True
                    break
    finally:
        bar.close()
        loader.close()
        if table is not None:
            table.finish()
    if best_state is not None:
        with torch.no_grad():
            for p, best in zip(params, best_state):
                p.copy_(best)
    return history


def pretrain(policy: torch.nn.Module, dataset: TrainingData | str | Path,
             log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], progress: bool = True,
             check: bool = True, **config: Any) -> History:
    """Warm-start any torch policy by behaviour cloning: maximise ``log_prob(obs, actions)`` (the
    log-likelihood of the expert's actions under the policy's distribution) over ``dataset``.

    SB2's ``model.pretrain(dataset, n_epochs=10, learning_rate=1e-4, adam_epsilon=1e-8, val_interval=None)``
    maps to ``pretrain(model.policy, dataset, log_prob, n_epochs=..., ...)``; ``config`` takes
    ``CloningConfig``'s fields; ``check`` refuses a dataset that breaks the format's rules first.
    """
    settings = CloningConfig(**config)
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    data = as_training_data(dataset, settings.seed)
    if check:
        data.check()

    def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return -log_prob(obs, act).mean()

    with torch_threads(settings.torch_threads):
        return fit(loss_fn, reached_parameters(loss_fn, policy, data), data, settings, policy, progress)
