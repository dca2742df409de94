"""The alignment part's results on an evaluation's run page in headless chromium (issue 38):
RSA per layer and the γ-mix against each reference with S_oracle's noise ceiling, the ridge
readout's FEVE (R² and the message without repeats), linear CKA, a table of each scan's
headline numbers with γ and its source; the mean over scans by default, one scan when
picked; the single-point ``alignment/<headline>`` series no longer shown on their own;
within the figure style, without console errors. Screenshots go to test-output/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from core.settings import Settings
from core.store.db import session_scope
from core.store.metrics import insert_points
from core.store.models import Run
from core.store.users import ensure_admin
from tests.alignment_block import LAYERS, SCANS, full_alignment_block
from tests.browser.conftest import OUTPUT, console_errors, figure_problems
from tests.browser.test_pages import _drawn
from tests.livesrv import live_server
from tests.server.test_frontier_api import stored_study

pytestmark = pytest.mark.browser

X = [*(f"{t}<br>γ = {g:.2f}" for t, g in zip(LAYERS, (0.2, 0.5, 0.3), strict=True)),
     "γ-mix (Eq. 10)"]
FIGURES = ("fig-alignment-rsa", "fig-alignment-predictivity", "fig-alignment-cka")


@contextmanager
def _opened(browser, settings: Settings, block: dict[str, Any]) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """An evaluation of the stored study with ``block`` as its alignment result, the part's
    ``alignment/<headline>`` points and one other single-point score, its run page open
    with every alignment figure drawn; yields (page, console errors)."""
    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        ids = stored_study(settings)
        run_id = ids["evals"][("neural-model", 16.0, 0)]
        with session_scope(settings.db_url) as s:
            run = s.execute(select(Run).where(Run.id == run_id)).scalar_one()
            run.result = {**(run.result or {}), "alignment": block}
            insert_points(s, run_id, [("median_l2", 0, 0.5, None)] + [
                (f"alignment/{k}", 0, float(v), None)
                for k, v in block["mean"].items() if v is not None])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = console_errors(page)
        page.goto(f"{url}/runs/{run_id}#token={token}")
        for fig in FIGURES:
            _drawn(page, fig)
        yield page, errors


def _traces(page, fig: str) -> list[list[Any]]:  # type: ignore[no-untyped-def]
    return page.evaluate(f"() => document.getElementById('{fig}').data.map((t) => "
                         "[t.name, t.x, t.y, t.error_y ? t.error_y.array : null])")


def _title(page, fig: str) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate(f"() => {{ const t = document.getElementById('{fig}').layout.title;"
                         " return (t.text + ' | ' + (t.subtitle ? t.subtitle.text : ''))"
                         ".replace(/<br>/g, ' '); }")


def _headline_series_gone(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => document.getElementById('scores').textContent"
                           ".includes('median')")
    scores = page.locator("#scores").inner_text()
    assert "alignment/" not in scores
    assert not page.locator("#charts [id*='alignment']").count()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_the_run_page_draws_the_alignment_part(browser, settings: Settings):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    block = full_alignment_block()
    scans = [block["scans"][s] for s in SCANS]
    with _opened(browser, settings, block) as (page, errors):
        # RSA: one trace per reference (mean over the two scans) and S_oracle's ceiling
        rsa = _traces(page, "fig-alignment-rsa")
        names = [t[0] for t in rsa]
        assert names[:3] == ["S_oracle (V1's repeats)", "S_target (the predictor's)",
                             "S_true (the simulation's)"]
        assert names[3].startswith("S_oracle's noise ceiling ")
        for trace, ref in zip(rsa[:3], ("s_oracle", "s_target", "s_true"), strict=True):
            assert trace[1] == X
            want = [_mean([s["rsa"][m][ref]["pearson"]["r"] for s in scans])
                    for m in (*LAYERS, "mix")]
            assert trace[2] == pytest.approx(want)
            assert all(e is not None and e >= 0 for e in trace[3])  # the scans' range
        ceiling = _mean([s["ceilings"]["s_oracle"]["ceiling"] for s in scans])
        assert rsa[3][2] == pytest.approx([ceiling, ceiling])
        assert f"{ceiling:.3f}" in names[3]
        assert page.evaluate("() => { const d = document.getElementById('fig-alignment-rsa');"
                             " return [d.data[3].xaxis, d.layout.xaxis2.range]; }"
                             ) == ["x2", [0, 1]]  # across the whole plot
        assert "mean over 2 scans" in _title(page, "fig-alignment-rsa")
        # FEVE per layer with its ceiling 1; CKA per layer and the mix against each kernel
        pred = _traces(page, "fig-alignment-predictivity")
        assert pred[0][0].startswith("FEVE") and pred[0][1] == list(LAYERS)
        assert pred[0][2] == pytest.approx([_mean([s["predictivity"][t]["feve"] for s in scans])
                                            for t in LAYERS])
        assert pred[1][2] == [1, 1]
        assert "Linear predictivity (FEVE)" in _title(page, "fig-alignment-predictivity")
        cka = _traces(page, "fig-alignment-cka")
        assert [t[0] for t in cka] == ["V1's trial-averaged responses", "S_oracle (V1's repeats)",
                                       "S_target (the predictor's)", "S_true (the simulation's)"]
        assert cka[1][2] == pytest.approx([_mean([s["cka"][m]["s_oracle"] for s in scans])
                                           for m in (*LAYERS, "mix")])
        # the table: a row per scan and the mean, γ and its source in the note
        rows = page.locator("#alignment-table tbody tr")
        assert rows.count() == 3
        first = rows.nth(0).inner_text()
        assert first.startswith("scan-0") and str(scans[0]["n_stimuli"]) in first
        assert f"{scans[0]['headline']['rsa_mix_oracle']:.3f}" in first
        assert f"{block['mean']['feve_best']:.3f}" in rows.nth(2).inner_text()
        assert "learned" in page.locator("#alignment-table caption").inner_text()
        note = page.locator("#alignment-note").inner_text()
        assert "layer1 0.20, layer2 0.50, layer3 0.30" in note and "learned" in note
        _headline_series_gone(page)
        assert figure_problems(page) == []
        page.locator("#alignment").screenshot(path=str(OUTPUT / "run-alignment.png"))

        # one scan: its own r with its bootstrap CI, its own ceiling
        page.select_option("#alignment-scan", "scan-1")
        page.wait_for_function("() => document.getElementById('fig-alignment-rsa')"
                               ".layout.title.text.includes('scan-1')")
        rsa = _traces(page, "fig-alignment-rsa")
        one = scans[1]["rsa"]
        assert rsa[0][2] == pytest.approx([one[m]["s_oracle"]["pearson"]["r"]
                                           for m in (*LAYERS, "mix")])
        assert rsa[0][3] == pytest.approx([one[m]["s_oracle"]["pearson"]["ci"][1]
                                           - one[m]["s_oracle"]["pearson"]["r"]
                                           for m in (*LAYERS, "mix")])
        assert rsa[3][2][0] == pytest.approx(scans[1]["ceilings"]["s_oracle"]["ceiling"])
        assert "bootstrap 95 % CI" in _title(page, "fig-alignment-rsa")
        assert figure_problems(page) == []
        page.locator("#alignment").screenshot(path=str(OUTPUT / "run-alignment-scan.png"))
        assert errors == [], "\n".join(errors)


def test_without_repeats_it_shows_r2_and_no_ceiling(browser, settings: Settings):  # type: ignore[no-untyped-def]
    OUTPUT.mkdir(exist_ok=True)
    block = full_alignment_block(repeats=False)
    scans = [block["scans"][s] for s in SCANS]
    with _opened(browser, settings, block) as (page, errors):
        rsa = _traces(page, "fig-alignment-rsa")
        # no S_oracle without repeats: S_target and S_true only, and no ceiling line
        assert [t[0] for t in rsa] == ["S_target (the predictor's)", "S_true (the simulation's)"]
        assert "no S_oracle: no stimulus was shown twice" in _title(page, "fig-alignment-rsa")
        pred = _traces(page, "fig-alignment-predictivity")
        assert len(pred) == 1 and pred[0][0].startswith("R²")
        assert pred[0][2] == pytest.approx([_mean([s["predictivity"][t]["r2"] for s in scans])
                                            for t in LAYERS])
        title = _title(page, "fig-alignment-predictivity")
        assert "R², no ceiling" in title and "no repeats" in title
        assert "FEVE" not in page.evaluate(
            "() => document.getElementById('fig-alignment-predictivity').layout.yaxis.title.text")
        assert "No repeats" in page.locator("#alignment-note").inner_text()
        row = page.locator("#alignment-table tbody tr").nth(0).inner_text()
        assert f"{scans[0]['headline']['r2_best']:.3f}" in row and "–" in row
        _headline_series_gone(page)
        assert figure_problems(page) == []
        page.locator("#alignment").screenshot(path=str(OUTPUT / "run-alignment-no-repeats.png"))
        assert errors == [], "\n".join(errors)
