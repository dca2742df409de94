"""The submit form tells a CPU user where to start and what a run costs: a note that the
defaults are the paper's GPU setting, a study preset labelled with its runs, an estimate
(or why there is none) for every kind, nested defaults shown, and every refused field at
once with a summary beside the Submit button."""

from __future__ import annotations

import json

import pytest

from core.settings import Settings
from core.store.db import session_scope
from core.store.users import ensure_admin
from tests.browser.conftest import OUTPUT
from tests.browser.test_pages import _login
from tests.livesrv import live_server

pytestmark = pytest.mark.browser


def test_the_submit_form_guides_a_cpu_user_and_says_all_errors(browser, settings: Settings):  # type: ignore[no-untyped-def]
    from ml import presets

    OUTPUT.mkdir(exist_ok=True)
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        # an evaluation from the config's defaults: told they are the paper's GPU setting
        page = _login(browser, url, token, "/submit?kind=evaluate")
        page.wait_for_selector("#f-n_samples")
        note = page.locator("#preset-note").inner_text()
        assert "hours on a GPU" in note and "On a CPU, start from the CPU-sized preset" in note
        page.wait_for_function("() => document.getElementById('estimate').textContent")
        assert "No finished evaluate run of these attacks and norms" in page.locator(
            "#estimate").inner_text()
        page.select_option("#preset", "cpu")
        page.wait_for_function("() => document.getElementById('f-n_samples').value === '"
                               f"{presets.EVALUATE['n_samples']}'")
        assert page.locator("#preset-note").inner_text() == ""
        page.screenshot(path=str(OUTPUT / "submit-evaluate.png"), full_page=True)

        # a study: the CPU preset says how many runs it is; nested defaults are shown
        page = _login(browser, url, token, "/submit?kind=study")
        page.wait_for_selector("#f-train")
        trains = presets.SEEDS * (1 + len(presets.ALPHAS))  # None once per seed
        label = page.locator("#preset option[value=cpu]").inner_text()
        assert f"{trains} trains and {trains} evaluations" in label, label
        train = json.loads(page.get_attribute("#f-train", "placeholder") or "{}")
        assert train["epochs"] == 40 and train["alpha"] == 20  # TrainConfig's defaults
        assert json.loads(page.get_attribute("#f-evaluate", "placeholder") or "{}")["n_samples"]
        page.select_option("#preset", "cpu")
        page.wait_for_function("() => document.getElementById('estimate').textContent"
                               f".startsWith('{trains} trains and {trains} evaluations')")
        assert "no finished" in page.locator("#estimate").inner_text()
        # two unreadable fields and a number out of range: all said at once, and beside
        # the Submit button how many and which
        page.fill("#f-train", "{not json")
        page.fill("#f-evaluate", "[")
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('submit-summary').textContent")
        assert "not valid JSON" in page.locator("#err-train").inner_text()
        assert "not valid JSON" in page.locator("#err-evaluate").inner_text()
        assert page.locator("#submit-summary").inner_text() == "2 fields to change: train, evaluate"
        page.fill("#f-train", "")
        page.fill("#f-evaluate", "")
        page.fill("#f-seeds", "0")
        page.fill("#f-pack", "99")
        page.click("#submit")
        # the summary already holds the first submit's "2 fields …": wait for the second's
        page.wait_for_function("() => document.getElementById('submit-summary').textContent"
                               " !== '2 fields to change: train, evaluate'")
        assert page.locator("#submit-summary").inner_text() == "2 fields to change: seeds, pack"
        assert page.url.endswith("/submit?kind=study&preset=cpu")  # nothing submitted
        page.screenshot(path=str(OUTPUT / "submit-study-errors.png"), full_page=True)

        # a similarity run: an estimate's absence said too
        page = _login(browser, url, token, "/submit?kind=similarity")
        page.wait_for_selector("#f-simulation")
        page.wait_for_function("() => document.getElementById('estimate').textContent")
        assert "No finished similarity run of this source" in page.locator("#estimate").inner_text()
        assert page.get_attribute("#f-simulation", "placeholder")
