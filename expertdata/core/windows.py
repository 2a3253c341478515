"""Sequence windows and frames at offsets: what action-chunking policies (diffusion policy, ACT, VQ-BeT, robomimic's
RNNs) train on.

``Windows`` gives what diffusion_policy's ``SequenceSampler`` gives: for each episode, windows of ``length`` rows
starting from ``-pad_before`` to ``length_of_episode - length + pad_after`` (each padding at most ``length - 1``),
in episode order, rows before the episode's first repeating its first, rows past its last repeating its last.
``Frames`` gives LeRobot's ``delta_timestamps`` in rows: one item per row, each field read at offsets from it,
clamped to the episode, with ``<field>_is_pad`` saying which offsets fell outside it.

Both are one rule: a window (or a frame's offsets) is a row of indices clipped to its episode, so an item is
``field[clipped rows]``; in memory that is one gather, out of core one read of the span per field, with the
block after it read ahead while items are asked for in order. Both are map-style (``len``, ``[i]``) and picklable
for torch's loader workers (a dataset opened from a path is opened again in each worker).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from .arrays import BLOCK_BYTES, row_bytes
from .errors import UsageError


def _fields(dataset: Any, fields: Sequence[str] | None) -> list[str]:
    """The per-step fields to read: those asked for, else the observation's leaves and the actions."""
    chosen = list(fields) if fields is not None else [*dataset.leaf_fields().values(), "actions"]
    for name in chosen:
        if name not in dataset.fields or dataset.field_per(name) != "step":
            raise UsageError(f"{dataset.source}: {name!r} is not a per-step field of the dataset (it has "
                             f"{', '.join(n for n in dataset.fields if dataset.field_per(n) == 'step')})")
    return chosen


def _episodes(dataset: Any, episodes: Sequence[int] | None) -> np.ndarray:
    n = dataset.n_episodes
    chosen = np.arange(n) if episodes is None else np.asarray(list(episodes), np.int64)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= n):
        raise UsageError(f"{dataset.source}: episodes must be numbers from 0 to {n - 1}")
    return chosen


