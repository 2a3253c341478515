"""The ``expertdata`` command line: each command parses its arguments, calls one library function, prints.

Errors of ours become a one-line message on stderr and the exit code the error carries (0 ok, 1 invalid
or mismatched, 2 unreadable or a bad call); never a traceback.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import numpy as np
from click.exceptions import NoArgsIsHelpError

from .core.errors import ExpertDataError, Terminated, printable
from .core.schema import shown
from .core.version import __version__
from .io import formats, network, remote
from .io.checking import validate as validate_dataset
from .io.remote import OPTIONS_VARIABLE
from .io.storage import convert as convert_dataset
from .io.storage import load
from .io.storage import verify as verify_digest
from .recording.experts import BUILTIN
from .recording.experts import resolve as resolve_expert
from .recording.recorder import generate_expert_traj
from .tools.info import as_text, table
from .tools.info import info as dataset_info

#: The option of every command that reads datasets: allow data from outside them.
TRUSTED = click.option("--trusted", is_flag=True, help="Read data from outside the dataset (HDF5 external links, "
                       "symbolic links): only for a file you trust.")


def cluster_options(command: Any) -> Any:
    """``--workers``, ``--scheduler`` and ``--scheduler-file``: spread the command's work over a Dask cluster."""
    for option in reversed([
        click.option("--workers", type=click.IntRange(min=1), metavar="N",
                     help="Spread the work over a local Dask cluster of N processes, one thread each (the [dask] "
                          "extra): blocks of whole episodes, the same result as one process."),
        click.option("--scheduler", metavar="ADDRESS", help="Spread the work over the Dask cluster whose scheduler is "
                     "at ADDRESS (tcp://host:8786); every worker must reach the paths given."),
        click.option("--scheduler-file", type=click.Path(), help="Spread the work over the Dask cluster that this "
                     "scheduler file describes (dask scheduler --scheduler-file F).")]):
        command = option(command)
    return command


def _on(options: dict[str, Any]) -> Any:
    """The cluster the options name (a context manager yielding a Dask client, or None)."""
    from .io.cluster import cluster

    return cluster(options.pop("workers", None), options.pop("scheduler", None), options.pop("scheduler_file", None))


def _example(*commands: str) -> str:
    """A help epilog showing ``commands`` as written (``\b`` keeps click from rewrapping them)."""
    return "Example:\n\n\b\n" + "\n".join(f"  {c}" for c in commands)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


#: Entry-point group through which other packages add commands (the trainers add ``train``).
COMMANDS_GROUP = "expertdata.commands"


class _Group(click.Group):
    """Turns our errors into one line and an exit code; adds the commands other packages contribute."""

    def _contributed(self) -> dict[str, Any]:
        return {entry.name: entry for entry in entry_points(group=COMMANDS_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._contributed()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        entry = self._contributed().get(name) if found is None else None
        return entry.load() if entry is not None else found

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run, turning errors of ours and click's usage errors into one line and an exit code; SIGTERM
        unwinds like Ctrl-C, so that nothing half-written is left."""
        signal.signal(signal.SIGTERM, _terminate)
        settings = (OPTIONS_VARIABLE, network.TIMEOUT_VARIABLE, network.REQUEST_TIMEOUT_VARIABLE)
        before = {name: os.environ.get(name) for name in settings}  # the options set them for this command only
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ExpertDataError as exc:
            click.echo(f"expertdata: error: {exc.for_command_line()}", err=True)
            sys.exit(exc.exit_code)
        except NoArgsIsHelpError as exc:  # a bare command: its help, as asked
            click.echo(exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"expertdata: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"expertdata: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            click.echo("expertdata: interrupted", err=True)
            _leave(130)
        except Terminated:
            click.echo("expertdata: terminated", err=True)
            _leave(Terminated.exit_code)
        except Exception as exc:  # a bug of ours, not the input's: still one line (EXPERTDATA_DEBUG=1 shows where)
            if os.environ.get("EXPERTDATA_DEBUG"):
                raise
            detail = printable(str(exc).splitlines()[0] if str(exc) else "")
            click.echo(f"expertdata: error: internal error, {type(exc).__name__}: {detail[:300]} (please report it; "
                       "EXPERTDATA_DEBUG=1 shows the traceback)", err=True)
            sys.exit(2)
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        sys.exit(code if isinstance(code, int) else 0)


def _leave(code: int) -> None:
    """Exit after an interruption, once everything has unwound (temporaries removed): at once, so that storage
    libraries' background threads (zarr's event loop) do not report the reads they had pending at exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="expertdata")
