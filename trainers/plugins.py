"""Trainer plugins: each trainer registers one entry point in the ``expertdata.trainers`` group, and
``expertdata train NAME ...`` finds it, so a third-party trainer installs and appears without editing
this repo.

An entry point names a ``TrainerPlugin``: a name, a one-line summary, a config dataclass (its fields
become ``--options``) and the trainer class, imported only to train. The runner (``run``) relies on
nothing but the trainer protocol (``trainers.protocol.Trainer``). Nothing here imports torch.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from expertdata import ExpertDataset, UsageError, World, atomic

GROUP = "expertdata.trainers"
#: What to do when torch is missing: the core installs without it.
TORCH_MISSING = 'the trainers need torch, which is not installed: pip install "expertdata[trainers]"'
#: Episodes a trained policy is evaluated on before it is saved.
EVAL_EPISODES = 20


@dataclass(frozen=True)
class TrainerPlugin:
    """A trainer as the command line knows it.

    :param trainer: ``module:Class`` of a class that follows ``trainers.protocol.Trainer``.
    :param dataset_options: ``ExpertDataset`` parameters the trainer's batches use (``batch_size``,
        ``train_fraction``); they become options too.
    :param default_steps: ``learn``'s budget when ``--steps`` is not given (``None``: the trainer's own).
    :param needs_env: the trainer steps an env, so ``--env`` is required.
    :param example: a command line that trains it, for ``--help``.
    """

    name: str
    summary: str
    config_class: type
    trainer: str
    dataset_options: tuple[str, ...] = ()
    default_steps: int | None = None
    needs_env: bool = False
    example: str = ""

    def trainer_class(self) -> type:
        """The trainer class; importing it needs torch."""
        module, _, name = self.trainer.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch":
                raise UsageError(TORCH_MISSING) from None
            raise


def discover() -> dict[str, TrainerPlugin]:
    """Every installed trainer, by name."""
    return {plugin.name: plugin for plugin in (entry.load() for entry in entry_points(group=GROUP))}


def require_torch() -> None:
    """A one-line ``UsageError`` naming the extra to install when torch is missing."""
    try:
        importlib.import_module("torch")
    except ImportError:
        raise UsageError(TORCH_MISSING) from None


@dataclass(frozen=True)
class TrainRequest:
    """What every trainer gets from the command line besides its config."""

    dataset: Path
    env_id: str | None
    out: Path
    traj_limitation: int = -1
    steps: int | None = None
    log_interval: int = 10
    check: bool = True
    dataset_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    overwrite: bool = False


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` is a folder a trainer wrote (a policy in it), which ``--overwrite`` may replace."""
    return (path / "policy.json").is_file()


def _finite(value: Any) -> Any:
    """``value`` as strict JSON: NaN and infinities become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_outputs(out: Path, rows: list[dict], summary: dict) -> None:
    """The training log (``log.csv``, one row per log record) and ``summary.json`` beside the policy."""
    if rows:
        names = list(dict.fromkeys(name for row in rows for name in row))
        with open(out / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(_finite(summary), indent=2, allow_nan=False, default=str))


def run(plugin: TrainerPlugin, request: TrainRequest, config: Any) -> dict[str, Any]:
    """Train ``plugin``'s trainer on the request's dataset, then, on rank 0 alone, evaluate it on the env
    (when one is given) and write the model, ``log.csv`` and ``summary.json`` to ``request.out``
    atomically. Returns the summary on every rank."""
    trainer_class = plugin.trainer_class()
    if plugin.needs_env and request.env_id is None:
        raise UsageError(f"{plugin.name} steps an env: pass --env ENV_ID")
    atomic.check_destination(request.out, [request.dataset], request.overwrite, is_model_folder)
    started, world = time.perf_counter(), World()
    dataset = ExpertDataset(request.dataset, traj_limitation=request.traj_limitation, verbose=0,
                            seed=getattr(config, "seed", None), **request.dataset_options)
    try:
        trainer = trainer_class(None, request.env_id, dataset, config=config, verbose=1, check=request.check)
        trainer.learn(request.steps if request.steps is not None else plugin.default_steps,
                      log_interval=request.log_interval, progress=request.progress)
        summary: dict[str, Any] = {
            "trainer": plugin.name, "saved": world.is_root, "dataset": str(request.dataset), "env": request.env_id,
            "traj_limitation": request.traj_limitation, "ranks": world.size,
            "config": dataclasses.asdict(trainer.config),
            "dataset_options": request.dataset_options, "seconds": time.perf_counter() - started,
            "timesteps": trainer.num_timesteps,
            "parameters_identical_across_ranks": world.identical(trainer.get_parameters()),
            "last_log": trainer.logs[-1].json() if trainer.logs else None}
        if world.is_root:
            if request.env_id is not None:
                mean, std = trainer.evaluate(request.env_id, n_episodes=EVAL_EPISODES)
                summary.update(eval_return_mean=mean, eval_return_std=std, eval_episodes=EVAL_EPISODES)
            with atomic.destination(request.out, request.overwrite, [request.dataset], is_model_folder) as tmp:
                trainer.save(tmp)
                write_outputs(tmp, [record.json() for record in trainer.logs], summary)
    finally:
        dataset.close()
    return summary
