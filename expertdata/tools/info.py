"""What ``expertdata info`` shows: counts, episode statistics, spaces, and how each field is stored."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..core import spaces
from ..core.dataset import Dataset
from ..core.digest import digest
from ..core.errors import printable
from ..core.schema import shown
from ..io import formats, remote
from ..io.storage import load


def size_on_disk(path: Path) -> int:
    """Bytes a file, or every file under a folder, takes."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def summarize(dataset: Dataset, with_digest: bool = True) -> dict[str, Any]:
    """A JSON-ready summary of a dataset."""
    meta = dataset.metadata
    return {
        "path": dataset.source,
        "format": dataset.format,
        "schema_version": meta.get("schema_version", "sb2 (no metadata)" if dataset.format == "npz" else "-"),
        "env_id": meta.get("env_id"),
        "transitions": dataset.n_transitions,
        "episodes": dataset.n_episodes,
        "episode_lengths": _stats(dataset.episodes.lengths),
        "rewards": dataset.has_rewards,
        "episode_returns": (_stats(np.asarray(dataset["episode_returns"][:], dtype=np.float64))
                            if dataset.has_rewards else None),
        "observation_space": meta.get("observation_space"),
        "action_space": meta.get("action_space"),
        "image_paths": dataset.has_image_paths,
        "fields": {name: {"dtype": str(np.dtype(a.dtype)), "shape": list(a.shape),
                          **dict(dataset.storage.get(name, {}))} for name, a in sorted(dataset.fields.items())},
        "lineage": meta.get("lineage", []),
        "notes": list(dataset.notes),
        "digest": digest(dataset) if with_digest else None,
    }


def info(path: Path | str, with_digest: bool = True, trusted: bool = False) -> dict[str, Any]:
    """Summarise the dataset at ``path``, with its size on disk."""
    with load(path, trusted=trusted) as dataset:
        summary = summarize(dataset, with_digest)
    summary["size_on_disk"] = None if remote.is_url(path) else size_on_disk(formats.locate(path))
    return summary


def table(rows: Iterable[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns, every cell made printable."""
    rows = [tuple(printable(str(c)) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _stats_line(stats: dict | None) -> str:
    return "-" if stats is None else f"{stats['min']:.6g} / {stats['mean']:.6g} / {stats['max']:.6g}"


def _lineage_line(entry: Any) -> str:
    """One lineage entry in words, with what it records (entries differ by operation)."""
    if not isinstance(entry, dict):
        return repr(entry)
    parts = [str(entry.get("operation", "?"))]
    for key, label in (("from_format", "from"), ("episodes", "episodes"), ("episodes_before", "after"),
                       ("parent_digest", "parent"), ("time", "at")):
        if entry.get(key) is not None:
            parts.append(f"{label} {entry[key]}")
    if isinstance(entry.get("parents"), list):
        parts.append("of " + ", ".join(f"{p.get('source')} ({p.get('digest')})" for p in entry["parents"]
                                       if isinstance(p, dict)))
    return " ".join(parts)


def _space_line(space: dict | None) -> str:
    if space is None:
        return "-"
    if spaces.is_composite(space):  # its leaves' kinds and shapes; --json has the whole space
        return f"{space['type']} of " + ", ".join(
            f"{path}: {leaf['type']} {list(spaces.row_shape(leaf))} {spaces.row_dtype(leaf)}"
            for path, leaf in spaces.leaves(space).items())
    detail = {k: v for k, v in space.items() if k != "type"}
    return f"{space['type']} {json.dumps(detail)}"


def as_text(path: str, summary: dict[str, Any]) -> str:
    """``info``'s summary as the command line prints it: a table of counts and spaces, one of fields, then the
    lineage and the notes."""
    lines = [table([
        ("path", path),
        ("format", f"{summary['format']}, schema {summary['schema_version']}"),
        ("size on disk", f"{summary['size_on_disk']:,} bytes" if summary["size_on_disk"] is not None else "- (remote)"),
        ("env", summary["env_id"] or "-"),
        ("transitions", f"{summary['transitions']:,}"),
        ("episodes", f"{summary['episodes']:,}"),
        ("lengths min/mean/max", _stats_line(summary["episode_lengths"])),
        ("returns min/mean/max", _stats_line(summary["episode_returns"]) if summary["rewards"] else "no rewards"),
        ("observation space", _space_line(summary["observation_space"])),
        ("action space", _space_line(summary["action_space"])),
        ("digest", summary["digest"] or "-"),
    ])]
    lines.append("")
    lines.append(table([("field", "dtype", "shape", "chunks", "compression")] + [
        (shown(name)[1:-1], f["dtype"], tuple(f["shape"]), tuple(f["chunks"]) if f.get("chunks") else "-",
         f.get("compression", "-")) for name, f in summary["fields"].items()]))
    for entry in summary["lineage"]:
        lines.append("lineage: " + printable(_lineage_line(entry)))
    for note in summary["notes"]:  # what reading skipped (a partial download's videos: which episodes are whole)
        lines.append("note: " + printable(note))
    return "\n".join(lines)
