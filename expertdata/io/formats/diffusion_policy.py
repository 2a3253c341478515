"""diffusion_policy's ``ReplayBuffer`` (a Zarr format 2 group, Blosc): ``data/<key>`` arrays of one row per
step (PushT: ``img``, ``state``, ``keypoint``, ``n_contacts``, ``action``) and ``meta/episode_ends`` (each
episode's end, exclusive). No rewards and no done flags.

Read: ``state`` (or ``obs``, or the only observation array) becomes ``obs``; ``action`` ``actions``;
every other array an extra of the same name (per step from ``data/``, per episode from ``meta/``), until
dict observations (schema 1.1) let them be observation keys. Episode starts come from ``episode_ends``
(which must increase and end at the data's length, else the file is refused); the dataset has no rewards.
Written: the same layout, in Zarr format 2, which diffusion_policy's ``ReplayBuffer`` slices by
``episode_ends``.
"""
from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import zarr

from ...core.arrays import iter_blocks
from ...core.errors import CountMismatchError, UnreadableError, UsageError
from ...core.schema import shown
from . import zarr as ours_zarr
from .base import METADATA_KEY, Capabilities, Raw, Whole, WriteOptions, metadata_to_json
from .peer import PEER_KEY, Peer, declare_extras, refuse_withheld, take_peer_note

#: Names diffusion_policy's datasets give the low-dimensional observation, in the order they are preferred.
OBS_KEYS = ("state", "obs", "agent_pos")


def sniff(path: Path) -> bool:
    return path.is_dir() and (path / ".zgroup").is_file() and (path / "meta" / "episode_ends" / ".zarray").is_file()


def _obs_key(names: list[str]) -> str | None:
    return next((k for k in OBS_KEYS if k in names), names[0] if len(names) == 1 else None)


def read(path: Path, trusted: bool = False) -> Raw:
    raw = ours_zarr.read(path, trusted, zarr_format=2)
    try:
        raw.format = "diffusion_policy"
        _derive(raw, path, take_peer_note(raw, "diffusion_policy") is not None)
        return raw
    except BaseException:
        raw.close()
        raise


def _derive(raw: Raw, path: Path, ours: bool) -> None:
    refuse_withheld(raw, path)
    if "meta/episode_ends" not in raw.fields:
        raise UnreadableError(f"{path}: a diffusion_policy replay buffer without 'meta/episode_ends'")
    for name in ["meta/episode_ends"] + [n for n in raw.fields if n.startswith("data/")]:
        # Read (and allocated for) on opening: what a header claims must be stored first.
        missing = raw.coverage[name](raw.fields[name].shape[0]) if raw.fields[name].shape else None
        if missing is not None:
            raise UnreadableError(f"{path}: {shown(name)}: {missing[0]:,} of its chunks are not stored")
    data = sorted(n[5:] for n in raw.fields if n.startswith("data/"))
    rows = {raw.fields[f"data/{n}"].shape[0] if raw.fields[f"data/{n}"].shape else -1 for n in data}
    if len(rows) != 1:
        raise UnreadableError(f"{path}: the arrays under 'data/' differ in length ({sorted(rows)})")
    n = rows.pop()
    claimed = raw.fields["meta/episode_ends"].shape
    if len(claimed) != 1 or claimed[0] > n:  # checked before it is read: a header may claim billions of ends
        raise CountMismatchError(f"{path}: E018 count-mismatch: 'meta/episode_ends' claims {claimed} ends for "
                                 f"{n:,} steps (at most one per step)")
    ends = np.asarray(raw.fields.pop("meta/episode_ends")[:])
    raw.storage.pop("meta/episode_ends", None)
    if ends.ndim != 1 or ends.dtype.kind not in "iu" or len(ends) == 0 or np.any(np.diff(ends) < 1) or \
            ends[0] < 1 or ends[-1] != n:
        raise UnreadableError(f"{path}: 'meta/episode_ends' must increase and end at the data's {n:,} rows")
    obs = "obs" if ours else _obs_key([d for d in data if d != "action"])
    if obs is None or "action" not in data:
        raise UnreadableError(f"{path}: cannot tell the observation ({', '.join(map(shown, data))}) or no 'action'")
    names = {f"data/{obs}": "obs", "data/action": "actions"}
    renamed = {names.get(k, k.split("/", 1)[1] if k.startswith(("data/", "meta/")) else k): v
               for k, v in raw.fields.items()}
    raw.storage = {names.get(k, k.split("/", 1)[1] if k.startswith(("data/", "meta/")) else k): v
                   for k, v in raw.storage.items()}
    raw.fields = renamed
    starts = np.zeros(n, bool)
    starts[np.concatenate([[0], ends[:-1]])] = True
    raw.fields["episode_starts"] = starts
    raw.metadata = dict(raw.metadata)
    if not ours:
        raw.metadata.update(rewards="absent", flags="unknown")
        raw.metadata["provenance"] = {"diffusion_policy": {"observation": obs}}
    declare_extras(raw, {"obs", "actions", "episode_starts", "rewards", "episode_returns", "terminated", "truncated",
                         "final_obs"}, {"step": n, "episode": len(ends)})


def export(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` as a diffusion_policy replay buffer (Zarr format 2, Blosc)."""
    text = [shown(n) for n, a in dataset.fields.items() if np.dtype(a.dtype).kind == "U"]
    if text:
        raise UsageError(f"diffusion_policy stores arrays only; {', '.join(text)} hold text (image paths: convert the "
                         "images into arrays first)")
    method, level = options.codec(BACKEND)
    compressor = numcodecs.Blosc(cname="zstd", clevel=5 if level is None else level,
                                 shuffle=numcodecs.Blosc.BITSHUFFLE) if method == "blosc" else None
    group = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=2)
    starts = np.flatnonzero(np.asarray(dataset["episode_starts"][:]))
    group.create_array("meta/episode_ends", data=np.append(starts[1:], dataset.n_transitions).astype(np.int64),
                       compressors=compressor)
    for name in sorted(dataset.fields):
        if name == "episode_starts":
            continue
        array = dataset[name]
        where = "data" if dataset.field_per(name) == "step" else "meta"
        key = {"obs": "obs", "actions": "action"}.get(name, name)
        rows = max(1, min(array.shape[0], options.rows_per_chunk(np.dtype(array.dtype), tuple(array.shape[1:]))))
        target = group.create_array(f"{where}/{key}", shape=array.shape, dtype=array.dtype,
                                    chunks=(rows,) + tuple(array.shape[1:]), compressors=compressor,
                                    config={"write_empty_chunks": True})  # an all-False flag is stored, not implied
        begin = 0
        for block in iter_blocks(array, label=f"{dataset.source}: field {shown(name)}"):
            target[begin:begin + len(block)] = block
            begin += len(block)
    group.attrs[METADATA_KEY] = metadata_to_json({**metadata, PEER_KEY: {"format": "diffusion_policy",
                                                                         "synthesized": []}})
    return []


BACKEND = Peer("diffusion_policy", "diffusion_policy's ReplayBuffer (Zarr v2: data/*, meta/episode_ends). Keeps every "
               "array (state as obs, the rest as extras until dict observations); no rewards or flags.",
               sniff, read, export, {"none": None, "blosc": (0, 9)}, "blosc",
               capabilities=Capabilities(exports=True, composite_obs=False))
