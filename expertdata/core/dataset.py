"""The in-process form of a dataset: named arrays (lazy or in memory), metadata, and the episode index; a read-only
mapping of its fields (each a numpy-like ``Field``), with its episodes at hand and its sequence windows."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import episode_views
from .arrays import ArrayLike, Gathered, RowWindow
from .episodes import Episode, EpisodeIndex, renumbered_splits
from .errors import UsageError
from .field import Field
from .rules import raise_for, structural_problems
from .schema import DESCRIPTIVE_KEYS, field_per, leaf_fields, rewards_absent
from .windows import Frames, Windows, in_rows


def _call(function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """``function(*args, **kwargs)``: how a dataset is made again when it is unpickled (``Dataset.origin``)."""
    return function(*args, **kwargs)


@dataclass(frozen=True, eq=False)
class Dataset(Mapping):
    """Expert trajectories: ``fields`` maps names (see ``expertdata.core.schema``) to arrays.

    A dataset is a read-only mapping of its fields: ``ds["obs"]`` is a ``Field``, a numpy-like array whatever
    stores it (``np.asarray(ds["obs"])``, ``ds["obs"][::10]``, ``ds["obs"].ndim``), and ``keys``, ``items``,
    ``values``, ``in`` and iteration go over the fields. Arrays loaded from HDF5 or Zarr stay lazy: nothing is
    read until sliced. Construction checks the structure (required fields, dtypes, lengths, episode count) and
    raises ``InvalidDatasetError`` with every structural problem; ``expertdata.validate`` adds the checks that read
    every value.

    :param root: the folder that relative image paths in ``obs`` are resolved against.
    :param source: where the dataset was read from, for messages.
    :param storage: per field, how the file stores it (``chunks``, ``compression``, ``checksum``).
    :param trusted: image paths may lead out of ``root`` through symbolic links (a file you trust).
    :param notes: what reading the file noticed but did not refuse (a peer format's skipped arrays, say).
    :param inputs: the files or folders its arrays are read from (a writer never writes over or into them).
    :param as_recorded: its arrays and descriptive metadata are the file's as read, so its content digest must be
        the one the file records (a save compares them, ``E017``); views that select or change set it false.
    :param origin: how to make it again, ``(function, args, kwargs)`` (``load`` of its path, a selection of
        another dataset): a dataset is pickled as its origin (torch's loader workers open it again), or, in
        memory, as its arrays.
    """

    fields: Mapping[str, ArrayLike]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = None
    source: str = "<memory>"
    format: str | None = None
    closer: Callable[[], None] | None = field(default=None, repr=False)
    storage: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    trusted: bool = False
    notes: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    as_recorded: bool = False
    origin: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        raise_for(self.source, structural_problems(self.fields, self.metadata, self.root, trusted=self.trusted))

    __eq__ = object.__eq__  # a dataset is not compared by value (its fields are arrays)
    __hash__ = object.__hash__

    def __reduce__(self) -> tuple:
        if self.origin is not None:
            return _call, self.origin
        if all(isinstance(a, np.ndarray) for a in self.fields.values()):
            return _call, (Dataset, (dict(self.fields), dict(self.metadata), self.root, self.source, self.format),
                           {"storage": dict(self.storage), "notes": self.notes})
        raise TypeError(f"{self.source}: a dataset of lazy arrays that was not opened from a path cannot be pickled")

    @classmethod
    def from_arrays(cls, metadata: Mapping[str, Any] | None = None, root: Path | str | None = None,
                    **arrays: Any) -> "Dataset":
        """Build an in-memory dataset from numpy arrays given by field name."""
        return cls({k: np.asarray(v) for k, v in arrays.items()}, dict(metadata or {}),
                   Path(root) if root is not None else None)

    def __getitem__(self, name: str) -> Any:
        """The field ``name`` as a read-only numpy-like array (a ``Field``; in memory, a read-only view)."""
        if name not in self.fields:
            raise KeyError(f"{self.source} has no field {name!r}; it has {', '.join(self.fields)}")
        array = self.fields[name]
        if isinstance(array, np.ndarray):
            view = array.view()
            view.flags.writeable = False
            return view
        return array if isinstance(array, Field) else Field(array, f"{self.source}: field {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        """How many fields it holds (``n_transitions`` and ``n_episodes`` count its rows)."""
        return len(self.fields)

    @cached_property
    def episodes(self) -> EpisodeIndex:
        """The episode index, read from ``episode_starts`` once."""
        return EpisodeIndex.read(self.fields["episode_starts"])

    @property
    def n_transitions(self) -> int:
        return int(self.fields["episode_starts"].shape[0])

    @property
    def n_episodes(self) -> int:
        if "episode_returns" in self.fields:
            return int(self.fields["episode_returns"].shape[0])
        return self.episodes.n_episodes

    @property
    def has_rewards(self) -> bool:
        """False for demonstrations without rewards (``metadata["rewards"] == "absent"``)."""
        return not rewards_absent(self.metadata)

    @property
    def has_image_paths(self) -> bool:
        """True when ``obs`` holds paths to image files, as SB2 stored image observations."""
        return "obs" in self.fields and np.dtype(self.fields["obs"].dtype).kind == "U"

    def leaf_fields(self, base: str = "obs") -> dict[str, str]:
        """The fields holding ``obs`` (or ``final_obs``) by leaf path: ``{"": "obs"}``, or one per leaf of a
        composite observation space (``{"image": "obs/image", ...}``)."""
        return leaf_fields(base, self.fields, self.metadata)

    def observations(self) -> ArrayLike | dict[str, ArrayLike]:
        """``obs``: its array, or a dict of arrays by leaf path for a composite observation space."""
        names = self.leaf_fields()
        return self.fields["obs"] if list(names) == [""] else {path: self.fields[name] for path, name in names.items()}

    def field_per(self, name: str) -> str:
        """``step`` or ``episode``: which count a field's rows follow."""
        return field_per(name, self.metadata)

    def take_episodes(self, stop: int) -> "Dataset":
        """The first ``stop`` episodes, as lazy as the source: rows are sliced only when read.

        Slicing a lazy array reads it, so fields are wrapped in views that defer the read.
        """
        steps = self.episodes.step_slice(0, stop)
        fields = {name: RowWindow(array, steps if self.field_per(name) == "step" else slice(0, stop))
                  for name, array in self.fields.items()}
        metadata = self.metadata
        if isinstance(metadata.get("splits"), dict):  # named splits keep the episodes that are kept
            metadata = {**metadata, "splits": {k: [e for e in v if e < stop] for k, v in metadata["splits"].items()}}
        return replace(self, fields=fields, metadata=metadata, as_recorded=False,
                       origin=(Dataset.take_episodes, (self, stop), {}))

    def take(self, episodes: Sequence[int], closer: Callable[[], None] | None = None) -> "Dataset":
        """The given episodes (increasing numbers), lazily; named splits follow them. ``closer``: what closing the
        result closes (by default nothing: the caller closes this dataset)."""
        episodes = np.asarray(episodes, np.int64)
        if not len(episodes):
            raise UsageError(f"{self.source}: no episode meets the criteria; nothing to write")
        if len(np.unique(episodes)) != len(episodes) or np.any(np.diff(episodes) < 0) or episodes[0] < 0 or \
                episodes[-1] >= self.n_episodes:
            raise UsageError(f"{self.source}: episodes must be increasing numbers from 0 to {self.n_episodes - 1}")
        steps = self.episodes.steps(episodes)
        fields = {name: Gathered(array, steps if self.field_per(name) == "step" else episodes)
                  for name, array in self.fields.items()}
        metadata = dict(self.metadata)
        if isinstance(metadata.get("splits"), dict):
            metadata["splits"] = renumbered_splits(metadata["splits"], episodes)
        return replace(self, fields=fields, metadata=metadata, closer=closer, source=f"{self.source} (selected)",
                       as_recorded=False, origin=(Dataset.take, (self, episodes), {}))

    def with_rewards(self, value: float) -> "Dataset":
        """Demonstrations without rewards given a constant reward per step (for formats whose readers need
        rewards, SB2's .npz among them); the metadata no longer says the rewards are absent."""
        lengths = self.episodes.lengths
        fields = {**self.fields, "rewards": np.full(self.n_transitions, float(value)),
                  "episode_returns": float(value) * lengths.astype(np.float64)}
        return replace(self, fields=fields, metadata={k: v for k, v in self.metadata.items() if k != "rewards"},
                       as_recorded=False, origin=(Dataset.with_rewards, (self, value), {}))

    def with_metadata(self, metadata: Mapping[str, Any]) -> "Dataset":
        """The same arrays with other metadata (still as recorded where the descriptive keys are unchanged)."""
        same = all(self.metadata.get(k) == metadata.get(k) for k in DESCRIPTIVE_KEYS)
        return replace(self, metadata=metadata, as_recorded=self.as_recorded and same,
                       origin=(Dataset.with_metadata, (self, dict(metadata)), {}))

    # -- episodes at hand ------------------------------------------------------------------------------------

    def episode(self, i: int) -> Episode:
        """Episode ``i`` (negative counts from the end): its per-step fields (views of the rows, read when sliced)
        and its per-episode values (``return``, ``terminated``, ``truncated``, ``final_obs``, ``task``, ...)."""
        return episode_views.episode(self, i)

    def iter_episodes(self, indices: Sequence[int] | None = None) -> Iterator[Episode]:
        """Every episode (or ``indices``), in order, streamed: steps read a block at a time, one block in memory."""
        return episode_views.iter_episodes(self, indices)

    def sample_episodes(self, n: int, seed: int | None = None) -> list[Episode]:
        """``n`` distinct episodes drawn at random (Minari's ``sample_episodes``), in the order drawn."""
        if not 0 <= n <= self.n_episodes:
            raise UsageError(f"{self.source}: cannot sample {n} of its {self.n_episodes:,} episodes")
        drawn = np.random.default_rng(seed).choice(self.n_episodes, n, replace=False)
        return [self.episode(int(e)) for e in drawn]

    def filter_episodes(self, keep: Callable[[Episode], bool]) -> "Dataset":
        """The episodes for which ``keep(episode)`` is true, as a dataset (lazy; ``save`` or ``convert`` writes it;
        ``expertdata select`` takes episodes the same way)."""
        return self.take([e.index for e in self.iter_episodes() if keep(e)])

    def episode_table(self) -> Any:
        """One row per episode (a pandas ``DataFrame``): ``episode``, ``start``, ``length``, ``return``,
        ``terminated``, ``truncated`` and the per-episode fields (``task``, ``seed``, ``digest``, ...)."""
        return episode_views.episode_table(self)

    # -- sequences --------------------------------------------------------------------------------------------

    def windows(self, length: int, pad_before: int = 0, pad_after: int = 0, fields: Sequence[str] | None = None,
                episodes: Sequence[int] | None = None) -> Windows:
        """Windows of ``length`` rows, as diffusion_policy's ``SequenceSampler`` gives them (same count, order and
        edge padding): a map-style dataset of dicts of arrays (``expertdata.core.windows``)."""
        return Windows(self, length, pad_before, pad_after, fields, episodes)

    def frames(self, offsets: Sequence[int] | Mapping[str, Sequence[int]] | None = None, *,
               delta_timestamps: Mapping[str, Sequence[float]] | None = None,
               episodes: Sequence[int] | None = None) -> Frames:
        """One item per row, each field read at ``offsets`` rows from it, clamped to the episode, with
        ``<field>_is_pad`` (LeRobot's ``delta_timestamps``, which are accepted in seconds where the dataset records
        its frame rate, by LeRobot's feature names or ours)."""
        if (offsets is None) == (delta_timestamps is None):
            raise UsageError("give offsets (rows) or delta_timestamps (seconds), one of them")
        if delta_timestamps is not None:
            fps = ((self.metadata.get("user") or {}).get("lerobot") or {}).get("fps")
            names = {"action": "actions", **{f"observation.{leaf}": name for leaf, name in self.leaf_fields().items()
                                             if leaf}, "observation.state": self.leaf_fields().get("state", "obs")}
            offsets = in_rows(delta_timestamps, fps, names, self.source)
        return Frames(self, offsets, episodes)

    def close(self) -> None:
        """Close the file behind lazy arrays (a no-op for in-memory datasets)."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
