"""Minari datasets (HDF5 and Arrow backends; Arrow files are read by ``minari_arrow``): a folder
``<name>-v<N>/data/`` holding ``metadata.json`` (spaces and the
env spec as JSON text) and ``main_data.hdf5`` with one group per episode, ``episode_<id>/{observations,
actions, rewards, terminations, truncations, infos/*}``; observations hold one more row than actions.

Read: each episode's last observation becomes ``final_obs``; ``terminations`` and ``truncations`` become
``terminated`` and ``truncated``; ``infos/<key>`` (one row after reset, then one per step) becomes the step
extra ``infos.<key>`` (the step's info) and the episode extra ``reset_infos.<key>``; episode seeds the
episode extra ``seed``. Spaces and the env id come from the metadata (Minari writes ``Infinity``, which
strict JSON forbids; it is parsed), the dataset's id, authors and Minari version go into the provenance.

Written: the same layout, which ``minari.load_dataset`` reads, with images stored raw (``jpeg_encoding``
off: lossless); our fields that Minari has no name for sit in each episode's ``expertdata`` group, which
Minari does not read.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import h5py
import numpy as np

from ...core import guard, spaces
from ...core.arrays import ArrayLike, Concatenated
from ...core.episodes import renumbered_splits
from ...core.errors import ExpertDataError, UnreadableError, UsageError
from ...core.schema import field_per, is_image, shown
from ..atomic import final_name
from . import hdf5, minari_arrow
from .base import METADATA_KEY, Capabilities, Raw, Whole, WriteOptions, metadata_from_json, metadata_to_json
from .peer import (
    PEER_KEY,
    Peer,
    checked,
    chosen_episodes,
    declare_extras,
    episode_id_clash,
    episode_sums,
    refuse_withheld,
    take_peer_note,
)
from .peer import joined as join_episodes

STEP_KEYS = {"actions": "actions", "rewards": "rewards", "terminations": "terminated", "truncations": "truncated"}
OURS = {v: k for k, v in STEP_KEYS.items()}
SIDECAR = minari_arrow.SIDECAR
_EPISODE = re.compile(r"episode_(\d{1,12})")
#: The Minari version whose layout this writes (and whose ``load_dataset`` the tests read it with).
MINARI_VERSION = "0.5.4"


_DATASET_ID = re.compile(r"(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+-v\d+")


def locate(name: str) -> Path | None:
    """The folder of the Minari dataset ``name`` (``namespace/name-vN``) under ``MINARI_DATASETS_PATH`` (by
    default ``~/.minari/datasets``, as Minari looks for it), or ``None``."""
    if not _DATASET_ID.fullmatch(name) or ".." in name.split("/"):
        return None
    root = Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")
    folder = root / name
    return folder if sniff(folder) else None


def _data_folder(path: Path) -> Path | None:
    for folder in (path / "data", path):
        if (folder / "metadata.json").is_file():
            return folder
    return None


def sniff(path: Path) -> bool:
    folder = _data_folder(path) if path.is_dir() else None
    return folder is not None and ((folder / "main_data.hdf5").is_file() or bool(minari_arrow.episode_folders(folder)))


def _metadata(scope: guard.Scope, folder: Path) -> dict[str, Any]:
    return checked(scope.json(folder / "metadata.json"), dict, "its metadata", folder / "metadata.json")


def _space(meta: dict[str, Any], key: str, folder: Path) -> dict | None:
    """A space of Minari's metadata (JSON text, ``Infinity`` allowed) as ours."""
    text = meta.get(key)
    if text is None:
        return None
    parsed = guard.parse_json(text, f"{folder}: metadata {key!r}") if isinstance(text, str) else text
    try:
        spec = spaces.to_json(_gymnasium_space(parsed, 0))
        spaces.check_json(spec)
        return spec
    except (UsageError, spaces.SpaceError) as exc:
        raise UsageError(f"{folder}: {key.replace('_', ' ')}: {exc}") from None
    except Exception as exc:  # a malformed space: many ways to fail
        raise UnreadableError(f"{folder}: metadata {key!r} is not a space Minari writes ({exc})") from None


