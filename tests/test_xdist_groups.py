"""The suite's ``xdist_group`` marks keep their tests in one worker process under
``--dist loadgroup`` (pyproject's addopts): Brendel & Bethge's numba compilation, the
shared trained model of tests/ml/evaluate and the MLflow environment are made once, not
once per worker. A pytest and pytest-xdist pair that ignores the marks (pytest 9.2 with
pytest-xdist 3.8) still passes every test, only slower — so this test runs a small suite
in a fresh pytest and reads which process set up each module's fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MODULE = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.fixture(scope="module")
def made():
    with open(os.environ["SETUPS"], "a") as f:
        f.write(f"{{__name__}} {{os.getpid()}}\\n")


@pytest.mark.parametrize("i", range({n}))
def test_one(made, i):
    pass
'''


def test_a_group_runs_in_one_worker_and_its_module_fixtures_are_made_once(
        tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, n in (("test_first", 6), ("test_second", 4)):
        (suite / f"{name}.py").write_text(MODULE.format(n=n))
    (suite / "test_loose.py").write_text("".join(f"def test_{i}():\n    pass\n"
                                                 for i in range(6)))
    setups = tmp_path / "setups.txt"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-c", os.devnull, "--rootdir", str(tmp_path), str(suite)],
        env={**os.environ, "SETUPS": str(setups), "PYTEST_ADDOPTS": ""},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "16 passed" in done.stdout
    made = [line.split() for line in setups.read_text().splitlines()]
    # one setup per module (none made again on the other worker), both in one process
    assert sorted(m for m, _ in made) == ["test_first", "test_second"], made
    assert len({pid for _, pid in made}) == 1, made
