"""The one way a reader touches a file: inside its dataset, a plain file, bounded, every failure one line.

Every reader opens what it reads through a ``Scope`` (the dataset's path, and whether it is trusted):

- **Inside, without links.** A path below the dataset's root is walked component by component without following
  symbolic links (``O_NOFOLLOW`` from the root down): a link anywhere, out of the dataset or inside it, is refused
  (``E015``) unless the dataset is trusted. The root itself is the user's own choice and may be a link.
- **Plain files only.** FIFOs, devices and sockets are refused even when trusted: opening a FIFO waits for a
  writer for ever. Files are opened non-blocking, then checked with ``fstat`` before a byte is read.
- **Bounded.** Metadata (JSON, JSON lines, YAML, cards) is read up to a size limit and refused if larger, and
  parsed with a nesting limit; YAML aliases (the billion laughs) are refused.
- **One line.** Whatever a storage library raises while a file is read (h5py, zarr, numcodecs, pyarrow, PyAV,
  pillow, protobuf, PyYAML, json, or ``MemoryError``) becomes an ``UnreadableError`` naming the file
  (``one_line``, ``reading``).

Libraries that insist on a path (h5py, PyAV, pyarrow's memory maps) get one that ``Scope.file`` checked; the
check and the open are then two steps, so a dataset rewritten by someone else between them is out of reach of
this promise (``docs/security.md``).
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterator

import numpy as np

from .errors import ExpertDataError, OutsideError, UnreadableError, printable
from .schema import MAX_METADATA_BYTES, MAX_METADATA_DEPTH

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def one_line(label: Any, exc: BaseException) -> ExpertDataError:
    """``exc``, whatever library raised it, as one ``UnreadableError`` line naming ``label`` (errors of ours pass
    through as they are)."""
    if isinstance(exc, ExpertDataError):
        return exc
    if isinstance(exc, MemoryError):
        why = "reading it would need more memory than this machine has (a header claiming too much?)"
    elif isinstance(exc, RecursionError):
        why = "it nests too deeply to read"
    else:
        text = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {text[0][:300] if text else 'no detail'}"
    return UnreadableError(f"{label}: cannot read: {why}")


@contextmanager
def reading(label: Any) -> Iterator[None]:
    """Turn anything a library raises inside the block into one line naming ``label``."""
    try:
        yield
    except Exception as exc:  # every storage library reports damage with its own exception types
        raise one_line(label, exc) from None


def _kind(mode: int) -> str:
    return next((name for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                                         (stat.S_ISDIR, "a folder")) if test(mode)), "not a plain file")


class Scope:
    """The files of one dataset: ``root`` (a folder, or a single file) and whether links may be followed.

    Paths given to its methods are either relative to ``root`` or below it; a name that climbs out of it
    (``..``, an absolute path elsewhere) is refused whether or not the dataset is trusted.
    """

    def __init__(self, root: Path | str, trusted: bool = False) -> None:
        self.root, self.trusted = Path(root), trusted

    def relative(self, path: Path | str) -> PurePosixPath:
        """``path`` as parts below the root; a path that leaves the root by name is refused."""
        path = Path(path)
        if path.is_absolute() or path.parts[:len(self.root.parts)] == self.root.parts:
            try:
                path = path.relative_to(self.root)
            except ValueError:
                raise OutsideError(f"{self.root}: {printable(str(path))} lies outside the dataset") from None
        parts = PurePosixPath(path.as_posix()).parts
        if any(p in ("..", "") for p in parts) or path.is_absolute():
            raise OutsideError(f"{self.root}: {printable(str(path))} leads out of the dataset's folder")
        return PurePosixPath(*parts) if parts else PurePosixPath(".")

    def _open(self, path: Path | str, want_dir: bool) -> int:
        """A descriptor of ``path``, walked from the root without following links (unless trusted)."""
        parts = [p for p in self.relative(path).parts if p != "."]
        shown = self.root.joinpath(*parts)
        follow = 0 if self.trusted else _NOFOLLOW
        flags = os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.root, flags | (_DIRECTORY if parts else 0))
        except OSError as exc:
            raise _failure(self.root, exc) from None
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    child = os.open(part, flags | follow | (_DIRECTORY if not last or want_dir else 0), dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.EMLINK) or (exc.errno == errno.ENOTDIR and os.path.islink(
                            self.root.joinpath(*parts[:i + 1]))):
                        target = os.path.realpath(self.root.joinpath(*parts[:i + 1]))
                        raise OutsideError(f"{shown}: E015 outside-reference: {printable('/'.join(parts[:i + 1]))} "
                                           f"is a symbolic link (to {printable(target)}); links are not followed "
                                           "unless the dataset is trusted (trusted=True)") from None
                    raise _failure(shown, exc) from None
                os.close(fd)
                fd = child
            mode = os.fstat(fd).st_mode
            if want_dir and not stat.S_ISDIR(mode) or not want_dir and not stat.S_ISREG(mode):
                raise UnreadableError(f"{shown}: {_kind(mode) if not want_dir else 'not a folder'}; "
                                      f"{'a folder' if want_dir else 'a plain file'} is read")
            return fd
        except BaseException:
            os.close(fd)
            raise

    def file(self, path: Path | str = ".") -> Path:
        """``path`` (below the root, or the root itself), once checked to be a plain file reached without links,
        for libraries that open files by name."""
        os.close(self._open(path, want_dir=False))
        return self.root.joinpath(*[p for p in self.relative(path).parts if p != "."])

    def folder(self, path: Path | str = ".") -> Path:
        """``path``, once checked to be a folder reached without links."""
        os.close(self._open(path, want_dir=True))
        return self.root.joinpath(*[p for p in self.relative(path).parts if p != "."])

    def exists(self, path: Path | str) -> bool:
        """Whether anything (a link included) is at ``path`` below the root."""
        return os.path.lexists(self.root.joinpath(*self.relative(path).parts))

    def is_file(self, path: Path | str) -> bool:
        """Whether ``path`` is there, as anything but a folder (a link or a FIFO is a file that ``open`` refuses)."""
        where = self.root.joinpath(*self.relative(path).parts)
        return os.path.lexists(where) and not (where.is_dir() and not where.is_symlink())

    def open(self, path: Path | str = ".") -> BinaryIO:
        """``path`` opened for reading, a plain file reached without links."""
        fd = self._open(path, want_dir=False)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def read_bytes(self, path: Path | str = ".", limit: int = MAX_METADATA_BYTES) -> bytes:
        """The bytes of ``path``, refused unread when it holds more than ``limit``."""
        with self.open(path) as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise UnreadableError(f"{self.root.joinpath(*self.relative(path).parts)}: {max(size, len(data)):,} bytes; "
                                  f"at most {limit:,} are read")
        return data

    def read_text(self, path: Path | str = ".", limit: int = MAX_METADATA_BYTES) -> str:
        return self.read_bytes(path, limit).decode("utf-8", errors="replace")

    def json(self, path: Path | str = ".", limit: int = MAX_METADATA_BYTES) -> Any:
        """``path`` parsed as JSON (``Infinity`` allowed, as Minari writes it), within the size and depth limits."""
        return parse_json(self.read_text(path, limit), self.root.joinpath(*self.relative(path).parts))

    def json_lines(self, path: Path | str, limit: int = MAX_METADATA_BYTES) -> list[Any]:
        """Each non-empty line of ``path`` parsed as JSON."""
        where = self.root.joinpath(*self.relative(path).parts)
        return [parse_json(line, f"{where}, line {n}") for n, line in
                enumerate(self.read_text(path, limit).splitlines(), 1) if line.strip()]

    def entries(self, folder: Path | str = ".") -> list[Path]:
        """The entries of ``folder`` (reached without links), sorted by name; entries that are links are listed
        (``file`` and ``open`` refuse them)."""
        fd = self._open(folder, want_dir=True)
        try:
            names = sorted(os.listdir(fd))
        finally:
            os.close(fd)
        base = self.root.joinpath(*[p for p in self.relative(folder).parts if p != "."])
        return [base / name for name in names]

    def files(self, folder: Path | str, suffix: str, depth: int = 4) -> list[Path]:
        """Every file under ``folder`` whose name ends with ``suffix``, sorted, at most ``depth`` folders down; a
        link among them is refused (unless trusted: then it is listed)."""
        found = []
        for entry in self.entries(folder):
            if entry.is_symlink() and not self.trusted:
                self.file(entry)  # raises E015
            if entry.is_dir():
                if depth > 0:
                    found += self.files(entry, suffix, depth - 1)
            elif entry.name.endswith(suffix):
                found.append(entry)
        return sorted(found)


def _failure(path: Path, exc: OSError) -> UnreadableError:
    if exc.errno == errno.ENOENT:
        return UnreadableError(f"{path}: no such file or folder")
    if exc.errno == errno.ENOTDIR:
        return UnreadableError(f"{path}: a file stands where a folder is expected")
    return UnreadableError(f"{path}: cannot open ({exc.strerror or exc})")


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """How deeply JSON text nests, from its brackets outside strings, before it is parsed (parsing text nested
    deeper than Python's stack raises ``RecursionError``)."""
    brackets = np.frombuffer(_STRINGS.sub("", text).encode("utf-8", "replace"), np.uint8)
    steps = (np.isin(brackets, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(brackets, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(steps).max(initial=0))


def parse_json(text: Any, label: Any, limit: int = MAX_METADATA_BYTES, depth: int = MAX_METADATA_DEPTH) -> Any:
    """JSON text parsed, refused in one line when larger or deeper than the limits, or not JSON."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    text = str(text)
    if len(text) > limit:
        raise UnreadableError(f"{label}: {len(text):,} characters of metadata; at most {limit:,} are read")
    if json_depth(text) > depth:
        raise UnreadableError(f"{label}: metadata nests deeper than {depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnreadableError(f"{label}: not valid JSON ({printable(str(exc))[:200]})") from None


def parse_yaml(text: str, label: Any, limit: int = MAX_METADATA_BYTES, depth: int = MAX_METADATA_DEPTH) -> Any:
    """YAML text parsed safely: no objects, no aliases (each could multiply what a few bytes say), at most ``depth``
    levels, at most ``limit`` characters."""
    import yaml

    if len(text) > limit:
        raise UnreadableError(f"{label}: {len(text):,} characters of YAML; at most {limit:,} are read")

    class Loader(yaml.SafeLoader):
        level = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("aliases (*name) are not read")
            Loader.level += 1
            try:
                if Loader.level > depth:
                    raise yaml.YAMLError(f"it nests deeper than {depth} levels")
                return super().compose_node(parent, index)
            finally:
                Loader.level -= 1

    try:
        return yaml.load(io.StringIO(text), Loader=Loader)  # noqa: S506 (a SafeLoader, stricter still)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UnreadableError(f"{label}: not readable YAML ({printable(first)})") from None
