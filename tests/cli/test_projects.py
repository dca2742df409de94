"""``neuroreg projects`` against a live server: an admin makes a project and sets its
members' roles, ``projects show`` lists them, a viewer's ``submit --project`` is refused
with the API's reason, an editor's succeeds and ``runs --project`` shows it, ``projects
move`` moves it, and ``audit --project`` lists what happened in the project."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cli import main
from neuroreg.client import Client
from tests.cli.conftest import Server


def _add_user(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A new member's first token."""
    assert main(["users", "add", name]) == 0
    return capsys.readouterr().out.splitlines()[1].rsplit(" ", 1)[1]


def _rows(capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """A table's rows (without its header and total), each split into words."""
    return [line.split() for line in capsys.readouterr().out.splitlines()[1:-1]]


def test_projects_roles_submit_move_and_audit(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin = server.token
    ada, bob = _add_user("ada", capsys), _add_user("bob", capsys)
    assert main(["projects", "create", "alpha", "--description", "the alpha sweep"]) == 0
    assert capsys.readouterr().out.startswith("project 2: alpha, owned by admin; ")
    assert main(["projects", "member", "alpha", "ada", "viewer"]) == 0
    assert capsys.readouterr().out == "ada is now a viewer of project alpha\n"
    assert main(["projects", "member", "alpha", "bob", "editor"]) == 0
    assert capsys.readouterr().out == "bob is now an editor of project alpha\n"
    assert main(["projects", "show", "alpha"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "project 2: alpha (the alpha sweep)"
    assert lines[1].endswith(", 0 run(s), your role: owner")
    assert [line.split() for line in lines[2:]] == [
        ["2", "ada", "viewer"], ["1", "admin", "owner"], ["3", "bob", "editor"]]
    assert main(["projects"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["id", "name", "role", "runs"], ["1", "default", "owner", "0"],
        ["2", "alpha", "owner", "0"]]

    run_file = tmp_path / "sweep.yaml"
    run_file.write_text("kind: external\nname: sweep\nconfig:\n  params: {lr: 0.1}\n")
    # the viewer is refused, in the API's words; nothing is stored
    refused = httpx.post(f"{server.url}/api/runs", headers={"Authorization": f"Bearer {ada}"},
                         json={"kind": "external", "name": "sweep", "project": "alpha",
                               "config": {"params": {"lr": 0.1}}})
    assert refused.status_code == 403
    monkeypatch.setenv("NEUROREG_TOKEN", ada)
    assert main(["submit", str(run_file), "--project", "alpha"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error 403: {refused.json()['detail']}\n"
    assert "viewer" in err
    # the editor's run goes in, and the viewer reads it
    monkeypatch.setenv("NEUROREG_TOKEN", bob)
    assert main(["submit", str(run_file), "--project", "alpha"]) == 0
    out = capsys.readouterr().out
    run_id = int(out.split("submitted run ")[1].split(":")[0])
    assert out == f"submitted run {run_id}: {server.url}/runs/{run_id} (project alpha)\n"
    monkeypatch.setenv("NEUROREG_TOKEN", ada)
    assert main(["runs", "--project", "alpha"]) == 0
    rows = _rows(capsys)
    assert [(r[0], r[2], r[3], r[4], r[-1]) for r in rows] == [
        (str(run_id), "external", "bob", "alpha", "sweep")]
    assert main(["runs", "--project", "alpha", "-q", 'kind = "train"']) == 0  # both
    assert _rows(capsys) == []
    assert main(["runs", "--project", "2"]) == 0  # by id too
    assert [r[0] for r in _rows(capsys)] == [str(run_id)]

    # into a project its owner (bob) may create runs in; the viewer may not move it back
    monkeypatch.setenv("NEUROREG_TOKEN", admin)
    assert main(["projects", "create", "beta", "--owner", "bob", "--owner", "ada"]) == 0
    assert capsys.readouterr().out.startswith("project 3: beta, owned by ada, bob; ")
    monkeypatch.setenv("NEUROREG_TOKEN", bob)
    assert main(["projects", "move", str(run_id), "beta"]) == 0
    assert capsys.readouterr().out == (
        f"run {run_id} (sweep) is in project beta now, with every run it made\n")
    assert main(["runs", "--project", "alpha"]) == 0
    assert _rows(capsys) == []
    assert main(["runs", "--project", "beta"]) == 0
    assert [(r[0], r[4]) for r in _rows(capsys)] == [(str(run_id), "beta")]
    monkeypatch.setenv("NEUROREG_TOKEN", ada)
    assert main(["projects", "move", str(run_id), "alpha"]) == 1
    assert capsys.readouterr().err == (
        "error 403: project: you may not move runs into 'alpha': you are its viewer\n")

    # the audit trail: every event of alpha for the admin; beta's for its owners
    monkeypatch.setenv("NEUROREG_TOKEN", admin)
    assert main(["audit", "--project", "2"]) == 0
    events = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(e[2], e[3]) for e in events] == [
        ("bob", "run.moved_out"), ("bob", "run.created"), ("admin", "project.member_set"),
        ("admin", "project.member_set"), ("admin", "project.member_set"),
        ("admin", "project.created")]
    assert events[0][4:8] == ["run", str(run_id), "(sweep)", "in"]
    assert events[2][4:8] == ["project", "2", "(alpha):", "bob"]
    assert main(["audit", "--project", "2", "--json"]) == 0
    assert {e["project_id"] for e in json.loads(capsys.readouterr().out)} == {2}
    monkeypatch.setenv("NEUROREG_TOKEN", bob)
    assert main(["audit"]) == 0  # an owner of beta, an editor of alpha: beta's events
    assert {line.split()[3] for line in capsys.readouterr().out.splitlines()} == {
        "run.moved", "project.member_set", "project.created"}
    monkeypatch.setenv("NEUROREG_TOKEN", ada)
    assert main(["projects", "remove", "beta", "ada"]) == 0
    capsys.readouterr()
    assert main(["audit"]) == 1  # no project's owner any more
    assert capsys.readouterr().err == (
        "error 403: only an admin or a project's owner may read the audit trail\n")

    # a removed member no longer sees the project; an empty one is deleted, a full one not
    monkeypatch.setenv("NEUROREG_TOKEN", admin)
    assert main(["projects", "remove", "alpha", "ada"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("NEUROREG_TOKEN", ada)
    assert main(["projects", "show", "alpha"]) == 1
    assert capsys.readouterr().err == "error 404: project 'alpha' does not exist\n"
    monkeypatch.setenv("NEUROREG_TOKEN", admin)
    assert main(["projects", "delete", "beta"]) == 1
    assert capsys.readouterr().err == (
        "error 409: project: 'beta' holds 1 run(s); move or delete them first\n")
    assert main(["projects", "delete", "alpha"]) == 0
    assert capsys.readouterr().out == "deleted project alpha\n"
    assert main(["projects", "list", "--json"]) == 0
    assert [(p["name"], p["runs"]) for p in json.loads(capsys.readouterr().out)] == [
        ("default", 0), ("beta", 1)]


def test_a_member_who_owns_nothing_is_refused_what_owners_and_admins_do(
        server: Server, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    eve = _add_user("eve", capsys)
    assert main(["projects", "create", "alpha"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("NEUROREG_TOKEN", eve)
    for argv, err in (
            (["projects", "create", "mine"], "error 403: only an admin may make a project"),
            (["projects", "member", "alpha", "eve", "owner"],
             "error 404: project 'alpha' does not exist"),  # not hers: it does not exist
            (["projects", "member", "default", "eve", "owner"],
             "error 403: only the owners of project 'default' (and admins) may set its "
             "members")):
        assert main(argv) == 1, argv
        assert capsys.readouterr().err == err + "\n"
    assert main(["projects"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()][1:] == [
        ["1", "default", "editor", "0"]]


def test_an_offline_runs_project_goes_with_it_to_the_server(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``create_external(project=...)`` on a node without network: ``neuroreg sync`` stores
    the run in that project."""
    assert main(["projects", "create", "alpha"]) == 0
    spool = tmp_path / "spool"
    with Client(offline=True, spool_dir=spool) as nr:
        run = nr.create_external("offline sweep", project="alpha", provenance=False)
        nr.log_batch(run["id"], {"loss": 0.5}, step=0)
        nr.finish(run["id"])
    assert main(["sync", str(spool)]) == 0
    capsys.readouterr()
    assert main(["runs", "--project", "alpha"]) == 0
    assert [(r[1], r[4], " ".join(r[8:])) for r in _rows(capsys)] == [
        ("succeeded", "alpha", "offline sweep")]
