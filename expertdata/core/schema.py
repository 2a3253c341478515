"""The expert-trajectory schema: every field, every metadata key and every validation rule, in one place.

Validation, the storage backends and the docs all read from here. Field names and dtypes follow what
Stable Baselines 2 wrote, so SB2 files are valid datasets as they are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from . import spaces

#: 1.1 adds composite (Dict, Tuple) observations, demonstrations without rewards and unknown flags; every 1.0
#: file is a 1.1 file.
SCHEMA_VERSION = "1.1"

Per = Literal["step", "episode"]


@dataclass(frozen=True)
class Field:
    """One array of a dataset.

    :param per: ``step`` arrays have one row per transition (N), ``episode`` arrays one per episode (E).
    :param kinds: numpy dtype kinds allowed (``f`` float, ``i``/``u`` integer, ``b`` bool, ``U`` text).
    :param ndim: the exact number of dimensions, or ``None`` when it follows a space's shape.
    :param space: the metadata key of the space its rows are checked against (and recorded from).
    :param dtype: the dtype a recording writes, when no space decides it.
    """

    name: str
    per: Per
    required: bool
    kinds: str
    ndim: int | None
    doc: str
    space: str | None = None
    dtype: str | None = None


FIELDS: tuple[Field, ...] = (
    Field("obs", "step", True, "fiubU", None,
          "Observation before each step, (N, *obs_shape). Images as uint8 (N, H, W, C), or, as SB2 wrote "
          "them, paths (text) relative to the dataset's folder. For a Dict or Tuple space, one field per leaf "
          "instead, named by its path: obs/<key>[/<key>...] (obs/0 for a Tuple's first).",
          space="observation_space"),
    Field("actions", "step", True, "fiub", None,
          "Action taken at each step, (N, *act_shape); a Discrete action is stored as (N, 1).",
          space="action_space"),
    Field("rewards", "step", True, "fiu", 1, "Reward received after each step, (N,).", dtype="<f8"),
    Field("episode_starts", "step", True, "b", 1, "True on the first step of each episode, (N,).", dtype="|b1"),
    Field("episode_returns", "episode", True, "fiu", 1, "Sum of the rewards of each episode, (E,).", dtype="<f8"),
    Field("terminated", "step", False, "b", 1,
          "True where the episode ended in a terminal state (gymnasium's terminated), (N,).", dtype="|b1"),
    Field("truncated", "step", False, "b", 1,
          "True where the episode was cut, by a time limit for example (gymnasium's truncated), (N,).",
          dtype="|b1"),
    Field("final_obs", "episode", False, "fiubU", None,
          "Observation after the last step of each episode, (E, *obs_shape); final_obs/<path> per leaf, as obs.",
          space="observation_space"),
)

FIELDS_BY_NAME = {f.name: f for f in FIELDS}
REQUIRED = tuple(f.name for f in FIELDS if f.required)
#: The fields a dataset without rewards (``metadata["rewards"] == "absent"``) does not hold.
REWARD_FIELDS = ("rewards", "episode_returns")


def rewards_absent(metadata: Any) -> bool:
    """Whether the metadata says the demonstrations carry no rewards (robot data often does not)."""
    return isinstance(metadata, Mapping) and metadata.get("rewards") == "absent"


def flags_unknown(metadata: Any) -> bool:
    """Whether the metadata says the data cannot tell how its episodes ended (``flags: "unknown"``: imitation's
    ``terminal`` is set on time limits too, diffusion_policy records no ends): validation then does not guess
    at cut episodes, and trainers treat episode ends as they treat SB2's (docs/trainers.md)."""
    return isinstance(metadata, Mapping) and metadata.get("flags") == "unknown"


def required(metadata: Any) -> tuple[str, ...]:
    """The fields a dataset must hold: every required one, less the rewards where they are absent (``obs``
    stands for its leaves where the observation space is composite: ``leaf_fields``)."""
    return tuple(n for n in REQUIRED if not (rewards_absent(metadata) and n in REWARD_FIELDS))


def base_field(name: str) -> Field | None:
    """The schema's field that a stored field is, or is a leaf of (``obs/image`` is a leaf of ``obs``)."""
    head, sep, _ = name.partition("/")
    known = FIELDS_BY_NAME.get(head)
    return None if sep and (known is None or known.space != "observation_space") else known


