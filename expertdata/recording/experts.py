"""Hand-written reference experts: deterministic controllers that score as experts without training.

``cartpole`` scores 500 (the maximum) on CartPole-v1 from every seed tried; ``pendulum`` swings
Pendulum-v1 up by pumping energy and holds it upright with a saturated PD law (mean return about -138
over seeds 0-19); ``pixel-cartpole`` plays ``expertdata/PixelCartPole-v1`` from its pictures and
``dict-cartpole`` plays ``expertdata/DictCartPole-v1`` (a Dict observation) from its vectors. ``resolve``
turns a built-in name or ``module:callable`` into a policy.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from ..core.errors import UsageError
from . import envs


def cartpole(obs: np.ndarray) -> int:
    """Push towards where the pole is falling, weighted by position and velocities."""
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.2 * x_dot > 0)


PENDULUM_MAX_TORQUE = 2.0


def pendulum(obs: np.ndarray) -> np.ndarray:
    """Pump energy until near upright (cos > 0.85), then hold with a PD law; torque saturates at 2."""
    cos, sin, theta_dot = obs
    if cos > 0.85:
        torque = -(10.0 * np.arctan2(sin, cos) + 2.0 * theta_dot)
    else:
        energy = theta_dot**2 / 6.0 + 5.0 * (cos - 1.0)  # zero when upright at rest
        torque = -2.0 * theta_dot * energy
    return np.array([np.clip(torque, -PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)], dtype=np.float32)


#: Built-in experts by name, with the env each was written for.
BUILTIN: dict[str, tuple[str, Callable[[np.ndarray], Any]]] = {
    "cartpole": ("CartPole-v1", cartpole),
    "pendulum": ("Pendulum-v1", pendulum),
    "pixel-cartpole": (envs.ENV_ID, envs.pixel_cartpole_expert),
    "dict-cartpole": (envs.DICT_ENV_ID, envs.dict_cartpole_expert),
}


def resolve(name: str) -> Callable[[np.ndarray], Any]:
    """A built-in expert by name, or any importable ``module:callable``."""
    if name in BUILTIN:
        return BUILTIN[name][1]
    module, _, attribute = name.partition(":")
    if not attribute:
        raise UsageError(f"unknown expert '{name}'; use one of {', '.join(BUILTIN)} or module:callable")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import expert '{name}': {exc}") from None
