"""SB2's ``DataLoader``: minibatches of (observations, actions), prefetched in the background.

Observations are one array, or a dict of arrays (one per leaf of a Dict or Tuple space), served as a dict
of batches. Internally every array is a *column* gathered by the same rows.

A background thread gathers a *group* of many batches at once (one ``np.take`` over thousands of rows)
and hands the group over whole; the consumer only slices batches out of it. Handing over each batch
through a queue would cost more than gathering it.

Arrays that are numpy arrays are served from memory. Lazy arrays (HDF5, Zarr) are served out of core:
the rows are cut into blocks of about ``arrays.BLOCK_BYTES``, the order of the blocks is shuffled, and rows are
shuffled within a buffer of ``shuffle_buffer`` blocks, so reads stay large and sequential while batches
stay mixed, and memory stays bounded by the buffer. Block boundaries follow from the row size alone, so
the same seed gives the same batches in every format.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.arrays import BLOCK_BYTES, ArrayLike, put_unless_stopped, read_into, reads_at_once, row_bytes, will_need
from ..core.errors import UsageError
from ..core.images import read_image, resolve

#: Rows a group of batches holds, about this many bytes (rounded to whole batches).
GROUP_BYTES = 4 * 2**20
BACKENDS = ("threading", "multiprocessing")
_EPOCH_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _get(slots: queue.Queue, stop: threading.Event) -> Any:
    """Get an item, waking up to give up once ``stop`` is set."""
    while True:
        try:
            return slots.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None


class _Stopped(Exception):
    """The consumer went away while a helper thread waited."""


def _decode(root: str, path: str) -> np.ndarray:
    return read_image(resolve(Path(root), path))


class DataLoader:
    """Serve minibatches of ``(observations[i], actions[i])`` for ``i`` in ``indices``.

    SB2's parameters keep their meaning:

    :param indices: the transition indices to serve.
    :param observations: numpy array (served from memory), lazy array (served out of core), text paths
        to image files (decoded on the fly by ``n_workers`` workers of ``backend``), or a dict of numpy or lazy
        arrays by leaf path (a composite observation space), served as a dict.
    :param batch_size: transitions per minibatch.
    :param n_workers: workers decoding image files.
    :param infinite_loop: start a new epoch after the last batch instead of stopping.
    :param max_queue_len: groups of batches prepared ahead of the consumer.
    :param shuffle: a new random order every epoch (without replacement).
    :param start_process: start the background thread now (else on first use).
    :param backend: ``threading`` or ``multiprocessing``, for image decoding.
    :param sequential: prepare batches in the calling thread (no background thread).
    :param partial_minibatch: serve the last, smaller batch of an epoch (else drop it).

    And ours, keyword-only:

    :param seed: seeds the shuffles; the same seed gives the same batches.
    :param block_rows: out of core, rows per read block (default about 8 MB of observations).
    :param shuffle_buffer: out of core, blocks shuffled together.
    :param image_root: the folder image paths are relative to.
    :param to_torch: serve ``torch.Tensor`` batches; ``device`` moves them, ``pin_memory`` pins them first
        (when CUDA is available).
    """

    def __init__(self, indices: np.ndarray, observations: ArrayLike | dict[str, ArrayLike], actions: ArrayLike,
                 batch_size: int,
                 n_workers: int = 1, infinite_loop: bool = True, max_queue_len: int = 1, shuffle: bool = False,
                 start_process: bool = True, backend: str = "threading", sequential: bool = False,
                 partial_minibatch: bool = True, *, seed: int | np.random.SeedSequence | None = None,
                 block_rows: int | None = None, shuffle_buffer: int = 8, image_root: Path | str | None = None,
                 to_torch: bool = False, device: Any = None, pin_memory: bool = False) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        if backend not in BACKENDS:
            raise UsageError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if n_workers < 1 or max_queue_len < 1 or shuffle_buffer < 1:
            raise UsageError("n_workers, max_queue_len and shuffle_buffer must be at least 1")
        self._keys = list(observations) if isinstance(observations, dict) else None
        self._columns = [*(observations.values() if self._keys is not None else [observations]), actions]
        n = actions.shape[0]
        wrong = [c.shape[0] for c in self._columns[:-1] if c.shape[0] != n]
        if wrong:
            raise UsageError(f"observations have {wrong[0]} rows but actions {n}")
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise UsageError(f"indices must lie in 0..{n - 1}")
        self.observations, self.actions = observations, actions
        self.batch_size, self.n_workers, self.backend = int(batch_size), n_workers, backend
        self.infinite_loop, self.max_queue_len, self.shuffle = infinite_loop, max_queue_len, shuffle
        self.sequential, self.partial_minibatch = sequential, partial_minibatch
        self.in_memory = all(isinstance(c, np.ndarray) for c in self._columns)
        self.image_paths = self._keys is None and np.dtype(observations.dtype).kind == "U"
        if self.image_paths and image_root is None:
            raise UsageError("observations are image paths: pass image_root, the folder they are relative to")
        self.image_root = str(image_root) if image_root is not None else None
        self.block_rows = block_rows or max(1, BLOCK_BYTES // max(1, sum(row_bytes(c) for c in self._columns[:-1])))
        self.shuffle_buffer = shuffle_buffer
        self.to_torch, self.device, self.pin_memory = to_torch, device, pin_memory
        self._rng = np.random.default_rng(seed)
        per_row = max(1, sum(row_bytes(c) for c in self._columns))
        self._group_rows = self.batch_size * max(1, GROUP_BYTES // (per_row * self.batch_size))
        self._pool: Executor | None = None
        self.process: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue_len)
        self._stop = threading.Event()
        self._groups: Iterator[Any] | None = None
        self._group: tuple[np.ndarray, ...] | None = None
        self._pos = 0
        self._exhausted = False
        self._no_batch = not len(self)
        if start_process and not sequential:
            self.start_process()

    def __len__(self) -> int:
        """Minibatches per epoch."""
        n = len(self.indices)
        return -(-n // self.batch_size) if self.partial_minibatch else n // self.batch_size

    # -- producing groups of batches -------------------------------------------------------------

    def _decode_paths(self, paths: np.ndarray) -> np.ndarray:
        if self._pool is None:
            make = ThreadPoolExecutor if self.backend == "threading" else ProcessPoolExecutor
            self._pool = make(max_workers=self.n_workers)
        frames = list(self._pool.map(_decode, [self.image_root] * len(paths), paths.tolist(), chunksize=16))
        return np.stack(frames) if frames else np.empty((0,), dtype=np.uint8)

    def _finish(self, columns: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return (self._decode_paths(columns[0]), columns[1]) if self.image_paths else columns

    def _memory_epoch(self) -> Iterator[tuple[np.ndarray, ...]]:
        order = self._rng.permutation(self.indices) if self.shuffle else self.indices
        for begin in range(0, len(order), self._group_rows):
            rows = order[begin:begin + self._group_rows]
            yield self._finish(tuple(np.take(c, rows, axis=0) for c in self._columns))

    def _fill(self, plan: list[np.ndarray], wanted: np.ndarray, reserve: int, free: queue.Queue,
              full: queue.Queue, stop: threading.Event) -> None:
        """Reader thread: for each buffer of blocks, take a free buffer and read the wanted rows into it
        after ``reserve`` rows (room for the previous buffer's leftover), one contiguous read per block, up to
        several blocks at a time where the arrays are remote (``arrays.reads_at_once``: each waits on the
        network)."""
        n = self.actions.shape[0]

        def read(block: int, at: int, rows: np.ndarray, buffers: tuple[np.ndarray, ...]) -> None:
            lo = block * self.block_rows
            hi = min(lo + self.block_rows, n)
            for column, buffer in zip(self._columns, buffers):
                if len(rows) == hi - lo:
                    read_into(column, lo, hi, buffer[at:at + len(rows)])
                else:
                    buffer[at:at + len(rows)] = np.asarray(column[lo:hi])[rows]

        try:
            at_once = max(reads_at_once(c) for c in self._columns)
            with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="expertdata-read") as pool:
                for number, blocks in enumerate(plan):
                    for block in plan[number + 1] if number + 1 < len(plan) else ():  # the next buffer's reads
                        lo = int(block) * self.block_rows
                        for column in self._columns[:-1]:
                            will_need(column, lo, min(lo + self.block_rows, n))
                    buffers = _get(free, stop)
                    at, jobs = reserve, []
                    for block in blocks:
                        lo = int(block) * self.block_rows
                        rows = wanted[np.searchsorted(wanted, lo):np.searchsorted(wanted, lo + self.block_rows)] - lo
                        jobs.append(pool.submit(read, int(block), at, rows, buffers))
                        at += len(rows)
                    for job in jobs:
                        job.result()
                    put_unless_stopped(full, (buffers, at), stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            put_unless_stopped(full, _Failure(exc), stop)

    def _out_of_core_epoch(self) -> Iterator[tuple[np.ndarray, ...]]:
        wanted = np.sort(self.indices)
        blocks = np.unique(wanted // self.block_rows)
        if self.shuffle:
            blocks = self._rng.permutation(blocks)
        plan = [np.sort(blocks[b:b + self.shuffle_buffer]) for b in range(0, len(blocks), self.shuffle_buffer)]
        if not plan:
            return
        # Two buffers go round between the reader thread and this one: one is read into (ascending blocks:
        # sequential I/O) while the other is shuffled and gathered into groups. Memory: two buffers.
        reserve = self.batch_size
        capacity = reserve + self.shuffle_buffer * self.block_rows
        free: queue.Queue = queue.Queue()
        full: queue.Queue = queue.Queue(maxsize=1)
        for _ in range(2):
            free.put(tuple(np.empty((capacity,) + tuple(c.shape[1:]), dtype=c.dtype) for c in self._columns))
        stop = threading.Event()
        reader = threading.Thread(target=self._fill, args=(plan, wanted, reserve, free, full, stop), daemon=True,
                                  name="expertdata-reader")
        reader.start()
        try:
            carry = [c[0:0] for c in self._columns]
            for i in range(len(plan)):
                item = _get(full, stop)
                if isinstance(item, _Failure):
                    raise item.error
                buffers, end = item
                begin = reserve - len(carry[0])
                for buffer, left in zip(buffers, carry):
                    buffer[begin:reserve] = left
                count = end - begin
                order = begin + (self._rng.permutation(count) if self.shuffle else np.arange(count))
                whole = count if i == len(plan) - 1 else count // self.batch_size * self.batch_size
                for start in range(0, whole, self._group_rows):
                    rows = order[start:min(start + self._group_rows, whole)]
                    yield self._finish(tuple(buffer[rows] for buffer in buffers))
                carry = [buffer[order[whole:]] for buffer in buffers]
                free.put(buffers)
        finally:
            stop.set()
            reader.join()

    def _produce(self) -> Iterator[Any]:
        """Groups of batches, with a marker after each epoch; endless when ``infinite_loop``."""
        while True:
            yield from (self._memory_epoch() if self.in_memory else self._out_of_core_epoch())
            yield _EPOCH_END
            if not self.infinite_loop:
                return

    def _serve(self, groups: Iterator[Any]) -> None:
        """Background thread: put groups of batches into the queue until stopped."""
        try:
            for item in groups:
                if not put_unless_stopped(self._queue, item, self._stop):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put_unless_stopped(self._queue, _Failure(exc), self._stop)

    def start_process(self) -> None:
        """Start preparing batches in the background (SB2's name, kept)."""
        if self.sequential or (self.process is not None and self.process.is_alive()):
            return
        self._stop.clear()
        self.process = threading.Thread(target=self._serve, args=(self._produce(),), daemon=True,
                                        name="expertdata-loader")
        self.process.start()

    def _next_group(self) -> Any:
        if self.sequential:
            if self._groups is None:
                self._groups = self._produce()
            return next(self._groups, _EPOCH_END)
        if self.process is None:
            self.start_process()
        item = self._queue.get()
        if isinstance(item, _Failure):
            raise item.error
        return item

    # -- consuming batches --------------------------------------------------------------------------

    def _convert(self, columns: list[np.ndarray]) -> tuple[Any, Any]:
        """A batch's columns as ``(obs, actions)``, as torch tensors where asked."""
        if self.to_torch:
            import torch

            tensors = []
            for array in columns:
                tensor = torch.from_numpy(np.ascontiguousarray(array))
                if self.pin_memory and torch.cuda.is_available():
                    tensor = tensor.pin_memory()
                tensors.append(tensor.to(self.device, non_blocking=self.pin_memory) if self.device is not None
                               else tensor)
            columns = tensors
        obs = dict(zip(self._keys, columns[:-1])) if self._keys is not None else columns[0]
        return obs, columns[-1]

    def __iter__(self) -> "DataLoader":
        if self._exhausted:  # a finite loader starts its next epoch
            self.close()
            self._exhausted = False
            self._groups = None
            self._queue = queue.Queue(maxsize=self.max_queue_len)
            if not self.sequential:
                self.start_process()
        return self

    def __next__(self) -> tuple[Any, Any]:
        if self._exhausted:
            raise StopIteration
        if self.infinite_loop and self._no_batch:  # an endless loop over no batch would never return
            raise UsageError(f"no minibatch to serve: {len(self.indices)} transitions, batch_size {self.batch_size}"
                             f"{'' if self.partial_minibatch else ', partial_minibatch=False'}")
        while True:
            if self._group is not None and self._pos < len(self._group[0]):
                batch = [c[self._pos:self._pos + self.batch_size] for c in self._group]
                self._pos += self.batch_size
                if len(batch[0]) < self.batch_size and not self.partial_minibatch:
                    continue
                return self._convert(batch)
            item = self._next_group()
            self._group, self._pos = None, 0
            if item is _EPOCH_END:
                if self.infinite_loop:
                    continue
                self._exhausted = True
                raise StopIteration
            self._group = item

    def close(self) -> None:
        """Stop the background thread and the decoding workers."""
        self._stop.set()
        if self.process is not None:
            while self.process.is_alive():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self.process.join(0.01)
            self.process = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
