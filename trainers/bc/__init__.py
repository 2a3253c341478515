"""trainers.bc: behaviour cloning from any conforming dataset, in any format (SB2's ``pretrain`` reborn).

>>> from trainers.bc import BC
>>> bc = BC("Pendulum-v1", n_epochs=200, learning_rate=1e-3, seed=0).learn("fixtures/pendulum.npz")  # doctest: +SKIP
>>> bc.evaluate(n_episodes=20)  # doctest: +SKIP
"""
from .trainer import BC, BCConfig, History, fit, load, pretrain

__all__ = ["BC", "BCConfig", "History", "fit", "load", "pretrain"]
