"""Running mean and variance (Chan et al.'s parallel update), merged across MPI ranks."""
from __future__ import annotations

import numpy as np

from expertdata import World


class RunningMeanStd:
    """Per-dimension mean and variance of everything ``update`` has seen, on every rank."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray, world: World | None = None) -> None:
        """Fold a batch (rows along the first axis) in; under MPI, every rank's batch."""
        batch = np.asarray(batch, dtype=np.float64).reshape((-1,) + self.mean.shape)
        n = float(len(batch))
        total, total_sq = batch.sum(0), (batch * batch).sum(0)
        if world is not None and world.size > 1:
            merged = world.sum(np.concatenate([[n], total.ravel(), total_sq.ravel()]))
            n, size = merged[0], total.size
            total, total_sq = merged[1:1 + size].reshape(total.shape), merged[1 + size:].reshape(total.shape)
        if n == 0:
            return
        mean = total / n
        var = np.maximum(total_sq / n - mean * mean, 0.0)
        delta = mean - self.mean
        count = self.count + n
        self.mean = self.mean + delta * n / count
        self.var = (self.var * self.count + var * n + delta * delta * self.count * n / count) / count
        self.count = count

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var + 1e-8)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "var": self.var, "count": np.array(self.count)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.mean, self.var, self.count = state["mean"].copy(), state["var"].copy(), float(state["count"])