def _gymnasium_space(spec: dict[str, Any], depth: int) -> Any:
    """The gymnasium space of Minari's JSON form (Dict and Tuple hold ``subspaces``)."""
    import gymnasium

    kind = spec["type"]
    if kind in ("Dict", "Tuple") and depth >= spaces.MAX_DEPTH:
        raise UsageError(f"composite spaces nest deeper than {spaces.MAX_DEPTH} levels")
    if kind == "Dict":
        return gymnasium.spaces.Dict({k: _gymnasium_space(v, depth + 1) for k, v in spec["subspaces"].items()})
    if kind == "Tuple":
        return gymnasium.spaces.Tuple([_gymnasium_space(v, depth + 1) for v in spec["subspaces"]])
    built = {"Box": lambda: gymnasium.spaces.Box(np.asarray(spec["low"], spec["dtype"]),
                                                  np.asarray(spec["high"], spec["dtype"]), dtype=spec["dtype"]),
             "Discrete": lambda: gymnasium.spaces.Discrete(spec["n"], start=spec.get("start", 0)),
             "MultiDiscrete": lambda: gymnasium.spaces.MultiDiscrete(spec["nvec"], dtype=spec.get("dtype", "int64"),
                                                                     start=spec.get("start")),
             "MultiBinary": lambda: gymnasium.spaces.MultiBinary(spec["n"])}
    if kind not in built:
        raise UsageError(f"a {kind} space cannot be stored")
    return built[kind]()


def minari_paths(spec: dict | None) -> dict[str, str]:
    """Where Minari keeps each leaf of an observation space, by our leaf path: a Dict's key names its group,
    a Tuple's position ``i`` the group ``_index_i``; a plain space is ``observations`` itself."""
    if not spaces.is_composite(spec):
        return {"": "observations"}
    out = {}

    def walk(node: dict, ours: str, theirs: str) -> None:
        if not spaces.is_composite(node):
            out[ours] = theirs
            return
        children = node["spaces"].items() if node["type"] == "Dict" else enumerate(node["spaces"])
        for key, child in children:
            walk(child, f"{ours}/{key}" if ours else str(key),
                 f"{theirs}/{key if node['type'] == 'Dict' else f'_index_{key}'}")

    walk(spec, "", "observations")
    return out


