"""What the peer formats (other projects' layouts: D4RL, imitation, ...) share: episodes told from end
flags or boundaries, returns summed block by block, and the note an export leaves so that reading it back
gives exactly what was exported.

A peer reader maps the peer's arrays onto our fields lazily; what the peer does not store (episode starts,
returns) is derived in one pass over small arrays (flags, rewards), a block at a time. A peer writer
(``Exporter``) takes a whole dataset, since peer layouts interleave or derive fields; it writes our own
fields beside the peer's under their names, and records in ``metadata["peer"]`` which of the peer's arrays
it made up (flags a dataset never recorded, say), so a reader drops them again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

from ...core.arrays import ArrayLike, Concatenated, RowWindow, iter_blocks
from ...core.errors import EpisodeIdClashError, OutsideError, UnreadableError, UsageError
from ...core.rules import Finding
from ...core.schema import field_name_problem, shown
from .base import Capabilities, Raw


@dataclass(frozen=True)
class Peer:
    """A peer format's entry in the registry (an ``Exporter``): its module's ``sniff``, ``read`` and
    ``export``, what it offers for compression, and one line on what it keeps and loses."""

    name: str
    summary: str
    sniff: Callable[..., bool]
    read: Callable[..., Raw]
    export: Callable[..., list[str]]
    compressions: dict[str, tuple[int, int] | None]
    default_compression: str = "none"
    suffixes: tuple[str, ...] = ()
    capabilities: Capabilities = Capabilities(exports=True, composite_obs=False)
    #: where a name that is not a path leads (a Minari dataset id), or ``None``
    locate: Callable[[str], Any] = staticmethod(lambda name: None)


def checked(value: Any, kind: type | tuple[type, ...], what: str, where: Any, low: float | None = None,
            high: float | None = None) -> Any:
    """``value`` from a peer's metadata, once it is of ``kind`` (``int`` excludes ``bool``) and, for a number,
    within ``low``-``high``; a one-line ``UnreadableError`` naming ``what`` and the file ``where`` otherwise."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = "a number" if float in kinds else " or ".join(
        {int: "an integer", str: "a text", list: "a list", dict: "an object"}.get(k, k.__name__) for k in kinds)
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise UnreadableError(f"{where}: {what} must be {names}, not {shown(str(value))[:80]}")
    if isinstance(value, (int, float)) and not (np.isfinite(value) and (low is None or value >= low) and
                                                (high is None or value <= high)):
        raise UnreadableError(f"{where}: {what} is {value!r}, outside {low}-{high}")
    return value


T = TypeVar("T")


def chosen_episodes(episodes: list[T], positions: Sequence[int] | None, where: Any) -> list[T]:
    """The ``episodes`` (one item each, in episode order) at ``positions`` (all of them where ``None``): what a
    reader that reads episodes alone (``Capabilities.selective``) opens; a position outside is a ``UsageError``."""
    if positions is None:
        return list(episodes)
    wrong = [n for n in positions if not 0 <= n < len(episodes)]
    if wrong:
        raise UsageError(f"{where}: episode {wrong[0]} is outside its episodes 0-{len(episodes) - 1}")
    return [episodes[n] for n in positions]


def episode_id_clash(named: list[tuple[str, int]], where: Any) -> None:
    """Refuse (E019) stored names that give one episode number twice (``demo_1`` and ``demo_01``): which one is
    the episode cannot be told, and keeping either would drop the other silently."""
    seen: dict[int, str] = {}
    for name, number in named:
        if number in seen:
            raise EpisodeIdClashError(f"{where}: E019 episode-id-clash: {shown(seen[number])} and {shown(name)} are "
                                      f"both episode {number}")
        seen[number] = name


#: The metadata key a peer export records itself under: ``{"format": ..., "synthesized": [...]}``.
PEER_KEY = "peer"


def flagged_rows(array: ArrayLike, label: str) -> np.ndarray:
    """The rows where a boolean (or 0/1) array is set, read block by block."""
    found, begin = [], 0
    for block in iter_blocks(array, label=label):
        found.append(np.flatnonzero(np.asarray(block).reshape(len(block), -1).any(axis=1)) + begin)
        begin += len(block)
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def starts_from_ends(ends: np.ndarray, rows: int) -> np.ndarray:
    """``episode_starts`` for ``rows`` steps whose episodes end at rows ``ends`` (the last episode may run
    to the end unflagged: a cut episode, which validation reports)."""
    starts = np.zeros(rows, bool)
    if rows:
        starts[0] = True
        starts[ends[ends + 1 < rows] + 1] = True
    return starts


def episode_sums(rewards: ArrayLike, first_rows: np.ndarray, label: str) -> np.ndarray:
    """Each episode's sum of rewards in float64 (episodes begin at ``first_rows``), read block by block."""
    sums, begin = np.zeros(len(first_rows), np.float64), 0
    for block in iter_blocks(rewards, label=label):
        episode = np.searchsorted(first_rows, np.arange(begin, begin + len(block)), side="right") - 1
        sums += np.bincount(episode, weights=np.asarray(block, np.float64).reshape(len(block)), minlength=len(sums))
        begin += len(block)
    return sums


