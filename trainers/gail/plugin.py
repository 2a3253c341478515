"""``expertdata train gail``: GAIL as a trainer plugin."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from expertdata import ExpertDataset
from expertdata.errors import UsageError

from ..plugins import TrainerPlugin, TrainRequest, finish
from .gail import GAIL, GAILConfig


@dataclass
class GAILRun(GAILConfig):
    """GAIL's config, plus how long to train and how often to log.

    :param steps: env steps in all (over every rank).
    :param log_interval: iterations between log lines.
    """

    steps: int = 100_000
    log_interval: int = 10


def run(request: TrainRequest, config: GAILRun) -> dict[str, Any]:
    """Train for ``config.steps`` env steps (checkpoints in ``OUT-checkpoints``), then (rank 0) save the
    model to ``request.out`` with its log and summary, evaluated on the env."""
    if request.env_id is None:
        raise UsageError("GAIL steps an env: pass --env ENV_ID")
    start = time.perf_counter()
    gail_config = GAILConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(GAILConfig)})
    dataset = ExpertDataset(request.dataset, traj_limitation=request.traj_limitation, verbose=0, seed=config.seed,
                            in_memory=True)
    model = GAIL(None, request.env_id, dataset, _config=gail_config, verbose=1)
    model.learn(config.steps, log_interval=config.log_interval,
                checkpoint_dir=request.out.with_name(request.out.name + "-checkpoints"),
                progress=request.progress)
    return finish("gail", request, config, start, model, model.world, model.logs, timesteps=model.num_timesteps,
                  parameters_identical_across_ranks=model.world.identical(model.model),
                  last_log=model.logs[-1] if model.logs else None)


PLUGIN = TrainerPlugin("gail", "generative adversarial imitation learning (SB2's GAIL), PPO generator", GAILRun, run)
