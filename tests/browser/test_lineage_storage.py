"""The run page's lineage and the storage page in headless chromium: a chain's graph
draws its runs in columns (what the run was built from left, what was built from it
right) and a click on a node opens that run; a run with no lineage says so in a line;
the storage page lists a policy and its dry run (what goes, what is kept and who reads
it), an admin adds a policy and is shown a 409 naming the run that reads what it would
delete, and a member sees no admin controls. No console errors. Screenshots in
test-output/."""

from __future__ import annotations

import re

import httpx
import pytest

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import Role, RunStatus
from core.store.runs import create_run
from core.store.users import create_user, ensure_admin
from tests.browser.conftest import OUTPUT, console_errors, figure_problems
from tests.livesrv import live_server

pytestmark = pytest.mark.browser
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of "
                     r"4(09|22) .*\[http://[^/]+/api/retention/policies\]")
TARGET = "target-neural-model.npz"
CONDITIONS = ["none", "neural-model", "neural-data", "neural-true", "shuffle",
              "cnn-features", "random"]


def _save(s, settings: Settings, run_id: int, name: str, size: int) -> None:  # type: ignore[no-untyped-def]
    save_artifact(s, settings.artifacts, run_id=run_id, name=name, data=b"x" * size,
                  media_type="application/octet-stream")


def make_chain(settings: Settings) -> dict[str, int]:
    """similarity → train → evaluate, the evaluation also reading a reference model (a
    second train run); the train run keeps a checkpoint and its model, the reference
    its model; and a train run on its own that failed, with its checkpoint."""
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="ada", role=Role.member)
        sim = create_run(s, owner=owner, kind="similarity", name="V1 similarity", config={})
        _save(s, settings, sim.id, TARGET, 40_000)
        finish_run(s, sim.id, RunStatus.succeeded, result={})
        # (the lineage is read from the configs; without input_run_id the pages of these
        # runs, whose artifacts are a few bytes, ask for no matrices and no record)
        train = create_run(s, owner=owner, kind="train", name="resnet18 neural-model α=8",
                           config={"target": "neural-model", "target_run": sim.id})
        _save(s, settings, train.id, "checkpoint.pt", 3_500_000)
        _save(s, settings, train.id, "model.pt", 1_200_000)
        finish_run(s, train.id, RunStatus.succeeded, result={})
        ref = create_run(s, owner=owner, kind="train", name="resnet18 baseline",
                         config={"target": "none"})
        _save(s, settings, ref.id, "model.pt", 1_200_000)
        finish_run(s, ref.id, RunStatus.succeeded, result={})
        ev = create_run(s, owner=owner, kind="evaluate", name="robustness of α=8",
                        config={"train_run": train.id, "reference_run": ref.id, "runs": []})
        finish_run(s, ev.id, RunStatus.succeeded, result={})
        alone = create_run(s, owner=owner, kind="train", name="on its own",
                           config={"target": "none"})
        _save(s, settings, alone.id, "checkpoint.pt", 500_000)
        finish_run(s, alone.id, RunStatus.failed, error="diverged")
        return {"sim": sim.id, "train": train.id, "ref": ref.id, "ev": ev.id,
                "alone": alone.id}


def make_kept(settings: Settings, url: str, token: str) -> dict[str, int]:
    """A spare model that a policy would delete when it is made, and an evaluation made
    after the policy that reads it: the dry run keeps it and names the evaluation."""
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="linus", role=Role.member)
        spare = create_run(s, owner=owner, kind="train", name="spare model",
                           config={"target": "none"})
        _save(s, settings, spare.id, "model.pt", 2_400_000)
        finish_run(s, spare.id, RunStatus.succeeded, result={})
    made = httpx.post(f"{url}/api/retention/policies",
                      headers={"Authorization": f"Bearer {token}"},
                      json={"name": "spare models", "rule": "drop-finished",
                            "pattern": "model.pt", "query": 'name = "spare model"', "days": 0})
    assert made.status_code == 201, made.text
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="late reader", role=Role.member)
        ev = create_run(s, owner=owner, kind="evaluate", name="late evaluation",
                        input_run_id=spare.id, config={"train_run": spare.id, "runs": []})
        return {"spare": spare.id, "reader": ev.id}


