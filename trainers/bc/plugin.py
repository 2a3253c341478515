"""``expertdata train bc``: behaviour cloning as a trainer plugin."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from ..plugins import TrainerPlugin, TrainRequest, finish
from .trainer import BC, BCConfig


def run(request: TrainRequest, config: BCConfig) -> dict[str, Any]:
    """Train, then (rank 0) save the policy to ``request.out`` with its log and summary, evaluated on the env."""
    start = time.perf_counter()
    bc = BC(request.env_id, config=config).learn(request.dataset, request.traj_limitation, request.progress)
    history = bc.history
    last = history.reports[-1]
    return finish("bc", request, config, start, bc, bc.world, [dataclasses.asdict(r) for r in history.reports],
                  epochs=last.epoch, steps=last.steps, train_loss=last.train_loss, val_loss=last.val_loss,
                  best_val_loss=history.best_val_loss, stopped_early=history.stopped_early,
                  transitions_per_second=last.transitions_per_second,
                  parameters_identical_across_ranks=bc.world.identical(bc.policy))


PLUGIN = TrainerPlugin("bc", "behaviour cloning (SB2's pretrain): maximise the likelihood of the expert's actions",
                       BCConfig, run)
