"""``expertdata train``: contributed to the core command line through the ``expertdata.commands`` entry
point, so the core never imports torch. Each installed trainer is a subcommand whose options are generated
from its config dataclass: help from the ``:param:`` docs, allowed values as choices, booleans as flags.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import click

from expertdata import ExpertDataset

from . import plugins


def param_docs(owner: Any) -> dict[str, str]:
    """``:param name:`` texts of a class's docstring and its bases' (``:param a, b:`` documents both)."""
    docs: dict[str, str] = {}
    for klass in reversed(inspect.getmro(owner) if inspect.isclass(owner) else (owner,)):
        text = inspect.cleandoc(klass.__doc__ or "")
        for names, body in re.findall(r":param ([\w, ]+):(.*?)(?=\n\s*:param |\n\s*\n|\Z)", text, re.S):
            for name in names.split(","):
                text = " ".join(body.split()).replace("``", "")
                docs[name.strip()] = text[:1].upper() + text[1:]
    return docs


class _Optional(click.ParamType):
    """A value of ``inner``, or ``none``."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner, self.name = inner, f"{inner.name}|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return self.inner.convert(value, param, ctx)


class _Sizes(click.ParamType):
    """Comma-separated whole numbers, as a tuple."""

    name = "n,n,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)


def _param_type(kind: Any) -> tuple[click.ParamType, bool]:
    """The click type of a config field's type hint, and whether it is a boolean flag."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner, _ = _param_type(next(a for a in args if a is not type(None)))
        return _Optional(inner), False
    if origin is typing.Literal:
        return click.Choice([str(a) for a in args]), False
    if origin is tuple:
        return _Sizes(), False
    if kind is bool:
        return click.BOOL, True
    return {int: click.INT, float: click.FLOAT, str: click.STRING}[kind], False


def _option(name: str, kind: Any, default: Any, help: str) -> click.Option:
    param_type, flag = _param_type(kind)
    dashed = name.replace("_", "-")
    if flag:
        return click.Option([f"--{dashed}/--no-{dashed}"], default=default, show_default=True, help=help)
    shown: Any = ",".join(map(str, default)) if isinstance(default, tuple) else ("none" if default is None else True)
    return click.Option([f"--{dashed}", name], type=param_type, default=default, show_default=shown, help=help)


def config_options(config_class: type) -> list[click.Option]:
    """One option per field of a config dataclass, its help from the class's ``:param:`` docs."""
    hints, docs = typing.get_type_hints(config_class), param_docs(config_class)
    return [_option(f.name, hints[f.name], f.default, docs.get(f.name, "")) for f in dataclasses.fields(config_class)]


def dataset_options(names: tuple[str, ...]) -> list[click.Option]:
    """Options for the ``ExpertDataset`` parameters a trainer's batches use."""
    signature = inspect.signature(ExpertDataset.__init__)
    hints, docs = typing.get_type_hints(ExpertDataset.__init__), param_docs(ExpertDataset)
    return [_option(name, hints[name], signature.parameters[name].default, docs.get(name, "")) for name in names]


def trainer_options(plugin: plugins.TrainerPlugin) -> list[click.Option]:
    """A trainer's own options: its dataset parameters, then its config's fields."""
    return dataset_options(plugin.dataset_options) + config_options(plugin.config_class)


def command_for(plugin: plugins.TrainerPlugin) -> click.Command:
    """``expertdata train NAME DATASET --out DIR [options]`` for one trainer."""
    common = [
        click.Argument(["dataset"], type=click.Path()),
        click.Option(["--out"], type=click.Path(), required=True,
                     help="The folder that receives the trained model, log.csv and summary.json."),
        click.Option(["--env", "env_id"], required=plugin.needs_env,
                     help="A gymnasium env id: its spaces must fit the dataset's, and the model is evaluated on it."),
        click.Option(["--steps"], type=click.IntRange(min=1), default=plugin.default_steps,
                     show_default="none" if plugin.default_steps is None else str(plugin.default_steps),
                     help="The training budget, learn(total_timesteps): env steps for trainers that step an env, "
                          "expert transitions otherwise (none: the trainer's own budget)."),
        click.Option(["--log-interval"], type=click.IntRange(min=1), default=10, show_default=True,
                     help="Log records between printed lines."),
        click.Option(["--traj-limitation"], type=int, default=-1, show_default=True,
                     help="Train on the first K whole episodes (-1: all of them)."),
        click.Option(["--no-check"], is_flag=True,
                     help="Train even on a dataset that `expertdata validate` rejects."),
        click.Option(["--overwrite"], is_flag=True, help="Replace OUT if it exists."),
    ]
    own = trainer_options(plugin)

    def callback(dataset: str, out: str, env_id: str | None, steps: int | None, log_interval: int,
                 traj_limitation: int, no_check: bool, overwrite: bool, **values: Any) -> None:
        plugins.require_torch()
        dataset_values = {name: values.pop(name) for name in plugin.dataset_options}
        config = plugin.config_class(**values)
        request = plugins.TrainRequest(Path(dataset), env_id, Path(out), traj_limitation, steps, log_interval,
                                       not no_check, dataset_values, overwrite=overwrite)
        summary = plugins.run(plugin, request, config)
        if not summary["saved"]:  # another MPI rank: rank 0 reports
            return
        if "eval_return_mean" in summary:
            click.echo(f"evaluated on {env_id}: return {summary['eval_return_mean']:.2f} +/- "
                       f"{summary['eval_return_std']:.2f} over {summary['eval_episodes']} episodes")
        click.echo(f"wrote {out}")

    return click.Command(plugin.name, params=common + own, callback=callback,
                         help=f"Train {plugin.name} on DATASET (any format): {plugin.summary}.",
                         short_help=plugin.summary, epilog=_example(plugin.example) if plugin.example else None)


def _example(command: str) -> str:
    """An epilog showing ``command`` as written (``\b`` keeps click from rewrapping it)."""
    return f"Example:\n\n\b\n  {command}"


class _Trainers(click.Group):
    """The installed trainers, found through their entry points when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(plugins.discover())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = plugins.discover().get(name)
        return command_for(found) if found is not None else None


@click.group(cls=_Trainers, invoke_without_command=True, short_help="Train a policy on a dataset (bc, gail, plugins).",
             epilog=_example(
    "expertdata train bc fixtures/pendulum.npz --env Pendulum-v1 --out pendulum-bc --n-epochs 300 "
    "--learning-rate 1e-3"))
@click.option("--list", "list_trainers", is_flag=True, help="List the installed trainers and their options.")
@click.pass_context
def train(ctx: click.Context, list_trainers: bool) -> None:
    """Train a policy on a dataset with an installed trainer (bc, gail, or a plugin)."""
    if ctx.invoked_subcommand is not None:
        return
    if not list_trainers:
        click.echo(ctx.get_help())
        return
    plugins.require_torch()
    for plugin in plugins.discover().values():
        click.echo(f"{plugin.name}: {plugin.summary}")
        for param in trainer_options(plugin):
            shown = param.show_default if isinstance(param.show_default, str) else param.default
            click.echo(f"    {param.opts[0]} ({param.type.name}, default {shown})")
