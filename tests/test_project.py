"""The project's own promises: CI runs the README's test command, and the fixtures script reproduces them."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import expertdata
import expertdata.core.schema

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command():
    setup = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    main_job, tests = _commands(setup)
    assert "scripts/demo.sh" in main_job and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_fixtures_script_reproduces_the_committed_fixtures(tmp_path):
    """Discrete data exactly; floats to within a few float32 roundings, because numpy's trigonometry
    (Pendulum's dynamics) may differ in the last bit between numpy versions and CPUs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "fixtures" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, path in module.make(tmp_path).items():
        with expertdata.load(path) as fresh, expertdata.load(ROOT / "fixtures" / name) as committed:
            assert sorted(fresh.fields) == sorted(committed.fields), name
            for field in fresh.fields:
                a, b = np.asarray(fresh[field][:]), np.asarray(committed[field][:])
                assert a.dtype == b.dtype and a.shape == b.shape, (name, field)
                if a.dtype.kind == "f":
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{name}: {field}")
                else:
                    assert np.array_equal(a, b), (name, field)
            for key in expertdata.core.schema.DESCRIPTIVE_KEYS:
                assert fresh.metadata.get(key) == committed.metadata.get(key), (name, key)
