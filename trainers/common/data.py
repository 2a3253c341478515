"""What every trainer does with its inputs before the first gradient step: a path becomes a dataset,
the dataset is checked, and the spaces its networks are built for are settled and checked."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from expertdata import ExpertDataset, TrainingData, UsageError, spaces

from .policy import check_spaces, env_spaces


def as_training_data(dataset: TrainingData | str | Path | None, seed: int | None) -> TrainingData | None:
    """``dataset`` as given, or an ``ExpertDataset`` (its defaults, ``seed``) of a path in any format."""
    if dataset is None or isinstance(dataset, TrainingData):
        return dataset
    if isinstance(dataset, (str, Path)):
        return ExpertDataset(dataset, verbose=0, seed=seed)
    raise UsageError(f"expert_dataset must be a path or a dataset (expertdata.serving.training.TrainingData), not "
                     f"{type(dataset).__name__}")


def training_spaces(dataset: TrainingData | None, env: Any, policy_spaces: tuple[dict, dict] | None,
                    check: bool) -> tuple[dict, dict]:
    """The observation and action spaces (JSON) to build networks for: a given policy's, else the env's,
    else the dataset's own. With ``check``, the dataset is refused first if it breaks the format's rules
    or holds no transition; the spaces must fit the dataset's (declared, or its rows' for an SB2 file)."""
    have, against = None, "the env"
    if policy_spaces is not None:
        have, against = policy_spaces, "the policy"
        if env is not None:
            check_spaces(policy_spaces, env_spaces(env), "the policy", "the env")
    elif env is not None:
        have = env_spaces(env)
    if dataset is None:
        if have is None:
            raise UsageError("the trainer needs an env, a policy or an expert dataset to know its spaces")
        return have
    if check:
        dataset.check()
    observation, action = dataset.fitting_spaces(*(have or (None, None)), against=against)
    return spaces.to_json(observation), spaces.to_json(action)
