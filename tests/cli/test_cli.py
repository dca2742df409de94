"""The CLI's pieces that need no live server (the live path runs in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import build_parser, load_run_file
from cli.service import (
    DEMO_CONFIG,
    DEMO_SIMILARITY_NAME,
    DEMO_STUDY_NAME,
    _admin_token,
    _demo_study,
    _submit_demo,
)
from core.lifecycle import finish_run
from core.settings import Settings, get_settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import Run, RunStatus
from core.store.runs import list_runs
from server.app import create_app


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
    from cli.commands import UsageError

    with pytest.raises(UsageError, match="mapping"):
        load_run_file(bad)


def test_parser_knows_every_command() -> None:
    parser = build_parser()
    for argv in (["up"], ["api"], ["worker"], ["submit", "x.yaml", "--wait"], ["runs"],
                 ["gamma", "3", "4"], ["robustness", "5"], ["frontier", "6", "--json"],
                 ["datasets"],
                 ["datasets", "download", "cifar100"], ["show", "7", "--json"],
                 ["cancel", "7", "8"], ["tag", "7", "fig4", "--rm", "a", "b"],
                 ["rename", "7", "a: b"], ["rm", "7", "8", "--yes"]):
        assert parser.parse_args(argv).command == argv[0]


def test_datasets_lists_what_train_runs_can_read(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import cmd_datasets

    (settings.datasets / "cifar-10-batches-py").mkdir(parents=True)
    assert cmd_datasets(build_parser().parse_args(["datasets"]), settings) == 0
    out = capsys.readouterr().out
    assert f"cifar10       {settings.datasets / 'cifar-10-batches-py'}" in out
    assert "cifar100      missing: neuroreg datasets download cifar100" in out
    from ml.data.registry import DATASETS

    listed = {line.split()[0] for line in out.splitlines()[1:]}
    assert listed == set(DATASETS)  # every dataset a train run can name, once
    assert "leaves32      built in" in out
    bad = build_parser().parse_args(["datasets", "download", "mnist"])
    assert cmd_datasets(bad, settings) == 2
    assert "unknown dataset ['mnist']" in capsys.readouterr().err


def test_cli_errors_name_the_field_and_an_unreachable_server_its_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import main
    from neuroreg.client import NeuroregError
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

    from cli import cmd_frontier
    from core.store.users import ensure_admin
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
        # each test's 95 % interval and what it lets one say
        l2 = next(line for line in lines if "median minimal L2" in line)
        assert "[+0.0196, +0.021]" in l2 and l2.split()[-3] == "higher"
        assert next(line for line in lines if "median minimal L∞" in line).split()[-3:] == [
            "unresolved", "–", "–"]
        wide = build_parser().parse_args(["frontier", str(ids["study"]), "--tolerance", "0.2",
                                          "--json"])
        assert cmd_frontier(wide, cli) == 0
        data = json.loads(capsys.readouterr().out)
        assert [m["matched"] for m in data["matched"]] == [True, True]
        env = {**os.environ, "NEUROREG_API_URL": url, "NEUROREG_TOKEN": token,
               "NEUROREG_DATA_DIR": str(settings.data_dir)}
        for argv, code in (([str(empty["study"])], "error 409: no finished evaluations yet"),
                           ([str(ids["study"]), "--tolerance", "0"], "error 422: tolerance")):
            res = subprocess.run([sys.executable, "-m", "cli", "frontier", *argv],
                                 env=env, capture_output=True, text=True, timeout=120)
            assert res.returncode == 1 and res.stdout == ""
            assert res.stderr.startswith(code) and "Traceback" not in res.stderr
            assert len(res.stderr.splitlines()) == 1


def _options(parser: object) -> list[tuple[str, object]]:
    """(command, action) for every option and positional of every command."""
    import argparse

    out = []
    for action in parser._actions:  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(name, a) for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        elif not isinstance(action, argparse._HelpAction):
            out.append(("neuroreg", action))
    return out


def test_every_option_of_every_command_has_help_text() -> None:
    missing = [(cmd, a.dest) for cmd, a in _options(build_parser()) if not a.help]  # type: ignore[attr-defined]
    assert missing == []
    args = build_parser().parse_args(["up", "--port", "8123", "--data-dir", "/tmp/x"])
    assert (args.port, args.data_dir) == (8123, "/tmp/x")
    # the global --data-dir still works before the command
    assert build_parser().parse_args(["--data-dir", "/tmp/y", "up"]).data_dir == "/tmp/y"


@pytest.mark.parametrize(("text", "suffix", "said"), [
    ("kind: train\nconfig: {epochs: 2\n", ".yaml",
     "r.yaml:3:1: not valid YAML: expected ',' or '}'"),
    ('{"kind": "train",}', ".json", "r.json:1:18: not valid JSON: Expecting property name"),
    (None, ".yaml", "r.yaml: no such file"),
])
def test_a_bad_run_file_is_one_line_naming_the_file_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, suffix: str, said: str
) -> None:
    from cli import main

    path = tmp_path / f"r{suffix}"
    if text is not None:
        path.write_text(text)
    assert main(["--data-dir", str(tmp_path), "submit", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {path.parent}/{said}" + err.split(said, 1)[1].rstrip()]
    assert "Traceback" not in err
    from cli.commands import UsageError

    with pytest.raises(UsageError):  # --debug: the exception itself, for a bug report
        main(["--data-dir", str(tmp_path), "--debug", "submit", str(path)])


def test_set_overrides_and_run_references_resolve_on_the_server() -> None:
    from cli.commands import UsageError, apply_sets, resolve_references

    body = apply_sets({"kind": "evaluate", "config": {"train_run": "latest"}},
                      ["n_samples=10", "config.norms=[l2]", "name=quick"])
    assert body == {"kind": "evaluate", "name": "quick",
                    "config": {"train_run": "latest", "n_samples": 10, "norms": ["l2"]}}
    with pytest.raises(UsageError, match="key=value"):
        apply_sets({}, ["epochs"])

    class Server:  # what Client.kinds and Client.runs answer (newest first)
        def kinds(self) -> list[dict]:
            from core.kinds import KINDS

            return [{"name": k.name, "reads": k.reads} for k in KINDS.values()]

        def runs(self, kind: str, status: str) -> list[dict]:
            assert status == "succeeded"
            return {"train": [{"id": 9, "name": "b"}, {"id": 4, "name": "a"},
                              {"id": 3, "name": "a"}],
                    "similarity": []}[kind]

    assert resolve_references(body, Server())["config"]["train_run"] == 9
    named = {"kind": "train", "config": {"target_run": 2, "features": {"run": "a"}}}
    assert resolve_references(named, Server())["config"]["features"]["run"] == 4
    with pytest.raises(UsageError, match=r"config.target_run: no succeeded similarity run "
                                         r"on this server; submit one first"):
        resolve_references({"kind": "study", "config": {"target_run": "latest"}}, Server())
    with pytest.raises(UsageError, match="no succeeded train run named 'zz'"):
        resolve_references({"kind": "evaluate", "config": {"train_run": "zz"}}, Server())


def test_recordings_inspect_reports_a_local_file_and_the_importers_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main
    from tests.ml.neural.test_nwb_layouts import write_lab_nwb

    write_lab_nwb(tmp_path / "allen.nwb", layout="allen", dropout=(10.0, 13.0))
    assert main(["recordings", "inspect", str(tmp_path / "allen.nwb")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "acquisition/EyeTracking/eye_position: no samples" in err[0]
    assert main(["recordings", "inspect", str(tmp_path), "--behavior-gaps", "fill",
                 "--response-offset", "0.3", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["gap_filled"] == 3 and report["blank_dropped"] == 4
    assert report["behavior"]["pupil size"] == "acquisition/PupilTracking/pupil_area [pixels^2]"
    assert main(["recordings", "inspect", str(tmp_path)] + ["--behavior-gaps", "drop"]) == 0
    out = capsys.readouterr().out
    assert "dropped     3  a gap in behaviour" in out and "→ 24 trials of 13 images" in out
    assert "repeated 4–5×" in out  # a repeat of an oracle image fell in the gap
