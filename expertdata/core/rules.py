"""The rules applied: every problem a consumer would trip on, each with a stable rule id, the field and the position.

``structural_problems`` reads only shapes, dtypes, metadata and ``episode_starts``; it runs whenever a
``Dataset`` is built. ``check`` adds the checks that read every value, block by block, so a file larger than
memory validates in bounded memory. The rules themselves are listed in ``schema.RULES``; reading a file to check
it is ``expertdata.io.checking``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

import numpy as np

from . import cards, images, schema, spaces
from .arrays import ArrayLike, first_rows, iter_blocks
from .digest import Digester, EpisodeDigester
from .episodes import EpisodeIndex
from .errors import InvalidDatasetError, UnreadableError, UsageError, printable
from .schema import field_per

_JSON_TYPES = {str: "a string", dict: "an object", list: "an array", int: "an integer"}


@dataclass(frozen=True)
class Finding:
    """A problem a backend saw while opening a file, named by its rule (``expertdata.core.schema.RULES``)."""

    rule: str
    message: str
    field: str | None = None
    position: int | None = None



@dataclass(frozen=True)
class Problem:
    """One finding: the rule broken, the field, the first position (row) where it shows, and what to do."""

    rule: schema.Rule
    message: str
    field: str | None = None
    position: int | None = None
    count: int = 1

    def one_line(self) -> str:
        where = schema.shown(self.field)[1:-1] if self.field else "dataset"
        if self.position is not None:
            where += f"[{self.position}]"
        return f"{self.rule.id} {self.rule.name}: {where}: {printable(self.message)}"

    def to_json(self) -> dict:
        return {"rule": self.rule.id, "name": self.rule.name, "severity": self.rule.severity,
                "field": self.field, "position": self.position, "count": self.count, "message": self.message}


@dataclass(frozen=True)
class Report:
    """The outcome of ``validate``: every problem found; ``exit_code`` is what the CLI returns."""

    source: str
    problems: tuple[Problem, ...] = field(default=())

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.rule.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.rule.severity == "warning")

    @property
    def unreadable(self) -> bool:
        return any(p.rule.unreadable for p in self.problems)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return max((p.rule.exit_code for p in self.problems), default=0)


def _count(n: int, noun: str) -> str:
    """``1 row``, ``3 rows``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _verb(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def problem(name: str, message: str, field_name: str | None = None, position: int | None = None,
             count: int = 1) -> Problem:
    return Problem(schema.RULES_BY_NAME[name], message, field_name, position, count)


def _declared(name: str, metadata: Mapping[str, Any], leaves: Collection[str]) -> bool:
    """Whether a field is in the schema (a leaf of a composite observation included) or declared in
    ``metadata['extras']``."""
    extras = metadata.get("extras")
    return name in schema.FIELDS_BY_NAME or name in leaves or (isinstance(extras, dict) and name in extras)


def _metadata_problems(metadata: Any) -> list[Problem]:
    if not isinstance(metadata, Mapping):
        return [problem("bad-metadata", f"metadata must be a JSON object, not {type(metadata).__name__}")]
    out = []
    unknown = sorted(set(metadata) - set(schema.METADATA_KEYS))
    if unknown:
        out.append(problem("bad-metadata", f"unknown metadata keys {unknown}; put free-form keys under 'user'"))
    for key, kind in schema.METADATA_TYPES.items():
        value = metadata.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            out.append(problem("bad-metadata", f"{key} must be {_JSON_TYPES[kind]}, not {type(value).__name__}"))
    version = metadata.get("schema_version")
    if isinstance(version, str):
        try:
            too_new = int(str(version).split(".")[0]) > int(schema.SCHEMA_VERSION.split(".")[0])
        except ValueError:
            too_new = True
        if too_new:
            out.append(problem("bad-metadata", f"schema version {version!r} is not readable by this package "
                                f"(reads {schema.SCHEMA_VERSION}); upgrade expertdata"))
    for key in ("observation_space", "action_space"):
        if metadata.get(key) is not None:
            try:
                spaces.check_json(metadata[key])
            except spaces.SpaceError as exc:
                out.append(problem("bad-metadata", f"{key}: {exc}"))
    if spaces.is_composite(metadata.get("action_space")) and _space(metadata, "action_space"):
        out.append(problem("bad-metadata", f"action_space: a {metadata['action_space']['type']} action space is not "
                            "supported (observations may be composite, actions not)"))
    if metadata.get("card") is not None:
        try:
            cards.check(metadata["card"])
        except UsageError as exc:
            out.append(problem("bad-metadata", f"card: {exc}"))
    extras = metadata.get("extras", {})
    if isinstance(extras, dict) and any(v not in ("step", "episode") for v in extras.values()):
        out.append(problem("bad-metadata", "extras must map field names to 'step' or 'episode'"))
    steps = metadata.get("max_episode_steps")
    if isinstance(steps, int) and steps <= 0:
        out.append(problem("bad-metadata", f"max_episode_steps must be a positive integer, not {steps!r}"))
    return out


def _space(metadata: Mapping[str, Any], key: str) -> dict | None:
    spec = metadata.get(key) if isinstance(metadata, Mapping) else None
    try:
        spaces.check_json(spec)
    except spaces.SpaceError:
        return None
    return spec


def structural_problems(fields: Mapping[str, ArrayLike], metadata: Any, root: Path | None = None,
                        withheld: Collection[str] = (), trusted: bool = False) -> list[Problem]:
    """Problems visible from shapes, dtypes, metadata, ``episode_starts`` and image paths alone (and, last,
    whether the card names a licence).

    Image paths are checked here, not later, so a dataset whose paths escape its folder is never built.
    ``withheld`` fields (their data is outside the file, or not stored) count as present but are not read.
    """
    card = metadata.get("card") if isinstance(metadata, Mapping) else None
    licensed = isinstance(card, Mapping) and bool(card.get("license"))
    return _structure(fields, metadata, root, withheld, trusted) + ([] if licensed else [problem(
        "no-licence", "the dataset's card names no licence (expertdata card PATH --license SPDX-ID)")])


def _structure(fields: Mapping[str, ArrayLike], metadata: Any, root: Path | None, withheld: Collection[str],
               trusted: bool) -> list[Problem]:
    out = _metadata_problems(metadata)
    metadata = metadata if isinstance(metadata, Mapping) else {}
    leaves = {name for base in ("obs", "final_obs")
              for name in schema.leaf_fields(base, fields, metadata).values() if name != base}
    required = [name for name in schema.required(metadata) if name != "obs"] + [
        name for name in schema.leaf_fields("obs", fields, metadata).values()]
    for name in required:
        if name not in fields and name not in withheld:
            what = "a leaf of the composite observation space" if name in leaves else "required field"
            out.append(problem("missing-field", f"{what} '{name}' is absent", name))
    if _space(metadata, "observation_space") and spaces.is_composite(metadata["observation_space"]):
        out.extend(problem("observation-space-shape", f"the {metadata['observation_space']['type']} observation space "
                            f"is stored one field per leaf ({base}/<key>), not as one field", base)
                   for base in ("obs", "final_obs") if base in fields)
    clash = schema.names_problem(fields)
    if clash:
        out.append(problem("observation-space-shape" if clash.startswith("fields 'obs") or "'final_obs" in clash
                            else "bad-dtype", clash))
    if schema.rewards_absent(metadata):
        out.extend(problem("bad-metadata", f"the metadata says the rewards are absent, but {name!r} is stored", name)
                   for name in schema.REWARD_FIELDS if name in fields)
    unusable = set(withheld)
    for name, array in fields.items():
        spec = schema.base_field(name)
        dtype = np.dtype(array.dtype)
        if not array.shape:
            out.append(problem("length-mismatch", "holds a single value, not one row per step or episode", name))
            unusable.add(name)
            continue
        if dtype.hasobject:
            out.append(problem("bad-dtype", "object array: it could only be read by unpickling, which is "
                                "refused; re-save it with a numeric dtype", name))
        elif spec is not None and dtype.kind not in spec.kinds.replace("U", "" if name in leaves else "U"):
            out.append(problem("bad-dtype", f"dtype {dtype} is not allowed (kinds "
                                f"'{spec.kinds.replace('U', '' if name in leaves else 'U')}')", name))
        elif spec is None and dtype.kind not in "fiubU":
            out.append(problem("bad-dtype", f"dtype {dtype} cannot be stored", name))
        if spec is not None and spec.ndim is not None and len(array.shape) != spec.ndim:
            out.append(problem("length-mismatch", f"has {len(array.shape)} dimensions, expected {spec.ndim}",
                                name))
        if not _declared(name, metadata, leaves):
            out.append(problem("unknown-field", "not in the schema nor declared in metadata['extras']", name))
        if dtype.kind == "U" and spec is not None and "U" in spec.kinds and name not in leaves:  # image paths
            if len(array.shape) == 1:
                out.extend(_path_problems(name, first_rows(array), root, trusted))
            else:
                out.append(problem("bad-dtype", f"text of shape {tuple(array.shape)}: text observations are "
                                    "image paths, one per row", name))
    unusable |= {p.field for p in out if p.rule.id in ("E001", "E002")}
    if unusable & set(required) or any(p.rule.id == "E013" for p in out if p.field):
        return out
    n_steps = fields["episode_starts"].shape[0]
    index = EpisodeIndex.read(fields["episode_starts"])
    n_episodes = fields["episode_returns"].shape[0] if "episode_returns" in fields else index.n_episodes
    for name, array in fields.items():
        if name in unusable:
            continue
        per = field_per(name, metadata)
        want = n_steps if per == "step" else n_episodes
        if array.shape[0] != want:
            out.append(problem("length-mismatch", f"has {array.shape[0]} rows, expected {want} "
                                f"(one per {per})", name))
    if n_steps and (not index.n_episodes or index.starts[0] != 0):
        out.append(problem("first-episode-start", "the first step must open an episode", "episode_starts", 0))
    out.extend(_splits_problems(metadata.get("splits"), n_episodes))
    found = index.n_episodes
    if found != n_episodes:
        out.append(problem("episode-count-mismatch", f"episode_starts marks {found} episodes but "
                            f"episode_returns has {n_episodes}", "episode_returns"))
    spaced = [name for name in fields if name == "actions" or schema.field_space(name, metadata) is not None]
    for name in spaced:
        spec = schema.field_space(name, metadata)
        if spec is not None and name not in unusable and np.dtype(fields[name].dtype).kind != "U":
            why = spaces.shape_fits(spec, (0,) + tuple(fields[name].shape[1:]), np.dtype(fields[name].dtype))
            if why:
                rule = "action-space-shape" if name == "actions" else "observation-space-shape"
                out.append(problem(rule, why, name))
    return out


def _splits_problems(splits: Any, n_episodes: int) -> list[Problem]:
    """E013 unless every named split lists episode numbers of this dataset."""
    if not isinstance(splits, dict):
        return []
    for name, episodes in splits.items():
        if not isinstance(episodes, list) or not all(type(e) is int and 0 <= e < n_episodes for e in episodes):
            return [problem("bad-metadata", f"splits[{schema.shown(name)}] must list episode numbers from 0 to "
                             f"{n_episodes - 1}")]
    return []


class _EpisodeHashes:
    """Per-episode digests of a field, fed block by block, to find duplicate episodes."""

    def __init__(self, index: EpisodeIndex) -> None:
        self._index = index
        self._hashers = [hashlib.sha1(usedforsecurity=False) for _ in range(index.n_episodes)]

    def update(self, begin: int, block: np.ndarray) -> None:
        stop = begin + len(block)
        first = max(0, int(np.searchsorted(self._index.starts, begin, "right")) - 1)
        last = int(np.searchsorted(self._index.starts, stop, "left"))
        data = np.ascontiguousarray(block)
        for e in range(first, last):
            lo, hi = max(begin, int(self._index.starts[e])), min(stop, int(self._index.ends[e]))
            if hi > lo:
                self._hashers[e].update(data[lo - begin:hi - begin].tobytes())

    def digests(self) -> list[bytes]:
        return [h.digest() for h in self._hashers]


def _episode_sums(rewards: ArrayLike, index: EpisodeIndex) -> np.ndarray:
    sums = np.zeros(index.n_episodes)
    begin = 0
    for block in iter_blocks(rewards):
        stop = begin + len(block)
        inside = index.starts[(index.starts > begin) & (index.starts < stop)]
        cuts = np.concatenate(([begin], inside)) - begin
        episode = np.searchsorted(index.starts, cuts + begin, "right") - 1
        keep = episode >= 0
        np.add.at(sums, episode[keep], np.add.reduceat(block.astype(np.float64), cuts)[keep])
        begin = stop
    return sums


def _time_limit(metadata: Mapping[str, Any]) -> int | None:
    if metadata.get("max_episode_steps"):
        return int(metadata["max_episode_steps"])
    env_id = metadata.get("env_id")
    if not env_id:
        return None
    try:
        import gymnasium

        return gymnasium.spec(env_id).max_episode_steps
    except Exception:  # an env id gymnasium does not know: no time limit to compare with
        return None


def _value_problems(name: str, array: ArrayLike, spec: dict | None, hashes: _EpisodeHashes | None,
                    digesters: list[Any]) -> list[Problem]:
    """One pass over a field's blocks: non-finite values and values outside the space (and the blocks fed
    to the digests)."""
    dtype = np.dtype(array.dtype)
    nonfinite, outside = [0, None], [0, None]
    begin = 0
    for digester in digesters:
        digester.begin_field(name, dtype, tuple(array.shape))
    for block in iter_blocks(array, label=f"field {schema.shown(name)}"):
        for digester in digesters:
            digester.update(block)
        if dtype.kind == "f":
            bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
            if bad.any():
                nonfinite[0] += int(bad.sum())
                nonfinite[1] = nonfinite[1] if nonfinite[1] is not None else begin + int(np.argmax(bad))
        if spec is not None and dtype.kind != "U":
            bad = spaces.outside(spec, block)
            if bad.any():
                outside[0] += int(bad.sum())
                outside[1] = outside[1] if outside[1] is not None else begin + int(np.argmax(bad))
        if hashes is not None:
            hashes.update(begin, block)
        begin += len(block)
    out = []
    if nonfinite[0]:
        out.append(problem("non-finite", f"{_count(nonfinite[0], 'row')} {_verb(nonfinite[0], 'holds', 'hold')} NaN "
                            "or infinity", name, nonfinite[1],
                            nonfinite[0]))
    if outside[0]:
        rule = "box-out-of-bounds" if spec["type"] == "Box" else "outside-space"
        out.append(problem(rule, f"{_count(outside[0], 'row')} {_verb(outside[0], 'lies', 'lie')} outside the "
                            f"{spec['type']} space", name, outside[1],
                            outside[0]))
    return out


def _path_problems(name: str, paths: Mapping[str, int], root: Path | None, trusted: bool = False) -> list[Problem]:
    """Image paths that escape the dataset's folder by name or (unless ``trusted``) through a symbolic link,
    or (when the folder is known) name no file."""
    escaping = {p: row for p, row in paths.items() if images.escapes(p)}
    linked = {} if root is None or trusted else {p: row for p, row in paths.items()
                                                 if p not in escaping and images.through_link(root, p)}
    missing = {} if root is None else {p: row for p, row in paths.items() if p not in escaping and p not in linked
                                       and not images.resolve(root, p).is_file()}
    out = []
    for rule, found, what in (("image-path-escapes", escaping, "absolute or outside the dataset's folder"),
                              ("outside-reference", linked, "outside the dataset's folder through a symbolic link"),
                              ("image-missing", missing, "no such file")):
        if found:
            path, row = min(found.items(), key=lambda item: item[1])
            out.append(problem(rule, f"{_count(len(found), 'image path')} {_verb(len(found), 'is', 'are')} {what} "
                                f"(first: {path!r})", name, row,
                                len(found)))
    return out


def _flagged(name: str, flags: ArrayLike, index: EpisodeIndex, out: list[Problem]) -> np.ndarray:
    """Whether each episode's last step is flagged, read block by block; a flag set on any other step is
    reported into ``out``."""
    last = index.ends - 1
    ended = np.zeros(index.n_episodes, dtype=bool)
    count, first, begin = 0, None, 0
    for block in iter_blocks(flags, label=f"field '{name}'"):
        lo, hi = np.searchsorted(last, begin), np.searchsorted(last, begin + len(block))
        ends = last[lo:hi] - begin
        ended[lo:hi] = block[ends]
        mid = np.setdiff1d(np.flatnonzero(block), ends, assume_unique=True)
        if len(mid):
            count, first = count + len(mid), first if first is not None else begin + int(mid[0])
        begin += len(block)
    if count:
        out.append(problem("flag-mid-episode", f"set on {_count(count, 'step')} that {_verb(count, 'does', 'do')} "
                            "not end its episode", name, first,
                            count))
    return ended


def _returns_problems(fields: Mapping[str, ArrayLike], index: EpisodeIndex) -> list[Problem]:
    """E003 where an episode's return differs from the sum of its rewards."""
    out = []
    returns = np.asarray(fields["episode_returns"][:], dtype=np.float64)
    sums = _episode_sums(fields["rewards"], index)
    bad = ~np.isclose(returns, sums, rtol=schema.RETURNS_RTOL, atol=schema.RETURNS_ATOL) & np.isfinite(returns)
    if bad.any():
        e = int(np.argmax(bad))
        n = int(bad.sum())
        what = ("the return of 1 episode differs from the sum of its rewards" if n == 1 else
                f"the returns of {n:,} episodes differ from the sums of their rewards")
        out.append(problem("episode-returns-mismatch", f"{what} (episode {e}: {float(returns[e]):.10g} vs "
                            f"{float(sums[e]):.10g})", "episode_returns", e, n))
    return out


def _episode_problems(fields: Mapping[str, ArrayLike], metadata: Mapping[str, Any], index: EpisodeIndex,
                      hashes: dict[str, _EpisodeHashes]) -> list[Problem]:
    out = _returns_problems(fields, index) if {"episode_returns", "rewards"} <= set(fields) else []
    last_steps = index.ends - 1
    ended = {name: _flagged(name, fields[name], index, out) for name in ("terminated", "truncated") if name in fields}
    if index.n_episodes:
        if ended:
            if not any(flags[-1] for flags in ended.values()):
                out.append(problem("last-episode-cut", "the final episode ends with neither terminated nor "
                                    "truncated set", "episode_starts", int(index.starts[-1])))
        elif (index.n_episodes > 1 and index.lengths[-1] < index.lengths[:-1].min()
              and not schema.flags_unknown(metadata)):
            out.append(problem("last-episode-cut", f"the final episode has {int(index.lengths[-1])} steps, "
                                "fewer than any other", "episode_starts", int(index.starts[-1])))
    limit = _time_limit(metadata)
    if limit and "terminated" in ended:
        at_limit = (index.lengths == limit) & ended["terminated"]
        if at_limit.any():
            n = int(at_limit.sum())
            out.append(problem("terminated-at-time-limit", f"{_count(n, 'episode')} {_verb(n, 'is', 'are')} "
                                f"terminated at exactly the time limit ({limit} steps)", "terminated",
                                int(last_steps[np.argmax(at_limit)]), n))
    if len(hashes) >= 2:
        seen: dict[tuple, int] = {}
        duplicates = []
        for e, key in enumerate(zip(*(h.digests() for h in hashes.values()))):
            if key in seen:
                duplicates.append((seen[key], e))
            seen.setdefault(key, e)
        if duplicates:
            first, second = duplicates[0]
            n = len(duplicates)
            out.append(problem("duplicate-episode", f"{_count(n, 'episode')} {_verb(n, 'repeats', 'repeat')} an "
                                f"earlier one (episode {second} repeats episode {first})", next(iter(hashes)),
                                int(index.starts[second]), n))
    return out


def raise_for(source: str, problems: Collection[Problem]) -> None:
    """Raise the error the worst of ``problems`` calls for (``UnreadableError``, exit 2, before
    ``InvalidDatasetError``, exit 1), in one line; warnings never raise."""
    errors = sorted((p for p in problems if p.rule.severity == "error"), key=lambda p: -p.rule.exit_code)
    if not errors:
        return
    first = errors[0]
    hint = "; trusted=True reads it from a file you trust" if first.rule.name == "outside-reference" else ""
    more = f" (and {len(errors) - 1} more problems; run `expertdata validate`)" if len(errors) > 1 else ""
    if first.rule.unreadable:
        raise UnreadableError(f"{source}: {first.one_line()}{hint}{more}")
    raise InvalidDatasetError(f"{source}: {first.one_line()}{hint}{more}", tuple(problems))


def problems_found(findings: Collection[Finding]) -> list[Problem]:
    """A backend's findings as problems."""
    return [_from_finding(f) for f in findings]


def _from_finding(finding: Finding) -> Problem:
    return Problem(schema.RULES_BY_NAME[finding.rule], finding.message, finding.field, finding.position)


def _unchecked(storage: Mapping[str, Mapping[str, Any]], metadata: Mapping[str, Any]) -> list[Problem]:
    """W106 when some stored fields carry no checksum and no digest was recorded to stand in for one."""
    bare = sorted(name for name, how in storage.items() if how.get("checksum") is False)
    if not bare or isinstance(metadata.get("digest"), str):
        return []
    return [problem("unchecked", f"{', '.join(map(schema.shown, bare))} are stored without a checksum and no "
                     "digest is recorded; corruption of their bytes would go unnoticed")]


class _Hashed:
    """Episode hashes computed elsewhere (on a cluster's worker), as ``_EpisodeHashes`` gives them."""

    def __init__(self, found: list[bytes]) -> None:
        self._found = found

    def digests(self) -> list[bytes]:
        return self._found


#: Runs the value checks of a dataset's fields elsewhere: given each field's space (``None`` where its shape fits
#: it already) and, where the field's episodes are hashed, the episode index, it yields each field's problems and
#: episode hashes, in the order given.
ValueChecks = Callable[[dict[str, "dict | None"], dict[str, "EpisodeIndex | None"]],
                       Iterable[tuple[list[Problem], "list[bytes] | None"]]]


def field_value_problems(name: str, array: ArrayLike, spec: dict | None,
                         index: EpisodeIndex | None) -> tuple[list[Problem], list[bytes] | None]:
    """The value problems of one field, and its episodes' hashes where ``index`` is given (what ``check`` asks of
    ``elsewhere`` for each field)."""
    hashes = _EpisodeHashes(index) if index is not None else None
    return _value_problems(name, array, spec, hashes, []), hashes.digests() if hashes is not None else None


def check(fields: Mapping[str, ArrayLike], metadata: Any, root: Path | None, source: str = "<memory>", *,
          storage: Mapping[str, Mapping[str, Any]] | None = None, findings: Collection[Finding] = (),
          withheld: Collection[str] = (), integrity: Callable[[], list[Finding]] | None = None,
          trusted: bool = False, elsewhere: "ValueChecks | None" = None) -> Report:
    """Run every check on fields and metadata (with what the backend found on opening the file, and its
    checksums), reading every value once; the recorded digest is compared on the way. With ``elsewhere`` (a
    cluster's workers, ``expertdata.io.checking``), the fields' value checks run there, and the recorded digest is
    compared in a pass of this process: the report is the one a single process gives."""
    problems = [_from_finding(f) for f in findings] + [_from_finding(f) for f in (integrity() if integrity else ())]
    problems += structural_problems(fields, metadata, root, withheld, trusted)
    metadata = metadata if isinstance(metadata, Mapping) else {}
    broken = {p.field for p in problems if p.rule.severity == "error" and p.field} | set(withheld)
    episodes_ok = not (broken & set(schema.required(metadata))) and not any(
        p.rule.id in ("E004", "E005", "E006") for p in problems)
    index = EpisodeIndex.read(fields["episode_starts"]) if episodes_ok else None
    hashed = [*schema.leaf_fields("obs", fields, metadata).values(), "actions"]
    hashes = {name: _EpisodeHashes(index) for name in hashed if name in fields} if index is not None else {}
    recorded = metadata.get("digest") if isinstance(metadata.get("digest"), str) else None
    digester = Digester() if recorded and not broken and not any(
        np.dtype(a.dtype).hasobject for a in fields.values()) else None
    per_episode = metadata.get("episode_digests")
    episodes = (EpisodeDigester(np.append(index.starts, len(fields["episode_starts"])),
                                lambda name: field_per(name, metadata))
                if digester is not None and index is not None and isinstance(per_episode, list)
                and len(per_episode) == index.n_episodes else None)
    specs = {}
    for name in sorted(fields):
        array = fields[name]
        if name in broken or np.dtype(array.dtype).hasobject:
            continue
        spec = schema.field_space(name, metadata)
        specs[name] = None if spec is not None and spaces.shape_fits(spec, tuple(array.shape),
                                                                     np.dtype(array.dtype)) else spec
    if elsewhere is None:
        for name, spec in specs.items():
            problems.extend(_value_problems(name, fields[name], spec, hashes.get(name),
                                            [d for d in (digester, episodes) if d is not None]))
    else:
        indexes = {name: index if name in hashes else None for name in specs}
        for name, (found, digests) in zip(specs, elsewhere(specs, indexes)):
            problems.extend(found)
            if digests is not None:
                hashes[name] = _Hashed(digests)
        for name in specs:  # the digest: one sequential hash over every field, the client's pass
            for d in (digester, episodes):
                if d is not None:
                    d.begin_field(name, fields[name].dtype, tuple(fields[name].shape))
            for block in iter_blocks(fields[name], label=f"field {schema.shown(name)}"):
                for d in (digester, episodes):
                    if d is not None:
                        d.update(block)
    if digester is not None:
        actual = digester.finish(metadata)
        if actual != recorded:
            which = changed_episodes(episodes.finish(), per_episode) if episodes is not None else ""
            problems.append(problem("digest-mismatch", f"the content's digest {actual} differs from the one "
                                     f"recorded when it was written, {recorded}{which}"))
    problems.extend(_unchecked(storage or {}, metadata))
    if index is not None:
        problems.extend(_episode_problems(fields, metadata, index, hashes))
    return Report(source, tuple(sorted(problems, key=lambda p: p.rule.id)))


def changed_episodes(actual: list[str], recorded: list[Any]) -> str:
    """Which episodes' digests differ from the recorded ones, as the end of a message."""
    changed = [e for e, (a, r) in enumerate(zip(actual, recorded)) if a != r]
    if not changed:
        return "; every episode's rows match their recorded digests, so the difference is in the metadata"
    shown = ", ".join(map(str, changed[:10])) + (", ..." if len(changed) > 10 else "")
    return f"; {_count(len(changed), 'episode')} differ{'s' * (len(changed) == 1)}: {shown}"
