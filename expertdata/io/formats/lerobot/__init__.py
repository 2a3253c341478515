"""LeRobot datasets (Hugging Face's robot-learning format): 2.1 and 3.0 read (``reader``), 3.0 written
(``writer``), video features decoded and encoded with PyAV (``video``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import Capabilities
from ..peer import Peer
from . import reader, writer


def export(dataset: Any, metadata: dict, path: Path, options: Any) -> list[str]:
    """``writer.export`` at the codec and level ``options`` ask of this backend."""
    return writer.export(dataset, metadata, path, *options.codec(BACKEND))


BACKEND = Peer("lerobot", "LeRobot datasets (a dataset folder): 2.1 and 3.0 read, 3.0 written. observation.* become "
               "the observation (a Dict where several), video features decoded with PyAV (written losslessly by "
               "default), tasks kept as text, no rewards unless next.reward. Needs the [robot] extra.",
               reader.sniff, reader.read, export, {"lossless": None, "h264": (0, 51), "av1": (0, 63)}, "lossless",
               capabilities=Capabilities(exports=True, lossy=("h264", "av1"), selective=True))
