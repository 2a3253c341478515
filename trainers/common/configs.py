"""Configs the trainers share, free of torch so that the command line can read them without it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from expertdata import UsageError

TRAIN_ON = ("train", "all")


#: ``n_epochs=None``'s budget: at least this many passes over the fitted split...
AUTO_EPOCHS = 10
#: ... and this many gradient steps (a small dataset needs many passes: 1 CartPole episode is 6 batches)...
AUTO_STEPS = 10_000
#: ... with the validation loss logged this many times over the budget.
AUTO_LOGS = 50


@dataclass
class CloningConfig:
    """Behaviour cloning's loop: SB2's ``pretrain`` parameters first, with its defaults.

    :param n_epochs: passes over the fitted split (when ``learn`` is given no budget); None: a budget
        scaled to the dataset, at least ``AUTO_EPOCHS`` passes and ``AUTO_STEPS`` gradient steps, validated
        ``AUTO_LOGS`` times.
    :param learning_rate: Adam's step size.
    :param adam_epsilon: Adam's epsilon.
    :param val_interval: log training and validation loss every this many epochs (None: a tenth of the
        epochs trained, or with ``n_epochs=None`` every ``AUTO_LOGS``-th of the budget).
    :param weight_decay: L2 penalty in Adam.
    :param train_on: the dataset's split to fit: ``train`` (SB2's: the validation split is held out and
        scored) or ``all`` (every kept transition; nothing is held out, so nothing is validated).
    :param early_stopping: stop after this many validation logs without improvement, keeping the best
        parameters (None: never); it needs ``train_on="train"``.
    :param seed: seeds the network and the run: the same seed repeats it.
    :param torch_threads: torch's intra-op threads while training (restored after); None uses one for an
        MLP, whose small matrices lose more to thread hand-offs than they gain, and leaves a CNN alone.
    :param min_steps: with ``n_epochs=None``, the fewest gradient steps of the budget.
    """

    n_epochs: int | None = 10
    learning_rate: float = 1e-4
    adam_epsilon: float = 1e-8
    val_interval: int | None = None
    weight_decay: float = 0.0
    train_on: Literal["train", "all"] = "train"
    early_stopping: int | None = None
    seed: int | None = None
    torch_threads: int | None = None
    min_steps: int = AUTO_STEPS

    def __post_init__(self) -> None:
        if self.n_epochs is not None and self.n_epochs < 1 or self.learning_rate <= 0:
            raise UsageError(f"n_epochs must be at least 1 and learning_rate positive, not {self.n_epochs} and "
                             f"{self.learning_rate}")
        for name in ("val_interval", "early_stopping", "torch_threads", "min_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 (or None), not {value}")
        if self.train_on not in TRAIN_ON:
            raise UsageError(f"train_on must be one of {TRAIN_ON}, not {self.train_on!r}")
        if self.train_on == "all" and self.early_stopping is not None:
            raise UsageError("early_stopping needs held-out data: set train_on='train' (or early_stopping=None)")
