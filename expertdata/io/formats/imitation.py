"""imitation's legacy ``.npz`` rollouts: ``obs`` (one more row per trajectory than its actions: the
observation after the last step), ``acts``, ``rews``, ``indices`` (where each trajectory after the first
begins in ``acts``), ``terminal`` (per trajectory) and ``infos`` (Python dicts, pickled).

Read: each trajectory's last observation becomes ``final_obs``, the rest ``obs``; ``terminal`` is kept as
a per-episode extra: imitation sets it on time limits too, so it says "done, cause unknown", and no
``terminated``/``truncated`` flags are made up. ``infos`` is never unpickled: it is skipped, said so (W108).

Written: the same members, loadable by imitation's ``types.load``; ``infos`` as empty dicts (the loader
needs one per step). A dataset without ``final_obs`` cannot be written: imitation needs that row.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...core.arrays import Gathered, iter_blocks
from ...core.errors import CountMismatchError, UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import shown
from . import npz
from .base import Raw, Whole, WriteOptions
from .peer import PEER_KEY, Peer, declare_extras, episode_sums, refuse_withheld, renamed, require, take_peer_note

NAMES = {"acts": "actions", "rews": "rewards"}
OURS = {v: k for k, v in NAMES.items()}
MEMBERS = {"obs.npy", "acts.npy", "indices.npy"}


def sniff(path: Path) -> bool:
    if not npz.sniff(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    return MEMBERS <= names and "actions.npy" not in names


def read(path: Path, trusted: bool = False) -> Raw:
    raw = npz.read(path, trusted)
    try:
        refuse_withheld(raw, path)
        raw.format = "imitation"
        infos = raw.fields.pop("infos", None)
        raw = renamed(raw, NAMES)
        note = take_peer_note(raw, "imitation")
        if infos is not None and not (note and "infos" in note.get("synthesized", ())):
            raw.findings.append(Finding("not-imported", "'infos' is skipped: an object array of Python dicts, which "
                                        "only unpickling could read" if np.dtype(infos.dtype).hasobject else
                                        f"'infos' is skipped: {infos.dtype} rows, not imitation's dicts"))
        _split(raw, path, note is not None)
        return raw
    except BaseException:
        raw.close()
        raise


def _split(raw: Raw, path: Path, ours: bool) -> None:
    """Observations and final observations apart; episodes, returns and extras where someone else wrote it."""
    require(raw, path, "imitation", "obs", "actions", "indices")
    obs, n = raw.fields["obs"], raw.fields["actions"].shape[0]
    if len(raw.fields["indices"].shape) != 1 or raw.fields["indices"].shape[0] >= max(n, 1):
        raise CountMismatchError(f"{path}: E018 count-mismatch: 'indices' claims {raw.fields['indices'].shape} "
                                 f"trajectory starts for {n:,} actions")
    indices = np.asarray(raw.fields.pop("indices")[:])
    raw.storage.pop("indices", None)
    bounds = np.concatenate([[0], indices, [n]]) if indices.ndim == 1 and indices.dtype.kind in "iu" else None
    if bounds is None or np.any(np.diff(bounds) < 1):
        raise UnreadableError(f"{path}: 'indices' must be increasing trajectory starts within the {n:,} actions, "
                              "each trajectory at least one step long")
    episodes = len(bounds) - 1
    if obs.shape[:1] != (n + episodes,):
        raise UnreadableError(f"{path}: 'obs' has {obs.shape[0] if obs.shape else 0:,} rows; {episodes:,} "
                              f"trajectories of {n:,} actions need {n + episodes:,} (one more per trajectory)")
    episode = np.repeat(np.arange(episodes), np.diff(bounds))
    raw.fields["obs"] = Gathered(obs, np.arange(n) + episode)
    finals = bounds[1:] + np.arange(episodes)
    raw.fields["final_obs"] = np.stack([np.asarray(obs[r:r + 1])[0] for r in finals]) if episodes else obs[0:0]
    if ours:
        return
    starts = np.zeros(n, bool)
    starts[bounds[:-1]] = True
    raw.fields["episode_starts"] = starts
    raw.metadata = {**raw.metadata, "flags": "unknown"}
    if "rewards" in raw.fields:
        raw.fields["episode_returns"] = episode_sums(raw.fields["rewards"], bounds[:-1], f"{path}: rews")
    else:  # imitation's Trajectory (not TrajectoryWithRew): demonstrations without rewards
        raw.metadata["rewards"] = "absent"
    declare_extras(raw, {"obs", "actions", "rewards", "episode_starts", "episode_returns", "final_obs"},
                   {"step": n, "episode": episodes})


def export(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` as imitation's legacy ``.npz``; returns notes on what had to be made up."""
    if "final_obs" not in dataset:
        raise UsageError(f"{dataset.source}: imitation stores the observation after each trajectory's last step, "
                         "and this dataset has no final_obs (SB2 never recorded it); it cannot be written losslessly")
    notes, synthesized = [], ["infos"]
    starts = np.flatnonzero(np.asarray(dataset["episode_starts"][:]))
    n, episodes = dataset.n_transitions, dataset.n_episodes
    sink = npz.NpzSink(path, options)
    try:
        for name in sorted(dataset.fields):
            if name in ("obs", "final_obs"):
                continue
            _copy(dataset, name, OURS.get(name, name), sink)
        obs, final = dataset["obs"], dataset["final_obs"]
        sink.add_field("obs", np.dtype(obs.dtype), tuple(obs.shape[1:]), n + episodes)
        stops = np.append(starts[1:], n)
        for e, (begin, stop) in enumerate(zip(starts, stops)):
            for block in iter_blocks(obs, int(begin), int(stop), label=f"{dataset.source}: field 'obs'"):
                sink.append("obs", block)
            sink.append("obs", np.asarray(final[e:e + 1]))
        sink.add_array("indices", starts[1:].astype(np.int64))
        if "terminal" not in dataset:
            sink.add_array("terminal", _terminal(dataset, stops - 1))
            synthesized.append("terminal")
            notes.append("'terminal' (done, cause unknown) is set on every trajectory that ends terminated or "
                         "truncated" if {"terminated", "truncated"} & set(dataset.fields) else
                         "the dataset does not record why its episodes ended: 'terminal' is set on every trajectory")
        infos = np.empty(n, object)
        infos[:] = [{} for _ in range(n)]
        sink.add_array("infos", infos, allow_pickle=True)
        sink.set_metadata({**metadata, PEER_KEY: {"format": "imitation", "synthesized": synthesized}})
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return notes


def _terminal(dataset: Whole, last_rows: np.ndarray) -> np.ndarray:
    flags = [np.asarray(dataset[name][:])[last_rows] for name in ("terminated", "truncated") if name in dataset]
    return np.logical_or.reduce(flags) if flags else np.ones(len(last_rows), bool)


def _copy(dataset: Whole, name: str, member: str, sink: npz.NpzSink) -> None:
    array = dataset[name]
    sink.add_field(member, np.dtype(array.dtype), tuple(array.shape[1:]), array.shape[0])
    for block in iter_blocks(array, label=f"{dataset.source}: field {shown(name)}"):
        sink.append(member, block)


BACKEND = Peer("imitation", "imitation's legacy .npz rollouts. Keeps obs, acts, rews and terminal (done, cause "
               "unknown); infos is skipped (pickled). Writing needs final_obs.", sniff, read, export,
               npz.BACKEND.compressions)
