import subprocess
import sys

FORBIDDEN = ("fastapi", "sqlalchemy", "celery", "redis", "kombu", "starlette", "server", "worker")


def test_ml_imports_no_web_sql_or_queue_layer() -> None:
    code = (
        "import sys, ml, ml.train, ml.data, ml.models, ml.recorder, ml.runtime\n"
        "import ml.neural, ml.neural.pipeline, ml.neural.io, ml.neural.predictor, ml.regularize\n"
        "import ml.paper, ml.frontier\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"ml pulled in: {out.stdout.strip()}"
