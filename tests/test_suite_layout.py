"""The suite's own layout: shared fixtures live in tests/conftest.py, the support modules hold
plain code, and no module imports a fixture, conftest or a test module, so that every test file
collects and runs alone (``pytest tests/test_connection.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT_MODULES = sorted(path for path in TESTS.glob("*.py") if not path.name.startswith("test_") and path.name != "conftest.py")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def fixtures(path: Path) -> set[str]:
    return {node.name for node in ast.walk(_tree(path))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(_is_fixture, node.decorator_list))}


def imported(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every import in the file; name is "" for ``import module``."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_the_support_modules_define_no_fixture():
    assert [path.name for path in SUPPORT_MODULES if fixtures(path)] == []
    assert {"support.py", "team_support.py", "conversation_backends.py", "fault_support.py"} <= {p.name for p in SUPPORT_MODULES}


def test_no_module_imports_a_fixture_conftest_or_a_test_module():
    shared = fixtures(TESTS / "conftest.py")
    assert {"make_api", "make_memory", "backend", "lossy_proxy"} <= shared
    problems = []
    for path in sorted(TESTS.glob("*.py")):
        for module, name in imported(path):
            last = module.rsplit(".", 1)[-1]
            if last == "conftest" or last.startswith("test_"):
                problems.append(f"{path.name} imports {module}")
            elif name in shared and module.split(".")[0] not in ("pytest", "pytest_asyncio"):
                problems.append(f"{path.name} imports the fixture {name} from {module}")
    assert problems == []
