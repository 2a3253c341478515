"""``BCConfig``: behaviour cloning's hyperparameters (free of torch, so the command line reads them without it)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from expertdata import UsageError

from ..common.configs import AUTO_STEPS, CloningConfig

#: ``min_steps=None``'s budget for Box actions.
BOX_STEPS = 30_000

LOSSES = ("auto", "nll", "mse")
ACTIVATIONS = ("tanh", "relu")


@dataclass
class BCConfig(CloningConfig):
    """Behaviour cloning: the loop's parameters (SB2's ``pretrain`` ones first), then the policy's. The batch
    size and the train/validation split are the dataset's (``ExpertDataset``).

    The defaults differ from SB2's ``pretrain`` (10 epochs at 1e-4 on the training split, which ``pretrain``
    keeps): a budget scaled to the dataset (``n_epochs=None``) at a learning rate of 1e-3, on every kept
    episode (``train_on="all"``). SB2's left a CartPole policy cloned from one episode of a trained agent at
    a return of 45-236, where these reach 460-500 (``benchmarks/bc.py``). Holding 3 of 10 Pendulum episodes
    out to validate (and stop early) left 3 of 5 seeds' policies short of the expert; fitting all 10 brings
    every seed to it (``benchmarks/suite.py``): with a few demonstrations, the episodes held out cost more
    than validation saves. ``train_on="train"`` with ``early_stopping`` brings validation back.

    :param net_arch: hidden layer sizes of the MLP (vector and discrete observations); ``None``: (64, 64) for
        discrete actions, (128, 128) for Box actions (``resolved_for``).
    :param min_steps: with ``n_epochs=None``, the fewest gradient steps of the budget; ``None``: 10,000 for discrete
        actions, 30,000 for Box actions.
    :param activation: the MLP's activation.
    :param loss: nll (negative log-likelihood: cross-entropy for discrete actions, Gaussian for Box), mse
        (squared error of the deterministic action), or auto: nll for discrete actions, mse for Box ones.
    :param normalize_obs: normalise Box vector observations by the dataset's mean and std; ``None``: fully
        for discrete actions, and for Box actions with each std floored at ``std_floor``.
    :param std_floor: with Box actions (``normalize_obs=None``), a feature is divided by its std but by no less
        than this: one that barely varies in the demonstrations is magnified at most 1/std_floor times.
    """

    n_epochs: int | None = None
    learning_rate: float = 1e-3
    train_on: Literal["train", "all"] = "all"
    early_stopping: int | None = None
    net_arch: tuple[int, ...] | None = None
    min_steps: int | None = None
    activation: Literal["tanh", "relu"] = "tanh"
    loss: Literal["auto", "nll", "mse"] = "auto"
    normalize_obs: bool | None = None
    std_floor: float = 0.3

    def resolved(self, action_space: dict) -> tuple[str, str]:
        """The loss and how observations are normalised (``full``, ``shrink`` or ``none``) for this action
        space, ``auto`` and ``None`` decided. Classifying discrete actions from few samples gains from
        normalised features. Regressing an expert's continuous actions extrapolates more safely where features
        that barely vary are not magnified (``shrink``: divided by their std, but by no less than 0.3), and
        by the squared error of the mean action: a Gaussian's likelihood keeps improving as its std shrinks,
        so its validation loss stops training for the wrong reason."""
        box = action_space["type"] == "Box"
        loss = ("mse" if box else "nll") if self.loss == "auto" else self.loss
        if self.normalize_obs is None:
            return loss, "shrink" if box else "full"
        return loss, "full" if self.normalize_obs else "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in LOSSES:
            raise UsageError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.activation not in ACTIVATIONS:
            raise UsageError(f"activation must be one of {ACTIVATIONS}, not {self.activation!r}")
        if self.net_arch is not None:
            self.net_arch = tuple(int(n) for n in self.net_arch)
            if not self.net_arch or min(self.net_arch) < 1:
                raise UsageError(f"net_arch must list one or more layer sizes of at least 1, not {self.net_arch}")

    def resolved_for(self, action_space: dict) -> "BCConfig":
        """This config with ``net_arch`` and ``min_steps`` decided for the action space where left ``None``:
        classifying discrete actions from a few demonstrations, a small network and a short budget (a longer one
        overfitted one CartPole episode: 0.40 and 1.00 against 1.00 twice); regressing Box actions, a wider network
        and a longer budget (locomotion's many features underfit 64x64 in 10,000 steps), measured in
        docs/results/bc-defaults.md."""
        box = action_space["type"] == "Box"
        return dataclasses.replace(self, net_arch=self.net_arch or ((128, 128) if box else (64, 64)),
                                   min_steps=self.min_steps or (BOX_STEPS if box else AUTO_STEPS))
