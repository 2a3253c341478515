"""Writing whole episodes to a dataset as they finish.

Zarr and HDF5 are streamed: each episode is appended and committed, so memory holds one episode and a
recording killed at any point leaves every finished episode readable at the destination. ``.npz`` is
kept in memory and written once, atomically, at the end (or with the finished episodes when the
recording fails). Image observations bound for ``.npz`` become lossless PNG files under
``image_folder``, their paths relative to the dataset's folder, as SB2 stored them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import atomic, formats, images, spaces
from .dataset import Dataset
from .errors import UsageError
from .schema import SCHEMA_VERSION

#: How streamed files are laid out unless the caller says otherwise: chunks of 1 MiB, because an episode
#: rewrites its last, partly filled chunk, and compression, because HDF5 stores a partly filled chunk whole.
STREAMING = {"npz": None, "hdf5": formats.WriteOptions(compression="gzip:1", chunk_bytes=2**20),
             "zarr": formats.WriteOptions(chunk_bytes=2**20)}

#: Fields of a recorded episode, in the order they are written.
STEP_FIELDS = ("obs", "actions", "rewards", "episode_starts", "terminated", "truncated")
EPISODE_FIELDS = ("episode_returns", "final_obs")


def field_specs(metadata: dict[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Dtype and row shape of every recorded field, from the spaces in ``metadata``."""
    obs, act = metadata["observation_space"], metadata["action_space"]
    obs_spec = (spaces.row_dtype(obs), spaces.row_shape(obs))
    flag = (np.dtype(bool), ())
    return {"obs": obs_spec, "actions": (spaces.row_dtype(act), spaces.row_shape(act)),
            "rewards": (np.dtype(np.float64), ()), "episode_starts": flag, "terminated": flag, "truncated": flag,
            "episode_returns": (np.dtype(np.float64), ()), "final_obs": obs_spec}


