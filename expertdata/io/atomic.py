"""Writing to a temporary path beside the destination, then renaming: a failure leaves no output behind,
an input is never harmed, and of two writers racing for one new destination exactly one wins.

Temporary names carry the writer's process id (``.partial-<pid>-<tag>-<name>``), so the leftovers of a
process that was killed are recognised and removed by the next write to the same destination.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..core.errors import UsageError, WriteError

PARTIAL, REPLACED = ".partial", ".replaced"


def remove(path: Path) -> None:
    """Delete a file or a folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporaries that dead processes left while writing ``path``; returns them."""
    pattern = re.compile(rf"(?:{re.escape(PARTIAL)}|{re.escape(REPLACED)})-(\d+)-[0-9a-f]{{8}}-{re.escape(path.name)}")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            remove(entry)
            removed.append(entry)
    return removed


def temporary(path: Path, prefix: str = PARTIAL) -> Path:
    """A fresh temporary name beside ``path``, ending with its name so its suffix still names the format."""
    return path.with_name(f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


def final_name(temporary_path: Path, prefix: str = PARTIAL) -> str:
    """The name a ``temporary`` path will be renamed to."""
    name = temporary_path.name
    return name.split("-", 3)[3] if name.startswith(f"{prefix}-") and name.count("-") >= 3 else name


def check_destination(path: Path, inputs: Iterable[Path | str] = (), overwrite: bool = False,
                      replaceable: Callable[[Path], bool] | None = None) -> None:
    """Refuse, before anything is written, a destination that is an input, holds one or lies inside one (every
    command that writes passes here), or that ``overwrite`` would replace although it is a folder not of the kind
    written (``replaceable``), or one that holds the current directory."""
    target = path.resolve()
    for source in inputs:
        if "://" in str(source) or "::" in str(source):
            continue
        source = Path(source).resolve()
        if source == target or target in source.parents or source in target.parents:
            how = "is" if source == target else "holds" if target in source.parents else "lies inside"
            raise UsageError(f"{path} {how} the input {source}; write elsewhere")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass overwrite=True to replace it")
    if path.is_dir() and not path.is_symlink():
        if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
            raise UsageError(f"{path} holds the current directory; write elsewhere")
        if replaceable is None or not replaceable(path):
            raise UsageError(f"{path} is a folder that this would not have written; it is not replaced")


def _claim(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless something appeared there meanwhile (another writer)."""
    try:
        if tmp.is_dir():
            if path.exists() or path.is_symlink():
                raise FileExistsError(errno.EEXIST, "exists", str(path))
            os.rename(tmp, path)  # fails if a folder that is not empty, or a file, took the place meanwhile
        else:
            try:
                os.link(tmp, path)  # fails if anything took the place meanwhile
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
                if path.exists():  # a file system without hard links: the best left is to look first
                    raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
                os.replace(tmp, path)
                return
            os.unlink(tmp)
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        raise UsageError(f"{path} was created by another writer meanwhile; nothing was written") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise UsageError(f"{path} was created by another writer meanwhile; nothing was written") from exc
        raise


def replace(tmp: Path, path: Path) -> None:
    """Put ``tmp`` in the place of ``path``, which may exist: moved aside first (a folder cannot be
    renamed over, nor a file over a folder), then removed."""
    if path.exists() or path.is_symlink():
        old = temporary(path, REPLACED)
        os.replace(path, old)
        os.replace(tmp, path)
        remove(old)
    else:
        os.replace(tmp, path)


def write_error(path: Path, exc: OSError) -> WriteError:
    """A one-line error for an operating-system failure while writing ``path``."""
    cause = exc.strerror or str(exc)
    return WriteError(f"cannot write {path}: {cause}" + (f" ({exc.filename})" if exc.filename else ""))


@contextmanager
def destination(path: Path, overwrite: bool = False, inputs: Iterable[Path | str] = (),
                replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` into; on success it takes ``path``'s place (replacing it
    only with ``overwrite``), on any failure it goes. See ``check_destination`` for what is refused.

    A full disk, a read-only folder or a folder that cannot be created is a one-line ``WriteError``.
    """
    path = Path(path)
    check_destination(path, inputs, overwrite, replaceable)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    remove_stale(path)
    tmp = temporary(path)
    try:
        yield tmp
        if overwrite:
            replace(tmp, path)
        else:
            _claim(tmp, path)
    except OSError as exc:
        remove(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        remove(tmp)
        raise
