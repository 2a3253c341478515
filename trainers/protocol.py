"""The one public shape every trainer has (``Trainer``), and the one record its log is made of
(``LogRecord``). The plugin runner (``trainers.plugins``) relies on nothing else, so a third-party trainer
that follows it trains from the command line like ours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable


@dataclass(frozen=True)
class LogRecord(Mapping[str, Any]):
    """One line of a trainer's log.

    :param iteration: the trainer's own count of its iterations (GAIL: rollouts and updates; BC: epochs).
    :param timesteps: the trainer's ``num_timesteps`` so far (GAIL: env steps; BC: expert transitions
        trained on), over every rank.
    :param seconds: since ``learn`` began.
    :param values: everything else the trainer logs, by name (losses, accuracies, throughput).

    It reads as a mapping too: ``record["timesteps"]``, ``record["d_loss"]``, ``dict(record)``.
    """

    iteration: int
    timesteps: int
    seconds: float
    values: Mapping[str, Any] = field(default_factory=dict)

    def _row(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "timesteps": self.timesteps, "seconds": self.seconds, **self.values}

    def __getitem__(self, key: str) -> Any:
        return self._row()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row())

    def __len__(self) -> int:
        return 3 + len(self.values)

    def json(self) -> dict[str, Any]:
        """The record as strict JSON values: a NaN or infinite number becomes ``None``."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in self._row().items()}


#: Called with every new log record; returning a false value other than ``None`` stops ``learn``.
Callback = Callable[[LogRecord], Any]


@runtime_checkable
class Trainer(Protocol):
    """What every trainer is: SB2's model API, on any dataset that implements
    ``expertdata.serving.training.TrainingData``.

    The constructor is ``Trainer(policy, env, expert_dataset, *, config=None, verbose=0, check=True)``:
    ``policy`` ``None`` (or ``"MlpPolicy"``/``"CnnPolicy"``) builds one from the spaces, or a policy to
    train further; ``env`` an env id, a gymnasium env or ``None`` where the trainer needs none; ``config``
    the trainer's config dataclass; ``check`` refuses, before the first gradient step, a dataset that
    breaks the format's rules or holds no transition, and spaces that do not fit.
    """

    config: Any
    num_timesteps: int
    logs: list[LogRecord]

    def learn(self, total_timesteps: int | None = None, callback: Callback | None = None, log_interval: int = 100,
              reset_num_timesteps: bool = True, progress: bool = False) -> "Trainer":
        """Train ``total_timesteps`` more steps (``None``: the trainer's own budget); ``reset_num_timesteps``
        restarts the ``num_timesteps`` count (SB2's semantics)."""

    def predict(self, observation: Any, state: Any = None, mask: Any = None, deterministic: bool = False) -> Any: ...

    def action_probability(self, observation: Any, state: Any = None, mask: Any = None, actions: Any = None,
                           logp: bool = False) -> Any: ...

    def evaluate(self, env: Any = None, n_episodes: int = 20, seed: int = ...) -> tuple[float, float]:
        """Mean and std of the return over ``n_episodes`` deterministic episodes."""

    def save(self, path: str | Path) -> Path:
        """A directory that ``load`` reads back, never pickled."""

    @classmethod
    def load(cls, path: str | Path, env: Any = None, expert_dataset: Any = None, **overrides: Any) -> "Trainer": ...

    def get_parameters(self) -> dict[str, Any]:
        """Every trained array, by name (numpy)."""

    def load_parameters(self, parameters: Mapping[str, Any]) -> None: ...