@click.option("--storage-options", metavar="JSON",
              help='For datasets named by URL (s3://, https://, hf://, ...): fsspec\'s options as a JSON object, '
                   'such as \'{"anon": true}\' or \'{"endpoint_url": "http://localhost:9000"}\' (also '
                   'EXPERTDATA_STORAGE_OPTIONS).')
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"For datasets named by URL: how long a connection may take to open or stay silent (default "
                   f"{network.TIMEOUT:g}; also {network.TIMEOUT_VARIABLE}).")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"For datasets named by URL: how long one request may take in all, a server that trickles bytes "
                   f"included (default {network.REQUEST_TIMEOUT:g}; also {network.REQUEST_TIMEOUT_VARIABLE}).")
def main(storage_options: str | None, timeout: float | None, request_timeout: float | None) -> None:
    """Expert demonstrations (.npz, HDF5, Zarr; local or where they live): validate, convert, inspect, record,
    plot, train."""
    if storage_options is not None:
        remote.parse_storage_options(storage_options)  # refuses what is not a JSON object, in one line
        os.environ[OPTIONS_VARIABLE] = storage_options
    for variable, value in ((network.TIMEOUT_VARIABLE, timeout), (network.REQUEST_TIMEOUT_VARIABLE, request_timeout)):
        if value is not None:
            os.environ[variable] = str(value)


@main.command(short_help="Check a dataset against every rule.",
              epilog=_example("expertdata validate fixtures/pendulum.npz", "expertdata validate data.zarr --json"))
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, one object per problem.")
@TRUSTED
@cluster_options
def validate(path: str, as_json: bool, trusted: bool, **where: Any) -> None:
    """Check PATH against every rule; exit 0 if valid, 1 if invalid, 2 if unreadable. On a cluster, each field's
    values are checked by a worker; the content digest is one pass of this process."""
    with _on(where) as client:
        report = validate_dataset(path, trusted=trusted, client=client)
    if as_json:
        click.echo(json.dumps({"path": path, "valid": report.ok, "exit_code": report.exit_code,
                               "problems": [p.to_json() for p in report.problems]}, indent=2))
    else:
        for problem in report.problems:
            click.echo(f"{path}: {problem.rule.severity}: {problem.one_line()}", err=problem.rule.severity == "error")
        errors, warnings = len(report.errors), len(report.warnings)
        verdict = "unreadable" if report.unreadable else ("valid" if report.ok else "invalid")
        click.echo(f"{path}: {verdict} ({errors} errors, {warnings} warnings)")
    sys.exit(report.exit_code)


@main.command(short_help="Convert a dataset to another format, losslessly.",
              epilog=_example("expertdata convert fixtures/pendulum.npz pendulum.zarr",
                              "expertdata convert data.h5 first10.npz --traj-limitation 10"))
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--to", "--format", "fmt", type=click.Choice(formats.names()),
              help="Format of DST (default: from its suffix); peer formats are listed by `expertdata formats`.")
@click.option("--from", "source_format", type=click.Choice(formats.names()),
              help="Format of SRC (default: told from its content).")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option("--compression", help="none, gzip[:level], lzf (HDF5), zstd[:level] (Zarr), deflate (npz).")
@click.option("--chunk-rows", type=click.IntRange(min=1), help="Rows per chunk (default: about 8 MB a chunk).")
@click.option("--traj-limitation", type=int, default=-1, show_default=True,
              help="Keep only the first K whole episodes (-1: all).")
@click.option("--zarr-format", type=click.Choice(["2", "3"]), default="3", show_default=True,
              help="Zarr's format version, for .zarr and .zarr.zip (2 for tools that read only version 2).")
@click.option("--fill-rewards", type=float, metavar="VALUE",
              help="For demonstrations without rewards written to a format that needs them (.npz, d4rl, minari): "
                   "the reward of every step.")
@click.option("--strict", is_flag=True, help="Refuse SRC where reading it would skip something (W108: a peer's "
                                              "videos with files missing, say) rather than convert the rest.")
