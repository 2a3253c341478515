"""Making envs, with the package's own ids registered; and a tiny image-observation env for tests,
fixtures and demos: CartPole seen as a 16x16 RGB picture.

Channel 0 draws the cart and the pole; channels 1 and 2 hold the cart's and the pole's velocities as
bars, so a single frame is enough to act on. Registered as ``expertdata/PixelCartPole-v1`` when this
module is imported, which ``make`` and ``make_vec`` guarantee.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from .errors import UsageError

SIZE = 16
ENV_ID = "expertdata/PixelCartPole-v1"


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


if ENV_ID not in gymnasium.registry:
    gymnasium.register(ENV_ID, entry_point=make_pixel_cartpole)


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
