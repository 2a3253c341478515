"""Writing whole episodes to a dataset as they finish.

A backend that can stream (``Capabilities.streaming``: Zarr directories, HDF5) gets each episode appended
and committed, so memory holds one episode and a recording killed at any point leaves every finished
episode readable at the destination. Other formats (``.npz``, ``.zarr.zip``) are streamed the same way into
a Zarr store beside the destination (``.recording-*.zarr``, which a kill leaves, for ``convert``) and
written from it once, atomically, at the end (or with the finished episodes when the recording fails).
Recording to memory (no path) keeps the episodes in memory. Where a backend keeps images as files
(``Capabilities.images_as_files``: SB2's ``.npz``), image observations become lossless PNG files under
``image_folder``, their paths relative to the dataset's folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from ..core import images, schema, spaces
from ..core.dataset import Dataset
from ..core.errors import UsageError
from ..io import atomic, formats
from ..io.storage import load, save

#: The prefix of a recording that will replace a dataset once complete (never removed automatically: it
#: holds finished episodes).
RECORDING = ".recording"


def episode_rows(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An episode's arrays (``obs``, ``actions``, ``rewards``, ``terminated``, ``truncated``, ``final_obs``; a
    composite observation's leaves as ``obs/<path>`` and ``final_obs/<path>``) as the rows of every recorded
    field (``schema.recorded_fields``)."""
    n = len(episode["rewards"])
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    final = {k: v[None] for k, v in episode.items() if schema.base_field(k) is schema.FIELDS_BY_NAME["final_obs"]}
    return {**{k: v for k, v in episode.items() if k not in final}, **final, "episode_starts": starts,
            "episode_returns": np.array([episode["rewards"].sum()], dtype=np.float64)}


