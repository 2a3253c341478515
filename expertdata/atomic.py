"""Write to a temporary path beside the destination, then rename: a failure leaves no output behind."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UsageError


def remove(path: Path) -> None:
    """Delete a file or a folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def destination(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` into; on success it replaces ``path``, on failure it goes.

    The temporary name ends with the destination's own name, so its suffix still names the format.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = path.with_name(f".partial-{tag}-{path.name}")
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    if path.exists():  # moved aside first: a folder cannot be renamed over, nor a file over a folder
        old = path.with_name(f".replaced-{tag}-{path.name}")
        os.replace(path, old)
        os.replace(tmp, path)
        remove(old)
    else:
        os.replace(tmp, path)
