"""Recording expert demonstrations from gymnasium environments: SB2's ``generate_expert_traj``, reborn."""
from __future__ import annotations

import datetime as _dt
import getpass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from . import spaces
from .dataset import Dataset
from .errors import ExpertDataError, UsageError


class RecordingError(ExpertDataError):
    """The expert or the env failed mid-recording; the message names the episode and step."""

    exit_code = 1


def as_policy(model: Any, deterministic: bool = True) -> Callable[[np.ndarray], Any]:
    """A function ``obs -> action`` from a callable, or from an object with ``predict`` (SB3 models)."""
    if hasattr(model, "predict"):
        def predict(obs: np.ndarray) -> Any:
            result = model.predict(obs, deterministic=deterministic)
            return result[0] if isinstance(result, tuple) else result
        return predict
    if callable(model):
        return model
    raise UsageError(f"the expert must be callable (obs -> action) or have predict(obs); got {type(model).__name__}")


def _make_env(env: Any, model: Any) -> Any:
    if env is None:
        env = model.get_env() if hasattr(model, "get_env") else None
        if env is None:
            raise UsageError("no env given and the model has none; pass env=<gymnasium env or env id>")
    if isinstance(env, str):
        import gymnasium

        try:
            return gymnasium.make(env)
        except Exception as exc:  # gymnasium raises several types for an unknown or broken id
            raise UsageError(f"cannot make env '{env}': {exc}") from None
    return env


def _action_row(action: Any, spec: dict, episode: int, step: int) -> np.ndarray:
    row = np.asarray(action)
    shape, dtype = spaces.row_shape(spec), spaces.row_dtype(spec)
    if row.size != int(np.prod(shape)):
        raise RecordingError(f"episode {episode}, step {step}: the expert returned an action of shape "
                             f"{row.shape}; the {spec['type']} action space needs {shape}")
    if row.dtype.kind == "f" and not np.all(np.isfinite(row)):
        raise RecordingError(f"episode {episode}, step {step}: the expert returned a non-finite action {row}")
    return row.reshape(shape).astype(dtype, copy=False)


def record_episode(env: Any, policy: Callable[[np.ndarray], Any], action_spec: dict, seed: int | None,
                   episode: int) -> dict[str, Any]:
    """Run one episode from ``env.reset(seed=seed)``; returns its steps as arrays plus its final obs."""
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list] = {"obs": [], "actions": [], "rewards": [], "terminated": [], "truncated": []}
    done = False
    while not done:
        step = len(rows["obs"])
        try:
            action = policy(obs)
        except Exception as exc:
            raise RecordingError(f"episode {episode}, step {step}: the expert raised "
                                 f"{type(exc).__name__}: {exc}") from exc
        row = _action_row(action, action_spec, episode, step)
        env_action = row.reshape(()) if action_spec["type"] == "Discrete" else row
        next_obs, reward, terminated, truncated, _ = env.step(env_action.item() if env_action.ndim == 0 else env_action)
        for name, value in (("obs", obs), ("actions", row), ("rewards", float(reward)),
                            ("terminated", bool(terminated)), ("truncated", bool(truncated))):
            rows[name].append(value)
        obs, done = next_obs, terminated or truncated
    arrays = {name: np.asarray(values) for name, values in rows.items()}
    arrays["final_obs"] = np.asarray(obs)
    return arrays


def assemble(episodes: list[dict[str, Any]], metadata: dict[str, Any]) -> Dataset:
    """One dataset from recorded episodes, concatenated in order."""
    if not episodes:
        raise RecordingError("no episode was finished; nothing to store")
    starts = [np.eye(1, len(e["rewards"]), dtype=bool)[0] for e in episodes]
    return Dataset.from_arrays(
        metadata,
        **{name: np.concatenate([e[name] for e in episodes]) for name in ("obs", "actions", "rewards",
                                                                          "terminated", "truncated")},
        episode_starts=np.concatenate(starts),
        episode_returns=np.array([e["rewards"].sum() for e in episodes], dtype=np.float64),
        final_obs=np.stack([e["final_obs"] for e in episodes]))


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in some containers
        return "unknown"


def _describe(model: Any) -> str:
    name = getattr(model, "__qualname__", None) or type(model).__qualname__
    return f"{getattr(model, '__module__', '?')}.{name}"


def generate_expert_traj(model: Any, save_path: str | Path | None = None, env: Any = None,
                         n_timesteps: int = 0, n_episodes: int = 100, *, seed: int | None = 0, deterministic: bool = True, overwrite: bool = False,
                         progress: bool = False) -> Dataset:
    """Record ``n_episodes`` episodes of ``model`` acting in ``env``; SB2's signature and meaning.

    :param model: a callable ``obs -> action``, or an object with ``predict(obs)`` (a Stable-Baselines3
        model works as it is), trained first with ``learn(n_timesteps)`` when ``n_timesteps > 0``.
    :param save_path: where to write the dataset (any format, by suffix); ``None`` keeps it in memory.
    :param env: a gymnasium env or env id; taken from the model when not given. It is not closed.
    :param seed: episode ``i`` starts from ``reset(seed=seed + i)``, so recordings are reproducible;
        ``None`` leaves the env's randomness alone.
    :param deterministic: ask ``predict`` for deterministic actions (SB2 recorded stochastic ones).
    :returns: the recorded dataset.
    """
    if n_episodes < 1:
        raise UsageError(f"n_episodes must be at least 1, not {n_episodes}")
    if n_timesteps > 0:
        if not hasattr(model, "learn"):
            raise UsageError("n_timesteps > 0 trains the model first, but this expert has no learn()")
        model.learn(n_timesteps)
    env = _make_env(env, model)
    policy = as_policy(model, deterministic)
    obs_spec, action_spec = spaces.to_json(env.observation_space), spaces.to_json(env.action_space)
    spec = getattr(env, "spec", None)
    from . import __version__

    metadata: dict[str, Any] = {
        "observation_space": obs_spec, "action_space": action_spec,
        "provenance": {"expert": _describe(model), "seed": seed, "deterministic": deterministic,
                       "recorded_by": _user(), "time": _dt.datetime.now(_dt.timezone.utc).isoformat(
                           timespec="seconds"), "expertdata_version": __version__},
    }
    if spec is not None:
        metadata["env_id"] = spec.id
        if spec.max_episode_steps:
            metadata["max_episode_steps"] = int(spec.max_episode_steps)
    episodes: list[dict[str, Any]] = []
    with tqdm(total=n_episodes, unit="episode", disable=None if progress else True) as bar:
        for episode in range(n_episodes):
            episodes.append(record_episode(env, policy, action_spec, None if seed is None else seed + episode,
                                           episode))
            bar.update(1)
            bar.set_postfix(mean_return=float(np.mean([e["rewards"].sum() for e in episodes])))
    dataset = assemble(episodes, metadata)
    if save_path is not None:
        from .storage import save

        save(dataset, save_path, overwrite=overwrite)
    return dataset
