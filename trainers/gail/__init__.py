"""trainers.gail: GAIL from any conforming dataset, with SB2's interface (PPO generator, torch, gymnasium).

>>> from trainers.gail import GAIL
>>> model = GAIL("MlpPolicy", "Pendulum-v1", "fixtures/pendulum.npz", reward="logit", seed=0)  # doctest: +SKIP
>>> model.learn(100_000)  # doctest: +SKIP
"""
from .config import GAILConfig
from .gail import GAIL
from .tuned import TUNED

load = GAIL.load

__all__ = ["GAIL", "GAILConfig", "TUNED", "load"]
