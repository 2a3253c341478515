"""``expertdata train bc``: behaviour cloning as a trainer plugin."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from ..plugins import TrainerPlugin, TrainRequest, write_outputs
from .trainer import BC, BCConfig


def run(request: TrainRequest, config: BCConfig) -> dict[str, Any]:
    """Train, then (rank 0) save the policy to ``request.out`` with its log and summary, evaluated on the env."""
    start = time.perf_counter()
    bc = BC(request.env_id, config=config).learn(request.dataset, request.traj_limitation, request.progress)
    summary: dict[str, Any] = {"trainer": "bc", "saved": bc.world.is_root, "dataset": str(request.dataset), "env": request.env_id,
                               "traj_limitation": request.traj_limitation, "ranks": bc.world.size,
                               "config": dataclasses.asdict(config), "seconds": time.perf_counter() - start}
    history = bc.history
    last = history.reports[-1]
    summary.update(epochs=last.epoch, steps=last.steps, train_loss=last.train_loss, val_loss=last.val_loss,
                   best_val_loss=history.best_val_loss, stopped_early=history.stopped_early,
                   transitions_per_second=last.transitions_per_second,
                   parameters_identical_across_ranks=bc.world.identical(bc.policy))
    if request.env_id is not None and bc.world.is_root:
        mean, std = bc.evaluate(request.env_id, n_episodes=20)
        summary.update(eval_return_mean=mean, eval_return_std=std, eval_episodes=20)
    if bc.world.is_root:
        bc.save(request.out)
        write_outputs(request.out, [dataclasses.asdict(r) for r in history.reports], summary)
    return summary


PLUGIN = TrainerPlugin("bc", "behaviour cloning (SB2's pretrain): maximise the likelihood of the expert's actions",
                       BCConfig, run)