def _env(meta: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = guard.parse_json(meta["env_spec"], "env_spec") if isinstance(meta.get("env_spec"), str) else {}
    except ExpertDataError:
        spec = {}
    spec = spec if isinstance(spec, dict) else {}
    return {k: v for k, v in {"env_id": spec.get("id"), "max_episode_steps": spec.get("max_episode_steps")}.items()
            if isinstance(v, (str, int)) and not isinstance(v, bool)}


def read(path: Path, trusted: bool = False, episodes: Sequence[int] | None = None) -> Raw:
    """Read a Minari dataset; ``episodes``: only these (positions in episode-id order), whose Arrow files alone are
    opened and validated (the HDF5 backend's are read lazily either way)."""
    folder = _data_folder(path)
    if folder is None:
        raise UnreadableError(f"{path}: not a Minari dataset (no data/metadata.json)")
    scope = guard.Scope(path, trusted)
    scope.folder(folder)  # data/ itself a link: refused
    meta = _metadata(scope, folder)
    observation_space, action_space = (_space(meta, key, folder) for key in ("observation_space", "action_space"))
    backend = meta.get("data_format", "hdf5")
    if backend == "hdf5":
        file = scope.file(folder / "main_data.hdf5")
        raw = hdf5.read(file, trusted)
        seeds, every_id = _hdf5_seeds(file), None  # the ids are the groups' (``_episodes``)
    elif backend == "arrow":
        if spaces.is_composite(observation_space):
            raise UsageError(f"{path}: a {observation_space['type']} observation space in Minari's Arrow backend "
                             "(nested struct columns) is not read yet; its HDF5 backend is")
        stored = metadata_from_json(meta[METADATA_KEY], folder) if METADATA_KEY in meta else {}
        shapes = (stored.get(PEER_KEY) or {}).get("row_shapes", {}) if isinstance(stored, dict) else {}
        folders = minari_arrow.episode_folders(folder, scope)
        every_id = [id_ for id_, _ in folders]
        raw = minari_arrow.read(scope, folder, chosen_episodes(folders, episodes, path), observation_space,
                                action_space, shapes)
        raw.metadata = stored
        seeds = minari_arrow.seeds(scope, folders)
    else:
        raise UnreadableError(f"{path}: a Minari dataset stored as {shown(str(backend))}; its HDF5 and Arrow "
                              "backends are read")
    try:
        refuse_withheld(raw, path)
        raw.root, raw.format = path, "minari"
        ours = take_peer_note(raw, "minari")
        _episodes(raw, path, seeds, ours is not None, minari_paths(observation_space), episodes, every_id)
        if episodes is not None and isinstance(raw.metadata.get("splits"), dict):
            raw.metadata["splits"] = renumbered_splits(raw.metadata["splits"], episodes)
        if ours is None:
            raw.metadata = {**_env(meta), "observation_space": observation_space, "action_space": action_space,
                            "extras": raw.metadata.get("extras"),
                            "provenance": {"minari": {k: meta[k] for k in ("dataset_id", "minari_version", "author",
                                                                           "algorithm_name", "description",
                                                                           "code_permalink", "data_format")
                                                      if k in meta}}}
            raw.metadata = {k: v for k, v in raw.metadata.items() if v is not None}
            if meta.get("jpeg_encoding") and observation_space is not None and is_image(observation_space):
                raise UnreadableError(f"{path}: JPEG-encoded image observations are not read yet")
        return raw
    except BaseException:
        raw.close()
        raise


def _hdf5_seeds(file: Path) -> Callable[[list[int]], list[Any]]:
    def seeds(ids: list[int]) -> list[Any]:
        with h5py.File(file, "r") as f:
            names = {int(_EPISODE.fullmatch(k)[1]): k for k in f.keys() if _EPISODE.fullmatch(k)}
            return [f[names[i]].attrs.get("seed") if isinstance(f.get(names[i], getlink=True), h5py.HardLink)
                    else None for i in ids]
    return seeds


def _by_episode(raw: Raw, path: Path) -> dict[int, dict[str, ArrayLike]]:
    """Every stored array, by episode id and name within the episode; anything else is refused, and so are two
    groups that give one episode number (``episode_3``, ``episode_0003``: E019)."""
    found: dict[int, dict[str, ArrayLike]] = {}
    groups: dict[str, int] = {}
    for name, array in raw.fields.items():
        group, _, key = name.partition("/")
        match = _EPISODE.fullmatch(group)
        if match is None or not key:
            raise UnreadableError(f"{path}: {shown(name)} is not inside an episode group")
        groups[group] = int(match[1])
        found.setdefault(int(match[1]), {})[key] = array
    episode_id_clash(sorted(groups.items(), key=lambda g: (g[1], g[0])), path)
    return dict(sorted(found.items()))


def _episodes(raw: Raw, path: Path, seeds: Callable[[list[int]], list[Any]], ours: bool,
              leaves: dict[str, str], positions: Sequence[int] | None = None,
              every_id: list[int] | None = None) -> None:
    """Our fields from the per-episode arrays (``leaves``: where each leaf of the observation is stored), of the
    episodes at ``positions`` where given, among ``every_id`` (the dataset's episode ids; by default those of the
    arrays)."""
    found = _by_episode(raw, path)
    every_id = list(found) if every_id is None else every_id
    episodes = {id_: found[id_] for id_ in chosen_episodes(every_id, positions, path)}
    storage = next(iter(raw.storage.values()), {})
    raw.fields, raw.storage, raw.coverage = {}, {}, {}
    lengths = []
    for id_, arrays in episodes.items():
        missing = [k for k in (*leaves.values(), *STEP_KEYS) if k not in arrays]
        if missing:
            raise UnreadableError(f"{path}: episode {id_} has no {', '.join(map(shown, missing))}")
        steps = arrays["actions"].shape[0] if arrays["actions"].shape else -1
        if any(arrays[k].shape[:1] != (steps + 1,) for k in leaves.values()) or any(
                arrays[k].shape[:1] != (steps,) for k in STEP_KEYS):
            raise UnreadableError(f"{path}: episode {id_}: its arrays' lengths disagree (observations need one row "
                                  "more than actions, rewards, terminations and truncations)")
        if steps < 1:
            raise UnreadableError(f"{path}: episode {id_} has no steps")
        lengths.append(steps)
    if not episodes:
        raise UnreadableError(f"{path}: a Minari dataset without episodes")
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    per_episode = list(episodes.values())

    def joined(key: str, window: slice | None = None) -> ArrayLike:
        return join_episodes(per_episode, key, path, window)

    for leaf, key in leaves.items():
        suffix = f"/{leaf}" if leaf else ""
        raw.fields["obs" + suffix] = joined(key, slice(0, -1))
        raw.fields["final_obs" + suffix] = np.stack([np.asarray(a[key][n:n + 1])[0]
                                                     for a, n in zip(per_episode, lengths)])
    for key, name in STEP_KEYS.items():
        raw.fields[name] = joined(key)
    starts = np.zeros(int(sum(lengths)), bool)
    starts[first] = True
    raw.fields["episode_starts"] = starts
    extra = {k for a in per_episode for k in a if k not in STEP_KEYS and k not in leaves.values()}
    for key in sorted(extra):
        if not all(key in a for a in per_episode):
            raise UnreadableError(f"{path}: {shown(key)} is stored for some episodes only")
        if key.startswith(f"{SIDECAR}/"):
            name = key[len(SIDECAR) + 1:]
            one_row = field_per(name, raw.metadata) == "episode"
            raw.fields[name] = joined(key, slice(0, 1) if one_row else None)
        elif key.startswith("infos/") and all(a[key].shape[:1] == (n + 1,) for a, n in zip(per_episode, lengths)):
            raw.fields["infos." + key[6:].replace("/", ".")] = joined(key, slice(1, None))
            raw.fields["reset_infos." + key[6:].replace("/", ".")] = joined(key, slice(0, 1))
        else:
            raw.fields[key.replace("/", ".")] = joined(key)
    if ours:
        return
    raw.fields["episode_returns"] = episode_sums(raw.fields["rewards"], first, f"{path}: rewards")
    raw.fields.update(_episode_attrs(list(episodes), seeds, every_id == list(range(len(every_id)))))
    raw.storage = {name: storage for name in raw.fields if isinstance(raw.fields[name], Concatenated)}
    raw.metadata = dict(raw.metadata)
    observed = {f"{base}/{leaf}" if leaf else base for base in ("obs", "final_obs") for leaf in leaves}
    declare_extras(raw, observed | {"actions", "rewards", "terminated", "truncated", "episode_starts",
                                    "episode_returns"}, {"step": int(sum(lengths)), "episode": len(lengths)})


def _episode_attrs(ids: list[int], seeds: Callable[[list[int]], list[Any]], numbered: bool) -> dict[str, np.ndarray]:
    """Episode ids (unless the dataset's are ``numbered`` 0, 1, 2, ...) and seeds (when every episode has one) as
    episode extras."""
    out = {}
    if not numbered:
        out["episode_id"] = np.asarray(ids, np.int64)
    found = seeds(ids)
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in found):
        out["seed"] = np.asarray(found, np.int64)
    return out


