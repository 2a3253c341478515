"""Trainer plugins: each trainer registers one entry point in the ``expertdata.trainers`` group, and
``expertdata train NAME ...`` finds it, so a third-party trainer installs and appears without editing
this repo.

An entry point names a ``TrainerPlugin``: a name, a one-line summary, a config dataclass (its fields
become ``--options``) and ``run(request, config)``, which trains and returns a JSON-ready summary.
"""
from __future__ import annotations

import dataclasses
import json
import time
import types
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from expertdata.errors import UsageError

GROUP = "expertdata.trainers"


@dataclass(frozen=True)
class TrainRequest:
    """What every trainer gets from the command line."""

    dataset: Path
    env_id: str | None
    out: Path
    traj_limitation: int = -1
    seed: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class TrainerPlugin:
    name: str
    summary: str
    config_class: type
    run: Callable[[TrainRequest, Any], dict]


def discover() -> dict[str, TrainerPlugin]:
    """Every installed trainer, by name."""
    found = {}
    for entry in entry_points(group=GROUP):
        plugin = entry.load()
        found[plugin.name] = plugin
    return found


def get(name: str) -> TrainerPlugin:
    plugins = discover()
    if name not in plugins:
        raise UsageError(f"no trainer named '{name}'; installed: {', '.join(sorted(plugins)) or 'none'}")
    return plugins[name]


def _convert(text: str, kind: Any, option: str) -> Any:
    """A command-line value as the config field's type (``int | None`` accepts ``none``; tuples take
    comma-separated values)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.lower() == "none" and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    try:
        if origin is tuple:
            return tuple(args[0](v) for v in text.split(",") if v)
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return kind(text)
    except (TypeError, ValueError):
        raise UsageError(f"{option}: cannot read {text!r} as {getattr(kind, '__name__', kind)}") from None


def options(config_class: type) -> list[tuple[str, str, Any]]:
    """``(--option, type, default)`` for every config field, for help and ``--list``."""
    hints = typing.get_type_hints(config_class)

    def name(kind: Any) -> str:
        return kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")

    return [(f"--{f.name.replace('_', '-')}", name(hints[f.name]), f.default) for f in dataclasses.fields(config_class)]


def parse_config(config_class: type, args: list[str], **fixed: Any) -> Any:
    """Build the config from ``--name value`` pairs (``--flag``/``--no-flag`` for booleans)."""
    hints = typing.get_type_hints(config_class)
    names = {f.name for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}")
        key = arg[2:].replace("-", "_")
        if "=" in key:
            key, text = key.split("=", 1)
            i += 1
        elif key.startswith("no_") and key[3:] in names and hints[key[3:]] is bool:
            key, text = key[3:], "false"
            i += 1
        elif key in names and hints[key] is bool and (i + 1 == len(args) or args[i + 1].startswith("--")):
            text = "true"
            i += 1
        else:
            if i + 1 == len(args):
                raise UsageError(f"{arg} needs a value")
            text = args[i + 1]
            i += 2
        if key not in names or key in fixed:
            valid = ", ".join(o for o, _, _ in options(config_class) if o[2:].replace("-", "_") not in fixed)
            raise UsageError(f"unknown option {arg!r} for this trainer; its options: {valid}")
        values[key] = _convert(text, hints[key], arg)
    return config_class(**values, **{k: v for k, v in fixed.items() if k in names})


#: Episodes a trained policy is evaluated on before it is saved.
EVAL_EPISODES = 20


def finish(name: str, request: TrainRequest, config: Any, started: float, model: Any, world: Any,
           rows: list[dict], **results: Any) -> dict[str, Any]:
    """What every trainer ends with: the summary (the request, the config, the ranks, the seconds since
    ``started`` and the trainer's own ``results``), then, on rank 0 alone, an evaluation on the env (when
    one is given), ``model.save(request.out)`` and the log and summary beside it. Every rank must call it
    with ``results`` already gathered (collective checks included); it returns the summary."""
    summary: dict[str, Any] = {"trainer": name, "saved": world.is_root, "dataset": str(request.dataset),
                               "env": request.env_id, "traj_limitation": request.traj_limitation,
                               "ranks": world.size, "config": dataclasses.asdict(config),
                               "seconds": time.perf_counter() - started, **results}
    if world.is_root:
        if request.env_id is not None:
            mean, std = model.evaluate(request.env_id, n_episodes=EVAL_EPISODES)
            summary.update(eval_return_mean=mean, eval_return_std=std, eval_episodes=EVAL_EPISODES)
        model.save(request.out)
        write_outputs(request.out, rows, summary)
    return summary


def write_outputs(out: Path, rows: list[dict], summary: dict) -> None:
    """The training log (``log.csv``) and summary (``summary.json``) beside the saved policy."""
    import csv

    if rows:
        with open(out / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
