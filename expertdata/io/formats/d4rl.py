"""D4RL's flat HDF5 layout: ``observations``, ``actions``, ``rewards``, ``terminals``, ``timeouts``, optional
``next_observations`` and ``infos/*``, one row per step, episodes told apart only by the two flags.

Read: episodes end where ``terminals | timeouts`` is set; ``terminals`` becomes ``terminated``, ``timeouts``
``truncated``; ``final_obs`` comes from ``next_observations`` at each episode's last row (which is also
kept whole, as the extra it is); every other array becomes an extra (``infos/qpos`` -> ``infos.qpos``).
Flags that disagree with the observations are reported (W107), never fixed.

Written: our fields under D4RL's names, ``next_observations`` from ``obs`` and ``final_obs``, and the two
flags, made up from the episode ends where the dataset never recorded why its episodes ended.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ...core.arrays import iter_blocks
from ...core.errors import UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import shown
from . import hdf5
from .base import METADATA_KEY, Capabilities, Raw, Whole, WriteOptions, metadata_to_json
from .peer import (
    PEER_KEY,
    Peer,
    declare_extras,
    episode_sums,
    flagged_rows,
    refuse_withheld,
    renamed,
    require,
    starts_from_ends,
    take_peer_note,
)

NAMES = {"observations": "obs", "terminals": "terminated", "timeouts": "truncated"}
OURS = {v: k for k, v in NAMES.items()}
#: An episode end where the observations step no further than this many times the steps around it is no
#: reset: the episode went on (W107).
CONTINUES = 2.0


def sniff(path: Path) -> bool:
    if not hdf5.sniff(path):
        return False
    with h5py.File(path, "r") as f:
        return "observations" in f and "actions" in f and "obs" not in f


def read(path: Path, trusted: bool = False) -> Raw:
    raw = hdf5.read(path, trusted)
    try:
        raw = renamed(raw, NAMES)
        raw.format = "d4rl"
        if take_peer_note(raw, "d4rl") is None:
            _derive(raw, path)
        return raw
    except BaseException:
        raw.close()
        raise


def _derive(raw: Raw, path: Path) -> None:
    """Episodes, returns and final observations of a D4RL file someone else wrote."""
    refuse_withheld(raw, path)
    require(raw, path, "D4RL", "obs", "actions", "rewards")
    flags = [n for n in ("terminated", "truncated") if n in raw.fields]
    if not flags:
        raise UnreadableError(f"{path}: a D4RL file without 'terminals' or 'timeouts': its episodes cannot be told "
                              "apart")
    rows = raw.fields["obs"].shape[0]
    for name in flags:
        if raw.fields[name].shape[:1] != (rows,):
            raise UnreadableError(f"{path}: {shown(OURS[name])} has {raw.fields[name].shape[0]:,} rows, "
                                  f"'observations' {rows:,}")
        missing = raw.coverage[name](rows)
        if missing is not None:
            raise UnreadableError(f"{path}: {shown(OURS[name])}: {missing[0]:,} chunks of its rows are not stored")
    ends = {name: flagged_rows(raw.fields[name], f"{path}: {OURS[name]}") for name in flags}
    for name in flags:
        _as_booleans(raw, name, ends[name], rows, path)
    last = np.union1d(*ends.values()) if len(ends) == 2 else next(iter(ends.values()))
    starts = starts_from_ends(last, rows)
    first = np.flatnonzero(starts)
    raw.fields["episode_starts"] = starts
    raw.fields["episode_returns"] = episode_sums(raw.fields["rewards"], first, f"{path}: rewards")
    if "next_observations" in raw.fields and raw.fields["next_observations"].shape[:1] == (rows,):
        raw.fields["final_obs"] = np.asarray(raw.fields["next_observations"][np.append(first[1:] - 1, rows - 1)])
    raw.metadata = dict(raw.metadata)
    declare_extras(raw, {"obs", "actions", "rewards", "terminated", "truncated", "episode_starts",
                         "episode_returns", "final_obs"}, {"step": rows, "episode": len(first)})
    if len(ends) == 2:
        _disagreement(raw, ends["truncated"], ends["terminated"], rows)


def _as_booleans(raw: Raw, name: str, set_rows: np.ndarray, rows: int, path: Path) -> None:
    """A flag stored as numbers (0.0 and 1.0, as some D4RL files have it) as the booleans it means; any other
    value is refused, since it cannot be a flag."""
    array = raw.fields[name]
    if np.dtype(array.dtype) == np.bool_:
        return
    values = np.asarray(array[set_rows]) if len(set_rows) else np.ones(0)
    if len(array.shape) != 1 or np.any(values != 1):
        raise UnreadableError(f"{path}: {shown(OURS[name])} holds values other than 0 and 1 ({array.dtype}, shape "
                              f"{array.shape}); it cannot be read as a flag")
    flags = np.zeros(rows, bool)
    flags[set_rows] = True
    raw.fields[name] = flags
    raw.storage.pop(name, None)


def _disagreement(raw: Raw, timeouts: np.ndarray, terminals: np.ndarray, rows: int) -> None:
    """W107 when ``timeouts`` ends episodes whose observations go on into the next row, each followed
    by a terminal: the flags contradict each other (D4RL issue 137)."""
    cuts = timeouts[(timeouts > 0) & (timeouts + 2 < rows)]
    cuts = cuts[~np.isin(cuts, terminals)]
    if not len(cuts):
        return
    around = np.unique(np.concatenate([cuts - 1, cuts, cuts + 1, cuts + 2]))
    obs = np.asarray(raw.fields["obs"][around], np.float64).reshape(len(around), -1)
    at = {row: obs[i] for i, row in enumerate(around)}
    step = {c: [float(np.linalg.norm(at[c + k + 1] - at[c + k])) for k in (-1, 0, 1)] for c in cuts}
    going_on = [c for c in cuts if step[c][1] <= CONTINUES * max(step[c][0], step[c][2])]
    if not going_on:
        return
    after = terminals[np.searchsorted(terminals, going_on[0])] if going_on[0] < terminals.max(initial=-1) else None
    later = f"; 'terminals' ends it at row {after:,}" if after is not None else ""
    shown_rows = ", ".join(f"{c:,}" for c in going_on[:5]) + (", ..." if len(going_on) > 5 else "")
    raw.findings.append(Finding(
        "flags-disagree", f"'timeouts' ends {len(going_on)} episode{'s' * (len(going_on) > 1)} where the observations "
        f"go on into the next row without a reset (rows {shown_rows}); at row {going_on[0]:,} they step "
        f"{step[going_on[0]][1]:.3g} against {step[going_on[0]][0]:.3g} and {step[going_on[0]][2]:.3g} around "
        f"it{later}",
        "truncated", int(going_on[0])))


def _next_observations(dataset: Whole, sink: h5py.Dataset) -> None:
    """``next_observations``: each row's following observation, and ``final_obs`` at an episode's end."""
    obs, final = dataset["obs"], np.asarray(dataset["final_obs"][:])
    rows = obs.shape[0]
    first = np.flatnonzero(np.asarray(dataset["episode_starts"][:]))
    last = np.append(first[1:] - 1, rows - 1)
    begin = 0
    for block in iter_blocks(obs, label=f"{dataset.source}: field 'obs'"):
        stop = begin + len(block)
        nxt = np.empty_like(block)
        nxt[:-1] = block[1:]
        if stop < rows:
            nxt[-1] = obs[stop:stop + 1][0]
        ending = (last >= begin) & (last < stop)
        nxt[last[ending] - begin] = final[ending]
        sink[begin:stop] = nxt
        begin = stop


def export(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` in D4RL's layout; returns notes on what had to be made up."""
    notes, synthesized = [], []
    text = [shown(n) for n, a in dataset.fields.items() if np.dtype(a.dtype).kind == "U"]
    if text:
        raise UsageError(f"D4RL stores numbers only; {', '.join(text)} hold text (image paths: convert the images "
                         "into arrays first)")
    with h5py.File(path, "w", libver=hdf5.LIBVER) as f:
        method, level = options.codec(BACKEND)

        def create(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> h5py.Dataset:
            rows = max(1, min(shape[0], options.rows_per_chunk(dtype, shape[1:]))) if shape[0] else None
            return f.create_dataset(name, shape=shape, dtype=dtype, chunks=(rows,) + shape[1:] if rows else None,
                                    compression=None if method == "none" else method,
                                    compression_opts=level if method == "gzip" else None,
                                    fletcher32=bool(rows))

        for name, array in dataset.fields.items():
            target = create(OURS.get(name, name.replace(".", "/") if name.startswith("infos.") else name),
                            np.dtype(array.dtype), tuple(array.shape))
            begin = 0
            for block in iter_blocks(array, label=f"{dataset.source}: field {shown(name)}"):
                target[begin:begin + len(block)] = block
                begin += len(block)
        starts = np.asarray(dataset["episode_starts"][:])
        ends = np.zeros_like(starts)
        ends[np.append(np.flatnonzero(starts)[1:] - 1, len(starts) - 1)[:dataset.n_episodes]] = True
        if "terminated" not in dataset:
            f.create_dataset("terminals", data=np.zeros_like(starts))
            synthesized.append("terminated")
        if "truncated" not in dataset:
            known = np.asarray(dataset["terminated"][:]) if "terminated" in dataset else np.zeros_like(starts)
            f.create_dataset("timeouts", data=ends & ~known)
            synthesized.append("truncated")
            notes.append("the dataset does not record why its episodes ended: 'timeouts' is set at every episode's "
                         "end" + (" that is not terminated" if "terminated" in dataset else ""))
        if "final_obs" in dataset and "next_observations" not in dataset:
            _next_observations(dataset, create("next_observations", np.dtype(dataset["obs"].dtype),
                                               tuple(dataset["obs"].shape)))
            synthesized.append("next_observations")
        elif "next_observations" not in dataset:
            notes.append("no 'next_observations': the dataset has no final_obs, so the last step of each episode "
                         "has no next observation")
        f.attrs[METADATA_KEY] = hdf5.fixed_text(metadata_to_json(
            {**metadata, PEER_KEY: {"format": "d4rl", "synthesized": synthesized}}))
    return notes


BACKEND = Peer("d4rl", "D4RL's flat HDF5 (offline RL). Keeps every array; episodes come from terminals | timeouts; "
               "final_obs from next_observations. Writing makes up flags a dataset never recorded (said so).",
               sniff, read, export, hdf5.BACKEND.compressions, "gzip:4",
               capabilities=Capabilities(exports=True, needs_rewards=True, composite_obs=False))
