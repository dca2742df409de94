"""The CLI against a live server: managing runs (``show``, ``cancel``, ``tag``, ``rename``,
``rm``) and the rough edges of issue 36 (a missing run's summary, a closed pipe, ``--sort
id``, ``--set`` text, the token after ``up --data-dir``, ``submit --check``'s config)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli import main
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.metrics import insert_points
from core.store.models import Run, RunStatus, User, utcnow
from core.store.runs import create_run, set_tags, tags_of
from tests.cli.conftest import Server

ROOT = Path(__file__).resolve().parents[2]


def _make(settings: Settings, kind: str, name: str, config: dict | None = None, *,
          status: RunStatus | None = None, parent: int | None = None,
          reads: int | None = None, tags: tuple[str, ...] = (), result: dict | None = None
          ) -> int:
    """A run stored as a worker leaves it: queued, running or finished."""
    with session_scope(settings.db_url) as s:
        owner = s.query(User).first()
        run = create_run(s, owner=owner, kind=kind, name=name, config=config or {},
                         parent_id=parent, input_run_id=reads)
        set_tags(s, run, list(tags))
        if status is not None:  # set, not finish_run: a child's end would move its study
            run.status, run.result = status, result
            run.started_at = utcnow()
            run.finished_at = utcnow() if status.finished else None
            run.progress = 1.0 if status is RunStatus.succeeded else 0.0
        return run.id


def _status(settings: Settings, run_id: int) -> RunStatus | None:
    with session_scope(settings.db_url) as s:
        run = s.get(Run, run_id)
        return None if run is None else run.status


def _family(settings: Settings) -> dict[str, int]:
    """A similarity run, a study reading it, a train run of the study (with metrics, an
    artifact and tags) and its evaluation."""
    sim = _make(settings, "similarity", "sim", {"source": "simulated"},
                status=RunStatus.succeeded)
    study = _make(settings, "study", "grid", {"target_run": sim, "seeds": 1}, reads=sim,
                  status=RunStatus.running)
    train = _make(settings, "train", "t none 0", {"epochs": 3, "lr": 0.05,
                                                  "train": {"width": 8}},
                  parent=study, tags=("fig4", "lr:0.05"), status=RunStatus.succeeded,
                  result={"test_acc": 0.91, "layers": [1, 2], "gamma": []})
    ev = _make(settings, "evaluate", "e", {"train_run": train}, parent=study, reads=train,
               status=RunStatus.queued)
    with session_scope(settings.db_url) as s:
        insert_points(s, train, [("test_acc", k, v, None) for k, v in
                                 enumerate([0.5, 0.8, 0.91])] + [("loss", 0, 2.5, None)])
        save_artifact(s, settings.artifacts, run_id=train, name="model.pt", data=b"x" * 1500,
                      media_type="application/octet-stream")
    return {"sim": sim, "study": study, "train": train, "eval": ev}


def test_show_prints_a_runs_whole_picture(server: Server, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    ids = _family(server.settings)
    assert main(["show", str(ids["train"])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"run {ids['train']}  t none 0"
    fields = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:10] if line.strip()}
    assert fields["kind"] == "train" and fields["status"] == "succeeded"
    assert fields["owner"] == "admin" and fields["tags"] == "fig4, lr:0.05"
    assert fields["project"] == "default"
    assert fields["study"] == f"run {ids['study']} grid (study, running)"
    assert fields["page"] == f"{server.url}/runs/{ids['train']}"
    assert "  train.width  8" in lines and "  lr           0.05" in lines
    evals = lines.index("evaluations of this model (1: 1 queued)")
    assert lines[evals + 1].split() == [str(ids["eval"]), "evaluate", "queued", "0%", "e"]
    assert "  test_acc   0.5" not in out  # the latest value, with its step and count
    assert "  test_acc          0.91  at step 2 (3 points)" in lines
    assert "  loss               2.5  at step 0 (1 point)" in lines
    assert "  model.pt     1.5 kB  application/octet-stream" in lines
    assert "  test_acc  0.91" in lines  # the result's scalars
    # a study: what it reads and its runs
    assert main(["show", str(ids["study"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"  reads    run {ids['sim']} sim (similarity, succeeded)" in lines
    kids = lines.index("runs of this study (2: 1 succeeded, 1 queued)")
    assert [line.split()[0] for line in lines[kids + 1:kids + 3]] == [
        str(ids["train"]), str(ids["eval"])]
    # --json: the same picture for a script
    assert main(["show", str(ids["train"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["id"] == ids["train"] and data["parent"]["id"] == ids["study"]
    assert [r["id"] for r in data["read_by"]] == [ids["eval"]]
    assert {m["key"]: m["last_value"] for m in data["metrics"]} == {"test_acc": 0.91,
                                                                     "loss": 2.5}
    assert [a["name"] for a in data["artifacts"]] == ["model.pt"]
    assert main(["show", "9999"]) == 1
    err = capsys.readouterr().err
    assert err == "error 404: run 9999 does not exist\n"


def test_cancel_stops_what_runs_and_names_what_it_cannot(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    s = server.settings
    queued = _make(s, "train", "q")
    running = _make(s, "external", "r", {"params": {}}, status=RunStatus.running)
    done = _make(s, "train", "done", status=RunStatus.succeeded)
    assert main(["cancel", str(queued), str(running)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f'cancelled run {queued} (train, queued) "q": dequeued',
                   f'cancelled run {running} (external, running) "r": stops at its next check']
    assert _status(s, queued) is _status(s, running) is RunStatus.cancelled
    assert main(["cancel", str(done), "9999"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f'error: run {done} (train, succeeded) "done" has already finished; '
                   "nothing to cancel", "error 404: run 9999 does not exist"]
    assert _status(s, done) is RunStatus.succeeded


def test_tag_adds_removes_and_refuses_what_the_api_would(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    run = _make(server.settings, "train", "t", tags=("old",))
    assert main(["tag", str(run), "fig4", "lr:0.1", "--rm", "old"]) == 0
    assert capsys.readouterr().out == f"run {run} tags: fig4, lr:0.1\n"
    assert main(["tag", str(run)]) == 0  # no tag given: the run's tags
    assert capsys.readouterr().out == f"run {run} tags: fig4, lr:0.1\n"
    assert main(["tag", str(run), "lr=0.1"]) == 1
    assert capsys.readouterr().err == ("error: tag 'lr=0.1': a tag is 1 to 64 letters, digits "
                                       "and _ . : / + - (write lr:0.1)\n")
    assert main(["tag", str(run), "--rm", "fig5"]) == 1
    assert capsys.readouterr().err == (f"error: run {run} has no tag 'fig5' (its tags: fig4, "
                                       "lr:0.1)\n")
    assert main(["tag", "9999", "x"]) == 1
    assert capsys.readouterr().err == "error 404: run 9999 does not exist\n"
    with session_scope(server.settings.db_url) as s:
        assert tags_of(s, [run]) == {run: ["fig4", "lr:0.1"]}
    assert main(["tag", str(run), "--rm", "fig4", "lr:0.1"]) == 0  # every word after --rm
    assert capsys.readouterr().out == f"run {run} tags: (none)\n"


def test_rename(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    run = _make(server.settings, "train", "old name")
    assert main(["rename", str(run), "a: b"]) == 0
    assert capsys.readouterr().out == f'run {run} renamed: "old name" → "a: b"\n'
    with session_scope(server.settings.db_url) as s:
        assert s.get(Run, run).name == "a: b"
    assert main(["rename", str(run), "x" * 201]) == 1
    assert capsys.readouterr().err.startswith("error 422: name: String should have at most 200")
    assert main(["rename", "9999", "x"]) == 1
    assert capsys.readouterr().err == "error 404: run 9999 does not exist\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rm_asks_on_a_terminal_and_refuses_unfinished_runs(
        server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = server.settings
    done = _make(s, "train", "done", status=RunStatus.succeeded)
    failed = _make(s, "train", "broke", status=RunStatus.failed)
    running = _make(s, "external", "r", {"params": {}}, status=RunStatus.running)
    with session_scope(s.db_url) as sess:
        save_artifact(sess, s.artifacts, run_id=done, name="model.pt", data=b"w",
                      media_type="application/octet-stream")
    artifact = s.artifacts / str(done) / "model.pt"
    assert artifact.exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a script: never asks, refuses
    assert main(["rm", str(done)]) == 1
    assert capsys.readouterr().err == (f"error: rm: stdin is not a terminal to ask on; pass "
                                       f"--yes to delete run {done}\n")
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))  # asked, and declined
    assert main(["rm", str(done), str(failed)]) == 1
    out = capsys.readouterr().out
    assert f'  run {done} (train, succeeded) "done"\n' in out
    assert out.endswith("delete these 2 runs with their metrics, logs and artifacts? [y/N] "
                        "nothing deleted\n")
    assert _status(s, done) is RunStatus.succeeded and artifact.exists()
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert main(["rm", str(done), str(running), "9999"]) == 1
    out, err = capsys.readouterr()
    assert "delete this run with" in out and out.endswith(f"deleted run {done}\n")
    assert err.splitlines() == [
        "error 404: run 9999 does not exist",
        f'error: run {running} (external, running) "r" has not finished; cancel it first '
        f"(neuroreg cancel {running}), then delete it"]
    assert _status(s, done) is None and not artifact.exists()
    assert _status(s, running) is RunStatus.running
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["rm", "--yes", str(failed)]) == 0
    assert capsys.readouterr().out == f"deleted run {failed}\n"
    assert _status(s, failed) is None


def test_rm_deletes_a_model_with_its_evaluation_but_never_the_model_alone(
        server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = server.settings
    model = _make(s, "train", "model", status=RunStatus.succeeded)
    ev = _make(s, "evaluate", "ev", {"train_run": model, "runs": []}, reads=model,
               status=RunStatus.succeeded)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["rm", "--yes", str(model)]) == 1
    assert capsys.readouterr().err == (f"error 409: evaluate run {ev} reads run {model}'s "
                                       "model.pt: delete what reads it first\n")
    assert _status(s, model) is RunStatus.succeeded
    assert main(["rm", "--yes", str(model), str(ev)]) == 0  # given in any order
    assert capsys.readouterr().out == f"deleted run {ev}\ndeleted run {model}\n"
    assert _status(s, model) is None and _status(s, ev) is None


def test_a_summary_of_a_missing_run_or_one_of_another_kind_fails(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    ext = _make(server.settings, "external", "x", {"params": {}}, status=RunStatus.succeeded)
    for command, kind in (("gamma", "train"), ("robustness", "evaluate")):
        assert main([command, "9999", str(ext)]) == 1
        out, err = capsys.readouterr()
        assert out == f"no finished {kind} runs among these\n"  # not "skipped: [9999]"
        assert err.splitlines() == [f"error: run {ext} is a external run, not a {kind} run",
                                    "error 404: run 9999 does not exist"]
    queued = _make(server.settings, "train", "q")
    assert main(["gamma", str(queued)]) == 0  # not finished yet: said, not an error
    assert f"skipped (not succeeded train runs): [{queued}]" in capsys.readouterr().out


def test_runs_sort_by_a_run_field(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [_make(server.settings, "train", name) for name in ("b", "a", "c")]
    assert main(["runs", "--sort", "id"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert [int(r.split()[0]) for r in rows] == ids
    assert main(["runs", "--sort", "name", "--desc"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert [r.split()[-1] for r in rows] == ["c", "b", "a"]
    assert main(["runs", "--sort", "tag"]) == 1  # a field it cannot sort by, in words
    assert capsys.readouterr().err == (
        "error 422: sort: 'tag' is not a field to sort by: config.<path> or "
        "metrics.<key>[.last|.min|.max] (parts of letters, digits and _ : / - [ ]), or one "
        "of the run's: id, name, kind, status, owner, project, parent, created, started, "
        "finished\n")


def test_a_closed_pipe_ends_the_output_quietly(server: Server) -> None:
    """``neuroreg runs | head -1``: the reader goes; no message, SIGPIPE's status."""
    for k in range(3):
        _make(server.settings, "train", f"r{k}")
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        res = subprocess.run([sys.executable, "-m", "cli", "runs"], stdout=write,
                             stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(write)
    assert res.stderr.decode() == ""
    assert res.returncode == 141


def test_set_keeps_text_text_and_types_what_is_written_as_a_value() -> None:
    from cli.commands import UsageError, apply_sets

    sets = ["name=a: b", "note=no", "day=2026-01-01", "t=1:30", "quoted='42'", 'dq="a: b"',
            "epochs=7", "lr=1e-3", "alpha=-0.5", "norms=[l2, linf]", "m={a: 1}",
            "deterministic=true", "taps=null", "empty=", "word=resnet18"]
    body = apply_sets({"kind": "train", "config": {}}, sets)
    assert body["name"] == "a: b"
    assert body["config"] == {"note": "no", "day": "2026-01-01", "t": "1:30", "quoted": "42",
                              "dq": "a: b", "epochs": 7, "lr": 0.001, "alpha": -0.5,
                              "norms": ["l2", "linf"], "m": {"a": 1},
                              "deterministic": True, "taps": None, "empty": "",
                              "word": "resnet18"}
    assert isinstance(body["config"]["epochs"], int)
    with pytest.raises(UsageError, match=r"--set norms=\[l2: not valid YAML"):
        apply_sets({}, ["norms=[l2"])
    with pytest.raises(UsageError, match="YAML reads it as dict, not the str"):
        apply_sets({}, ['x="a": 1'])


def test_submit_check_prints_the_run_as_the_server_would_run_it(
        server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("kind: train\nname: quick\nconfig:\n  dataset: digits32\n"
                    "  backbone: small_cnn\n  epochs: 2\n")
    assert main(["submit", str(path), "--check", "--set", "name=a: b"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {path}: a valid train run (nothing was submitted)")
    resolved = yaml.safe_load(out)
    assert resolved["kind"] == "train" and resolved["name"] == "a: b"
    assert resolved["config"]["epochs"] == 2 and resolved["config"]["batch_size"] == 64
    from core.kinds import KINDS

    every = {f.name for f in dataclasses.fields(KINDS["train"].config_type)}
    assert set(resolved["config"]) == every  # every default filled in
    with session_scope(server.settings.db_url) as s:
        assert s.query(Run).count() == 0  # nothing was submitted
    # what it prints is a run file the server takes as it is
    again = tmp_path / "resolved.yaml"
    again.write_text(out)
    assert main(["submit", str(again), "--check"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == resolved


def test_after_up_with_a_data_dir_a_plain_client_finds_its_token(
        server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`neuroreg up --data-dir DIR` records DIR for its URL; `neuroreg runs` with neither
    NEUROREG_TOKEN nor a data dir then reads DIR's admin token."""
    from neuroreg.settings import record_server

    s = server.settings
    s.token_file.write_text(server.token + "\n")
    monkeypatch.delenv("NEUROREG_TOKEN")
    monkeypatch.delenv("NEUROREG_DATA_DIR")
    monkeypatch.setenv("HOME", str(s.data_dir.parent / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert main(["runs"]) == 1
    assert "error 401: no token" in capsys.readouterr().err
    record_server(server.url, s.data_dir, os.getpid())  # what `up` does while it runs
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(0 of 0)"
