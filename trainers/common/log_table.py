"""A trainer's log printed as a table: a header once, then one aligned row per printed record."""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from ..protocol import LogRecord


class LogTable:
    """Prints chosen columns of log records (``columns``: record key -> header), every ``interval``-th
    record, and ``finish`` prints the last one if it was not printed (a run shorter than the interval)."""

    def __init__(self, columns: dict[str, str], interval: int) -> None:
        self.columns, self.interval = columns, max(1, interval)
        self._seen = self._printed = 0
        self._last: LogRecord | None = None
        self._widths = [max(10, len(header)) for header in columns.values()]

    def _format(self, value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    def _write(self, record: LogRecord) -> None:
        if not self._printed:
            tqdm.write("  ".join(h.rjust(w) for h, w in zip(self.columns.values(), self._widths)))
        tqdm.write("  ".join(self._format(record.get(k)).rjust(w) for k, w in zip(self.columns, self._widths)))
        self._printed += 1

    def add(self, record: LogRecord) -> None:
        self._seen += 1
        self._last = record
        if self._seen % self.interval == 0:
            self._write(record)
            self._last = None

    def finish(self) -> None:
        if self._last is not None:
            self._write(self._last)
            self._last = None