@TRUSTED
@cluster_options
def convert(src: str, dst: str, fmt: str | None, source_format: str | None, overwrite: bool,
            compression: str | None, chunk_rows: int | None, traj_limitation: int, zarr_format: str,
            fill_rewards: float | None, strict: bool, trusted: bool, **where: Any) -> None:
    """Convert SRC to DST losslessly, atomically, checking the content digest on both sides.

    On a cluster, workers read blocks of whole episodes (a peer format's episode files themselves) and write a Zarr
    DST's chunks in place, also where it lives (s3://...: its root metadata is written last, by this process); HDF5
    and .npz cannot be written in parallel: the workers write Zarr parts beside DST, from which this process writes
    it."""
    with _on(where) as client:
        result = convert_dataset(src, dst, format=fmt, overwrite=overwrite, traj_limitation=traj_limitation,
                                 options=formats.WriteOptions(chunk_rows, compression, zarr_format=int(zarr_format)),
                                 progress=True, trusted=trusted, source_format=source_format,
                                 fill_rewards=fill_rewards, strict=strict, client=client)
    for note in result.notes:
        click.echo(f"note: {printable(note)}", err=True)
    click.echo(f"wrote {result.path} ({result.format}), digest {result.digest}")


@main.command("formats", short_help="List every format: ours and the peer formats.",
              epilog=_example("expertdata formats"))
def formats_command() -> None:
    """List every format that convert reads and writes, with what it keeps and loses."""
    click.echo(table([("format", "kind", "suffixes", "what it keeps and loses")] +
                      [(b.name, "peer" if b.capabilities.exports else "ours",
                        " ".join(getattr(b, "suffixes", ())) or "-", b.summary) for b in formats.every()]))


@main.command(short_help="Summarise a dataset: counts, returns, spaces, storage.",
              epilog=_example("expertdata info fixtures/pendulum.npz", "expertdata info data.zarr --json --no-digest"))
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-digest", is_flag=True, help="Skip the content digest (it reads every value).")
@click.option("--episodes", "per_episode", is_flag=True,
              help="Print one row per episode instead: its first row, length, return, flags and per-episode fields "
                   "(task, seed, digest).")
@TRUSTED
def info(path: str, as_json: bool, no_digest: bool, per_episode: bool, trusted: bool) -> None:
    """Summarise the dataset at PATH: counts, returns, spaces, fields and storage."""
    if per_episode:
        with load(path, trusted=trusted) as dataset:
            rows = dataset.episode_table().map(lambda v: printable(v) if isinstance(v, str) else v)
        click.echo(rows.to_json(orient="records", indent=2) if as_json else rows.to_string(index=False))
        return
    summary = dataset_info(path, with_digest=not no_digest, trusted=trusted)
    click.echo(json.dumps(summary, indent=2) if as_json else as_text(path, summary))


@main.command(short_help="Check a dataset against the digest its sender published.",
              epilog=_example("expertdata verify received.zarr --digest blake3:645ada65...",
                              "expertdata verify partial.zarr --digest blake3:645ada65... --episodes 0-9"))
@click.argument("path", type=click.Path())
@click.option("--digest", "expected", required=True, help="The digest the sender published (blake3:...).")
@click.option("--episodes", help="Check only these episodes (0-9,20), against the per-episode digests recorded "
                                 "with the digest.")
@TRUSTED
@cluster_options
def verify(path: str, expected: str, episodes: str | None, trusted: bool, **where: Any) -> None:
    """Check that PATH holds exactly the content whose digest is given; exit 0 if so, 1 if not (naming the
    episodes that differ). On a cluster, workers hash the episodes."""
    with _on(where) as client:
        click.echo(f"{path}: OK, digest {verify_digest(path, expected, trusted, episodes, client)}")


@main.command(short_help="Show or edit a dataset's card: licence, authors, description, citation.",
              epilog=_example("expertdata card data.zarr",
                              "expertdata card data.zarr --license CC-BY-4.0 --author 'A. Lab' --tag cartpole"))
