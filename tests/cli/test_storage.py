"""``neuroreg storage`` and ``neuroreg lineage`` against a live server: a policy's dry
run, adding, listing and applying it, the refusal naming the reader, and a run's lineage
both ways."""

from __future__ import annotations

import pytest

from cli import build_parser
from cli.storage import cmd_add, cmd_apply, cmd_lineage, cmd_plan, cmd_policies, cmd_rm
from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.livesrv import live_server
from tests.server.test_retention_api import _chain

COMMANDS = {"add": cmd_add, "apply": cmd_apply, "plan": cmd_plan, "policies": cmd_policies,
            "rm": cmd_rm}


def test_storage_and_lineage_commands(settings: Settings,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from neuroreg.client import NeuroregError

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = _chain(settings)
        cli = settings.model_copy(update={"api_url": url, "token": token})

        def run(*argv: str) -> str:
            args = build_parser().parse_args(list(argv))
            fn = cmd_lineage if argv[0] == "lineage" else COMMANDS[argv[1]]
            assert fn(args, cli) == 0
            return capsys.readouterr().out

        assert "no retention policies: nothing is deleted" in run("storage", "policies")
        dry = run("storage", "add", "ckpt", "--rule", "drop-finished", "--pattern",
                  "checkpoint.pt", "--dry-run")
        assert dry.splitlines()[0] == "would delete 1 artifact, 130 B"
        assert f"run {ids['train']:>6} checkpoint.pt  130 B  [ckpt]" in dry
        assert "(dry run: nothing stored)" in dry
        assert "no retention policies" in run("storage", "policies")

        with pytest.raises(NeuroregError, match=rf"which evaluate run {ids['ev']} reads"):
            run("storage", "add", "models", "--rule", "drop-finished", "--pattern", "*.pt")

        added = run("storage", "add", "ckpt", "--rule", "drop-finished", "--pattern",
                    "checkpoint.pt", "-q", f"id = {ids['train']}")
        assert added.startswith("added policy ") and "drop-finished 'checkpoint.pt' (at once) of " \
            f"runs where id = {ids['train']}" in added
        assert "ckpt: drop-finished" in run("storage", "policies")
        plan = run("storage", "plan")
        assert plan.startswith("would delete 1 artifact, 130 B")
        assert run("storage", "apply").startswith("deleted 1 artifact, 130 B")
        assert run("storage", "plan").startswith("would delete 0 artifacts, 0 B")

        keep = run("storage", "add", "keep-one", "--rule", "keep-last", "--pattern", "*.pt",
                   "--keep", "1", "--dry-run")
        assert keep.startswith("would delete 0 artifacts")
        policy_id = next(line.split()[0] for line in run("storage", "policies").splitlines()
                         if "ckpt:" in line)
        assert run("storage", "rm", policy_id) == f"deleted retention policy {policy_id}\n"

        lineage = run("lineage", str(ids["train"])).splitlines()
        assert lineage[0] == f"train run {ids['train']} 'train' (succeeded)"
        assert lineage[1] == "built from:"
        assert lineage[2] == (f"  train run {ids['train']} 'train' (succeeded) reads "
                              f"target-neural-model.npz of similarity run {ids['sim']} "
                              "'sim' (succeeded)")
        assert lineage[3:] == [
            "built from it:",
            f"  evaluate run {ids['ev']} 'ev' (succeeded) reads model.pt of train run "
            f"{ids['train']} 'train' (succeeded)"]