def _composite_space(metadata: Any, key: str) -> dict | None:
    spec = metadata.get(key) if isinstance(metadata, Mapping) else None
    if not spaces.is_composite(spec):
        return None
    try:
        spaces.check_json(spec)
    except spaces.SpaceError:
        return None
    return spec


def leaf_fields(base: str, names: Any, metadata: Any) -> dict[str, str]:
    """The stored fields that hold ``base`` (``obs`` or ``final_obs``), by leaf path: ``{"": base}`` for a plain
    space, ``{"image": "obs/image", ...}`` in the declared composite space's order, or, for a file that
    declares no space, the ``base/...`` fields it holds, sorted. Leaves not stored are listed all the same."""
    spec = _composite_space(metadata, FIELDS_BY_NAME[base].space)
    if spec is not None:
        return {path: f"{base}/{path}" for path in spaces.leaves(spec)}
    names = set(names)
    prefixed = sorted(n for n in names if n.startswith(base + "/"))
    return {n[len(base) + 1:]: n for n in prefixed} if prefixed and base not in names else {"": base}


def field_space(name: str, metadata: Any) -> dict | None:
    """The (leaf) space a stored field's rows follow, from the metadata, or ``None``."""
    known = base_field(name)
    spec = metadata.get(known.space) if known is not None and known.space and isinstance(metadata, Mapping) else None
    if spec is None:
        return None
    try:
        spaces.check_json(spec)
        path = name.partition("/")[2]
        return spaces.leaves(spec).get(path) if spaces.is_composite(spec) or path else spec
    except spaces.SpaceError:
        return None
#: The fields a recording writes, per-step ones first, in the order they are written.
RECORDED = tuple(f.name for f in FIELDS if f.per == "step") + tuple(f.name for f in FIELDS if f.per == "episode")

#: An episode's return may differ from the sum of its rewards by this much (``numpy.isclose``).
RETURNS_RTOL = 1e-6
RETURNS_ATOL = 1e-3


def field_per(name: str, metadata: Mapping[str, Any]) -> Per:
    """``step`` or ``episode``: which count a field's rows follow (undeclared extras: ``step``)."""
    known = base_field(name)
    if known is not None:
        return known.per
    extras = metadata.get("extras") if isinstance(metadata, Mapping) else None
    per = extras.get(name, "step") if isinstance(extras, dict) else "step"
    return "episode" if per == "episode" else "step"