def joined(per_episode: list[Mapping[str, ArrayLike]], key: str, path: Any, window: slice | None = None) -> ArrayLike:
    """Array ``key`` of every episode (the rows ``window`` of each, when given) one after another, read lazily;
    episodes that disagree on its dtype or row shape are refused in one line."""
    parts = [a[key] if window is None else RowWindow(a[key], window) for a in per_episode]
    shapes = {(np.dtype(p.dtype), tuple(p.shape[1:])) for p in parts}
    if len(shapes) > 1:
        raise UnreadableError(f"{path}: {shown(key)} differs in dtype or row shape between episodes")
    return Concatenated(parts, parts[0].dtype, tuple(parts[0].shape[1:]))


def space_of(array: ArrayLike) -> dict:
    """The space a peer that stores none is declared with, from an array: a Box of its row shape bounded by its
    dtype (0-255 for uint8 images, unbounded floats), MultiBinary for booleans."""
    dtype, shape = np.dtype(array.dtype), list(array.shape[1:])
    if dtype.kind == "b":
        return {"type": "MultiBinary", "n": shape or [1]}
    if dtype.kind in "iu":
        return {"type": "Box", "shape": shape, "dtype": dtype.str, "low": int(np.iinfo(dtype).min),
                "high": int(np.iinfo(dtype).max)}
    return {"type": "Box", "shape": shape, "dtype": dtype.str, "low": "-inf", "high": "inf"}


def renamed(raw: Raw, names: Mapping[str, str]) -> Raw:
    """``raw`` with fields renamed (``names``: peer name -> ours); the rest keep their names, with ``/``
    (HDF5 groups) turned into ``.``."""
    def ours(name: str) -> str:
        return names.get(name, name.replace("/", "."))

    raw.fields = {ours(k): v for k, v in raw.fields.items()}
    raw.storage = {ours(k): v for k, v in raw.storage.items()}
    raw.coverage = {ours(k): v for k, v in raw.coverage.items()}
    raw.withheld = {ours(k) for k in raw.withheld}
    raw.findings = [Finding(f.rule, f.message, ours(f.field) if f.field else None, f.position) for f in raw.findings]
    return raw


def refuse_withheld(raw: Raw, path: Any) -> None:
    """Refuse, in one line, a peer file with an array the container's reader withheld: one that would be read from
    outside the file (E015, unless trusted), or whose chunks are too large to read. A peer's layout needs every
    array it stores (an episode without its actions is no episode), so none is dropped silently."""
    found = next((f for f in raw.findings if f.field is not None and f.field in raw.withheld), None)
    if found is None:
        return
    if found.rule == "outside-reference":
        raise OutsideError(f"{path}: E015 outside-reference: {shown(found.field)}: {found.message}; trusted=True "
                           "reads it from a file you trust")
    raise UnreadableError(f"{path}: {shown(found.field)}: {found.message}")


def require(raw: Raw, path: Any, format: str, *names: str) -> None:
    """Refuse, in one line, a peer file that lacks an array its format requires."""
    missing = [n for n in names if n not in raw.fields]
    if missing:
        raise UnreadableError(f"{path}: not a complete {format} dataset: no {', '.join(map(shown, missing))}")


def declare_extras(raw: Raw, ours: set[str], rows: dict[str, int]) -> None:
    """Declare every field outside ``ours`` as an extra, per step or per episode by its row count
    (``rows``: ``step`` and ``episode`` counts); one that fits neither, or cannot be a field's name, is not
    imported (W108)."""
    extras = dict(raw.metadata.get("extras") or {})
    for name in [n for n in raw.fields if n not in ours]:
        array = raw.fields[name]
        length = array.shape[0] if array.shape else None
        per = next((p for p, n in rows.items() if n == length), None)
        why = field_name_problem(name) or (None if per else f"holds {array.shape or 'a single value'}, not one row "
                                           f"per step ({rows['step']:,}) or episode ({rows['episode']:,})")
        if why:
            raw.findings.append(Finding("not-imported", f"{shown(name)} is skipped: {why}"))
            del raw.fields[name]
            raw.storage.pop(name, None)
            continue
        extras.setdefault(name, per)
    if extras:
        raw.metadata["extras"] = extras


def take_peer_note(raw: Raw, format: str) -> dict[str, Any] | None:
    """The note a peer export of ours left (``PEER_KEY``), removed from the metadata with the arrays it
    made up; ``None`` for a file someone else wrote."""
    note = raw.metadata.pop(PEER_KEY, None) if isinstance(raw.metadata, dict) else None
    if not isinstance(note, dict) or note.get("format") != format:
        return None
    for name in note.get("synthesized", []):
        raw.fields.pop(name, None)
        raw.storage.pop(name, None)
    return note
