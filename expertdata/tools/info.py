"""What ``expertdata info`` shows: counts, episode statistics, spaces, and how each field is stored."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.dataset import Dataset
from ..core.digest import digest
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
