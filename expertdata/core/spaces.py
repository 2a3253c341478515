"""Gymnasium spaces as JSON, and the checks of stored rows against them.

The JSON form is what metadata holds, so a dataset can be validated without gymnasium installed;
``to_gymnasium`` rebuilds the space when gymnasium is there. A Dict or Tuple space is stored as one field per
leaf (``leaves``): its rows are checked leaf by leaf against the leaves' spaces.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

#: The most entries one row of a space may hold (a 4096 x 4096 x 4 image): a larger claim is refused unread.
MAX_ROW_ENTRIES = 2**26

SUPPORTED = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")
#: Spaces made of other spaces: a Dict's leaves are named by their keys, a Tuple's by their positions.
COMPOSITE = ("Dict", "Tuple")
#: How deep composite spaces may nest, and how many leaves they may hold, before a claim is refused unread.
MAX_DEPTH, MAX_LEAVES = 8, 1024
#: A leaf's key: what a field name allows (``expertdata.core.schema.FIELD_NAME``).
KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class SpaceError(ValueError):
    """A space that cannot be stored or parsed; the message names it."""


def _number(x: float) -> float | str:
    """JSON has no infinities: store them as strings."""
    return x if math.isfinite(x) else str(x)


def _numbers(a: np.ndarray) -> Any:
    """A compact JSON form of a bound array: one number when every entry is the same; each the shortest
    decimal that reads back as the same value of the array's dtype (4.8, not float32's 4.800000190734863)."""
    flat = a.ravel()
    values = [_number(float(str(v)) if flat.dtype.kind == "f" else v.item()) for v in flat]
    return values[0] if values and all(v == values[0] for v in values) else values


def _array(value: Any, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    values = np.asarray(value if isinstance(value, list) else [value], dtype=object)
    out = np.array([float(v) for v in values.ravel()], dtype=np.float64)
    return (np.full(shape, out[0]) if out.size == 1 else out.reshape(shape)).astype(dtype)


def to_json(space: Any) -> dict:
    """Serialise a gymnasium space (Box, Discrete, MultiDiscrete, MultiBinary, and Dict and Tuple of them) to
    a JSON object."""
    kind = type(space).__name__
    if kind == "Dict":
        return {"type": "Dict", "spaces": {str(k): to_json(v) for k, v in space.spaces.items()}}
    if kind == "Tuple":
        return {"type": "Tuple", "spaces": [to_json(v) for v in space.spaces]}
    if kind == "Box":
        return {"type": "Box", "shape": list(space.shape), "dtype": np.dtype(space.dtype).str,
                "low": _numbers(space.low), "high": _numbers(space.high)}
    if kind == "Discrete":
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if kind == "MultiDiscrete":
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(space.start).tolist(), "dtype": np.dtype(space.dtype).str}
    if kind == "MultiBinary":
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise SpaceError(f"cannot store a {kind} space ({space}); supported spaces: {', '.join(SUPPORTED + COMPOSITE)}")


#: Bounds of a space's integers (``n``, ``start``, ``nvec``): what int64 rows can hold.
_INT64 = (-(2**63), 2**63 - 1)


def _integers(values: Any, what: str, low: int) -> None:
    """Raise ``ValueError`` unless ``values`` are JSON integers from ``low`` within int64."""
    flat = values if isinstance(values, list) else [values]
    while flat and isinstance(flat[0], list):
        flat = [v for part in flat for v in (part if isinstance(part, list) else [part])]
    if not all(type(v) is int and low <= v <= _INT64[1] for v in flat):
        raise ValueError(f"{what} must be whole numbers from {low} within int64")


def is_composite(spec: Any) -> bool:
    """Whether a space JSON object is a Dict or a Tuple of other spaces."""
    return isinstance(spec, dict) and spec.get("type") in COMPOSITE


def _children(spec: dict) -> list[tuple[str, Any]]:
    children = spec.get("spaces")
    if spec["type"] == "Dict" and isinstance(children, dict):
        return [(str(k), v) for k, v in children.items()]
    if spec["type"] == "Tuple" and isinstance(children, list):
        return [(str(i), v) for i, v in enumerate(children)]
    raise SpaceError(f"malformed {spec['type']} space: 'spaces' must be "
                     f"{'an object' if spec['type'] == 'Dict' else 'a list'} of spaces")


def leaves(spec: dict) -> dict[str, dict]:
    """The leaf spaces of a space by path (``"image"``, ``"arm/pos"``, ``"0"``); a plain space is its own
    single leaf, at the path ``""``."""
    if not is_composite(spec):
        return {"": spec}
    out = {}
    for key, child in _children(spec):
        for path, leaf in leaves(child).items():
            out[f"{key}/{path}" if path else key] = leaf
    return out


def flatten(spec: dict, value: Any) -> dict[str, Any]:
    """A value of a composite space (nested dicts and tuples, as gymnasium gives them) as a flat dict by leaf
    path; a plain space's value as ``{"": value}``. A value already flat (keyed by paths) is returned as it is."""
    if not is_composite(spec):
        return {"": value}
    paths = leaves(spec)
    if isinstance(value, dict) and set(value) == set(paths):
        return dict(value)
    out = {}
    for key, child in _children(spec):
        try:
            part = value[key] if spec["type"] == "Dict" else value[int(key)]
        except (KeyError, IndexError, TypeError):
            raise SpaceError(f"a value of the {spec['type']} space lacks its entry {key!r}") from None
        for path, leaf in flatten(child, part).items():
            out[f"{key}/{path}" if path else key] = leaf
    return out


