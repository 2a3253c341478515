"""trainers.bc: behaviour cloning from any conforming dataset, in any format (SB2's ``pretrain`` reborn).

>>> from trainers.bc import BC
>>> bc = BC(None, "Pendulum-v1", "fixtures/pendulum.npz", n_epochs=200, learning_rate=1e-3).learn()  # doctest: +SKIP
>>> bc.evaluate(n_episodes=20)  # doctest: +SKIP
"""
from ..common.cloning import History, fit, pretrain
from .config import BCConfig
from .trainer import BC

load = BC.load

__all__ = ["BC", "BCConfig", "History", "fit", "load", "pretrain"]
