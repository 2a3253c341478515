"""Every ``python`` and ``bash`` code block in ``docs/`` and ``README.md`` runs, in order, with short budgets,
so an example can no longer rot. (Output is shown in ``text`` blocks; the README's set-up commands are
what CI itself runs.)"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
#: Training budgets cut to a few iterations: (pattern of a budget, its most). Examples show real budgets;
#: their results are measured in benchmarks/, not here.
SHORT_BUDGETS = (
    (r"(learn\((?:total_timesteps=)?)([\d_]+)", 2048),
    (r"(n_epochs=)(\d+)", 2),
    (r"(--n-epochs )(\d+)", 2),
    (r"(--steps )(\d+)", 2048),
    (r"(n_timesteps=)(int\(1e5\)|[\d_]+)", 200),
)


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of each runnable block, in order (the README's set-up section left out)."""
    text = path.read_text()
    if path.name == "README.md":
        text = re.sub(r"## Set up\n.*?(?=\n## )", "", text, flags=re.S)
    return re.findall(r"```(python|bash)\n(.*?)```", text, re.S)


def shorten(code: str) -> str:
    for pattern, most in SHORT_BUDGETS:
        code = re.sub(pattern, lambda m: f"{m[1]}{min(most, int(eval(m[2].replace('_', ''))))}", code)
    return code


def test_budgets_are_shortened_and_setup_commands_left_out():
    assert shorten("model.learn(total_timesteps=300_000); bc.learn(100_000); gail.learn(1000)") == \
        "model.learn(total_timesteps=2048); bc.learn(2048); gail.learn(1000)"
    assert shorten("generate_expert_traj(model, 'x', n_timesteps=int(1e5))") == \
        "generate_expert_traj(model, 'x', n_timesteps=200)"
    assert shorten("expertdata train gail d --steps 300000 --n-epochs 30") == \
        "expertdata train gail d --steps 2048 --n-epochs 2"
    assert all("pip install" not in code for _, code in code_blocks(ROOT / "README.md"))


@pytest.mark.parametrize("path", [p for p in DOCS if code_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_runs(path, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures")
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict = {"__name__": "__docs__"}
    for number, (language, code) in enumerate(code_blocks(path), 1):
        code = shorten(code)
        if language == "python":
            exec(compile(code, f"{path.name} block {number}", "exec"), namespace)
        else:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{path.name} block {number}:\n{code}\n{result.stdout}\n{result.stderr}"
