"""The module graph: no import cycle in the core or the trainers, and the core runs without torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("expertdata", "trainers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (module level or inside functions).

    ``from package import name`` counts as importing ``package.name`` when that is a module, else the
    package; a package running before its submodules is not counted (Python always does that).
    """
    files = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in files)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in files else base)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "expertdata.validation" in graph["expertdata.dataset"]  # the graph is really read
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle(graph) is None


def _without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where ``import torch`` fails, as on the core install."""
    prelude = "import sys; sys.modules['torch'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_the_core_and_its_command_line_run_without_torch():
    run = _without_torch("import expertdata, expertdata.cli\n"
                         "ds = expertdata.load('fixtures/cartpole.npz')\n"
                         "assert expertdata.validate(ds).ok\n"
                         "print('torch' in sys.modules and sys.modules['torch'] is not None)")
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr
    listing = _without_torch("from expertdata.cli import main; main(['train', '--list'])")
    assert listing.returncode == 2 and "Traceback" not in listing.stderr
    assert listing.stderr.strip().count("\n") == 0 and "expertdata[trainers]" in listing.stderr
    helped = _without_torch("from expertdata.cli import main; main(['--help'])")
    assert helped.returncode == 0 and "train" in helped.stdout
