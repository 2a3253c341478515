"""LeRobot's video features: frames decoded with PyAV as rows are read (``VideoFrames``), and encoded into mp4
(``encode``) with one of ``VIDEO_CODECS``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ....core import guard
from ....core.arrays import LazyRows, iter_blocks
from ....core.errors import CountMismatchError, UnreadableError, UsageError

#: Threads a decoder may use: unset or 0, ffmpeg's choice (frame and slice threads over every core); a number, that
#: many. A local cluster's workers decode with their share of the cores each (``expertdata.io.cluster``).
DECODE_THREADS_VARIABLE = "EXPERTDATA_DECODE_THREADS"
#: Video codecs offered for writing: ``lossless`` (H.264's lossless RGB profile, every frame read back exactly)
#: or a lossy one at a quality level (its CRF; the reconstruction error is measured and said).
VIDEO_CODECS = {"lossless": ("libx264rgb", "rgb24"), "h264": ("libx264", "yuv420p"), "av1": ("libsvtav1", "yuv420p")}


def _decode_threads() -> int:
    text = os.environ.get(DECODE_THREADS_VARIABLE, "").strip() or "0"
    if not text.isdigit():
        raise UsageError(f"{DECODE_THREADS_VARIABLE} must be a whole number of threads (0: ffmpeg's choice), not "
                         f"{text!r}")
    return int(text)


class VideoFrames(LazyRows):
    """The frames of a video feature, decoded with PyAV as rows are read: each episode's segment of its file
    (``segments``: per episode, the file, the first frame's time and its rows), frames ``shape`` large. Reading in
    order continues the decoding where the last read stopped. A stream whose frames are not ``shape`` large is
    refused before any is decoded; an episode whose video holds fewer frames than its rows, or (one file per
    episode) more, is an error naming it."""

    def __init__(self, segments: list[tuple[Path, float, int]], shape: tuple[int, ...], fps: float,
                 whole_files: bool) -> None:
        self._segments, self._fps, self._whole = segments, fps, whole_files
        self._starts = np.concatenate([[0], np.cumsum([n for *_, n in segments])]).astype(np.int64)
        self.dtype = np.dtype(np.uint8)
        self.shape = (int(self._starts[-1]),) + tuple(shape)
        self._open: tuple[int, Any, Any, int] | None = None  # (episode, container, frame iterator, next frame)

    def _decoder(self, episode: int, first: int) -> tuple[Any, int]:
        """An iterator of the episode's frames from (at most) ``first``, and the frame it starts at."""
        if self._open is not None and self._open[0] == episode and self._open[3] <= first:
            return self._open[2], self._open[3]
        import av

        self.close()
        file, start, rows = self._segments[episode]
        container = av.open(str(file))
        try:
            stream = container.streams.video[0]
            height, width = self.shape[1:3]
            if (stream.codec_context.height, stream.codec_context.width) != (height, width):
                raise UnreadableError(f"{file}: its frames are {stream.codec_context.width}x"
                                      f"{stream.codec_context.height}; the feature's are {width}x{height}")
            if self._whole and stream.frames and stream.frames != rows:
                raise CountMismatchError(f"{file}: E018 count-mismatch: episode {episode}'s video holds "
                                         f"{stream.frames:,} frames; its rows are {rows:,}")
            # Decoders pad frames to their blocks: a margin, and no frame far larger than the feature's is decoded.
            stream.codec_context.options = {"max_pixels": str((height + 128) * (width + 128))}
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = _decode_threads()
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
        except BaseException:
            container.close()
            raise
        frames = (f for f in container.decode(stream) if f.time is None or f.time >= start - 0.5 / self._fps)
        self._open = (episode, container, frames, 0)
        return frames, 0

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()  # one conversion context for every frame (a frame's own: 5x slower)
        row = start
        while row < stop:
            episode = int(np.searchsorted(self._starts, row, side="right")) - 1
            begin, end = int(self._starts[episode]), int(self._starts[episode + 1])
            file = self._segments[episode][0]
            with guard.reading(file):
                frames, at = self._decoder(episode, row - begin)
                upto = min(stop, end) - begin
                while at < upto:
                    frame = next(frames, None)
                    if frame is None:
                        self.close()
                        raise CountMismatchError(f"{file}: E018 count-mismatch: episode {episode}'s video holds "
                                                 f"{at:,} frames; its rows are {end - begin:,}")
                    if (frame.height, frame.width) != self.shape[1:3]:
                        self.close()
                        raise UnreadableError(f"{file}: frame {at} is {frame.width}x{frame.height}")
                    if at >= row - begin:
                        out[begin + at - start] = _rgb(frame, reformatter).reshape(self.shape[1:])
                    at += 1
                if at == end - begin and self._whole and next(frames, None) is not None:
                    self.close()
                    raise CountMismatchError(f"{file}: E018 count-mismatch: episode {episode}'s video holds more "
                                             f"frames than its {end - begin:,} rows")
            self._open = (episode, self._open[1], frames, at) if self._open else None
            row = begin + upto

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


def _rgb(frame: Any, reformatter: Any) -> np.ndarray:
    """A decoded frame as RGB rows, converted by ``reformatter`` (PyAV's ``VideoReformatter``), which keeps its
    swscale context from frame to frame; ``frame.to_ndarray(format=...)`` builds one per frame, the same pixels."""
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def encode(array: Any, file: Path, fps: float, codec: str, level: int | None, label: str) -> tuple[float, int]:
    """Every frame of ``array`` into one mp4; returns the mean and largest absolute error of the frames read back
    (0 and 0 for the lossless codec)."""
    import av
    from av.video.reformatter import VideoReformatter

    name, pix_fmt = VIDEO_CODECS[codec]
    file.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(file), "w") as container:
        stream = container.add_stream(name, rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = int(array.shape[2]), int(array.shape[1]), pix_fmt
        stream.options = {"crf": str(0 if codec == "lossless" else (level if level is not None else 23))}
        for block in iter_blocks(array, label=label):
            for frame in block:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    total, largest, at = 0.0, 0, 0
    reformatter = VideoReformatter()
    with av.open(str(file)) as container:
        for frame in container.decode(container.streams.video[0]):
            decoded = _rgb(frame, reformatter).astype(np.int16)
            difference = np.abs(decoded - np.asarray(array[at:at + 1][0], np.int16))
            total, largest, at = total + float(difference.mean()), max(largest, int(difference.max())), at + 1
    if at != array.shape[0]:
        raise UnreadableError(f"{file}: {at:,} frames read back of the {array.shape[0]:,} written")
    return total / max(at, 1), largest
