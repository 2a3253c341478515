"""``expertdata train bc``: behaviour cloning as a trainer plugin (nothing here imports torch)."""
from __future__ import annotations

from ..plugins import TrainerPlugin
from .config import BCConfig

PLUGIN = TrainerPlugin(
    "bc", "behaviour cloning (SB2's pretrain): maximise the likelihood of the expert's actions", BCConfig,
    "trainers.bc.trainer:BC", dataset_options=("batch_size", "train_fraction"),
    example="expertdata train bc fixtures/pendulum.npz --env Pendulum-v1 --out pendulum-bc --n-epochs 300 "
            "--learning-rate 1e-3")
