"""The packages' import rules (issue 34): each forbidden import, at module level or inside a
function (a lazy import is still an import), fails here with its file and line.

    core    the run core: settings, store, migrations, kinds, studies, queue, broker
    server  the HTTP API on core           worker  the Celery tasks on core and ml
    ml      the science: no web, SQL or queue layer, no service package (tests/ml/test_imports.py)
    neuroreg  the Python client: httpx and the standard library, none of the service
    cli     the ``neuroreg`` command: its client commands import the client only; the
            service commands (cli/service.py) import core, server and ml when they run
"""

from __future__ import annotations

import ast
import subprocess
import sys
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


CLIENT_FORBIDS = ("core", "server", "worker", "ml", "torch", "sqlalchemy", "alembic", "fastapi",
                  "starlette", "uvicorn", "celery", "kombu")
# neuroreg/provenance.py records the torch version and GPU of a script that already imported
# torch (it looks in sys.modules first) or asks for them: the one service-side import the
# client has, inside that function, never at import time (the runtime test below holds it)
CLIENT_ALLOWS = {("neuroreg/provenance.py", "torch")}


def module_level_imports(path: Path) -> list[tuple[int, str]]:
    """What importing ``path`` imports: its top-level statements (into ``if`` and ``try``
    blocks, not functions or classes, not ``if TYPE_CHECKING:``)."""
    found: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.lineno, node.module))
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody,
                              *(h.body for h in node.handlers)):
                    visit(block)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def test_the_client_never_imports_the_service() -> None:
    """Every import in neuroreg/, lazy ones too: a script's ``Client()`` needs no torch,
    no SQL and no server code."""
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in sorted((ROOT / "neuroreg").rglob("*.py"))
           for line, name in imports(path)
           if name.split(".")[0] in CLIENT_FORBIDS
           and (path.relative_to(ROOT).as_posix(), name) not in CLIENT_ALLOWS]
    assert bad == []


def test_the_clis_client_commands_import_only_the_client() -> None:
    """cli/ at import time: the parser and every client command; cli/service.py (up, api,
    worker) is imported by the command that runs it, and commands import what they alone
    need (``recordings inspect`` of a local file: ml's importer) inside themselves."""
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in sorted((ROOT / "cli").rglob("*.py")) if path.name != "service.py"
           for line, name in module_level_imports(path)
           if name.split(".")[0] in CLIENT_FORBIDS or name == "cli.service"]
    assert bad == []


def test_the_rule_reads_what_runs_at_import_time(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from typing import TYPE_CHECKING\nimport os\ntry:\n    import a\nexcept ImportError:"
        "\n    import b\nif TYPE_CHECKING:\n    import core.settings\nelse:\n    import c\n"
        "def f():\n    import torch\nclass K:\n    import server\n")
    assert [n for _, n in module_level_imports(tmp_path / "m.py")] == [
        "typing", "os", "a", "b", "c"]


def test_neuroreg_help_and_a_client_command_load_nothing_of_the_service() -> None:
    """At run time, in a fresh interpreter: the CLI's parser, the client and a client
    command (``neuroreg runs`` against a port nothing listens on) leave the service, numpy,
    pandas and pydantic unimported."""
    from tests.livesrv import free_port

    script = f"""
import os, sys
os.environ.update(NEUROREG_API_URL="http://127.0.0.1:{free_port()}", NEUROREG_TOKEN="nr_x")
import cli, neuroreg.client
cli.build_parser()
assert cli.main(["runs"]) == 1
heavy = {CLIENT_FORBIDS + ("numpy", "pandas", "pydantic")!r}
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cannot reach the neuroreg server" in out.stderr
    assert out.stdout.strip() == "[]"
