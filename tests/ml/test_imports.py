import subprocess
import sys

FORBIDDEN = ("fastapi", "sqlalchemy", "celery", "redis", "kombu", "starlette", "core", "server",
             "worker")


def test_every_ml_module_imports_no_web_sql_or_queue_layer() -> None:
    """Every module under ml/ (found by walking the package, so a new one is checked
    too), imported in one process: none pulls in a web, SQL or queue layer."""
    code = (
        "import importlib, pkgutil, sys, ml\n"
        "names = [m.name for m in pkgutil.walk_packages(ml.__path__, 'ml.')]\n"
        "for name in names: importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(names)); print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, bad = out.stdout.splitlines()
    assert {"ml.evaluate.run", "ml.evaluate.sparse", "ml.study", "ml.neural.io.nwb",
            "ml.regularize.cnn_features", "ml.artifacts"} <= set(names.split(","))
    assert bad == "", f"ml pulled in: {bad}"


LAYERS = {  # a package and the ml packages above it, which it may never import
    "ml/models": ("ml.train", "ml.regularize", "ml.evaluate", "ml.study", "ml.neural"),
    "ml/regularize": ("ml.train", "ml.evaluate", "ml.study"),
    "ml/data": ("ml.train", "ml.regularize", "ml.evaluate", "ml.study", "ml.neural"),
}


def test_lower_layers_of_ml_never_import_higher_ones() -> None:
    """Every import in these packages' files, inside functions too (a lazy import is
    still an upward one)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    upward = []
    for package, above in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                upward += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names
                           if any(n == a or n.startswith(a + ".") for a in above)]
    assert upward == []
