"""What a new user runs, as written: every file in ``examples/`` submitted with the CLI —
the CPU-sized ones to completion through a real worker, the others (a GPU's hours, or
inputs a lab brings) checked by the server without running — and the README's Python
client block, on the fresh server before them and again after them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cli import main
from core.settings import Settings, get_settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from ml.neural.io import save_npz
from ml.neural.simulate import SimulationConfig, simulate
from neuroreg.client import Client
from tests.livesrv import live_server, live_worker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# in the order a user runs them: each reads the runs the ones before it made
RUN = ["similarity-small.yaml", "train-neural.yaml", "evaluate-quick.yaml", "study-small.yaml"]
CHECK = ["similarity-simulated.yaml", "similarity-recording.yaml", "train-cnn-features.yaml",
         "train-paper-cifar10.yaml", "evaluate-paper.yaml", "study-paper.yaml"]


def test_every_example_is_run_or_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(RUN + CHECK)


def _readme_block(after: str) -> str:
    text = (ROOT / "docs" / "runs.md").read_text()
    start = text.index(after)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)  # type: ignore[union-attr]


def _run_client_block() -> dict[str, object]:
    """The README's Python client block, as written, in the current folder; its names."""
    scope: dict[str, object] = {}
    try:
        exec(compile(_readme_block("### Python client"), "docs/runs.md", "exec"), scope)
    finally:
        if isinstance(scope.get("nr"), Client):
            scope["nr"].close()  # type: ignore[union-attr]
    return scope


@pytest.mark.integration
def test_the_examples_and_the_readme_client_run_as_written(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # what a lab puts in place before the checked examples: its recording, VGG19's weights
    # and the CIFAR-10 archive (the checks read that the files are there)
    settings.recordings.mkdir(parents=True)
    save_npz(simulate(SimulationConfig(n_images=120, n_oracle=10, oracle_repeats=4, n_scans=2,
                                       neurons_per_scan=24)).scans,
             settings.recordings / "my-scans.npz")
    settings.models.mkdir(parents=True)
    (settings.models / "vgg19-dcbb9e9d.pth").write_bytes(b"weights")
    settings.datasets.mkdir(parents=True)
    (settings.datasets / "cifar-10-python.tar.gz").write_bytes(b"archive")
    with live_server(settings) as url, live_worker(settings, tmp_path / "worker.log"):
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        assert token is not None
        monkeypatch.setenv("NEUROREG_API_URL", url)
        monkeypatch.setenv("NEUROREG_TOKEN", token)
        get_settings.cache_clear()
        try:
            # the README's Python client on a fresh server (no study, no evaluation yet)
            fresh = tmp_path / "fresh"
            fresh.mkdir()
            monkeypatch.chdir(fresh)
            scope = _run_client_block()
            assert "study" not in scope and scope["board"] == []
            assert (fresh / "model.pt").stat().st_size > 0
            for name in RUN:
                assert main(["submit", str(EXAMPLES / name), "--wait"]) == 0, (
                    name, capsys.readouterr().err, (tmp_path / "worker.log").read_text()[-3000:])
            for name in CHECK:
                assert main(["submit", str(EXAMPLES / name), "--check"]) == 0, (
                    name, capsys.readouterr().err)
                assert "nothing was submitted" in capsys.readouterr().out
            with Client(url, token) as nr:
                runs = nr.runs()
                # the block's train and external run, the three runs, the study and its 4 + 4
                assert len(runs) == 2 + 3 + 1 + 8
                assert {r["status"] for r in runs} == {"succeeded"}, [
                    (r["id"], r["status"], r["error"]) for r in runs]
                # the CPU examples train to what digits32 allows (about 0.98), not half-way
                trains = [r for r in runs if r["kind"] == "train" and r["name"] != "quick"]
                assert len(trains) == 5
                assert all(r["result"]["test_accuracy"] >= 0.9 for r in trains), [
                    (r["name"], r["result"]["test_accuracy"]) for r in trains]
                # the README's Python client, as written, again: now with a study
                monkeypatch.chdir(tmp_path)
                scope = _run_client_block()
                assert scope["study"] == nr.runs(kind="study")[0]["id"]
                assert (tmp_path / "model.pt").stat().st_size > 0
                # evaluate-quick ran AutoAttack at RobustBench's ε and the corruptions: the
                # README's leaderboard leads with a record of both
                board = scope["board"]
                assert isinstance(board, list) and board
                saved = json.loads((tmp_path / f"neuroreg-record-"
                                    f"{board[0]['evaluation_run']}.json").read_text())
                quick = next(r for r in board if r["autoattack_linf"] is not None)
                assert quick["autoattack_linf_version"] == "custom"
                assert quick["corruptions_acc"] is not None and saved["schema"]
                assert nr.runs(kind="external", status="succeeded")[0]["name"] == "my sweep"
        finally:
            get_settings.cache_clear()
            os.environ.pop("NEUROREG_TOKEN", None)
