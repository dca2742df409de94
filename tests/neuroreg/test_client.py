"""The Python client against a live server (no worker: runs stay queued unless external)."""

import numpy as np
import pytest

from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.users import ensure_admin
from neuroreg.client import Client, NeuroregError
from tests.livesrv import live_server


@pytest.fixture
def nr(settings: Settings):  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as client:
            yield client


def test_log_from_a_script_like_mlflow_then_read_back(nr: Client, settings: Settings) -> None:
    run = nr.create_external("my sweep", params={"lr": 0.1}, tags=["sweep"])
    assert run["status"] == "running" and run["config"] == {"params": {"lr": 0.1}}
    assert run["tags"] == ["sweep"]
    nr.log_batch(run["id"], {"loss": 0.7, "acc": 0.5}, step=0)
    n = nr.log_batch(run["id"], [("loss", s, 1 / (s + 1)) for s in range(1, 12_000)])
    assert n == 11_999  # sent in several requests
    steps, values = nr.series(run["id"], "loss")
    assert steps.tolist() == list(range(12_000)) and values[0] == 0.7
    frame = nr.metrics_frame(run["id"])
    assert list(frame.columns) == ["acc", "loss"] and frame.loc[3, "loss"] == 0.25
    assert np.isnan(frame.loc[3, "acc"])
    assert list(nr.metrics_frame(run["id"], ["loss"]).columns) == ["loss"]
    done = nr.finish(run["id"], result={"best": 0.9})
    assert done["status"] == "succeeded" and done["result"] == {"best": 0.9}
    assert nr.wait(run["id"], progress=False)["status"] == "succeeded"
    with pytest.raises(NeuroregError, match="already succeeded"):
        nr.finish(run["id"])
    assert [r["id"] for r in nr.runs(tag="sweep")] == [run["id"]]


def test_submit_errors_name_the_field_and_downloads_stream(
    nr: Client, settings: Settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NeuroregError, match=r"422: config\.epochs"):
        nr.submit("train", {"epochs": 0})
    run = nr.submit("train", {"epochs": 1, "backbone": "small_cnn"}, name="queued")
    assert run["status"] == "queued" and run["config"]["backbone"] == "small_cnn"
    with pytest.raises(NeuroregError, match="its worker finishes it"):
        nr.finish(run["id"])
    with pytest.raises(TimeoutError):
        nr.wait(run["id"], progress=False, poll=0.05, timeout=0.2)
    with session_scope(settings.db_url) as s:
        save_artifact(s, settings.artifacts, run_id=run["id"], name="model.pt",
                      data=b"weights" * 1000, media_type="application/octet-stream")
    path = nr.download(run["id"], "model.pt", tmp_path)
    assert path == tmp_path / "model.pt" and path.read_bytes() == b"weights" * 1000
    with pytest.raises(NeuroregError, match="404"):
        nr.download(run["id"], "nope.pt", tmp_path)
    nr.cancel(run["id"])
    nr.delete(run["id"])
    with pytest.raises(NeuroregError, match="404"):
        nr.run(run["id"])


def test_uploads_stream_in_are_limited_and_stay_under_the_root(
    make_settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(max_upload_bytes=100_000)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            run = nr.create_external("uploads")
            src = tmp_path / "weights.bin"
            src.write_bytes(bytes(range(256)) * 300)  # 76,800 bytes, under the limit
            art = nr.upload(run["id"], src, media_type="application/x-test")
            assert art["size_bytes"] == 76_800 and art["media_type"] == "application/x-test"
            assert nr.download(run["id"], "weights.bin", tmp_path / "back.bin").read_bytes() \
                == src.read_bytes()
            big = tmp_path / "big.bin"
            big.write_bytes(b"x" * 150_000)
            with pytest.raises(NeuroregError, match="413"):
                nr.upload(run["id"], big)
            assert [a["name"] for a in nr.artifacts(run["id"])] == ["weights.bin"]
            for bad in ("..", ".hidden", "a..b", "../1/artifacts/x"):  # never in a URL
                with pytest.raises(ValueError, match="artifact name"):
                    nr.upload(run["id"], src, name=bad)
            assert not any(p.name.startswith(".tmp-")
                           for p in (settings.artifacts / str(run["id"])).iterdir())


def test_a_studys_curves_as_a_frame(nr: Client, settings: Settings) -> None:
    from core.store.metrics import insert_points
    from core.store.models import User
    from core.store.runs import create_run

    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        study = create_run(s, owner=owner, kind="study", name="grid", config={})
        for seed, acc in ((0, 0.5), (1, 0.7)):
            run = create_run(s, owner=owner, kind="train", name="", parent_id=study.id,
                             config={"target": "none", "alpha": 20.0, "seed": seed})
            insert_points(s, run.id, [("test_acc", 9, acc, None), ("test_acc", 19, acc + 0.1,
                                                                    None)])
        sid = study.id
    frame = nr.study_curves(sid)
    assert list(frame.columns) == ["target", "alpha", "step", "mean", "sem", "n"]
    assert frame["step"].tolist() == [9, 19] and np.allclose(frame["mean"], [0.6, 0.7])
    assert np.allclose(frame["sem"], 0.1) and frame["n"].tolist() == [2, 2]
    assert len(nr.study(sid)["runs"]) == 2
    with pytest.raises(NeuroregError, match="nope"):
        nr.study_curves(sid, "nope")


def test_the_frontier_of_a_study_or_of_evaluate_runs(nr: Client, settings: Settings) -> None:
    from tests.server.test_frontier_api import stored_study

    ids = stored_study(settings)
    data = nr.frontier(ids["study"])
    assert [m["condition"] for m in data["matched"]] == ["neural-model", "shuffle"]
    assert [m["matched"] for m in data["matched"]] == [True, False]
    assert [m["matched"] for m in nr.frontier(ids["study"], tolerance=0.2)["matched"]] == [
        True, True]
    none = [ids["evals"][("none", 0.0, s)] for s in range(3)]
    picked = nr.frontier(run_ids=none + [ids["evals"][("shuffle", 16.0, 0)]], tolerance=0.5)
    assert [(p["condition"], p["n"]) for p in picked["points"]] == [("none", 3), ("shuffle", 1)]
    assert picked["matched"][0]["tests"]["noise_accuracy"]["pairs"] == 1
    with pytest.raises(NeuroregError, match="409: no evaluated None run"):
        nr.frontier(run_ids=[ids["evals"][("shuffle", 16.0, 0)]])
    with pytest.raises(NeuroregError, match="422: tolerance"):
        nr.frontier(ids["study"], tolerance=float("nan"))
    for bad in ({}, {"study_id": ids["study"], "run_ids": none}, {"run_ids": []}):
        with pytest.raises(ValueError, match="study_id or run_ids"):
            nr.frontier(**bad)
