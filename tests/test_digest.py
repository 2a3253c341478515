"""The content digest covers values, dtypes, shapes and descriptive metadata, and nothing else."""
from __future__ import annotations

import numpy as np

import expertdata

from .conftest import make_arrays


def _digest(metadata=None, **changes):
    arrays = {**make_arrays(), **changes}
    return expertdata.digest(expertdata.Dataset.from_arrays(metadata, **arrays))


def test_digest_changes_with_any_value_dtype_or_descriptive_metadata():
    base = _digest()
    arrays = make_arrays()
    obs = arrays["obs"].copy()
    obs[3, 1] += 1e-6
    assert _digest(obs=obs) != base
    assert _digest(obs=arrays["obs"].astype(np.float64)) != base
    assert _digest({"env_id": "Pendulum-v1"}) != base
    assert _digest({"user": {"lab": "x"}}) != base


def test_digest_ignores_provenance_lineage_and_schema_version():
    base = _digest()
    assert _digest({"provenance": {"who": "me"}, "lineage": [{"operation": "convert"}],
                    "schema_version": "1.0"}) == base
    assert base.startswith("blake3:") and len(base) == len("blake3:") + 64


def test_digest_does_not_depend_on_how_rows_are_split_into_blocks():
    from expertdata.core.digest import Digester

    rows = np.random.default_rng(0).standard_normal((500_005, 3))  # 12 MB: BLAKE3 hashes it on every core
    results = set()
    for block in (777, 1000, 2**17, len(rows)):
        digester = Digester()
        digester.begin_field("obs", rows.dtype, rows.shape)
        for begin in range(0, len(rows), block):
            digester.update(rows[begin:begin + block])
        results.add(digester.finish({}))
    assert len(results) == 1
