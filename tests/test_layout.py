"""The layering DESIGN.md sets, read from the source: no module imports a layer above its own,
and no two modules import each other, directly or through others (imports under
``if TYPE_CHECKING:`` are annotations only and are not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("memory", "tiers", "indices", "embeddings")
# what each layer may import of the others: tiers reads records through the vector codec only
MAY_IMPORT = {
    "embeddings": (),
    "tiers": ("embeddings.resolution",),
    "indices": ("tiers", "embeddings"),
    "memory": ("tiers", "indices", "embeddings"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports when it runs (at any depth, TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from package import module` imports the module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {module_name(path) for path in paths}
    return {module_name(path): runtime_imports(path, modules) for path in paths}


def test_the_graph_sees_the_packages():
    graph = import_graph()
    assert len(graph) > 80 and "memory._engine.agent_memory" in graph["memory"]


def test_no_layer_imports_a_layer_above_it():
    wrong = []
    for module, targets in import_graph().items():
        layer = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != layer and not any(target == allowed or target.startswith(allowed + ".") for allowed in MAY_IMPORT[layer]):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_a_cycle_is_seen(tmp_path):
    """The check itself: two modules importing each other are found."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from a import x\n")
    modules = {"a", "b"}
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert runtime_imports(tmp_path / "a.py", modules) == {"b"}
        assert runtime_imports(tmp_path / "b.py", modules) == {"a"}
    finally:
        ROOT = saved
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
