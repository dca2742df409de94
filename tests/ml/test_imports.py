import subprocess
import sys

FORBIDDEN = ("fastapi", "sqlalchemy", "celery", "redis", "kombu", "starlette", "server", "worker")


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
