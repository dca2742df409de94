"""POST a run → a real Celery worker process trains it → metrics in SQL → GET the series.

Once on the embedded default (SQLite + filesystem broker) and once on the team stack
(PostgreSQL + Redis). The run is submitted with the CLI (``neuroreg submit --wait``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cli import main
from core.settings import Settings, get_settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.livesrv import live_server, live_worker

pytestmark = pytest.mark.integration


@pytest.fixture(params=["embedded", "redis+postgresql"])
def stack(request: pytest.FixtureRequest, make_settings) -> Settings:  # type: ignore[no-untyped-def]
    if request.param == "embedded":
        return make_settings()
    from tests.conftest import _truncate

    pg = request.getfixturevalue("pg_url")
    _truncate(pg)
    return make_settings(database_url=pg, broker_url=request.getfixturevalue("redis_url"))


def _cli_submit(stack: Settings, url: str, run_file: Path, log: Path,
                monkeypatch: pytest.MonkeyPatch, token: str = "") -> str:
    """``neuroreg submit FILE --wait`` against the live server; returns the admin token
    (created by the first call; pass it to later ones)."""
    if not token:
        with session_scope(stack.db_url) as s:
            token = ensure_admin(s) or ""
    monkeypatch.setenv("NEUROREG_API_URL", url)
    monkeypatch.setenv("NEUROREG_TOKEN", token)
    get_settings.cache_clear()
    try:
        code = main(["submit", str(run_file), "--wait"])
    finally:
        get_settings.cache_clear()
    text = log.read_text(errors="replace")
    assert code == 0, f"run did not succeed; worker log:\n{text[-3000:]}"
    return token


def test_run_travels_api_worker_sql_series(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    run_file = tmp_path / "run.json"
    run_file.write_text(
        json.dumps(
            {
                "kind": "train",
                "name": "integration",
                "config": {"epochs": 1, "width": 4, "batch_size": 128},
            }
        )
    )
    with live_server(stack) as url, live_worker(stack, tmp_path / "worker.log") as worker:
        token = _cli_submit(stack, url, run_file, tmp_path / "worker.log", monkeypatch)
        assert worker.poll() is None, "worker died"
        printed = capsys.readouterr()
        assert "submitted run" in printed.out and "succeeded" in printed.err
        run_id = int(printed.out.split("submitted run ")[1].split(":")[0])

        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.get(f"/api/runs/{run_id}").json()
            assert run["status"] == "succeeded" and run["result"]["steps"] == 12
            assert run["started_at"] and run["finished_at"]
            series = api.get(f"/api/runs/{run_id}/metrics/loss").json()
            assert series["total"] == 12 and series["steps"] == list(range(12))
            assert all(v > 0 for v in series["values"])
            test_acc = api.get(f"/api/runs/{run_id}/metrics/test_acc").json()
            assert test_acc["steps"] == [11] and 0 <= test_acc["values"][0] <= 1
            arts = {a["name"]: a for a in api.get(f"/api/runs/{run_id}/artifacts").json()}
            # the weights, and the log its epochs wrote (kept when the run ended)
            assert sorted(arts) == ["logs.txt", "model.pt"]
            assert (
                len(api.get(f"/api/runs/{run_id}/artifacts/model.pt").content)
                == arts["model.pt"]["size_bytes"]
            )
            log = api.get(f"/api/runs/{run_id}/artifacts/logs.txt").text
            assert "epoch 1/" in log
        assert main(["runs"]) == 0
        assert "integration" in capsys.readouterr().out


def test_similarity_run_through_worker_and_target_download(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """The similarity kind on the embedded default: CLI submit → worker → target artifact."""
    from ml.neural.target import SimilarityTarget

    stack = make_settings()
    run_file = tmp_path / "sim.yaml"
    run_file.write_text(
        "kind: similarity\nname: tiny simulated V1\nconfig:\n"
        "  simulation: {n_images: 80, n_oracle: 6, oracle_repeats: 3, n_scans: 2,"
        " neurons_per_scan: 12}\n"
        "  predictor: {hidden_channels: 4, max_epochs: 1}\n"
        "  pairs_for_r: 2000\n"
    )
    with live_server(stack) as url, live_worker(stack, tmp_path / "worker.log"):
        token = _cli_submit(stack, url, run_file, tmp_path / "worker.log", monkeypatch)
        run_id = int(capsys.readouterr().out.split("submitted run ")[1].split(":")[0])
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.get(f"/api/runs/{run_id}").json()
            assert run["kind"] == "similarity" and run["status"] == "succeeded"
            name = run["result"]["targets"]["neural-model"]
            target = SimilarityTarget.load(api.get(f"/api/runs/{run_id}/artifacts/{name}").content)
            assert len(target) == 74 and target.factor.shape[1] == 24
            r = api.get(f"/api/runs/{run_id}/metrics/r_model_oracle").json()
            assert r["values"] == [pytest.approx(run["result"]["scores"]["r_model_oracle"])]

        # a train run regularized toward that target, through the same worker
        train_file = tmp_path / "train.yaml"
        train_file.write_text(
            "kind: train\nname: tiny regularized\nconfig:\n"
            f"  {{backbone: small_cnn, width: 4, epochs: 1, batch_size: 128,"
            f" target: neural-model, target_run: {run_id}, alpha: 2}}\n"
        )
        _cli_submit(stack, url, train_file, tmp_path / "worker.log", monkeypatch, token)
        train_id = int(capsys.readouterr().out.split("submitted run ")[1].split(":")[0])
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.get(f"/api/runs/{train_id}").json()
            assert run["status"] == "succeeded" and run["input_run_id"] == run_id
            assert len(run["result"]["gamma"]) == 3 and run["result"]["r_similarity"] is not None
            assert api.get(f"/api/runs/{train_id}/metrics/sim_loss").json()["total"] == 12
            table = api.get("/api/summaries/gamma", params={"run_id": train_id}).json()
            assert table["rows"][0]["target"] == "neural-model" and table["rows"][0]["n"] == 1