def episode_rows(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An episode's arrays as the rows of every dataset field."""
    n = len(episode["rewards"])
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    return {**{k: episode[k] for k in ("obs", "actions", "rewards", "terminated", "truncated")},
            "episode_starts": starts,
            "episode_returns": np.array([episode["rewards"].sum()], dtype=np.float64),
            "final_obs": episode["final_obs"][None]}


def _is_image(obs: np.ndarray) -> bool:
    return obs.dtype == np.uint8 and obs.ndim in (3, 4) and (obs.ndim == 3 or obs.shape[-1] in (1, 3, 4))


def _compatible(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    for key in ("env_id", "observation_space", "action_space"):
        if old.get(key) != new.get(key):
            raise UsageError(f"{path}: cannot append: its {key} is {old.get(key)!r}, the recording's is "
                             f"{new.get(key)!r}")


class EpisodeWriter:
    """Collects episodes into the dataset at ``path`` (or in memory when ``path`` is ``None``).

    :param append: add episodes to a compatible existing dataset (same env id and spaces).
    :param overwrite: replace an existing dataset.
    :param options: chunking and compression of a streamed file (default: ``STREAMING``).
    """

    def __init__(self, path: Path | str | None, metadata: dict[str, Any], *, overwrite: bool = False,
                 append: bool = False, image_folder: str = "recorded_images",
                 options: formats.WriteOptions | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.metadata = {**metadata, "schema_version": SCHEMA_VERSION}
        self.n_transitions = 0
        self.n_episodes = 0
        self._image_folder = image_folder
        self._images_written: list[Path] = []
        self._memory: list[dict[str, np.ndarray]] = []
        self._sink: Any = None
        self._backend = formats.for_path(self.path) if self.path is not None else None
        self._existing: Dataset | None = None
        self._created = False
        if self.path is None:
            return
        exists = self.path.exists()
        if exists and not (overwrite or append):
            raise UsageError(f"{self.path} already exists; pass --overwrite to replace it or --append to add to it")
        if append and exists:
            self._open_existing()
        elif self._backend.name != "npz":
            if exists:
                atomic.remove(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = self._backend.writer(self.path, options or STREAMING[self._backend.name])
            self._created = True
            self._sink.set_metadata(self.metadata)
            for name, (dtype, row_shape) in field_specs(self.metadata).items():
                self._sink.add_field(name, dtype, row_shape, None)
            self._sink.commit(0, 0)  # from here on, the destination reads as a valid (empty) dataset

    @property
    def streaming(self) -> bool:
        return self._sink is not None

    def _open_existing(self) -> None:
        from .storage import load

        with load(self.path) as old:
            _compatible(dict(old.metadata), self.metadata, self.path)
            self.metadata = {**old.metadata, "lineage": list(old.metadata.get("lineage", [])) +
                             [{"operation": "append", "provenance": self.metadata.get("provenance")}]}
            self.n_transitions, self.n_episodes = old.n_transitions, old.n_episodes
            if self._backend.name == "npz":
                self._existing = Dataset.from_arrays(old.metadata, old.root,
                                                     **{k: np.asarray(a[:]) for k, a in old.fields.items()})
                return
        self._sink = self._backend.writer(self.path, formats.WriteOptions(), append=True)
        self._sink.resume(self._sink.existing(), self.n_transitions, self.n_episodes,
                          {name: formats.field_per(name, self.metadata) for name in self._sink.existing()})
        self._sink.set_metadata(self.metadata)

    def _image_paths(self, frames: np.ndarray, names: list[str]) -> np.ndarray:
        root = self.path.parent
        for frame, name in zip(frames, names):
            target = images.resolve(root, name)
            images.write_png(target, frame)
            self._images_written.append(target)
        return np.array(names)

    def _to_rows(self, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = episode_rows(episode)
        if self.path is not None and self._backend.name == "npz" and _is_image(episode["obs"]):
            folder = self._image_folder.rstrip("/")
            first = self.n_transitions
            rows["obs"] = self._image_paths(rows["obs"], [f"{folder}/{first + t:09d}.png"
                                                          for t in range(len(rows["obs"]))])
            rows["final_obs"] = self._image_paths(rows["final_obs"], [f"{folder}/final_{self.n_episodes:06d}.png"])
        return rows

    def write(self, episode: dict[str, np.ndarray]) -> None:
        """Add one finished episode; for a streaming format it is durable when this returns."""
        rows = self._to_rows(episode)
        if self.streaming:
            for name in STEP_FIELDS + EPISODE_FIELDS:
                self._sink.append(name, rows[name])
        else:
            self._memory.append(rows)
        self.n_transitions += len(episode["rewards"])
        self.n_episodes += 1
        self._images_written.clear()
        if self.streaming:
            self._sink.commit(self.n_transitions, self.n_episodes)

    def _in_memory(self) -> Dataset:
        parts = ([{k: np.asarray(self._existing[k][:]) for k in STEP_FIELDS + EPISODE_FIELDS}]
                 if self._existing is not None else []) + self._memory
        return Dataset.from_arrays(self.metadata, self.path.parent if self.path else None,
                                   **{k: np.concatenate([p[k] for p in parts]) for k in STEP_FIELDS + EPISODE_FIELDS})

    def close(self) -> Dataset | None:
        """Finish the dataset: returns it (lazy for streaming formats), or ``None`` if no episode finished."""
        for image in self._images_written:  # frames of an episode that did not finish
            image.unlink(missing_ok=True)
        if self.streaming and self._created and not self.n_episodes:  # nothing recorded: leave nothing behind
            self._sink.abort()
            self._sink = None
            atomic.remove(self.path)
        elif self.streaming:
            self._sink.close()
            self._sink = None
        elif self.n_episodes:
            dataset = self._in_memory()
            if self.path is None:
                return dataset
            from .storage import save

            save(dataset, self.path, overwrite=True)
        if self.path is None or not self.n_episodes:
            return None
        from .storage import load

        return load(self.path)
