"""Recording expert demonstrations from gymnasium environments: SB2's ``generate_expert_traj``, reborn.

Episode ``i`` always starts from ``reset(seed=seed + i)``, in a plain env or in any sub-env of a vector
env, and episodes are stored in that order, whole and contiguous: a vector recording is identical to the
serial recording of the same seeds.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from ..core import schema, spaces
from ..core.dataset import Dataset
from ..core.errors import ExpertDataError, UsageError
from ..core.version import __version__
from ..io import formats
from ..io.storage import load
from .episode_writer import EpisodeWriter


class RecordingError(ExpertDataError):
    """The expert or the env failed mid-recording; the message names the episode and the step."""

    exit_code = 1


Policy = Callable[[np.ndarray], Any]


def as_policy(model: Any, deterministic: bool = True) -> Policy:
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
    """The env to record in: the one given, else the model's (as SB2 did). A Stable-Baselines3 model holds
    a ``VecEnv`` of gymnasium envs, whose first env is recorded in (SB2 recorded its first env too)."""
    if env is None:
        env = model.get_env() if hasattr(model, "get_env") else None
        if env is None:
            raise UsageError("no env given and the model has none; pass env=<gymnasium env or env id>")
        if not _is_vector(env) and hasattr(env, "envs") and hasattr(env, "step_async"):
            env = env.envs[0]
    from .envs import make

    return make(env)


def _is_vector(env: Any) -> bool:
    return hasattr(env, "num_envs") and hasattr(env, "single_action_space")


class _Rows:
    """How a recording's rows look, worked out once from the spaces rather than at every step."""

    def __init__(self, obs_spec: dict, action_spec: dict) -> None:
        self.obs_spec = obs_spec
        self.obs_leaves = {path: (spaces.row_shape(leaf), spaces.row_dtype(leaf))
                           for path, leaf in spaces.leaves(obs_spec).items()}
        self.action_shape, self.action_dtype = spaces.row_shape(action_spec), spaces.row_dtype(action_spec)
        self.action_size = int(np.prod(self.action_shape))
        self.action_kind, self.discrete = action_spec["type"], action_spec["type"] == "Discrete"


class _Episode:
    """The steps of one episode as they come, checked and cast to the spaces' row dtypes and shapes."""

    def __init__(self, index: int, seed: int | None, obs_spec: dict, action_spec: dict) -> None:
        self.index, self.seed = index, seed
        self._form = _Rows(obs_spec, action_spec)
        self.rows: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated")}

    def where(self) -> str:
        seed = "" if self.seed is None else f" (seed {self.seed})"
        return f"episode {self.index}{seed}, step {len(self.rows['obs'])}"

    def act(self, policy: Policy, obs: Any) -> Any:
        """Ask the expert for an action; any failure names the episode and the step. A Discrete action
        that is a plain integer is kept as it is (converted with the episode's other rows)."""
        form = self._form
        try:
            action = policy(obs)
        except Exception as exc:
            raise RecordingError(f"{self.where()}: the expert raised {type(exc).__name__}: {exc}") from exc
        if form.discrete and isinstance(action, (int, np.integer)):
            return int(action)
        action = np.asarray(action)
        if action.size != form.action_size:
            raise RecordingError(f"{self.where()}: the expert returned an action of shape {action.shape}; the "
                                 f"{form.action_kind} action space needs {form.action_shape}")
        if action.dtype.kind == "f" and not np.isfinite(action).all():
            raise RecordingError(f"{self.where()}: the expert returned a non-finite action {action.tolist()}")
        return action.reshape(form.action_shape).astype(form.action_dtype, copy=False)

    def env_action(self, row: Any) -> Any:
        """The action as the env takes it: a Discrete action is a plain integer."""
        return row if isinstance(row, int) else (row.item() if self._form.discrete else row)

    def add(self, obs: Any, action: Any, reward: float, terminated: bool, truncated: bool) -> None:
        """Keep one step; the observation as the env returned it (converted with the episode's rows)."""
        rows = self.rows
        rows["obs"].append(obs)
        rows["actions"].append(action)
        rows["rewards"].append(float(reward))
        rows["terminated"].append(bool(terminated))
        rows["truncated"].append(bool(truncated))

    def finish(self, final_obs: Any) -> dict[str, np.ndarray]:
        """The episode's arrays by field (a composite observation's leaves as ``obs/<path>``)."""
        form, n = self._form, len(self.rows["rewards"])
        out = {name: np.asarray(self.rows[name]) for name in ("rewards", "terminated", "truncated")}
        out["actions"] = np.asarray(self.rows["actions"], dtype=form.action_dtype).reshape((n,) + form.action_shape)
        try:
            steps = [spaces.flatten(form.obs_spec, obs) for obs in self.rows["obs"]]
            final = spaces.flatten(form.obs_spec, final_obs)
            for path, (shape, dtype) in form.obs_leaves.items():
                suffix = f"/{path}" if path else ""
                out["obs" + suffix] = np.asarray([s[path] for s in steps], dtype=dtype).reshape((n,) + shape)
                out["final_obs" + suffix] = np.asarray(final[path], dtype=dtype).reshape(shape)
        except (ValueError, spaces.SpaceError) as exc:
            raise RecordingError(f"{self.where()}: the env's observations do not fit its observation space "
                                 f"{json.dumps(form.obs_spec)}: {exc}") from exc
        return out