def _compatible(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    for key in ("env_id", "observation_space", "action_space"):
        if not (old.get(key) == new.get(key) or key != "env_id" and spaces.same(old.get(key), new.get(key))):
            raise UsageError(f"{path}: cannot append: its {key} is {old.get(key)!r}, the recording's is "
                             f"{new.get(key)!r}")


class EpisodeWriter:
    """Collects episodes into the dataset at ``path`` (or in memory when ``path`` is ``None``).

    :param append: add episodes to a compatible existing dataset (same env id and spaces); its committed
        episodes are never touched, and a recording that finishes no episode leaves it as it was.
    :param overwrite: replace an existing dataset, once the recording is complete: until then the new
        episodes go to a ``.recording-*`` file beside it, and the old dataset stays as it was.
    :param options: chunking and compression of the destination (default for a streamed one: the
        backend's ``streaming_options``).
    """

    def __init__(self, path: Path | str | None, metadata: dict[str, Any], *, overwrite: bool = False,
                 append: bool = False, image_folder: str = "recorded_images",
                 options: formats.WriteOptions | None = None) -> None:
        if images.escapes(image_folder):
            raise UsageError(f"image folder {image_folder!r} is absolute or leaves the dataset's folder; give a "
                             "relative path inside it")
        self.path = Path(path) if path is not None else None
        self.metadata = {**metadata, "schema_version": schema.SCHEMA_VERSION}
        self.n_transitions = self.n_episodes = self.n_new = 0
        #: Where the finished episodes of an incomplete recording are, when that is not ``path``.
        self.kept_at: Path | None = None
        self._image_folder = image_folder
        self._images_written: list[Path] = []
        self._memory: list[dict[str, np.ndarray]] = []
        self._sink: formats.StreamingSink | None = None
        self._backend = formats.for_path(self.path) if self.path is not None else None
        self._created = False
        self._target = self.path
        self._options = options
        if self.path is None:
            return
        exists = self.path.exists() or self.path.is_symlink()
        if exists and not (overwrite or append):
            raise UsageError(f"{self.path} already exists; pass overwrite=True to replace it or append=True to add to "
                             "it")
        streams = self._backend.capabilities.streaming
        #: Where episodes stream to when the destination's format cannot stream.
        self._staged = None if streams else Path(f"{atomic.temporary(self.path, RECORDING)}.zarr")
        self._stream_backend = cast(formats.ResumableBackend, self._backend if streams else formats.by_name("zarr"))
        if append and exists:
            self._open_existing()
            return
        if exists:
            atomic.check_destination(self.path, overwrite=True, replaceable=self._backend.sniff)
            self._target = atomic.temporary(self.path, RECORDING)
        self._start()

    @property
    def _stream_path(self) -> Path:
        return self._staged or self._target

    def _start(self) -> None:
        """Create the store that episodes stream to, readable as a valid (empty) dataset from here on."""
        path = self._stream_path
        options = None if self._staged else self._options  # the options are the destination's
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = cast(formats.StreamingSink, self._stream_backend.writer(
                path, options or self._stream_backend.capabilities.streaming_options))
        except OSError as exc:
            raise atomic.write_error(path, exc) from None
        self._created = True
        self._sink.set_metadata(self.metadata)
        for name, (dtype, row_shape) in self._fields.items():
            self._sink.add_field(name, dtype, row_shape, None)
        self._sink.commit(0, 0)

    @property
    def streaming(self) -> bool:
        return self._sink is not None

    def _open_existing(self) -> None:
        with load(self.path) as old:
            _compatible(dict(old.metadata), self.metadata, self.path)
            provenance = self.metadata.get("provenance") or {}
            # the old content's digests do not describe what the appended dataset will hold
            kept = {k: v for k, v in old.metadata.items() if k not in ("digest", "episode_digests")}
            self.metadata = {**kept, "lineage": list(old.metadata.get("lineage", [])) + [
                {"operation": "append", "episodes_before": old.n_episodes, "time": provenance.get("time"),
                 "provenance": provenance}]}
            self.n_transitions, self.n_episodes = old.n_transitions, old.n_episodes
            per = {name: old.field_per(name) for name in old.fields}
            if self._staged is not None:  # the old episodes are staged first, then the new ones follow
                save(old, self._staged)
        self._sink = self._stream_backend.reopen(self._stream_path, self.n_transitions, self.n_episodes, per)

    def _image_paths(self, frames: np.ndarray, names: list[str]) -> np.ndarray:
        root = self.path.parent
        for frame, name in zip(frames, names):
            target = images.resolve(root, name)
            images.write_png(target, frame)
            self._images_written.append(target)
        return np.array(names, dtype=self._fields["obs"][0])

    @property
    def _images_as_files(self) -> bool:
        return (self.path is not None and self._backend.capabilities.images_as_files
                and schema.is_image(self.metadata.get("observation_space")))

    @property
    def _fields(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """Each recorded field's dtype and row shape: images kept as files are their paths, of one width."""
        fields = schema.recorded_fields(self.metadata)
        if self._images_as_files:
            width = len(f"{self._image_folder.rstrip('/')}/final_{0:06d}.png") + 4  # up to 10^10 steps
            fields.update(obs=(np.dtype(f"U{width}"), ()), final_obs=(np.dtype(f"U{width}"), ()))
        return fields

    def _to_rows(self, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = episode_rows(episode)
        if self._images_as_files:
            folder = self._image_folder.rstrip("/")
            first = self.n_transitions
            rows["obs"] = self._image_paths(rows["obs"], [f"{folder}/{first + t:09d}.png"
                                                          for t in range(len(rows["obs"]))])
            rows["final_obs"] = self._image_paths(rows["final_obs"], [f"{folder}/final_{self.n_episodes:06d}.png"])
        return rows

    def write(self, episode: dict[str, np.ndarray]) -> None:
        """Add one finished episode; for a streaming format it is durable when this returns. A write that
        fails (a full disk) is a ``WriteError``; the episodes committed before it are kept."""
        try:
            self._write(episode)
        except OSError as exc:
            raise atomic.write_error(self._target or Path("memory"), exc) from None

    def _write(self, episode: dict[str, np.ndarray]) -> None:
        rows = self._to_rows(episode)
        if self._sink is not None:
            if not self.n_new and not self._created:  # appending: the lineage is written with the first episode
                self._sink.set_metadata(self.metadata)
            for name in self._fields:
                self._sink.append(name, rows[name])
        else:
            self._memory.append(rows)
        if self._sink is not None:  # counted once durable: a commit that fails (a full disk) finished nothing
            self._sink.commit(self.n_transitions + len(episode["rewards"]), self.n_episodes + 1)
        self.n_transitions += len(episode["rewards"])
        self.n_episodes += 1
        self.n_new += 1
        self._images_written.clear()

    def _in_memory(self) -> Dataset:
        return Dataset.from_arrays(self.metadata, None, **{k: np.concatenate([p[k] for p in self._memory])
                                                           for k in self._fields})

    def close(self, complete: bool = True) -> Dataset | None:
        """Finish the dataset: returns it (lazy for streaming formats), or ``None`` when nothing new was
        written or the recording is incomplete and kept elsewhere (``kept_at``).

        :param complete: every episode asked for was recorded. An incomplete recording that replaces a
            dataset leaves it as it was and keeps the finished episodes at ``kept_at``.
        """
        for image in self._images_written:  # frames of an episode that did not finish
            image.unlink(missing_ok=True)
        if self.path is None:
            return self._in_memory() if self.n_new else None
        if self._sink is not None:
            sink, self._sink = self._sink, None
            if not self.n_new and (self._created or self._staged):  # nothing recorded: leave nothing behind
                sink.abort()
                atomic.remove(self._stream_path)
            else:
                try:
                    sink.close()
                except OSError as exc:  # the sink is released; what was committed before is kept
                    if complete:
                        raise atomic.write_error(self._stream_path, exc) from None
        if not self.n_new:
            return None
        if self._staged is not None:
            try:
                with load(self._staged) as staged:
                    save(staged, self._target, overwrite=True, options=self._options)
            except BaseException:  # a full disk: the finished episodes stay in the staging store, for convert
                self.kept_at = self._staged
                raise
            atomic.remove(self._staged)
        if self._target != self.path:
            if not complete:
                self.kept_at = self._target
                return None
            atomic.replace(self._target, self.path)
        return load(self.path)