def make_study(settings: Settings, conditions: list[str] = CONDITIONS,
               root: RunStatus = RunStatus.succeeded) -> dict[str, int]:
    """A similarity run (finished as ``root``), a study over ``conditions`` reading it,
    and per condition a train run (part of the study, reading the similarity run's
    target) and its evaluation: 2 + 2 × len(conditions) runs; the fourth train run
    failed, its evaluation never ran."""
    with session_scope(settings.db_url) as s:
        owner = create_user(s, name="grace", role=Role.member)
        sim = create_run(s, owner=owner, kind="similarity", name="study targets", config={})
        _save(s, settings, sim.id, TARGET, 40_000)
        finish_run(s, sim.id, root, result={})
        study = create_run(s, owner=owner, kind="study", name="Fig. 4 study",
                           config={"conditions": conditions, "target_run": sim.id})
        for k, condition in enumerate(conditions):
            train = create_run(s, owner=owner, kind="train", name=f"{condition} seed 0",
                               parent_id=study.id,
                               config={"target": condition, "target_run": sim.id})
            finish_run(s, train.id, RunStatus.failed if k == 3 else RunStatus.succeeded,
                       result={})
            ev = create_run(s, owner=owner, kind="evaluate", name=f"eval {condition}",
                            parent_id=study.id,
                            config={"train_run": train.id, "runs": []})
            if k != 3:
                finish_run(s, ev.id, RunStatus.succeeded, result={})
        return {"sim": sim.id, "study": study.id}


def _page(browser, url: str, token: str, path: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = console_errors(page)
    page.goto(f"{url}{path}#token={token}")
    return page, errors


# the drawn nodes: {run id: [column, row]} from the figure's data
NODES = """() => { const out = {}; const div = document.getElementById('lineage-chart');
  for (const t of div.data) for (let i = 0; i < t.x.length; i++)
    if (typeof (t.customdata || [])[i] === 'string')
      out[t.customdata[i].split('/').pop()] = [t.x[i], t.y[i]];
  return out; }"""

# where a node is on the screen, to click it
WHERE = """(id) => { const div = document.getElementById('lineage-chart');
  const L = div._fullLayout; const box = div.getBoundingClientRect();
  for (const t of div.data) for (let i = 0; i < t.x.length; i++)
    if ((t.customdata || [])[i] === `/runs/${id}`)
      return [box.left + L._size.l + L.xaxis.l2p(t.x[i]),
              box.top + L._size.t + L.yaxis.l2p(t.y[i])];
  return null; }"""


def test_the_lineage_of_a_chain_and_a_click_to_a_node(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                      ) -> None:
    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = make_chain(settings)
        page, errors = _page(browser, url, token, f"/runs/{ids['train']}")
        page.wait_for_function("() => { const d = document.getElementById('lineage-chart');"
                               " return d && d.data && d.data.length > 1; }")
        nodes = page.evaluate(NODES)
        # the similarity run left of the train run, the evaluation right of it; the
        # reference model is upstream of the evaluation only, so not in this graph
        assert {int(k): v[0] for k, v in nodes.items()} == {ids["sim"]: -1, ids["train"]: 0,
                                                            ids["ev"]: 1}
        note = page.inner_text("#lineage-note")
        assert "Built from 1 run" in note and "Truncated" not in note
        hover = page.evaluate("() => document.getElementById('lineage-chart').data"
                              ".find((t) => t.name === 'arrows').text.join(' | ')")
        assert f"reads {TARGET}" in hover and "reads model.pt" in hover
        assert page.locator(f"#lineage-list a[href='/runs/{ids['ev']}']").count() == 1
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "lineage-chain.png"), full_page=True)
        # the evaluation's page: both models it reads, the similarity run two columns left
        x, y = page.evaluate(WHERE, ids["ev"])
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        page.wait_for_url(f"**/runs/{ids['ev']}")
        page.wait_for_function("() => { const d = document.getElementById('lineage-chart');"
                               " return d && d.data && d.data.length > 1; }")
        nodes = page.evaluate(NODES)
        assert {int(k): v[0] for k, v in nodes.items()} == {
            ids["sim"]: -2, ids["train"]: -1, ids["ref"]: -1, ids["ev"]: 0}
        # a graph the server cut short says so
        def truncated(route) -> None:  # type: ignore[no-untyped-def]
            graph = route.fetch().json()
            route.fulfill(json={**graph, "truncated": True})

        page.route("**/api/runs/*/lineage", truncated)
        page.reload()
        page.wait_for_function("() => document.getElementById('lineage-note').textContent"
                               ".includes('Truncated')")
        page.unroute("**/api/runs/*/lineage")
        # a run nothing is connected to: one line, no figure
        page.goto(f"{url}/runs/{ids['alone']}")
        page.wait_for_function("() => document.getElementById('lineage-note').textContent.length")
        assert page.inner_text("#lineage-note").startswith("No lineage")
        assert page.locator("#lineage-chart").is_hidden()
        assert errors == [], "\n".join(errors)