@click.argument("path", type=click.Path())
@click.option("--license", "license_", metavar="SPDX", help="The licence: an SPDX expression (MIT, CC-BY-4.0, ...).")
@click.option("--author", "authors", multiple=True, help="An author (repeat for several; replaces the list).")
@click.option("--description", help="What the dataset holds and how it was made.")
@click.option("--task", help="The task the demonstrations show.")
@click.option("--citation", help="How to cite it (BibTeX).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for several; replaces the list).")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
@TRUSTED
def card(path: str, license_: str | None, authors: tuple[str, ...], description: str | None, task: str | None,
         citation: str | None, tags: tuple[str, ...], as_json: bool, trusted: bool) -> None:
    """Show PATH's card; with options, change it: the dataset is rewritten beside itself with the new card and
    takes its place (its content digest is unchanged), and its README.md (Hugging Face's card form) is
    rewritten."""
    from .io.storage import edit_card, read_card

    changes = {"license": license_, "authors": list(authors) or None, "description": description, "task": task,
               "citation": citation, "tags": list(tags) or None}
    if any(v is not None for v in changes.values()):
        shown_card = edit_card(path, trusted=trusted, **changes)
    else:
        with load(path, trusted=trusted) as dataset:
            shown_card = dataset.metadata.get("card")
        if shown_card is None and not remote.is_url(path):
            shown_card = read_card(Path(path))
    if as_json:
        click.echo(json.dumps(shown_card or {}, indent=2))
        return
    if not shown_card:
        click.echo(f"{path}: no card (expertdata card {path} --license SPDX-ID --author NAME ...)")
        return
    click.echo(table([(key, ", ".join(value) if isinstance(value, list) else value)
                       for key, value in shown_card.items()]))


@main.command(short_help="Compare two datasets: content, episodes and metadata.",
              epilog=_example("expertdata diff sent.zarr received.h5"))
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@TRUSTED
def diff(a: str, b: str, as_json: bool, trusted: bool) -> None:
    """Compare A and B (any formats): identical content, or which episodes are only in one, which changed
    (which fields, and by how much), and which metadata differs. Exit 0 when equal, 1 when they differ."""
    from .tools.diff import diff as compare

    with load(a, trusted=trusted) as first, load(b, trusted=trusted) as second:
        result = compare(first, second)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in _diff_lines(a, b, result):
            click.echo(printable(line))
    sys.exit(0 if result.identical else 1)


def _numbers(values: list[int]) -> str:
    return ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")


def _diff_lines(a: str, b: str, result: Any) -> list[str]:
    lines = [f"A: {a} ({result.episodes[0]} episodes, {result.digests[0]})",
             f"B: {b} ({result.episodes[1]} episodes, {result.digests[1]})"]
    if result.identical:
        return lines + ["identical content" + (" (metadata differs: " + ", ".join(result.metadata) + ")"
                                               if result.metadata else "")]
    lines.append("content differs")
    if result.only_a:
        lines.append(f"episodes only in A: {len(result.only_a)} ({_numbers(result.only_a)})")
    if result.only_b:
        lines.append(f"episodes only in B: {len(result.only_b)} ({_numbers(result.only_b)})")
    if result.moved:
        lines.append(f"episodes in both at other positions: {result.moved}")
    if result.n_changed:
        lines.append(f"episodes changed: {result.n_changed}" + (f" (the first {len(result.changed)} shown)"
                                                                if result.n_changed > len(result.changed) else ""))
    for change in result.changed:
        fields = ", ".join(f"{shown(k)[1:-1]}" + (f" (largest difference {v:.6g})" if v is not None else "")
                           for k, v in change.fields.items())
        lines.append(f"  episode {change.episode}: {fields}")
    for key, (mine, theirs) in result.metadata.items():
        lines.append(f"metadata {key}: {json.dumps(mine)[:100]} (A) vs {json.dumps(theirs)[:100]} (B)")
    return lines


@main.command(short_help="Write chosen episodes of a dataset to a new one.",
              epilog=_example("expertdata select data.zarr best.zarr --min-return 450",
                              "expertdata select data.h5 part.npz --episodes 0-9,20 --max-length 200"))
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--episodes", help="Episode numbers and inclusive ranges: 0-9,20.")
@click.option("--min-return", type=float, help="Keep episodes whose return is at least this.")
@click.option("--max-return", type=float, help="Keep episodes whose return is at most this.")
@click.option("--min-length", type=click.IntRange(min=0), help="Keep episodes of at least this many steps.")
@click.option("--max-length", type=click.IntRange(min=0), help="Keep episodes of at most this many steps.")
@click.option("--split", help="Keep the episodes of this named split (robomimic's masks).")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@TRUSTED
@cluster_options
def select(src: str, dst: str, episodes: str | None, min_return: float | None, max_return: float | None,
           min_length: int | None, max_length: int | None, split: str | None, overwrite: bool, trusted: bool,
           **where: Any) -> None:
    """Write the episodes of SRC that meet every criterion to DST (any format); DST's lineage records SRC's
    digest and the criteria."""
    from .io.storage import select as select_episodes

    with _on(where) as client:
        result = select_episodes(src, dst, overwrite=overwrite, progress=True, trusted=trusted, episodes=episodes,
                                 min_return=min_return, max_return=max_return, min_length=min_length,
                                 max_length=max_length, split=split, client=client)
    click.echo(f"wrote {result.path} ({result.format}), digest {result.digest}")