def _serial(env: Any, policy: Policy, seeds: list[int | None], obs_spec: dict,
            action_spec: dict) -> Iterator[dict[str, np.ndarray]]:
    for index, seed in enumerate(seeds):
        episode = _Episode(index, seed, obs_spec, action_spec)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            action = episode.act(policy, obs)
            next_obs, reward, terminated, truncated, _ = env.step(episode.env_action(action))
            episode.add(obs, action, reward, terminated, truncated)
            obs, done = next_obs, terminated or truncated
        yield episode.finish(obs)


def _item(batch: Any, i: int) -> Any:
    """Sub-env ``i``'s observation (a copy) from a vector env's batch: composite ones are dicts and tuples of
    batches."""
    if isinstance(batch, dict):
        return {k: _item(v, i) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_item(v, i) for v in batch)
    return np.array(batch[i])


def _vector(envs: Any, policy: Policy, seeds: list[int | None], obs_spec: dict,
            action_spec: dict) -> Iterator[dict[str, np.ndarray]]:
    """Run episodes on every sub-env at once; yield them in seed order as soon as they are next in line.

    A finished sub-env is reset at once with the next episode's seed (``reset_mask``), whatever the
    vector env's autoreset mode; sub-envs with no episode left keep stepping with ignored results.
    """
    n = envs.num_envs
    same_step = str(envs.metadata.get("autoreset_mode", "")).endswith("SAME_STEP")
    running: list[_Episode | None] = [None] * n
    started = 0
    first_seeds: list[int | None] = []
    for i in range(n):
        if started < len(seeds):
            running[i] = _Episode(started, seeds[started], obs_spec, action_spec)
            started += 1
        first_seeds.append(running[i].seed if running[i] is not None else None)
    obs, _ = envs.reset(seed=first_seeds)
    finished: dict[int, dict[str, np.ndarray]] = {}
    emitted = 0
    while emitted < len(seeds):
        rows = [ep.act(policy, _item(obs, i)) if ep is not None else None for i, ep in enumerate(running)]
        batch = [ep.env_action(row) if ep is not None else envs.single_action_space.sample()
                 for ep, row in zip(running, rows)]
        next_obs, rewards, terminated, truncated, infos = envs.step(np.array(batch))
        done = np.logical_or(terminated, truncated)
        reset_seeds: list[int | None] = [None] * n
        for i in np.flatnonzero(done):
            episode = running[i]
            if episode is not None:
                episode.add(_item(obs, i), rows[i], rewards[i], terminated[i], truncated[i])
                finished[episode.index] = episode.finish(infos["final_obs"][i] if same_step else _item(next_obs, i))
                running[i] = None
                if started < len(seeds):
                    running[i] = _Episode(started, seeds[started], obs_spec, action_spec)
                    reset_seeds[i] = seeds[started]
                    started += 1
        for i in np.flatnonzero(~done):
            if running[i] is not None:
                running[i].add(_item(obs, i), rows[i], rewards[i], False, False)
        if done.any():  # the reset returns every sub-env's current observation, the reset ones' fresh
            next_obs, _ = envs.reset(seed=reset_seeds, options={"reset_mask": done})
        obs = next_obs
        while emitted in finished:
            yield finished.pop(emitted)
            emitted += 1


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in some containers
        return "unknown"


def _describe(model: Any) -> str:
    name = getattr(model, "__qualname__", None) or type(model).__qualname__
    return f"{getattr(model, '__module__', '?')}.{name}"


