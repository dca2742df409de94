"""The packages' import rules (issue 34): each forbidden import, at module level or inside a
function (a lazy import is still an import), fails here with its file and line.

    core    the run core: settings, store, migrations, kinds, studies, queue, broker
    server  the HTTP API on core           worker  the Celery tasks on core and ml
    ml      the science: no web, SQL or queue layer, no service package (tests/ml/test_imports.py)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RULES = {  # package: the top-level modules it may never import
    "core": ("fastapi", "starlette", "uvicorn", "server", "worker"),
    "server": ("worker",),
    "worker": ("server", "fastapi", "starlette", "uvicorn"),
    "ml": ("fastapi", "starlette", "sqlalchemy", "celery", "kombu", "redis", "alembic",
           "core", "server", "worker", "neuroreg"),
}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, with its line: ``import a.b`` and ``from a.b import c``
    give ``a.b``; a relative import is left out (it stays inside its package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for line, name in imports(path)
            if name.split(".")[0] in forbidden]


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_never_imports_what_its_layer_forbids(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package, RULES[package]) == []


def test_the_rule_sees_module_level_and_lazy_imports(tmp_path: Path) -> None:
    """The check itself: both kinds of import, and a name that only starts alike passes."""
    source = ("import os\nfrom server.deps import x\n"
              "def f():\n    import worker.tasks\n    from serverless import y\n")
    (tmp_path / "m.py").write_text(source)
    assert [n for _, n in imports(tmp_path / "m.py")] == [
        "os", "server.deps", "worker.tasks", "serverless"]
    bad = [n for _, n in imports(tmp_path / "m.py") if n.split(".")[0] in ("server", "worker")]
    assert bad == ["server.deps", "worker.tasks"]