def _minari_space(spec: dict) -> str:
    """Our space as Minari writes it (JSON text; infinities as ``Infinity``)."""
    return json.dumps(_minari_space_object(spec))


def _minari_space_object(spec: dict) -> dict[str, Any]:
    if spec["type"] == "Dict":
        return {"type": "Dict", "subspaces": {k: _minari_space_object(v) for k, v in spec["spaces"].items()}}
    if spec["type"] == "Tuple":
        return {"type": "Tuple", "subspaces": [_minari_space_object(v) for v in spec["spaces"]]}
    space = spaces.to_gymnasium(spec)
    kind = spec["type"]
    if kind == "Box":
        out = {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape), "low": space.low.tolist(),
               "high": space.high.tolist()}
    elif kind == "Discrete":
        out = {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    elif kind == "MultiDiscrete":
        out = {"type": "MultiDiscrete", "dtype": str(space.dtype), "nvec": space.nvec.tolist(),
               "start": space.start.tolist()}
    else:
        out = {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    return out


def _episodes_out(dataset: Whole, metadata: dict) -> tuple[list[str], list[str], Iterator[dict[str, np.ndarray]]]:
    """What both backends write: notes, the flags made up, and each episode's arrays by Minari's names
    (``observations`` with the final row, ``infos/<key>`` with the reset row, ours under ``expertdata/``)."""
    leaves = {path: (name, dataset.leaf_fields("final_obs")[path]) for path, name in dataset.leaf_fields().items()}
    if not all(final in dataset for _, final in leaves.values()):
        raise UsageError(f"{dataset.source}: Minari stores the observation after each episode's last step, and this "
                         "dataset has no final_obs (SB2 never recorded it); it cannot be written losslessly")
    missing = [k for k in ("observation_space", "action_space") if k not in metadata]
    if missing:
        raise UsageError(f"{dataset.source}: Minari needs the {' and '.join(missing)}, which this dataset does not "
                         "record; record it with an env, or add them to its metadata")
    notes, synthesized = [], []
    starts = np.flatnonzero(np.asarray(dataset["episode_starts"][:]))
    stops = np.append(starts[1:], dataset.n_transitions)
    flags = {name: np.asarray(dataset[name][:]) for name in ("terminated", "truncated") if name in dataset}
    if len(flags) < 2:
        ends = np.zeros(dataset.n_transitions, bool)
        ends[stops - 1] = True
        flags.setdefault("terminated", np.zeros_like(ends))
        flags.setdefault("truncated", ends & ~flags["terminated"])
        synthesized = [n for n in ("terminated", "truncated") if n not in dataset]
        notes.append(f"the dataset does not record {' or '.join(synthesized)}: Minari's "
                     f"{' and '.join(OURS[n] for n in synthesized)} are made up (truncations at every episode's end "
                     "that is not terminated)")
    infos = [n[len("infos."):] for n in dataset.fields if n.startswith("infos.") and f"reset_{n}" in dataset]
    where = minari_paths(metadata["observation_space"])
    rest = sorted(set(dataset.fields) - {name for pair in leaves.values() for name in pair} - {"episode_starts", *flags}
                  - {f"{kind}infos.{n}" for n in infos for kind in ("", "reset_")})

    def episodes() -> Iterator[dict[str, np.ndarray]]:
        for e, (begin, stop) in enumerate(zip(starts, stops)):
            rows = {where[path]: np.concatenate([np.asarray(dataset[name][begin:stop]),
                                                 np.asarray(dataset[final][e:e + 1])])
                    for path, (name, final) in leaves.items()}
            rows.update({OURS[n]: flags[n][begin:stop] for n in ("terminated", "truncated")})
            for name in infos:
                reset, steps = dataset[f"reset_infos.{name}"], dataset[f"infos.{name}"]
                rows["infos/" + name.replace(".", "/")] = np.concatenate([np.asarray(reset[e:e + 1]),
                                                                         np.asarray(steps[begin:stop])])
            for name in rest:
                per_step = dataset.field_per(name) == "step"
                rows[OURS.get(name, f"{SIDECAR}/{name}")] = np.asarray(dataset[name][begin:stop] if per_step
                                                                       else dataset[name][e:e + 1])
            yield rows

    return notes, synthesized, episodes()


def _write_metadata(folder: Path, dataset: Whole, metadata: dict, path: Path, backend: str, **more: Any) -> None:
    (folder / "metadata.json").write_text(json.dumps({
        "total_episodes": dataset.n_episodes, "total_steps": dataset.n_transitions, "data_format": backend,
        "jpeg_encoding": False, "observation_space": _minari_space(metadata["observation_space"]),
        "action_space": _minari_space(metadata["action_space"]), "env_spec": _env_spec(metadata),
        "dataset_id": _dataset_id(path), "minari_version": MINARI_VERSION, **more}))


def export(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` as a Minari dataset folder (HDF5 backend); returns notes on what had to be made up."""
    notes, synthesized, episodes = _episodes_out(dataset, metadata)
    folder = path / "data"
    folder.mkdir(parents=True)
    method, level = options.codec(BACKEND)
    with h5py.File(folder / "main_data.hdf5", "w", track_order=True) as f:
        for e, rows in enumerate(episodes):
            group = f.create_group(f"episode_{e}")
            group.attrs["id"], group.attrs["total_steps"] = e, len(rows["rewards"])
            if f"{SIDECAR}/seed" in rows:
                group.attrs["seed"] = rows[f"{SIDECAR}/seed"][0]
            for key, array in rows.items():
                group.create_dataset(key, data=array, compression=None if method == "none" else method,
                                     compression_opts=level if method == "gzip" else None)
            group.attrs["rewards_sum"] = float(np.sum(rows["rewards"], dtype=np.float64))
        f.attrs[METADATA_KEY] = hdf5.fixed_text(metadata_to_json(
            {**metadata, PEER_KEY: {"format": "minari", "synthesized": synthesized}}))
    _write_metadata(folder, dataset, metadata, path, "hdf5")
    return notes


def export_arrow(dataset: Whole, metadata: dict, path: Path, options: WriteOptions) -> list[str]:
    """Write ``dataset`` as a Minari dataset folder (Arrow backend); returns notes on what had to be made up."""
    notes, synthesized, episodes = _episodes_out(dataset, metadata)
    folder = path / "data"
    folder.mkdir(parents=True)
    for e, rows in enumerate(episodes):
        minari_arrow.write_episode(folder / str(e), e, rows, metadata["action_space"]["type"] == "Discrete")
    shapes = {"actions": list(dataset["actions"].shape[1:])}
    _write_metadata(folder, dataset, metadata, path, "arrow", **{METADATA_KEY: metadata_to_json(
        {**metadata, PEER_KEY: {"format": "minari", "synthesized": synthesized, "row_shapes": shapes}})})
    return notes


def _env_spec(metadata: dict) -> str | None:
    """The env spec as gymnasium writes it (Minari parses it with ``EnvSpec.from_json``): the registered
    one where the env id is registered here, else one naming the id only."""
    if "env_id" not in metadata:
        return None
    from gymnasium.envs.registration import EnvSpec, registry

    spec = registry.get(metadata["env_id"]) or EnvSpec(metadata["env_id"])
    steps = metadata.get("max_episode_steps", spec.max_episode_steps)
    return dataclasses.replace(spec, max_episode_steps=steps).to_json()


def _dataset_id(path: Path) -> str:
    """Minari's ``namespace/name-vN`` for a folder written at ``path`` (``MINARI_DATASETS_PATH/namespace/name-vN``
    for ``minari.load_dataset`` to find it by id)."""
    name = final_name(path)
    name = name if re.search(r"-v\d+$", name) else f"{name}-v0"
    return f"{path.parent.name}/{name}"


BACKEND = Peer("minari", "Minari datasets (a dataset folder; HDF5 or Arrow backend read, HDF5 written). Keeps every "
               "array, spaces (Dict and Tuple observations too), env id, seeds and infos; final_obs exact both ways. "
               "Writing needs final_obs and both spaces.", sniff, read, export, hdf5.BACKEND.compressions,
               capabilities=Capabilities(exports=True, needs_rewards=True, selective=True), locate=locate)


ARROW = Peer("minari-arrow", "Minari datasets written with Minari's Arrow backend (read as minari). The same as "
             "minari; needs pyarrow.", lambda path: False, read, export_arrow, {"none": None},
             capabilities=Capabilities(exports=True, needs_rewards=True, composite_obs=False, selective=True))
