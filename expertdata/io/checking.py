"""``validate``: a dataset, or the file at a path (local, remote, or read by a Dask cluster's workers), checked
against every rule (``expertdata.core.rules``)."""
from __future__ import annotations

from typing import Any

from ..core.episodes import EpisodeIndex
from ..core.errors import ExpertDataError
from ..core.guard import one_line
from ..core.rules import Problem, Report, ValueChecks, check, field_value_problems, problem
from . import remote


def field_values(path: Any, trusted: bool, name: str, spec: dict | None,
                 index: EpisodeIndex | None) -> tuple[list[Problem], list[bytes] | None]:
    """One cluster task of ``validate``: the value problems of field ``name`` of the dataset at ``path`` (read on
    the worker), and its episodes' hashes where ``index`` is given."""
    raw = remote.open_raw(path, trusted=trusted)
    try:
        return field_value_problems(name, raw.fields[name], spec, index)
    finally:
        raw.close()


def _on_workers(client: Any, path: Any, trusted: bool) -> ValueChecks:
    """Value checks run on ``client``'s workers, one task a field, each reading the dataset at ``path``."""
    def run(specs: dict[str, dict | None], indexes: dict[str, EpisodeIndex | None]):
        from . import cluster

        jobs = [(path, trusted, name, spec, indexes[name]) for name, spec in specs.items()]
        return cluster.run(client, field_values, jobs, "validate-field")
    return run


def _unprefixed(message: str, source: str) -> str:
    """An error's message without the path it starts with (the report names it already)."""
    return message[len(source) + 2:] if message.startswith(f"{source}: ") else message


def validate(dataset_or_path: Any, trusted: bool = False, client: Any = None) -> Report:
    """Check a dataset (an ``expertdata.Dataset``), or the file at a path, against every rule in
    ``expertdata.core.schema.RULES``; ``trusted`` lets a file's data come from outside it. ``client``: a Dask client
    whose workers check a path's fields (``expertdata.io.cluster``); the same report.

    Never raises for bad data: an unreadable file gives a report with rule E100 (exit code 2).
    """
    if hasattr(dataset_or_path, "fields") and hasattr(dataset_or_path, "metadata"):
        ds = dataset_or_path
        return check(ds.fields, ds.metadata, ds.root, ds.source, storage=ds.storage, trusted=ds.trusted)
    source = str(dataset_or_path)
    try:
        raw = remote.open_raw(dataset_or_path, trusted=trusted)
    except ExpertDataError as exc:
        return Report(source, (problem(exc.rule, _unprefixed(str(exc), source)),))
    try:
        return check(raw.fields, raw.metadata, raw.root, source, storage=raw.storage, findings=raw.findings,
                     withheld=raw.withheld, integrity=raw.integrity, trusted=trusted,
                     elsewhere=None if client is None else _on_workers(client, dataset_or_path, trusted))
    except ExpertDataError as exc:
        return Report(source, (problem(exc.rule, _unprefixed(str(exc), source)),))
    except Exception as exc:  # a chunk that fails to decode mid-file: the file is corrupt, not invalid
        return Report(source, (problem("unreadable", _unprefixed(str(one_line(source, exc)), source)),))
    finally:
        raw.close()