def recorded_fields(metadata: Mapping[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Dtype and row shape of every recorded field (``RECORDED``; a composite space's leaves as
    ``obs/<path>``), from the spaces in ``metadata``, in the order they are written."""
    out = {}
    for name in RECORDED:
        known = FIELDS_BY_NAME[name]
        if known.space is not None:
            for path, leaf in spaces.leaves(metadata[known.space]).items():
                out[f"{name}/{path}" if path else name] = (spaces.row_dtype(leaf), spaces.row_shape(leaf))
        else:
            out[name] = (np.dtype(known.dtype), ())
    return out


def is_image(space: Mapping[str, Any] | None = None, row_shape: tuple[int, ...] | None = None,
             dtype: Any = None) -> bool:
    """Whether observations are images: a uint8 Box of shape (H, W) or (H, W, C) with C in 1, 3 or 4.

    The space decides when there is one; without it (an SB2 file) the rows' shape and dtype decide, by
    the same rule.
    """
    if space is not None:
        if space.get("type") != "Box":
            return False
        row_shape, dtype = tuple(space.get("shape", ())), space.get("dtype")
    try:
        uint8 = np.dtype(dtype) == np.uint8
    except TypeError:
        return False
    shape = tuple(row_shape or ())
    return uint8 and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)))


#: A field's name: parts of letters, digits and ``_ . + -``, not starting with a dot, joined by ``/`` (a leaf
#: of a composite observation: ``obs/image``). Names are data read from files: anything else (``..``, a
#: leading ``/``, control characters, terminal escapes) could reach outside a store or into a terminal, so it
#: is refused on write and printed escaped (``shown``).
FIELD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}){0,8}")


def shown(name: str) -> str:
    """A name read from a file, safe to print: quoted, with every non-printable character escaped."""
    return repr(str(name))


def names_problem(names: Any) -> str | None:
    """Why these fields cannot be stored together (one's name is a folder of another's: ``obs`` and
    ``obs/image``), or ``None``."""
    names = set(names)
    for name in sorted(names):
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                return f"fields {shown('/'.join(parts[:i]))} and {shown(name)} cannot be stored together: one names " \
                       "a leaf of the other"
    return None


#: Names the storage layer keeps for itself (metadata, commit marks).
RESERVED_PREFIX = "expertdata_"


def field_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a field's name, or ``None`` when it can."""
    if name.startswith(RESERVED_PREFIX):
        return f"field name {shown(name)} is not allowed: names starting with {RESERVED_PREFIX!r} are reserved"
    if FIELD_NAME.fullmatch(name):
        return None
    return (f"field name {shown(name)} is not allowed: use letters, digits and _ . + - (not starting with a dot, "
            "at most 128 characters), in parts joined by '/'")


#: Metadata keys that describe the data; together with the arrays they make up the content digest.
DESCRIPTIVE_KEYS = ("env_id", "observation_space", "action_space", "max_episode_steps", "extras", "user", "rewards",
                    "flags", "splits")
#: Metadata keys that record where a file came from (and ``digest``, the content digest recorded when the
#: file was written, and ``card``, who made it and under which licence); they are about the data, not the
#: data, so the digest ignores them.
HISTORY_KEYS = ("schema_version", "provenance", "lineage", "digest", "peer", "episode_digests", "card")
METADATA_KEYS = DESCRIPTIVE_KEYS + HISTORY_KEYS
#: The JSON type each metadata key must have (spaces are checked further by ``expertdata.core.spaces``).
METADATA_TYPES: dict[str, type] = {"env_id": str, "observation_space": dict, "action_space": dict,
                                   "max_episode_steps": int, "extras": dict, "user": dict, "schema_version": str,
                                   "provenance": dict, "lineage": list, "digest": str, "peer": dict, "rewards": str,
                                   "flags": str, "splits": dict, "episode_digests": list, "card": dict}

#: Limits on what a header may claim, checked before anything is allocated or decoded: metadata text and
#: its nesting (a space's rows: ``expertdata.core.spaces.MAX_ROW_ENTRIES``).
MAX_METADATA_BYTES = 16 * 2**20
MAX_METADATA_DEPTH = 64

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """A validation check with a stable id that scripts and CI can rely on.

    :param unreadable: the data cannot be read as stored (exit code 2, like a file that is not there).
    """

    id: str
    name: str
    severity: Severity
    doc: str
    unreadable: bool = False

    @property
    def exit_code(self) -> int:
        """What the command line returns when this rule is broken: 2 unreadable, 1 error, 0 warning."""
        return 2 if self.unreadable else (1 if self.severity == "error" else 0)


RULES: tuple[Rule, ...] = (
    Rule("E001", "missing-field", "error", "A required field (obs, actions, rewards, episode_starts, "
         "episode_returns) is absent (rewards and episode_returns are not required where the metadata says the "
         "rewards are absent)."),
    Rule("E002", "bad-dtype", "error", "A field has a dtype its kind does not allow: object (pickled) "
         "arrays, text where numbers are expected, a non-boolean episode_starts."),
    Rule("E003", "episode-returns-mismatch", "error", "An episode's return differs from the sum of its "
         "rewards by more than 1e-6 relative (1e-3 absolute) tolerance."),
    Rule("E004", "length-mismatch", "error", "A per-step field does not have N rows, a per-episode field "
         "does not have E rows, or a field has the wrong number of dimensions."),
    Rule("E005", "first-episode-start", "error", "episode_starts[0] is not set: the first step must "
         "open an episode."),
    Rule("E006", "episode-count-mismatch", "error", "The number of episodes in episode_starts differs "
         "from the length of episode_returns."),
    Rule("E007", "non-finite", "error", "A numeric field holds NaN or infinity."),
    Rule("E008", "action-space-shape", "error", "The action rows' shape or dtype does not fit the "
         "declared action space."),
    Rule("E009", "observation-space-shape", "error", "The observation rows' shape or dtype does not fit "
         "the declared observation space."),
    Rule("E010", "image-missing", "error", "An image path in obs names a file that does not exist."),
    Rule("E011", "image-path-escapes", "error", "An image path in obs is absolute or leaves the "
         "dataset's folder."),
    Rule("E012", "outside-space", "error", "A Discrete, MultiDiscrete or MultiBinary value lies outside "
         "its declared space."),
    Rule("E013", "bad-metadata", "error", "The metadata is not a JSON object of the documented keys, a "
         "space cannot be parsed, or the schema version is newer than this package reads."),
    Rule("E014", "flag-mid-episode", "error", "terminated or truncated is set on a step that is not the "
         "last of its episode."),
    Rule("E015", "outside-reference", "error", "Data would be read from outside the dataset, or through a link: an "
         "HDF5 external link, virtual dataset or external storage, a symbolic link in a Zarr store or in a peer "
         "format's folder (its metadata, data, video or shard files), or an image path that passes through a "
         "symbolic link. Refused unless the file is trusted (trusted=True, --trusted)."),
    Rule("E016", "missing-data", "error", "Rows a field declares are not stored: chunks missing inside the "
         "committed rows (they would read as zeros), or a header claiming more rows than the file holds "
         "(exit code 2).", unreadable=True),
    Rule("E017", "digest-mismatch", "error", "The content differs from the digest recorded when the dataset "
         "was written: it was changed or corrupted since."),
    Rule("E018", "count-mismatch", "error", "A count that a peer format's metadata declares differs from what is "
         "stored: rows or frames (a parquet footer, a video), shards of a split, robomimic's num_samples, the "
         "episodes an index lists (exit code 2).", unreadable=True),
    Rule("E019", "episode-id-clash", "error", "Two stored names give one episode the same number (robomimic's "
         "demo_1 and demo_01, Minari's episode_3 and episode_0003, Arrow folders 3 and 03): which one is the episode "
         "cannot be told, and neither is dropped silently (exit code 2).", unreadable=True),
    Rule("E100", "unreadable", "error", "The file is missing, truncated, corrupt (a failed checksum) or not a "
         "dataset (exit code 2).", unreadable=True),
    Rule("W101", "last-episode-cut", "warning", "The final episode looks cut short: it ends with neither "
         "terminated nor truncated set, or (without those flags) it is shorter than every other episode."),
    Rule("W102", "terminated-at-time-limit", "warning", "An episode is marked terminated at exactly the "
         "env's time limit (max_episode_steps); it may have been truncated."),
    Rule("W103", "box-out-of-bounds", "warning", "A Box observation or action lies outside the space's "
         "bounds (envs usually clip actions, so this is allowed)."),
    Rule("W104", "duplicate-episode", "warning", "Two episodes have identical observations and actions."),
    Rule("W105", "unknown-field", "warning", "A field is neither in the schema nor declared in "
         "metadata['extras']; it is kept as it is."),
    Rule("W106", "unchecked", "warning", "Some fields are stored without a checksum and the dataset records no "
         "digest, so corruption of their bytes cannot be detected (convert the dataset to record one)."),
    Rule("W107", "flags-disagree", "warning", "A peer format's episode-end flags disagree with its data: a flag "
         "ends an episode where the observations go on into the next row without a reset, and another flag ends "
         "it later (D4RL's Adroit files: timeouts 100 rows before each terminal). Episodes are cut where the "
         "flags say; nothing is fixed silently."),
    Rule("W108", "not-imported", "warning", "Something a peer format stores was not imported: an object array "
         "that only unpickling could read, or a value that is not one row per step or episode."),
    Rule("W109", "no-licence", "warning", "The dataset's card names no licence, so others cannot tell whether they "
         "may use or share it (expertdata card PATH --license SPDX-ID)."),
    Rule("W110", "timestamps-off-fps", "warning", "A video dataset's timestamps stray from frame_index / fps by more "
         "than half a frame (LeRobot): frames and timestamps disagree."),
    Rule("W111", "stats-inconsistent", "warning", "A dataset's recorded statistics contradict themselves: a standard "
         "deviation of 0 for values that range from a minimum to a larger maximum (LeRobot's per-episode image "
         "statistics); normalising by them would divide by zero."),
)

RULES_BY_ID = {r.id: r for r in RULES}
RULES_BY_NAME = {r.name: r for r in RULES}