def check_json(spec: Any, _depth: int = 0) -> None:
    """Raise ``SpaceError`` unless ``spec`` is a space JSON object we can read, checking the sizes it claims
    before anything is allocated for it."""
    if is_composite(spec):
        if _depth >= MAX_DEPTH:
            raise SpaceError(f"composite spaces nest deeper than {MAX_DEPTH} levels")
        children = _children(spec)
        if not children:
            raise SpaceError(f"an empty {spec['type']} space holds nothing to store")
        for key, child in children:
            if not KEY.fullmatch(key):
                raise SpaceError(f"a {spec['type']} space's key {key!r} cannot name a field: use letters, digits and "
                                 "_ . + - (not starting with a dot, at most 128 characters)")
            check_json(child, _depth + 1)
        if _depth == 0 and len(leaves(spec)) > MAX_LEAVES:
            raise SpaceError(f"the {spec['type']} space holds more than {MAX_LEAVES} leaves")
        return
    if not isinstance(spec, dict) or spec.get("type") not in SUPPORTED:
        shown = repr(spec) if len(repr(spec)) <= 200 else repr(spec)[:200] + "..."
        raise SpaceError(f"not a space description: {shown}; expected one of {', '.join(SUPPORTED + COMPOSITE)}")
    kind = spec["type"]
    try:
        if kind == "Discrete":
            _integers(spec["n"], "n", 1)
            _integers(spec.get("start", 0), "start", _INT64[0])
        elif kind == "MultiDiscrete":
            _integers(spec["nvec"], "nvec", 1)
            _integers(spec.get("start", 0), "start", _INT64[0])
        elif kind == "MultiBinary":
            _integers(spec["n"], "n", 1)
        elif kind == "Box":
            _integers(spec["shape"], "shape", 0)
            if not isinstance(spec["shape"], list):
                raise ValueError("shape must be a list")
        entries = int(np.prod(row_shape(spec), dtype=object))
        if entries > MAX_ROW_ENTRIES:
            raise ValueError(f"its rows would hold {entries:,} entries; at most {MAX_ROW_ENTRIES:,} are read")
        if row_dtype(spec).kind not in "fiub":
            raise ValueError(f"dtype {row_dtype(spec)} is not numeric")
        if kind == "Box":
            bounds(spec)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise SpaceError(f"malformed {kind} space: {exc}") from None


def same(a: dict | None, b: dict | None) -> bool:
    """Whether two space JSON objects describe the same space (``None`` only equals ``None``): compared as
    gymnasium spaces, so bounds written with more digits by older versions still match."""
    if a is None or b is None:
        return a is b
    try:
        return a == b or to_gymnasium(a) == to_gymnasium(b)
    except SpaceError:
        return False