def recording_metadata(env: Any, model: Any, seed: int | None, deterministic: bool) -> dict[str, Any]:
    """Env id, spaces, time limit and provenance of a recording; refuses spaces we cannot store."""
    vector = _is_vector(env)
    obs_space = env.single_observation_space if vector else env.observation_space
    act_space = env.single_action_space if vector else env.action_space
    try:
        metadata: dict[str, Any] = {"observation_space": spaces.to_json(obs_space),
                                    "action_space": spaces.to_json(act_space)}
    except spaces.SpaceError as exc:
        raise UsageError(str(exc)) from None
    if spaces.is_composite(metadata["action_space"]):
        raise UsageError(f"cannot store a {metadata['action_space']['type']} action space ({act_space}): observations "
                         "may be composite, actions not")
    spec = getattr(env, "spec", None)
    if spec is not None:
        metadata["env_id"] = spec.id
        if spec.max_episode_steps:
            metadata["max_episode_steps"] = int(spec.max_episode_steps)
    metadata["provenance"] = {
        "expert": _describe(model), "seed": seed, "deterministic": deterministic, "recorded_by": _user(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "expertdata_version": __version__,
        "num_envs": int(env.num_envs) if vector else 1}
    return metadata


def with_format(path: str | Path) -> Path:
    """``path`` as a dataset's name: kept when its suffix names a format, else with ``.npz`` added, as SB2
    documented its ``save_path`` ("path without the extension")."""
    try:
        formats.for_path(path)
        return Path(path)
    except UsageError:
        return Path(f"{path}.npz")


def _what_was_kept(writer: EpisodeWriter, path: Path) -> str:
    """What an interrupted or failed recording left, in words: the finished episodes a reader will find (read
    back, not counted as written: on a full disk the last may not have reached it), where, and, for episodes
    left in a staging store, the command that finishes the dataset."""
    where = writer.kept_at or path
    if not writer.n_new:
        return "nothing was written" + (f"; {path} is unchanged" if path.exists() else "")
    found = 0
    try:
        with load(where) as kept:
            found = kept.n_episodes - (writer.n_episodes - writer.n_new)  # the episodes there before are not new
    except ExpertDataError:
        pass
    if found <= 0:
        return f"none of the {writer.n_new} finished episodes could be read back from {where}"
    kept = f"the {found} finished episode{'s' * (found > 1)} are kept in {where}"
    if found < writer.n_new:
        kept += f" ({writer.n_new - found} more finished but did not reach the disk)"
    if where.name.startswith(".recording") and str(where).endswith(".zarr") and path.suffix != ".zarr":
        kept += f"; finish it with: expertdata convert {where} {path}" + (" --overwrite" if path.exists() else "")
    return kept + (f"; {path} is unchanged" if where != path and path.exists() else "")


def _record_block(model: Any, part: str, env_id: str, count: int, first_seed: int, deterministic: bool) -> str:
    """One cluster task of a recording: ``count`` episodes from seeds ``first_seed`` on, into the Zarr part ``part``."""
    generate_expert_traj(model, part, env_id, n_episodes=count, seed=first_seed, deterministic=deterministic)
    return part


def _record_on(client: Any, model: Any, path: Path, env: Any, n_episodes: int, seed: int | None,
               deterministic: bool, overwrite: bool, append: bool) -> Dataset:
    """A recording on a Dask cluster: blocks of seeds, each recorded by a worker with an env of its own into a Zarr
    part beside the destination, then written in seed order by the client: the very episodes one process
    records (same seeds, same order)."""
    from ..core import editing
    from ..io import cluster, parallel
    from ..io.storage import save

    if not isinstance(env, str):
        raise UsageError("a recording on a cluster makes an env on every worker: give the env's id")
    if seed is None:
        raise UsageError("a recording on a cluster is split by seeds: give one (seed=0)")
    if path.exists() and not (overwrite or append):
        raise UsageError(f"{path} already exists; pass overwrite=True to replace it or append=True to add to it")
    from .envs import make

    metadata = recording_metadata(make(env), model, seed, deterministic)
    if schema.is_image(metadata["observation_space"]) and formats.for_path(path).capabilities.images_as_files:
        raise UsageError(f"{path}: image observations are recorded to .npz as files, one process at a time; record "
                         "to Zarr or HDF5 on a cluster")
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    count = max(1, -(-n_episodes // (parallel.BLOCKS_PER_WORKER * workers)))
    firsts = list(range(0, n_episodes, count))
    with parallel.staging(path) as parts:
        jobs = [(model, str(Path(parts) / f"block-{k:06d}.zarr"), env, min(count, n_episodes - first), seed + first,
                 deterministic) for k, first in enumerate(firsts)]
        recorded = [load(p) for p in cluster.run(client, _record_block, jobs, "record-block")]
        old = [load(path)] if append and path.exists() else []
        try:
            whole = editing.merged(old + recorded)
            provenance = {**metadata["provenance"], "workers": workers}
            whole = whole.with_metadata({**whole.metadata, "provenance": provenance})
            save(whole, path, overwrite=overwrite or append)
        finally:
            for d in old + recorded:
                d.close()
    return load(path)


def generate_expert_traj(model: Any, save_path: str | Path | None = None, env: Any = None,
                         n_timesteps: int = 0, n_episodes: int = 100, image_folder: str = "recorded_images",
                         *, seed: int | None = 0, deterministic: bool = True, overwrite: bool = False,
                         append: bool = False, progress: bool = False, client: Any = None) -> Dataset:
    """Record ``n_episodes`` episodes of ``model`` acting in ``env``; SB2's signature and meaning.

    :param model: a callable ``obs -> action`` (a controller, a human prompt, a random agent) or an object
        with ``predict(obs)`` (a Stable-Baselines3 model works as it is), trained first with
        ``learn(n_timesteps)`` when ``n_timesteps > 0``.
    :param save_path: where to write the dataset (format by suffix); ``None`` keeps it in memory. Zarr
        and HDF5 are written episode by episode: a recording stopped by Ctrl-C, an error or a kill keeps
        every finished episode. ``.npz`` is written once, at the end, from a Zarr store beside it that a
        kill leaves behind: memory holds one episode in every format.
    :param env: a gymnasium env, a vector env (every sub-env is recorded) or an env id; taken from the
        model when not given. It is not closed.
    :param image_folder: for image observations saved to ``.npz``: the folder, relative to the dataset,
        that receives one lossless PNG per observation (SB2 wrote JPEG).
    :param seed: episode ``i`` starts from ``reset(seed=seed + i)``; ``None`` leaves seeding to the env.
    :param deterministic: ask ``predict`` for deterministic actions (SB2 recorded stochastic ones).
    :param overwrite: replace an existing ``save_path``; ``append``: add episodes to it instead.
    :returns: the dataset (lazy when saved as Zarr or HDF5).
    """
    if n_episodes < 1:
        raise UsageError(f"n_episodes must be at least 1, not {n_episodes}")
    if client is not None and save_path is not None:
        return _record_on(client, model, with_format(save_path), env, n_episodes, seed, deterministic, overwrite,
                          append)
    if n_timesteps > 0:
        if not hasattr(model, "learn"):
            raise UsageError("n_timesteps > 0 trains the model first, but this expert has no learn()")
        model.learn(n_timesteps)
    env = _make_env(env, model)
    policy = as_policy(model, deterministic)
    metadata = recording_metadata(env, model, seed, deterministic)
    seeds = [None if seed is None else seed + i for i in range(n_episodes)]
    run = _vector if _is_vector(env) else _serial
    env_name = metadata.get("env_id", "episodes")
    save_path = None if save_path is None else with_format(save_path)
    writer = EpisodeWriter(save_path, metadata, overwrite=overwrite, append=append, image_folder=image_folder)
    returns: list[float] = []
    with tqdm(total=n_episodes, unit="episode", desc=f"recording {Path(save_path).name if save_path else env_name}",
              disable=None if progress else True) as bar:
        try:
            for episode in run(env, policy, seeds, metadata["observation_space"], metadata["action_space"]):
                writer.write(episode)
                returns.append(float(episode["rewards"].sum()))
                bar.update(1)
                bar.set_postfix(mean_return=f"{np.mean(returns):.1f}")
        except BaseException as exc:
            try:
                kept = writer.close(complete=False)
            except ExpertDataError:  # the finished episodes could not be written out; ``kept_at`` says where they are
                kept = None
            if kept is not None:
                kept.close()
            if save_path is not None:
                note = _what_was_kept(writer, Path(save_path))
                if isinstance(exc, ExpertDataError):
                    raise type(exc)(f"{exc}; {note}") from exc
                exc.recording_note = note  # for the command line's message on Ctrl-C or SIGTERM
            raise
    try:
        return writer.close()
    except ExpertDataError as exc:  # the end of a .npz written from its staging store: a full disk
        raise type(exc)(f"{exc}; {_what_was_kept(writer, Path(save_path))}") from exc
