"""Exceptions for users: one line each, naming the file, the field and what to do.

Every error carries the exit code the CLI returns for it, so the CLI never has to guess.
"""
from __future__ import annotations

import re

#: How the command line names the Python arguments that error messages mention.
CLI_NAMES = {"overwrite=True": "--overwrite", "append=True": "--append", "trusted=True": "--trusted",
             "check=False": "--no-check", "format=NAME": "--format NAME", "traj_limitation=": "--traj-limitation ",
             "n_episodes=": "--episodes "}


#: Characters that could move a terminal's cursor, set its title or split a message over lines: control
#: characters, and the invisible ones that reorder text.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``): safe to print on one line, whatever
    a file put in it."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


class ExpertDataError(Exception):
    """Base of every error this package raises on purpose, one printable line (control characters from a
    file are escaped). Messages name Python arguments (``overwrite=True``); ``for_command_line`` names the
    options instead (``--overwrite``).

    ``rule``: the validation rule (``expertdata.core.schema.RULES``) a report gives a dataset that raised it.
    """

    exit_code = 2
    rule = "unreadable"

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(printable(message), *args)

    def for_command_line(self) -> str:
        message = str(self)
        for python, option in CLI_NAMES.items():
            message = message.replace(python, option)
        return message


class UnreadableError(ExpertDataError):
    """The path is missing, truncated, corrupt, or not a dataset in a format we know (exit 2)."""

    exit_code = 2


class CountMismatchError(UnreadableError):
    """A count that a peer's metadata declares (rows, frames, shards, samples, episode ids) differs from what is
    stored (``E018``; exit 2)."""

    rule = "count-mismatch"


class EpisodeIdClashError(UnreadableError):
    """Two stored names give one episode the same number (``E019``; exit 2)."""

    rule = "episode-id-clash"


class UsageError(ExpertDataError):
    """The call itself is wrong: a bad option, an existing destination without overwrite (exit 2)."""

    exit_code = 2


class InvalidDatasetError(ExpertDataError):
    """The file was read, but its content breaks the schema (exit 1).

    :param problems: every problem found (``expertdata.core.rules.Problem``), not only the first.
    """

    exit_code = 1

    def __init__(self, message: str, problems: tuple = ()) -> None:  # noqa: D107
        super().__init__(message)
        self.problems = problems


class OutsideError(InvalidDatasetError):
    """A dataset would have its data read from outside it, or through a link (``E015``; exit 1): refused unless
    the dataset is trusted."""

    rule = "outside-reference"


class DigestMismatchError(ExpertDataError):
    """Two digests that must agree do not (exit 1)."""

    exit_code = 1


class WriteError(ExpertDataError):
    """The destination cannot be written: a full disk, a read-only folder, a folder that cannot be created
    (exit 2). Nothing is left behind."""

    exit_code = 2


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread (by the command line's handler) so that every temporary
    output is removed on the way out, as for Ctrl-C. Not an ``Exception``: nothing swallows it."""

    exit_code = 143