def row_shape(spec: dict) -> tuple[int, ...]:
    """The shape of one stored row: a Discrete value is stored as (1,), as SB2 did."""
    kind = spec["type"]
    if kind == "Box":
        return tuple(int(d) for d in spec["shape"])
    if kind == "Discrete":
        return (1,)
    if kind == "MultiDiscrete":
        return tuple(np.asarray(spec["nvec"]).shape)
    n = spec["n"]
    return tuple(n) if isinstance(n, list) else (int(n),)


def row_dtype(spec: dict) -> np.dtype:
    """The dtype gymnasium samples from the space."""
    kind = spec["type"]
    if kind == "Box":
        return np.dtype(spec["dtype"])
    if kind == "Discrete":
        return np.dtype(np.int64)
    if kind == "MultiDiscrete":
        return np.dtype(spec.get("dtype", "<i8"))
    return np.dtype(np.int8)


def bounds(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (low, high) per entry of a row, for every kind of space."""
    kind, shape = spec["type"], row_shape(spec)
    if kind == "Box":  # through a float dtype: 4.8 in JSON bounds float32 rows at float32's 4.8 (an integer dtype's
        # limits, int64's among them, are kept in float64, where the rows are compared: cast back, they would wrap)
        through = np.dtype(spec["dtype"]) if np.dtype(spec["dtype"]).kind == "f" else np.dtype("f8")
        return tuple(_array(spec[key], shape, "f8").astype(through).astype("f8") for key in ("low", "high"))
    if kind == "Discrete":
        start = int(spec.get("start", 0))
        return np.full(shape, start), np.full(shape, start + int(spec["n"]) - 1)
    if kind == "MultiDiscrete":
        start = np.asarray(spec.get("start", 0)) + np.zeros(shape, dtype=np.int64)
        return start, start + np.asarray(spec["nvec"]) - 1
    return np.zeros(shape, dtype=np.int64), np.ones(shape, dtype=np.int64)


def shape_fits(spec: dict, rows_shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why rows of this shape and dtype cannot belong to the space, or ``None`` when they fit.

    Shapes must match exactly; Discrete also accepts SB2-era flat (N,) rows. Discrete kinds need integer
    (or boolean, for MultiBinary) dtypes; Box needs a numeric dtype.
    """
    want = row_shape(spec)
    got = tuple(rows_shape[1:])
    if got != want and not (spec["type"] == "Discrete" and got == ()):
        return f"rows of shape {got} do not fit the {spec['type']} space's row shape {want}"
    kinds = "fiub" if spec["type"] == "Box" else ("iub" if spec["type"] == "MultiBinary" else "iu")
    if dtype.kind not in kinds:
        return f"dtype {dtype} does not fit a {spec['type']} space"
    if spec["type"] == "Box" and dtype != np.dtype(spec["dtype"]):
        return f"dtype {dtype} is not the Box space's {np.dtype(spec['dtype'])}"
    return None


def outside(spec: dict, rows: np.ndarray) -> np.ndarray:
    """A boolean mask of the rows that hold a value outside the space's bounds."""
    low, high = bounds(spec)
    values = rows.reshape((rows.shape[0],) + low.shape) if rows.ndim == 1 else rows
    bad = (values < low) | (values > high)
    return bad.reshape(len(values), -1).any(axis=1)


def to_gymnasium(spec: dict) -> Any:
    """Rebuild the gymnasium space from its JSON object."""
    from gymnasium import spaces

    check_json(spec)
    kind = spec["type"]
    if kind == "Dict":
        return spaces.Dict({key: to_gymnasium(child) for key, child in _children(spec)})
    if kind == "Tuple":
        return spaces.Tuple([to_gymnasium(child) for _, child in _children(spec)])
    if kind == "Box":
        low, high = bounds(spec)
        return spaces.Box(low=low.astype(spec["dtype"]), high=high.astype(spec["dtype"]),
                          shape=row_shape(spec), dtype=np.dtype(spec["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(int(spec["n"]), start=int(spec.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(spec["nvec"], dtype=np.dtype(spec.get("dtype", "<i8")),
                                    start=spec.get("start"))
    return spaces.MultiBinary(spec["n"])