@main.command(short_help="Write several datasets' episodes, one after another, to a new one.",
              epilog=_example("expertdata merge monday.zarr tuesday.h5 week.zarr"))
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace the destination if it exists.")
@TRUSTED
@cluster_options
def merge(paths: tuple[str, ...], overwrite: bool, trusted: bool, **where: Any) -> None:
    """Merge the datasets SRC... into DST (the last path): their spaces and fields must match. DST's lineage
    records each parent's digest."""
    from .io.storage import merge as merge_datasets

    if len(paths) < 3:
        raise click.UsageError("give two or more datasets and the destination: merge A B DST")
    with _on(where) as client:
        result = merge_datasets(paths[:-1], paths[-1], overwrite=overwrite, progress=True, trusted=trusted,
                                client=client)
    click.echo(f"wrote {result.path} ({result.format}), digest {result.digest}")


@main.command(short_help="Record an expert's episodes in a gymnasium env.",
              epilog=_example("expertdata record Pendulum-v1 --expert pendulum --episodes 10 --out pendulum.zarr",
                              "expertdata record CartPole-v1 --expert mypackage.experts:policy --out more.h5 --append"))
@click.argument("env_id")
@click.option("--expert", required=True,
              help=f"A built-in expert ({', '.join(BUILTIN)}) or an importable module:callable (obs -> action).")
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many episodes to record.")
@click.option("--out", "out", type=click.Path(), required=True, help="The dataset to write (.npz, .h5, .zarr, ...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode i starts from reset(seed=SEED + i).")
@click.option("--num-envs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Record on K sub-envs of a vector env at once (same data as K=1).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--append", is_flag=True, help="Add the episodes to OUT (same env and spaces).")
@click.option("--image-folder", default="recorded_images", show_default=True,
              help="For image observations saved to .npz: where the PNG files go, relative to OUT.")
@cluster_options
def record(env_id: str, expert: str, episodes: int, out: str, seed: int, num_envs: int, overwrite: bool,
           append: bool, image_folder: str, **where: Any) -> None:
    """Record EPISODES episodes of an expert acting in ENV_ID into OUT. On a cluster, each worker records a block
    of seeds with an env of its own: the same episodes as one process, in the same order."""
    env: Any = env_id
    if num_envs > 1:
        from .recording.envs import make_vec

        env = make_vec(env_id, num_envs)
    try:
        with _on(where) as client:
            dataset = generate_expert_traj(resolve_expert(expert), out, env, n_episodes=episodes,
                                           image_folder=image_folder, seed=seed, overwrite=overwrite, append=append,
                                           progress=True, client=client)
    except (KeyboardInterrupt, Terminated) as exc:
        click.echo(f"expertdata: interrupted; {getattr(exc, 'recording_note', 'nothing was written')}", err=True)
        _leave(exc.exit_code if isinstance(exc, Terminated) else 130)
    with dataset:
        returns = np.asarray(dataset["episode_returns"][:])
        click.echo(f"wrote {out}: {dataset.n_episodes} episodes, {dataset.n_transitions} transitions, "
                   f"return {returns.mean():.2f} +/- {returns.std():.2f}")


@main.command(short_help="Plot returns, lengths, actions and observations of datasets.",
              epilog=_example("expertdata plot fixtures/pendulum.npz --out pendulum.png",
                              "expertdata plot ours.zarr theirs.h5 --out compare.svg"))
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(), required=True,
              help="The figure to write: .png, .jpg, .svg or .pdf (never a dataset plotted, nor a folder).")
@TRUSTED
def plot(paths: tuple[str, ...], out: str, trusted: bool) -> None:
    """Plot returns, lengths, actions and observation ranges of one or more datasets, overlaid."""
    from contextlib import ExitStack

    from .tools.plotting import plot as plot_datasets

    with ExitStack() as stack:
        datasets = [stack.enter_context(load(p, trusted=trusted)) for p in paths]
        plot_datasets(datasets, out)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
