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
from server.settings import Settings
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
                 ["gamma", "3", "4"], ["robustness", "5"], ["datasets"],
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


def test_cli_errors_name_the_field() -> None:
    import httpx

    from server.cli import _check

    res = httpx.Response(
        422, json={"detail": [{"loc": ["body", "config", "epochs"], "msg": "too small"}]}
    )
    with pytest.raises(SystemExit, match=r"error 422: config\.epochs: too small"):
        _check(res)
