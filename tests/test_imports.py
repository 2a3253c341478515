"""The module graph: no import cycle, the layers of docs/architecture.md kept, and the core runs without torch."""
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
    assert "expertdata.core.rules" in graph["expertdata.core.dataset"]  # the graph is really read
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle(graph) is None


#: room -> the rooms it may import (docs/architecture.md); the top-level modules (the CLI, the public API) may
#: import every room, and the trainers only the public API.
LAYERS = {
    "core": {"core"},
    "io": {"core", "io"},
    "tools": {"core", "io", "tools"},
    "recording": {"core", "io", "recording"},
    "serving": {"core", "io", "tools", "serving"},
}


def room(module: str) -> str:
    """``expertdata.io.formats.zarr`` -> ``io``; ``expertdata.cli`` -> ``top``; a trainer module -> ``trainers``."""
    parts = module.split(".")
    if parts[0] == "trainers":
        return "trainers"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"


def layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    """Every import that runs against the layers: a room importing one above it, or a trainer importing expertdata
    anywhere but its public API (the package itself)."""
    out = []
    for module, targets in graph.items():
        here = room(module)
        for target in sorted(targets):
            if here == "trainers":
                if target.startswith("expertdata."):
                    out.append(f"{module} -> {target} (trainers import only expertdata's public API)")
            elif here in LAYERS and target.startswith("expertdata") and room(target) not in LAYERS[here]:
                out.append(f"{module} -> {target}")
    return out


def test_every_room_imports_only_the_rooms_below_it():
    graph = import_graph()
    assert room("expertdata.io.formats.zarr") == "io" and room("expertdata.cli") == "top"
    assert room("expertdata.core") == "core" and room("trainers.gail.gail") == "trainers"
    assert layer_breaches({"expertdata.core.schema": {"expertdata.io.storage"},
                           "expertdata.io.formats.npz": {"expertdata.serving.loader"},
                           "trainers.bc.trainer": {"expertdata.serving.mpi", "expertdata"}}) == [
        "expertdata.core.schema -> expertdata.io.storage", "expertdata.io.formats.npz -> expertdata.serving.loader",
        "trainers.bc.trainer -> expertdata.serving.mpi (trainers import only expertdata's public API)"]
    assert graph["trainers.gail.gail"] & {"expertdata"}  # trainers are in the graph
    assert layer_breaches(graph) == []


def test_every_name_the_public_api_lists_is_there():
    import expertdata

    missing = [name for name in expertdata.__all__ if not hasattr(expertdata, name)]
    assert missing == []
    for name in ("ExpertDataset", "DataLoader", "generate_expert_traj"):  # SB2's imports
        assert name in expertdata.__all__


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