class _Reader:
    """Reads rows ``lo:hi`` of stored fields for items asked for one after another: each item one read per field,
    and, while items come in order, a block of about ``BLOCK_BYTES`` read ahead so that the next ones are in
    memory already."""

    def __init__(self, arrays: dict[str, Any], rows: int) -> None:
        self._arrays, self._n = arrays, rows
        per_row = max(1, sum(row_bytes(a) for a in arrays.values()))
        self._ahead = max(1, BLOCK_BYTES // per_row)
        self._cached: tuple[int, int, dict[str, np.ndarray]] | None = None
        self._last = -1

    def rows(self, lo: int, hi: int) -> tuple[int, dict[str, np.ndarray]]:
        """The rows ``lo:hi`` of every field (maybe more), and the row the arrays start at."""
        cached = self._cached
        if cached is not None and cached[0] <= lo and hi <= cached[1]:
            self._last = lo
            return cached[0], cached[2]
        in_order = self._last <= lo <= self._last + self._ahead
        stop = min(self._n, max(hi, lo + self._ahead)) if in_order else hi
        block = {name: np.asarray(array[lo:stop]) for name, array in self._arrays.items()}
        self._cached, self._last = (lo, stop, block), lo
        return lo, block


def _read_only(array: Any) -> Any:
    if not isinstance(array, np.ndarray) or not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


class _Items:
    """What ``Windows`` and ``Frames`` share: per item, the clipped rows of every field; reading them in memory or
    out of core; pickling by reopening the dataset."""

    def __init__(self, dataset: Any, fields: Sequence[str] | None, arrays: Mapping[str, Any] | None = None) -> None:
        self.dataset = dataset
        self.fields = _fields(dataset, fields)
        #: Where each field is read from: the dataset's own array, unless ``arrays`` holds one (rows held in memory,
        #: seen read-only: a window of them is a view).
        self.arrays = {name: _read_only((arrays or {}).get(name, dataset.fields[name])) for name in self.fields}
        self._memory = all(isinstance(a, np.ndarray) for a in self.arrays.values())
        self._reader: _Reader | None = None

    def __getstate__(self) -> dict:
        """Rows held in memory travel as they are; stored ones are read again from the dataset, which pickles as the
        way to open it again (``Dataset.origin``): a worker reads on its own."""
        state = dict(self.__dict__)
        state["_reader"] = None
        state["arrays"] = {name: a if isinstance(a, np.ndarray) else None for name, a in self.arrays.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.arrays = {name: self.dataset.fields[name] if a is None else a for name, a in self.arrays.items()}

    def _read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every field at ``rows`` (a 1-d or 2-d array of row numbers), in one gather per field."""
        if self._memory:
            return {name: array[rows] for name, array in self.arrays.items()}
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if self._reader is None:
            self._reader = _Reader(self.arrays, self.dataset.n_transitions)
        begin, block = self._reader.rows(lo, hi)
        return {name: block[name][rows - begin] for name in self.fields}

    def batch(self, items: Sequence[int]) -> dict[str, np.ndarray]:
        """Items stacked: every array with a first axis of ``len(items)``."""
        found = [self[int(i)] for i in items]
        return {key: np.stack([f[key] for f in found]) for key in found[0]} if found else {}


class Windows(_Items):
    """Windows of ``length`` rows over the chosen ``episodes`` (diffusion_policy's ``SequenceSampler``):
    ``windows[i]`` is a dict of arrays of ``length`` rows, one per field.

    :param pad_before, pad_after: rows a window may reach before an episode's first row, or past its last (at most
        ``length - 1`` each), filled with that first or last row.
    :param fields: per-step fields (default: the observation's leaves and the actions).
    :param episodes: the episodes to take windows from (default: all), in their order.
    :param arrays: arrays to read fields from instead of the dataset's, row for row (rows held in memory).
    """

    def __init__(self, dataset: Any, length: int, pad_before: int = 0, pad_after: int = 0,
                 fields: Sequence[str] | None = None, episodes: Sequence[int] | None = None,
                 arrays: Mapping[str, Any] | None = None) -> None:
        if int(length) < 1:
            raise UsageError(f"a window holds at least one row, not {length}")
        super().__init__(dataset, fields, arrays)
        self.length = int(length)
        self.pad_before = min(max(int(pad_before), 0), self.length - 1)
        self.pad_after = min(max(int(pad_after), 0), self.length - 1)
        index = dataset.episodes
        chosen = _episodes(dataset, episodes)
        starts, lengths = index.starts[chosen], index.lengths[chosen]
        counts = np.maximum(0, lengths - self.length + self.pad_after + self.pad_before + 1)
        #: Per window: its first row (before clipping), and its episode's first row and end.
        self.first = (np.repeat(starts - self.pad_before, counts)
                      + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        self.episode_start = np.repeat(starts, counts)
        self.episode_end = np.repeat(starts + lengths, counts)
        self.episode = np.repeat(chosen, counts)

    def __len__(self) -> int:
        return len(self.first)

    def subset(self, items: Sequence[int]) -> "Windows":
        """The windows ``items`` alone (a split's, a rank's), in that order."""
        out = copy.copy(self)
        items = np.asarray(items, np.int64)
        out.first, out.episode_start = self.first[items], self.episode_start[items]
        out.episode_end, out.episode = self.episode_end[items], self.episode[items]
        out._reader = None
        return out

    def anchors(self) -> np.ndarray:
        """Each window's first row inside its episode: the transition a window belongs to, for splits and shares."""
        return np.maximum(self.first, self.episode_start)

    def rows(self, i: int | np.ndarray) -> np.ndarray:
        """The rows window(s) ``i`` read, clipped to their episode (a pad repeats the row it is clipped to)."""
        offsets = np.arange(self.length)
        first = np.asarray(self.first[i])[..., None]
        return np.clip(first + offsets, np.asarray(self.episode_start[i])[..., None],
                       np.asarray(self.episode_end[i])[..., None] - 1)

    def sampler_indices(self) -> np.ndarray:
        """Each window as ``SequenceSampler``'s index row: ``(buffer_start, buffer_end, sample_start, sample_end)``,
        the rows read and where they sit in the window."""
        buffer_start = np.maximum(self.first, self.episode_start)
        buffer_end = np.minimum(self.first + self.length, self.episode_end)
        return np.stack([buffer_start, buffer_end, buffer_start - self.first,
                         self.length - (self.first + self.length - buffer_end)], axis=1)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        n = len(self.first)
        if not -n <= i < n:
            raise IndexError(f"window {i} of {n:,}")
        i = int(i) % n
        first = int(self.first[i])
        if self._memory and first >= self.episode_start[i] and first + self.length <= self.episode_end[i]:
            return {name: array[first:first + self.length] for name, array in self.arrays.items()}  # views
        return self._read(self.rows(i))

    def batch(self, items: Sequence[int]) -> dict[str, np.ndarray]:
        items = np.asarray(items, np.int64)
        if self._memory and len(items):  # one gather of (batch, length) rows per field
            return self._read(self.rows(items))
        return super().batch(items)


class Frames(_Items):
    """One item per row of the chosen episodes, each field read at ``offsets`` rows from it (LeRobot's
    ``delta_timestamps``, in rows): ``frames[i]`` holds, per field, an array of ``len(offsets)`` rows, clamped to
    the episode, and ``<field>_is_pad``, True where an offset fell outside it.

    :param offsets: row offsets for every field, or a dict of offsets by field (only those fields are read).
    """

    def __init__(self, dataset: Any, offsets: Sequence[int] | Mapping[str, Sequence[int]],
                 episodes: Sequence[int] | None = None) -> None:
        by_field = dict(offsets) if isinstance(offsets, Mapping) else None
        super().__init__(dataset, list(by_field) if by_field is not None else None)
        self.offsets = {name: np.asarray(by_field[name] if by_field is not None else offsets, np.int64)
                        for name in self.fields}
        if any(o.ndim != 1 or not len(o) for o in self.offsets.values()):
            raise UsageError("offsets are a list of whole numbers of rows (or a dict of such lists by field)")
        index = dataset.episodes
        chosen = _episodes(dataset, episodes)
        self.row = dataset.episodes.steps(chosen)
        lengths = index.lengths[chosen]
        self.episode_start = np.repeat(index.starts[chosen], lengths)
        self.episode_end = self.episode_start + np.repeat(lengths, lengths)

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} of {len(self):,}")
        i = int(i) % len(self)
        out: dict[str, np.ndarray] = {}
        wanted = {name: self.row[i] + o for name, o in self.offsets.items()}
        lo, hi = self.episode_start[i], self.episode_end[i] - 1
        rows = np.concatenate([np.clip(w, lo, hi) for w in wanted.values()])
        read = self._read(rows)
        at = 0
        for name, w in wanted.items():
            out[name] = read[name][at:at + len(w)]
            out[f"{name}_is_pad"] = (w < lo) | (w > hi)
            at += len(w)
        return out


def in_rows(delta_timestamps: Mapping[str, Sequence[float]], fps: float | None, names: Mapping[str, str],
            source: str) -> dict[str, list[int]]:
    """LeRobot's ``delta_timestamps`` (seconds, by feature) as row offsets by field: a feature is named as LeRobot
    names it (``observation.state``, ``action``) or as we do (``obs/state``, ``actions``); each time must fall on a
    frame (within a tenth of one)."""
    if not fps:
        raise UsageError(f"{source} records no frame rate: give offsets in rows (frames([...]))")
    out = {}
    for feature, times in delta_timestamps.items():
        name = names.get(feature, feature)
        rows = np.asarray(times, np.float64) * fps
        if np.any(np.abs(rows - np.round(rows)) > 0.1):
            raise UsageError(f"{feature}: the times {list(times)} do not fall on frames at {fps:g} fps")
        out[name] = np.round(rows).astype(np.int64).tolist()
    return out
