"""robomimic's HDF5 layout (robot manipulation demonstrations): one group per demonstration,
``data/demo_<n>/{actions, rewards, dones, states, obs/<key>, next_obs/<key>}``, with the attribute
``num_samples``; ``data`` holds the attributes ``total`` and ``env_args`` (JSON: ``env_name``, ``env_type``,
``env_kwargs``), and ``mask/<filter key>`` lists demonstrations by name (train/valid splits).

Read: demonstrations in the order of their numbers (as robomimic's ``SequenceDataset`` sorts them). Each
``obs/<key>`` becomes a leaf of a Dict observation (``obs/<key>``); each demonstration's last ``next_obs`` row
its ``final_obs``, and ``next_obs`` is kept whole as step extras (``next_obs/<key>``). ``dones`` (set on
success or at the end, as the dataset's ``done_mode`` chose) and ``states`` are kept as step extras; flags are
unknown. Demonstration numbers that are not 0, 1, 2, ... become the episode extra ``demo``, robosuite's
``model_file`` the episode extra ``model_file``; the masks become named splits (``metadata["splits"]``, episode
numbers, which ``ExpertDataset(split=("train", "valid"))`` serves) and ``env_args`` goes into
``metadata["user"]["robomimic"]``. robomimic stores no spaces: they are declared from the arrays (each leaf a
Box bounded by its dtype, 0-255 for uint8 images) and, for actions, robomimic's convention, a Box in [-1, 1]
(W103 reports values outside it).

Written: the same layout, which robomimic's loaders read, with ``next_obs`` from ``obs`` and ``final_obs``,
``dones`` at the end of each demonstration (or where it terminated) and empty ``states`` where the dataset has
none (all said so); our fields that robomimic has no name for sit in each demonstration's ``expertdata`` group.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...core import guard, spaces
from ...core.arrays import ArrayLike
from ...core.errors import CountMismatchError, UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import FIELD_NAME, shown
from . import hdf5
from .base import METADATA_KEY, Capabilities, Raw, Whole, WriteOptions, metadata_to_json
from .peer import (
    PEER_KEY,
    Peer,
    declare_extras,
    episode_id_clash,
    episode_sums,
    joined,
    refuse_withheld,
    space_of,
    take_peer_note,
)

_DEMO = re.compile(r"data/(demo_(\d{1,12}))/(.+)")
#: Our fields that robomimic has no name for, inside each demonstration.
SIDECAR = "expertdata"
#: robomimic's ``EnvType.GYM_TYPE``: ``env_name`` is a gymnasium id.
GYM_TYPE = 2
#: Masks longer than this are not read (a header claiming more is not trusted).
MAX_MASK = 10**6


def sniff(path: Path) -> bool:
    if not hdf5.sniff(path):
        return False
    with h5py.File(path, "r") as f:
        data = f.get("data")
        return isinstance(data, h5py.Group) and any(k.startswith("demo_") for k in data.keys())


def read(path: Path, trusted: bool = False) -> Raw:
    raw = hdf5.read(path, trusted)
    try:
        refuse_withheld(raw, path)
        raw.format = "robomimic"
        note = take_peer_note(raw, "robomimic")
        with h5py.File(path, "r") as f:
            attrs = _attributes(f, path, trusted)
        _episodes(raw, path, attrs, note)
        return raw
    except BaseException:
        raw.close()
        raise


def _inside(group: h5py.Group, trusted: bool) -> list[tuple[str, Any]]:
    """A group's members reached by plain (hard) links: a soft or external link, which could lead out of the file,
    is not followed unless the file is trusted (``hdf5.read`` reports it, E015)."""
    return [(key, group.get(key)) for key in group.keys()
            if trusted or isinstance(group.get(key, getlink=True), h5py.HardLink)]


def _attributes(f: h5py.File, path: Path, trusted: bool) -> dict[str, Any]:
    """``env_args``, the masks, per demonstration its ``model_file`` and ``num_samples``, read from attributes."""
    out: dict[str, Any] = {"mask": {}, "model_file": {}, "num_samples": {}}
    data = f.get("data") if trusted or isinstance(f.get("data", getlink=True), h5py.HardLink) else None
    if not isinstance(data, h5py.Group):
        raise UnreadableError(f"{path}: its 'data' group is missing or a link")
    text = data.attrs.get("env_args")
    if text is not None:
        out["env_args"] = guard.parse_json(text, f"{path}: data's attribute 'env_args'")
    out["total"] = data.attrs.get("total")
    mask = f.get("mask") if trusted or isinstance(f.get("mask", getlink=True), h5py.HardLink) else None
    for key, array in (_inside(mask, trusted) if isinstance(mask, h5py.Group) else ()):
        if isinstance(array, h5py.Dataset) and array.ndim == 1 and array.shape[0] <= MAX_MASK and \
                array.dtype.kind in "SUO" and not hdf5.outside(array):
            out["mask"][key] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array[()]]
    for name, group in _inside(data, trusted):
        if isinstance(group, h5py.Group):
            model, samples = group.attrs.get("model_file"), group.attrs.get("num_samples")
            if model is not None:
                out["model_file"][name] = model.decode("utf-8", "replace") if isinstance(model, bytes) else str(model)
            if samples is not None:
                out["num_samples"][name] = samples
    return out


def _by_demo(raw: Raw, path: Path) -> tuple[dict[int, dict[str, ArrayLike]], dict[int, str]]:
    """The arrays of each demonstration by its number, and its group's name; two names for one number (``demo_1``,
    ``demo_01``) are refused (E019)."""
    demos: dict[int, dict[str, ArrayLike]] = {}
    names: dict[str, int] = {}
    for name, array in raw.fields.items():
        match = _DEMO.fullmatch(name)
        if match is not None:
            demos.setdefault(int(match[2]), {})[match[3]] = array
            names[match[1]] = int(match[2])
        elif not name.startswith("mask/"):
            raw.findings.append(Finding("not-imported", f"{shown(name)} is skipped: it is not inside a demonstration"))
    if not demos:
        raise UnreadableError(f"{path}: a robomimic file without demonstrations")
    episode_id_clash(sorted(names.items(), key=lambda n: (n[1], n[0])), path)
    return dict(sorted(demos.items())), {number: name for name, number in names.items()}


def _episodes(raw: Raw, path: Path, attrs: dict[str, Any], note: dict[str, Any] | None) -> None:
    """Our fields from the per-demonstration arrays."""
    demos, group_of = _by_demo(raw, path)
    per_demo = list(demos.values())
    keys = sorted({k[4:] for a in per_demo for k in a if k.startswith("obs/")})
    if not keys:
        raise UnreadableError(f"{path}: the demonstrations hold no observations (robosuite's raw demo.hdf5: extract "
                              "them with robomimic's dataset_states_to_obs.py first)")
    lengths = []
    for n, arrays in demos.items():
        steps = arrays["actions"].shape[0] if "actions" in arrays and arrays["actions"].shape else None
        wrong = [k for k, a in arrays.items()
                 if not k.startswith(f"{SIDECAR}/") and (not a.shape or a.shape[0] != steps)]
        missing = [k for k in ["actions"] + [f"obs/{k}" for k in keys] if k not in arrays]
        if missing or not steps or wrong:
            why = (f"no {', '.join(map(shown, missing))}" if missing else "no steps" if not steps else
                   f"{', '.join(map(shown, wrong))} do not have one row per action")
            raise UnreadableError(f"{path}: {group_of[n]}: {why}")
        claimed = attrs["num_samples"].get(group_of[n])
        if claimed is not None and (np.ndim(claimed) != 0 or int(claimed) != steps):
            raise CountMismatchError(f"{path}: {group_of[n]}: E018 count-mismatch: num_samples is {claimed}; it holds "
                                     f"{steps:,} steps")
        lengths.append(steps)
    total = attrs.get("total")
    if total is not None and (np.ndim(total) != 0 or int(total) != sum(lengths)):
        raise CountMismatchError(f"{path}: E018 count-mismatch: data's total is {total}; its demonstrations hold "
                                 f"{sum(lengths):,} steps")
    storage = next(iter(raw.storage.values()), {})
    fields: dict[str, ArrayLike] = {}
    for key in sorted({k for a in per_demo for k in a}):
        if not all(key in a for a in per_demo):
            raise UnreadableError(f"{path}: {shown(key)} is stored for some demonstrations only")
        fields[key[len(SIDECAR) + 1:] if key.startswith(f"{SIDECAR}/") else key] = joined(per_demo, key, path)
    if "next_obs/" + keys[0] in fields:
        fields.update({f"final_obs/{k}": np.stack([np.asarray(a[f"next_obs/{k}"][n - 1:n])[0]
                                                   for a, n in zip(per_demo, lengths)]) for k in keys})
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    starts = np.zeros(int(sum(lengths)), bool)
    starts[first] = True
    fields["episode_starts"] = starts
    raw.fields, raw.coverage = fields, {}
    raw.storage = {name: storage for name in fields if name not in ("episode_starts",) and not name.startswith("final")}
    ids = list(demos)
    if ids != list(range(len(ids))):
        raw.fields["demo"] = np.asarray(ids, np.int64)
    models = [attrs["model_file"].get(group_of[n]) for n in ids]
    if all(m is not None for m in models):
        raw.fields["model_file"] = np.asarray(models, dtype=str)
    if note is not None:  # our own export: our metadata, and the arrays we made up dropped
        for name in note.get("synthesized", []):
            raw.fields.pop(name, None)
            raw.storage.pop(name, None)
        if not spaces.is_composite(raw.metadata.get("observation_space")):  # a plain obs, written as key "obs"
            for base in ("obs", "final_obs"):
                if f"{base}/obs" in raw.fields:
                    raw.fields[base] = raw.fields.pop(f"{base}/obs")
                    raw.storage.pop(f"{base}/obs", None)
        return
    raw.metadata = _metadata(raw, keys, attrs, [group_of[n] for n in ids])
    if "rewards" in raw.fields:
        raw.fields["episode_returns"] = episode_sums(raw.fields["rewards"], first, f"{path}: rewards")
    declare_extras(raw, {"actions", "rewards", "episode_starts", "episode_returns"}
                   | {f"{b}/{k}" for b in ("obs", "final_obs") for k in keys},
                   {"step": len(starts), "episode": len(ids)})


def _metadata(raw: Raw, keys: list[str], attrs: dict[str, Any], groups: list[str]) -> dict[str, Any]:
    """Spaces declared from the arrays, the env's id where robomimic says it is a gym env, the masks as named
    splits (episode numbers), ``env_args`` as a user key."""
    actions = raw.fields["actions"]
    metadata: dict[str, Any] = {
        "observation_space": {"type": "Dict", "spaces": {k: space_of(raw.fields[f"obs/{k}"]) for k in keys}},
        "action_space": {"type": "Box", "shape": list(actions.shape[1:]), "dtype": np.dtype(actions.dtype).str,
                         "low": -1.0, "high": 1.0},
        "flags": "unknown", "extras": dict(raw.metadata.get("extras") or {}) if isinstance(raw.metadata, dict) else {}}
    if np.dtype(actions.dtype).kind != "f":
        raise UnreadableError(f"{raw.root}: robomimic actions are floats; these are {np.dtype(actions.dtype)}")
    env_args = attrs.get("env_args")
    gym = isinstance(env_args, dict) and env_args.get("env_type") == GYM_TYPE
    if gym and isinstance(env_args.get("env_name"), str):
        metadata["env_id"] = env_args["env_name"]
    if env_args:
        metadata["user"] = {"robomimic": {"env_args": env_args}}
    number = {name: e for e, name in enumerate(groups)}
    splits = {}
    for key, names in attrs["mask"].items():
        unknown = [n for n in names if n not in number]
        if unknown:
            raw.findings.append(Finding("not-imported", f"mask {shown(key)} is skipped: it names demonstrations the "
                                        f"file does not hold ({', '.join(map(shown, unknown[:3]))})"))
        elif FIELD_NAME.fullmatch(key):
            splits[key] = sorted(number[n] for n in names)
    if splits:
        metadata["splits"] = splits
    if "rewards" not in raw.fields:
        metadata["rewards"] = "absent"
    unknown = [k for k in keys if not FIELD_NAME.fullmatch(k)]
    if unknown:
        raise UnreadableError(f"{raw.root}: observation keys {', '.join(map(shown, unknown))} cannot name fields")
    return metadata


def export(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` in robomimic's layout; returns notes on what had to be made up."""
    leaves = dataset.leaf_fields()
    nested = [p for p in leaves if "/" in p]
    if nested:
        raise UsageError(f"{dataset.source}: robomimic keys observations by flat names; the leaves "
                         f"{', '.join(map(shown, nested))} are nested")
    keys = {("obs" if path == "" else path): name for path, name in leaves.items()}
    notes, synthesized = [], []
    starts = np.flatnonzero(np.asarray(dataset["episode_starts"][:]))
    stops = np.append(starts[1:], dataset.n_transitions)
    finals = {k: f"final_obs/{k}" if name != "obs" else "final_obs" for k, name in keys.items()}
    have_next = all(f"next_obs/{k}" in dataset for k in keys)
    if not have_next and not all(f in dataset for f in finals.values()):
        raise UsageError(f"{dataset.source}: robomimic stores the observation after every step (next_obs), and this "
                         "dataset has no final_obs (SB2 never recorded it); it cannot be written losslessly")
    if not have_next:
        synthesized += [f"next_obs/{k}" for k in keys]
    made = {"dones": "dones" not in dataset, "states": "states" not in dataset}
    if made["dones"]:
        synthesized.append("dones")
        notes.append("'dones' is made up: set at each demonstration's last step (robomimic's done_mode 1)")
    if made["states"]:
        synthesized.append("states")
        notes.append("'states' is made up: empty (robomimic keeps MuJoCo states for robosuite datasets only)")
    ids = np.asarray(dataset["demo"][:]) if "demo" in dataset else np.arange(dataset.n_episodes)
    user = (metadata.get("user") or {}).get("robomimic") or {}
    skip = set(keys.values()) | set(finals.values()) | {"episode_starts", "actions", "rewards", "dones", "states",
                                                         "demo", "model_file"} | {f"next_obs/{k}" for k in keys}
    rest = sorted(set(dataset.fields) - skip)
    method, level = options.codec(BACKEND)
    with h5py.File(path, "w", libver=hdf5.LIBVER) as f:
        data = f.create_group("data")

        def put(group: h5py.Group, key: str, array: Any) -> None:
            group.create_dataset(key, data=np.asarray(array), compression=None if method == "none" else method,
                                 compression_opts=level if method == "gzip" else None)

        for e, (begin, stop) in enumerate(zip(starts, stops)):
            demo = data.create_group(f"demo_{int(ids[e])}")
            demo.attrs["num_samples"] = int(stop - begin)
            if "model_file" in dataset:
                demo.attrs["model_file"] = str(dataset["model_file"][e:e + 1][0])
            for key, name in keys.items():
                obs = np.asarray(dataset[name][begin:stop])
                put(demo, f"obs/{key}", obs)
                put(demo, f"next_obs/{key}", np.asarray(dataset[f"next_obs/{key}"][begin:stop]) if have_next else
                    np.concatenate([obs[1:], np.asarray(dataset[finals[key]][e:e + 1])]))
            put(demo, "actions", dataset["actions"][begin:stop])
            put(demo, "rewards", dataset["rewards"][begin:stop])
            dones = np.zeros(stop - begin, np.int64)
            dones[-1] = 1
            put(demo, "dones", dataset["dones"][begin:stop] if not made["dones"] else dones)
            put(demo, "states", dataset["states"][begin:stop] if not made["states"] else
                np.zeros((stop - begin, 0), np.float64))
            for name in rest:
                per_step = dataset.field_per(name) == "step"
                put(demo, f"{SIDECAR}/{name}", dataset[name][begin:stop] if per_step else dataset[name][e:e + 1])
        data.attrs["total"] = int(dataset.n_transitions)
        data.attrs["env_args"] = json.dumps(user.get("env_args") or {"env_name": metadata.get("env_id", ""),
                                                                      "env_type": GYM_TYPE, "env_kwargs": {}})
        for key, episodes in (metadata.get("splits") or {}).items():
            f.create_dataset(f"mask/{key}", data=np.asarray([f"demo_{int(ids[e])}".encode() for e in episodes], "S"))
        f.attrs[METADATA_KEY] = hdf5.fixed_text(metadata_to_json(
            {**metadata, PEER_KEY: {"format": "robomimic", "synthesized": synthesized}}))
    return notes


BACKEND = Peer("robomimic", "robomimic's HDF5 (robot demonstrations, one group per demo). Keeps every array; obs/<key> "
               "become a Dict observation, next_obs's last rows final_obs; spaces are declared from the arrays. "
               "Writing makes up dones, states and next_obs where a dataset has none (said so).",
               sniff, read, export, hdf5.BACKEND.compressions, "gzip:4",
               capabilities=Capabilities(exports=True, needs_rewards=True))
