"""Image observations stored as SB2 stored them: paths, relative to the dataset's folder, to image files."""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable

import numpy as np


def escapes(path: str) -> bool:
    """True when ``path`` is absolute or leaves the folder it is relative to."""
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(path).is_absolute() or PureWindowsPath(path).drive:
        return True
    depth = 0
    for part in posix.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def resolve(root: Path, path: str) -> Path:
    """The file a relative image path names; call ``escapes`` first."""
    return root / PurePosixPath(path.replace("\\", "/"))


def through_link(root: Path, path: str) -> bool:
    """True when a relative path that stays in ``root`` by name leaves it through a symbolic link."""
    base = os.path.realpath(root)
    return os.path.commonpath([base, os.path.realpath(resolve(root, path))]) != base


def copy_images(paths: Iterable[str], src_root: Path, dst_root: Path) -> list[Path]:
    """Copy the image files ``paths`` name from one dataset folder to another, keeping relative paths.

    Files already at the destination with the same size are left alone. Returns the files written, so
    a failed conversion can remove exactly those.
    """
    written = []
    if src_root.resolve() == dst_root.resolve():
        return written
    for path in sorted(set(paths)):
        src, dst = resolve(src_root, path), resolve(dst_root, path)
        if dst.exists() and dst.stat().st_size == src.stat().st_size:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written


def write_png(path: Path, frame: np.ndarray) -> None:
    """Write a uint8 frame (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as a lossless PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame[..., 0] if frame.ndim == 3 and frame.shape[-1] == 1 else frame).save(path, format="PNG")


def read_image(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode an image file to uint8, reshaped to ``shape`` (a single channel keeps its axis if asked)."""
    from PIL import Image

    with Image.open(path) as image:
        frame = np.asarray(image)
    return frame.reshape(shape) if shape is not None else frame
