"""Making envs, with the package's own ids registered; and two small envs for tests, fixtures and demos:
CartPole seen as a 16x16 RGB picture, and CartPole with a Dict observation.

Channel 0 of the picture draws the cart and the pole; channels 1 and 2 hold the cart's and the pole's
velocities as bars, so a single frame is enough to act on. The Dict observation holds ``cart`` (position,
velocity), ``pole`` (angle, angular velocity) and ``view`` (the picture): vector and image leaves together.
Registered as ``expertdata/PixelCartPole-v1`` and ``expertdata/DictCartPole-v1`` when this module is imported,
which ``make`` and ``make_vec`` guarantee.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from ..core.errors import UsageError

SIZE = 16
ENV_ID = "expertdata/PixelCartPole-v1"
DICT_ENV_ID = "expertdata/DictCartPole-v1"


def draw(state: np.ndarray) -> np.ndarray:
    """The 16x16x3 uint8 picture of a CartPole state (x, x_dot, theta, theta_dot)."""
    x, x_dot, theta, theta_dot = (float(v) for v in state)
    frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    cart = int(np.clip(round((x + 2.4) / 4.8 * (SIZE - 1)), 0, SIZE - 1))
    frame[SIZE - 2:, cart, 0] = 255
    for r in range(1, 9):
        col = int(np.clip(round(cart + r * np.sin(theta)), 0, SIZE - 1))
        row = int(np.clip(round(SIZE - 2 - r * np.cos(theta)), 0, SIZE - 1))
        frame[row, col, 0] = 160
    for channel, value, scale in ((1, x_dot, 2.0), (2, theta_dot, 3.0)):
        frame[:, :, channel] = int(np.clip(128 + 127 * value / scale, 0, 255))
    return frame


class PixelObservation(gymnasium.ObservationWrapper):
    """Replace CartPole's state vector by its picture."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.observation_space = gymnasium.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return draw(observation)


def make_pixel_cartpole(**kwargs: Any) -> gymnasium.Env:
    return PixelObservation(gymnasium.make("CartPole-v1", **kwargs))


def pixel_cartpole_expert(obs: np.ndarray) -> int:
    """The CartPole expert, reading the state back from the picture's velocity channels and drawing."""
    cart = int(np.argmax(obs[SIZE - 1, :, 0]))
    x = cart / (SIZE - 1) * 4.8 - 2.4
    x_dot = (int(obs[0, 0, 1]) - 128) / 127 * 2.0
    theta_dot = (int(obs[0, 0, 2]) - 128) / 127 * 3.0
    rows, cols = np.nonzero(obs[: SIZE - 2, :, 0] == 160)
    theta = float(np.mean(np.arctan2(cols - cart, SIZE - 2 - rows))) if len(rows) else 0.0
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.2 * x_dot > 0)


class DictObservation(gymnasium.ObservationWrapper):
    """Replace CartPole's state vector by a Dict of its cart's and pole's halves and its picture."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        half = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = gymnasium.spaces.Dict(
            {"cart": half, "pole": half, "view": gymnasium.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)})

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        state = np.asarray(observation, dtype=np.float32)
        return {"cart": state[:2].copy(), "pole": state[2:].copy(), "view": draw(state)}


def make_dict_cartpole(**kwargs: Any) -> gymnasium.Env:
    return DictObservation(gymnasium.make("CartPole-v1", **kwargs))


def dict_cartpole_expert(obs: dict[str, np.ndarray]) -> int:
    """The CartPole expert, reading the state from the ``cart`` and ``pole`` leaves."""
    (x, x_dot), (theta, theta_dot) = obs["cart"], obs["pole"]
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.2 * x_dot > 0)


for _id, _entry in ((ENV_ID, "make_pixel_cartpole"), (DICT_ENV_ID, "make_dict_cartpole")):
    if _id not in gymnasium.registry:  # by name, so the env's spec is JSON (Minari stores it)
        gymnasium.register(_id, entry_point=f"{__name__}:{_entry}")


def make(env: Any, **kwargs: Any) -> gymnasium.Env:
    """The env itself, or ``gymnasium.make(env)`` for an env id; an id gymnasium cannot make is a
    one-line ``UsageError``."""
    if not isinstance(env, str):
        return env
    try:
        return gymnasium.make(env, **kwargs)
    except Exception as exc:  # gymnasium raises several types for an unknown or broken id
        raise UsageError(f"cannot make env '{env}': {exc}") from None


def make_vec(env_id: str, num_envs: int, **vector_kwargs: Any) -> Any:
    """A synchronous vector env of ``num_envs`` copies of ``env_id``."""
    try:
        return gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", vector_kwargs=vector_kwargs)
    except Exception as exc:  # as in make
        raise UsageError(f"cannot make env '{env_id}': {exc}") from None
