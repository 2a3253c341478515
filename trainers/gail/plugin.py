"""``expertdata train gail``: GAIL as a trainer plugin (nothing here imports torch)."""
from __future__ import annotations

from ..plugins import TrainerPlugin
from .config import GAILConfig

PLUGIN = TrainerPlugin(
    "gail", "generative adversarial imitation learning (SB2's GAIL), PPO generator", GAILConfig,
    "trainers.gail.gail:GAIL", default_steps=100_000, needs_env=True,
    example="expertdata train gail fixtures/cartpole.npz --env CartPole-v1 --out cartpole-gail --steps 100000 "
            "--d-step 64")
