"""The CLI's pieces that need no live server (the live path runs in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.app import create_app
from server.cli import (
    DEMO_CONFIG,
    DEMO_SIMILARITY_NAME,
    DEMO_STUDY_NAME,
    _admin_token,
    _demo_study,
    _submit_demo,
    build_parser,
    load_run_file,
)
from server.settings import Settings, get_settings
from server.store.artifacts import save_artifact
from server.store.db import session_scope
from server.store.models import Run, RunStatus
from server.store.runs import finish_run, list_runs


def test_first_start_creates_admin_and_demo_once(settings: Settings) -> None:
    app = create_app(settings)
    token = _admin_token(settings)
    assert token.startswith("nr_") and settings.token_file.stat().st_mode & 0o777 == 0o600
    assert _admin_token(settings) == token  # a second start reuses it
    run_id = _submit_demo(settings, app)
    assert run_id is not None and _submit_demo(settings, app) is None
    with session_scope(settings.db_url) as s:
        runs, total = list_runs(s, order="oldest")
        assert total == 2 and runs[0].config["epochs"] == DEMO_CONFIG["epochs"]
        assert runs[1].kind == "similarity" and runs[1].name == DEMO_SIMILARITY_NAME
        sim = runs[1].id
    # the demo study waits for its similarity run, then is submitted once
    assert _demo_study(settings, app) is None
    with session_scope(settings.db_url) as s:
        for name in ("target-neural-model.npz", "target-neural-data.npz"):
            save_artifact(s, settings.artifacts, run_id=sim, name=name, data=b"x",
                          media_type="application/x-npz")
        finish_run(s, sim, RunStatus.succeeded)
    study = _demo_study(settings, app)
    assert study is not None and _demo_study(settings, app) is None
    with session_scope(settings.db_url) as s:
        run = s.get(Run, study)
        assert run.kind == "study" and run.name == DEMO_STUDY_NAME
        assert run.input_run_id == sim and run.config["target_run"] == sim
        assert run.config["conditions"] == ["none", "neural-model"]


def test_run_files_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "r.yaml"
    y.write_text("kind: train\nname: a\nconfig:\n  epochs: 2\n")
    j = tmp_path / "r.json"
    j.write_text(json.dumps({"kind": "train", "config": {"epochs": 3}}))
    assert load_run_file(y)["config"] == {"epochs": 2}
    assert load_run_file(j)["config"] == {"epochs": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit, match="mapping"):
        load_run_file(bad)


def test_parser_knows_every_command() -> None:
    parser = build_parser()
    for argv in (["up"], ["api"], ["worker"], ["submit", "x.yaml", "--wait"], ["runs"],
                 ["gamma", "3", "4"], ["robustness", "5"], ["frontier", "6", "--json"],
                 ["datasets"],
                 ["datasets", "download", "cifar100"]):
        assert parser.parse_args(argv).command == argv[0]


def test_datasets_lists_what_train_runs_can_read(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import cmd_datasets

    (settings.datasets / "cifar-10-batches-py").mkdir(parents=True)
    assert cmd_datasets(build_parser().parse_args(["datasets"]), settings) == 0
    out = capsys.readouterr().out
    assert f"cifar10     {settings.datasets / 'cifar-10-batches-py'}" in out
    assert "cifar100    missing: neuroreg datasets download cifar100" in out
    bad = build_parser().parse_args(["datasets", "download", "mnist"])
    assert cmd_datasets(bad, settings) == 2
    assert "unknown dataset ['mnist']" in capsys.readouterr().err


def test_cli_errors_name_the_field_and_an_unreachable_server_its_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuroreg.client import NeuroregError
    from server.cli import main
    from tests.livesrv import free_port

    err = NeuroregError(422, [{"loc": ["body", "config", "epochs"], "msg": "too small"}])
    assert str(err) == "422: config.epochs: too small"
    port = free_port()  # nothing listens there
    monkeypatch.setenv("NEUROREG_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NEUROREG_TOKEN", "nr_x")
    get_settings.cache_clear()
    try:
        assert main(["--data-dir", str(tmp_path), "runs"]) == 1
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    assert out.err.startswith(f"error: cannot reach the neuroreg server at http://127.0.0.1:{port}")
    assert "Traceback" not in out.err and out.out == ""


def test_frontier_prints_the_points_and_the_matched_comparison(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    from server.cli import cmd_frontier
    from server.store.users import ensure_admin
    from tests.livesrv import live_server
    from tests.server.test_frontier_api import stored_study

    with live_server(settings) as url:  # the app migrates the store
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        empty = stored_study(settings, evaluated=False)
        cli = settings.model_copy(update={"api_url": url, "token": token})
        assert cmd_frontier(build_parser().parse_args(["frontier", str(ids["study"])]), cli) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        none = next(line for line in lines if line.startswith("none "))
        assert none.split()[:6] == ["none", "0", "3", "0.901", "±", "0.00058"]
        assert lines.index(none) == 2  # None first, under the header
        assert "median L∞" in lines[1] and "acc highest σ" in lines[1]
        row = next(line for line in lines if line.startswith("neural-model ") and "-0.005" in line)
        assert row.split()[:3] == ["neural-model", "2", "-0.005"]
        assert "accuracy at the highest σ" in out and "+0.1 ± " in out
        assert "no α within ±0.02 (closest α=16, gap -0.100; tried α = 16)" in out
        assert "higher is better for every measure." in out
        assert "cannot go below 2/2^n (0.25 for n = 3)" in out
        wide = build_parser().parse_args(["frontier", str(ids["study"]), "--tolerance", "0.2",
                                          "--json"])
        assert cmd_frontier(wide, cli) == 0
        data = json.loads(capsys.readouterr().out)
        assert [m["matched"] for m in data["matched"]] == [True, True]
        env = {**os.environ, "NEUROREG_API_URL": url, "NEUROREG_TOKEN": token,
               "NEUROREG_DATA_DIR": str(settings.data_dir)}
        for argv, code in (([str(empty["study"])], "error 409: no finished evaluations yet"),
                           ([str(ids["study"]), "--tolerance", "0"], "error 422: tolerance")):
            res = subprocess.run([sys.executable, "-m", "server.cli", "frontier", *argv],
                                 env=env, capture_output=True, text=True, timeout=120)
            assert res.returncode == 1 and res.stdout == ""
            assert res.stderr.startswith(code) and "Traceback" not in res.stderr
            assert len(res.stderr.splitlines()) == 1
