"""The in-process form of a dataset: named arrays (lazy or in memory), metadata, and the episode index."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .arrays import ArrayLike, RowWindow
from .episodes import EpisodeIndex
from .schema import DESCRIPTIVE_KEYS, field_per, leaf_fields, rewards_absent
from .validation import raise_for, structural_problems


@dataclass(frozen=True, eq=False)
class Dataset:
    """Expert trajectories: ``fields`` maps names (see ``expertdata.schema``) to arrays.

    Arrays loaded from HDF5 or Zarr stay lazy: nothing is read until sliced. Construction checks the
    structure (required fields, dtypes, lengths, episode count) and raises ``InvalidDatasetError`` with
    every structural problem; ``expertdata.validate`` adds the checks that read every value.

    :param root: the folder that relative image paths in ``obs`` are resolved against.
    :param source: where the dataset was read from, for messages.
    :param storage: per field, how the file stores it (``chunks``, ``compression``, ``checksum``).
    :param trusted: image paths may lead out of ``root`` through symbolic links (a file you trust).
    :param notes: what reading the file noticed but did not refuse (a peer format's skipped arrays, say).
    :param inputs: the files or folders its arrays are read from (a writer never writes over or into them).
    :param as_recorded: its arrays and descriptive metadata are the file's as read, so its content digest must be
        the one the file records (a save compares them, ``E017``); views that select or change set it false.
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

    def __post_init__(self) -> None:
        raise_for(self.source, structural_problems(self.fields, self.metadata, self.root, trusted=self.trusted))

    @classmethod
    def from_arrays(cls, metadata: Mapping[str, Any] | None = None, root: Path | str | None = None,
                    **arrays: Any) -> "Dataset":
        """Build an in-memory dataset from numpy arrays given by field name."""
        return cls({k: np.asarray(v) for k, v in arrays.items()}, dict(metadata or {}),
                   Path(root) if root is not None else None)

    def __getitem__(self, name: str) -> ArrayLike:
        return self.fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self.fields

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
        return replace(self, fields=fields, metadata=metadata, as_recorded=False)

    def with_rewards(self, value: float) -> "Dataset":
        """Demonstrations without rewards given a constant reward per step (for formats whose readers need
        rewards, SB2's .npz among them); the metadata no longer says the rewards are absent."""
        lengths = self.episodes.lengths
        fields = {**self.fields, "rewards": np.full(self.n_transitions, float(value)),
                  "episode_returns": float(value) * lengths.astype(np.float64)}
        return replace(self, fields=fields, metadata={k: v for k, v in self.metadata.items() if k != "rewards"},
                       as_recorded=False)

    def with_metadata(self, metadata: Mapping[str, Any]) -> "Dataset":
        """The same arrays with other metadata (still as recorded where the descriptive keys are unchanged)."""
        same = all(self.metadata.get(k) == metadata.get(k) for k in DESCRIPTIVE_KEYS)
        return replace(self, metadata=metadata, as_recorded=self.as_recorded and same)

    def close(self) -> None:
        """Close the file behind lazy arrays (a no-op for in-memory datasets)."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