def test_a_study_fans_out_in_columns(browser, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        # a similarity run that failed: its page asks for no figures (this one has none)
        ids = make_study(settings, root=RunStatus.failed)
        page, errors = _page(browser, url, token, f"/runs/{ids['sim']}")
        page.wait_for_function("() => { const d = document.getElementById('lineage-chart');"
                               " return d && d.data && d.data.length > 1; }")
        nodes = page.evaluate(NODES)
        columns: dict[float, int] = {}
        for column, _ in nodes.values():
            columns[column] = columns.get(column, 0) + 1
        # the run, the study, its train runs, their evaluations: each arrow points right
        n = len(CONDITIONS)
        assert columns == {0: 1, 1: 1, 2: n, 3: n}
        assert nodes[str(ids["study"])][0] == 1
        rows = sorted(y for x, y in nodes.values() if x == 2)
        assert min(b - a for a, b in zip(rows, rows[1:], strict=False)) >= 1  # no two overlap
        assert figure_problems(page) == []
        page.screenshot(path=str(OUTPUT / "lineage-study.png"), full_page=True)
        assert errors == [], "\n".join(errors)


POLICIES = "(n) => document.querySelectorAll('#policy-rows tr[data-policy]').length === n"


def test_the_storage_page_for_an_admin_and_a_member(browser, settings: Settings  # type: ignore[no-untyped-def]
                                                    ) -> None:
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = make_chain(settings)
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"{url}/api/retention/policies", headers=auth, json={
            "name": "old checkpoints", "rule": "drop-finished", "pattern": "checkpoint.pt"})
        assert made.status_code == 201, made.text
        kept = make_kept(settings, url, token)
        page, errors = _page(browser, url, token, "/storage")
        page.wait_for_selector("#policy-rows tr[data-policy]")
        row = page.inner_text("#policy-rows tr[data-policy]")
        assert "old checkpoints" in row and "drop-finished" in row and "every run" in row
        # what a policy covers that a run made since reads: kept, and who reads it
        page.wait_for_selector("#plan-kept")
        assert page.locator(f"#plan-kept a[href='/runs/{kept['reader']}']").count() == 1
        assert "spare model" in page.inner_text("#plan-kept")
        # the dry run: the train run's checkpoint would go (3.34 MiB)
        page.wait_for_selector("#plan-delete")
        assert page.inner_text("#plan-summary").startswith(
            "Applying now would delete 1 artifact (3.34 MiB)")
        assert "checkpoint.pt" in page.inner_text("#plan-delete")
        # a policy that would delete the model the evaluation reads: refused, naming it
        page.fill("#p-name", "every model")
        page.fill("#p-pattern", "model.pt")
        page.click("#policy-preview-button")
        page.wait_for_selector("#preview-kept")
        assert f"#{ids['ev']}" in page.inner_text("#preview-kept")
        page.click("#policy-add")
        page.wait_for_function("() => document.getElementById('policy-error').textContent.length")
        refused = page.inner_text("#policy-error")
        assert refused.startswith("HTTP 409") and f"evaluate run {ids['ev']}" in refused
        # a field the API refuses is said by the field
        page.select_option("#p-rule", "keep-last")
        page.click("#policy-add")
        page.wait_for_function("() => document.getElementById('err-keep').textContent.length")
        assert page.inner_text("#policy-error") == ""
        # one it accepts is listed, and its reader made after it shows what is kept
        page.select_option("#p-rule", "expire-failed")
        page.fill("#p-name", "failed runs")
        page.fill("#p-pattern", "*")
        page.fill("#p-query", 'kind = "train"')
        page.fill("#p-days", "0")
        page.click("#policy-add")
        page.wait_for_function(POLICIES, arg=3)
        assert page.inner_text("#err-keep") == "" and page.input_value("#p-name") == ""
        page.wait_for_function("() => document.getElementById('plan-summary').textContent"
                               ".startsWith('Applying now would delete 2 artifacts')")
        assert "on its own" in page.inner_text("#plan-delete")
        page.screenshot(path=str(OUTPUT / "storage-admin.png"), full_page=True)
        # applying, after the confirmation, deletes what the dry run listed
        page.click("#apply")
        page.click("#apply-confirm")
        page.wait_for_selector("#applied-summary")
        assert page.inner_text("#applied-summary").startswith("Deleted 2 artifacts")
        page.wait_for_function("() => document.getElementById('plan-summary').textContent"
                               ".startsWith('Applying now would delete nothing')")
        page.click("button[aria-label='delete policy failed runs']")
        page.wait_for_function(POLICIES, arg=2)
        # the browser logs each refused request (the page said why, above): those two only
        refusals = [e for e in errors if REFUSED.fullmatch(e)]
        assert [e.split("status of ")[1][:3] for e in refusals] == ["409", "422"]
        assert [e for e in errors if e not in refusals] == [], "\n".join(errors)
        # a member: the lists and the dry run, no form, no delete, no apply
        laptop = httpx.post(f"{url}/api/users", json={"name": "bob"}, headers=auth).json()["token"]
        member, member_errors = _page(browser, url, laptop, "/storage")
        member.wait_for_selector("#policy-rows tr[data-policy]")
        member.wait_for_selector("#plan-summary")
        admin_only = "#policy-form, #apply, button[aria-label^='delete policy']"
        assert member.locator(admin_only).count() == 0
        assert member.locator("nav.top a[href='/storage']").count() == 1
        member.screenshot(path=str(OUTPUT / "storage-member.png"), full_page=True)
        assert member_errors == [], "\n".join(member_errors)
