"""Exceptions for users: one line each, naming the file, the field and what to do.

Every error carries the exit code the CLI returns for it, so the CLI never has to guess.
"""
from __future__ import annotations


#: How the command line names the Python arguments that error messages mention.
CLI_NAMES = {"overwrite=True": "--overwrite", "append=True": "--append", "trusted=True": "--trusted",
             "check=False": "--no-check", "format=NAME": "--format NAME", "traj_limitation=": "--traj-limitation ",
             "n_episodes=": "--episodes "}


class ExpertDataError(Exception):
    """Base of every error this package raises on purpose. Messages name Python arguments
    (``overwrite=True``); ``for_command_line`` names the options instead (``--overwrite``)."""

    exit_code = 2

    def for_command_line(self) -> str:
        message = str(self)
        for python, option in CLI_NAMES.items():
            message = message.replace(python, option)
        return message


class UnreadableError(ExpertDataError):
    """The path is missing, truncated, corrupt, or not a dataset in a format we know (exit 2)."""

    exit_code = 2


class UsageError(ExpertDataError):
    """The call itself is wrong: a bad option, an existing destination without overwrite (exit 2)."""

    exit_code = 2


class InvalidDatasetError(ExpertDataError):
    """The file was read, but its content breaks the schema (exit 1).

    :param problems: every problem found (``expertdata.validation.Problem``), not only the first.
    """

    exit_code = 1

    def __init__(self, message: str, problems: tuple = ()) -> None:
        super().__init__(message)
        self.problems = problems


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
