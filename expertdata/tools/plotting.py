"""Looking at datasets: a per-episode table, and the figure SB2's ``plot()`` showed, extended.

The figure has four panels: episode returns (SB2's histogram), episode lengths, the action distribution
(bars for discrete actions, per-dimension histograms for continuous ones) and per-dimension observation
ranges (min to max, with the mean; per channel for images). Several datasets are overlaid for comparison.
Values are read block by block; histograms use an even sample of at most ``MAX_SAMPLE`` rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core import images, schema
from ..core.arrays import iter_blocks
from ..core.dataset import Dataset
from ..core.errors import UsageError
from ..io import atomic

MAX_SAMPLE = 200_000
#: Image observations stored as paths: how many images to decode for the ranges panel.
MAX_IMAGES = 256
_MAX_ACTION_DIMS = 4


def _returns(dataset: Dataset) -> np.ndarray:
    """The episodes' returns; none for demonstrations without rewards."""
    return np.asarray(dataset["episode_returns"][:], dtype=np.float64) if dataset.has_rewards else np.zeros(0)


def _sample(array: Any) -> np.ndarray:
    stride = max(1, -(-array.shape[0] // MAX_SAMPLE))
    parts = [block[(-begin) % stride::stride] for begin, block in _numbered(array)]
    return np.concatenate(parts) if parts else np.empty((0,) + tuple(array.shape[1:]), array.dtype)


def _numbered(array: Any):
    begin = 0
    for block in iter_blocks(array, label="plot"):
        yield begin, block
        begin += len(block)


def _observation_ranges(dataset: Dataset) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Per-dimension (per-channel for images) min, mean and max of the observations; a composite space's
    leaves one after another, named in the unit."""
    if dataset.has_image_paths:
        obs = dataset["obs"]
        paths = np.asarray(obs[:min(len(obs), MAX_IMAGES)])
        frames = np.stack([images.read_image(images.resolve(dataset.root, str(p))) for p in paths])
        values = frames.reshape(len(frames), -1, frames.shape[-1] if frames.ndim == 4 else 1)
        return "channel", values.min(axis=(0, 1)), values.mean(axis=(0, 1)), values.max(axis=(0, 1))
    parts, names, begin = [], [], 0
    for path, name in dataset.leaf_fields().items():
        array = dataset[name]
        image = schema.is_image(schema.field_space(name, dataset.metadata), tuple(array.shape[1:]), array.dtype)
        parts.append(_leaf_ranges(array, image))
        end = begin + len(parts[-1][0])
        names.append((path, f"{path} {begin}-{end - 1}{' (channels)' if image else ''}", image))
        begin = end
    low, mean, high = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if len(names) == 1 and not names[0][0]:  # a plain space
        return ("channel" if names[0][2] else "dimension"), low, mean, high
    return "entry: " + ", ".join(label for _, label, _ in names), low, mean, high


def _leaf_ranges(obs: Any, image: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min, mean and max per dimension (per channel for images) of one array, block by block."""
    lows, highs, sums, count = None, None, None, 0
    for _, block in _numbered(obs):
        channels = block.shape[-1] if block.ndim == 4 else 1
        rows = block.reshape(len(block), -1, channels) if image else block.reshape(len(block), -1)
        axes = (0, 1) if image else 0
        low, high = rows.min(axis=axes), rows.max(axis=axes)
        total = rows.sum(axis=axes, dtype=np.float64)
        lows = low if lows is None else np.minimum(lows, low)
        highs = high if highs is None else np.maximum(highs, high)
        sums = total if sums is None else sums + total
        count += rows.shape[0] * (rows.shape[1] if image else 1)
    return lows, sums / max(count, 1), highs


def _shared_bins(values: Sequence[np.ndarray], bins: int = 30) -> np.ndarray:
    """Bin edges shared by every dataset; a single value still gets a bin one unit (or 1%) wide."""
    joined = np.concatenate([v for v in values if v.size] or [np.zeros(1)])
    low, high = float(joined.min()), float(joined.max())
    if high == low:
        half = max(0.5, abs(low) * 0.01)
        return np.array([low - half, low + half])
    return np.histogram_bin_edges(joined, bins=min(bins, max(1, len(np.unique(joined)))))


def _grouped_histogram(ax: Any, values: Sequence[np.ndarray], colors: Sequence[str]) -> None:
    """One histogram per dataset on shared bins, their bars side by side within each bin, so none hides
    another."""
    edges = _shared_bins(values)
    widths = np.diff(edges) / len(values)
    for k, (data, color) in enumerate(zip(values, colors)):
        counts, _ = np.histogram(data, bins=edges)
        ax.bar(edges[:-1] + k * widths, counts, width=widths, align="edge", color=color)
    ax.set_ylabel("episodes")


def figure(datasets: Sequence[Dataset], labels: Sequence[str] | None = None) -> Any:
    """The four panels for one or more datasets, overlaid, as a matplotlib ``Figure``: one colour per
    dataset, named in the legend above the panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    labels = list(labels) if labels is not None else [Path(d.source).name for d in datasets]
    colors = [f"C{k}" for k in range(len(datasets))]
    fig = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_ret, ax_len, ax_act, ax_obs = fig.subplots(2, 2).ravel()
    returns = [_returns(d) for d in datasets]
    _grouped_histogram(ax_ret, returns, colors)
    _grouped_histogram(ax_len, [d.episodes.lengths for d in datasets], colors)
    width = 0.8 / len(datasets)
    discrete = all(np.dtype(d["actions"].dtype).kind in "iub" for d in datasets)
    styles = ["-", "--", ":", "-."]
    dims_shown = 0
    for k, (dataset, color) in enumerate(zip(datasets, colors)):
        actions = _sample(dataset["actions"])
        actions = actions.reshape(len(actions), -1)
        if discrete:
            values, counts = np.unique(actions[:, 0], return_counts=True)
            ax_act.bar(values + (k - (len(datasets) - 1) / 2) * width, counts / counts.sum(), width=width, color=color)
        else:
            dims_shown = max(dims_shown, min(actions.shape[1], _MAX_ACTION_DIMS))
            for d in range(min(actions.shape[1], _MAX_ACTION_DIMS)):
                ax_act.hist(actions[:, d].astype(np.float64), bins=40, histtype="step", color=color,
                            linestyle=styles[d], density=True)
        unit, low, mean, high = _observation_ranges(dataset)
        dims = np.arange(len(low)) + (k - (len(datasets) - 1) / 2) * width
        ax_obs.vlines(dims, low, high, color=color, linewidth=3, alpha=0.7)
        ax_obs.plot(dims, mean, "o", color=color, markersize=4)
        ax_obs.set_xlabel(f"observation {unit}")
    if discrete:
        ax_act.set(xlabel="action (first dimension)", ylabel="share of steps")
    else:
        ax_act.set(xlabel="action value", ylabel="density")
        if dims_shown > 1:
            ax_act.legend([Line2D([], [], color="0.3", linestyle=styles[d]) for d in range(dims_shown)],
                          [f"a[{d}]" for d in range(dims_shown)], fontsize="small", title="dimension")
    for ax, title in ((ax_ret, "episode returns"), (ax_len, "episode lengths"), (ax_act, "actions"),
                      (ax_obs, "observation ranges (min-max, dot: mean)")):
        ax.set_title(title)
    ax_ret.set_xlabel("return")
    ax_len.set_xlabel("steps")
    ax_obs.set_ylabel("value")
    for ax in (ax_obs,) + ((ax_act,) if discrete else ()):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color=c, linewidth=8) for c in colors]
    names = [f"{label} ({d.n_episodes} episodes, "
             + (f"mean return {r.mean():.1f})" if d.has_rewards else "no rewards)")
             if d.n_episodes else f"{label} (no episodes)" for label, d, r in zip(labels, datasets, returns)]
    fig.legend(handles, names, loc="outside upper center", ncols=min(3, len(datasets)), fontsize="small")
    return fig


#: Figure formats by suffix.
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg", ".pdf": "pdf"}


def plot(datasets: Sequence[Dataset], out: Path | str, labels: Sequence[str] | None = None) -> Path:
    """Draw ``figure(datasets, labels)`` and write it to ``out`` atomically, in the format its suffix names
    (PNG, JPEG, SVG or PDF). An ``out`` that is a dataset plotted, or a folder, is refused."""
    out = Path(out)
    inputs = [i for d in datasets for i in d.inputs]
    atomic.check_destination(out, inputs, overwrite=True)
    fmt = FIGURE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UsageError(f"{out}: a figure is written as {', '.join(FIGURE_FORMATS)}; name it so")
    empty = [d.source for d in datasets if not d.n_transitions]
    if empty:
        raise UsageError(f"{empty[0]} holds no transitions: there is nothing to plot")
    fig = figure(datasets, labels)
    with atomic.destination(out, overwrite=True, inputs=inputs) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    return out
