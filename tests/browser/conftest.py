"""Headless Debian chromium (no browser downloads) for the dashboard tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import unavailable

CHROMIUM = os.environ.get("NEUROREG_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not shutil.which(CHROMIUM):
        unavailable(f"chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


# Where a figure's pieces overlap or leave it: the title or subtitle running past the
# figure's edges (cut) or down into the plot, the legend over an axis title or tick labels,
# the toolbar (in the page, though shown on hover only) over the title or a colour bar's
# labels, and a square matrix (a heatmap of n × n cells) drawn with cells that are not
# square. Bounding boxes as the browser laid them out, axes' lengths as plotly did.
_FIGURE_PROBLEMS = """() => {
  const out = [];
  const box = (e) => e.getBoundingClientRect();
  const meets = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1
    && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (const div of document.querySelectorAll('.js-plotly-plot')) {
    const d = box(div);
    if (!d.width) continue;
    const name = div.id || '(figure)';
    const titles = [...div.querySelectorAll('text.gtitle, text.gtitle-subtitle')];
    for (const t of titles) {
      const r = box(t);
      if (r.left < d.left - 1 || r.right > d.right + 1 || r.top < d.top - 1)
        out.push(`${name}: title "${t.textContent.slice(0, 40)}" runs past the figure`);
    }
    const legend = div.querySelector('g.legend');
    if (legend) {
      const l = box(legend);
      for (const a of div.querySelectorAll('text.xtitle, text.x2title, text.ytitle, .xtick text'))
        if (meets(l, box(a))) out.push(`${name}: legend over "${a.textContent.slice(0, 30)}"`);
      if (l.bottom > d.bottom + 1 || l.top < d.top - 1)
        out.push(`${name}: legend outside the figure`);
    }
    const size = div._fullLayout && div._fullLayout._size;
    if (size) for (const t of titles)
      if (box(t).bottom > d.top + size.t + 1)
        out.push(`${name}: title "${t.textContent.slice(0, 40)}" runs into the plot`);
    const bar = div.querySelector('.modebar');
    if (bar) for (const t of titles)
      if (meets(box(bar), box(t))) out.push(`${name}: toolbar over the title`);
    if (bar) for (const t of div.querySelectorAll('.colorbar text'))
      if (t.textContent && meets(box(bar), box(t)))
        out.push(`${name}: toolbar over the colour bar's "${t.textContent}"`);
    for (const t of div._fullData || []) {
      const z = t.z || [];
      if (t.type !== 'heatmap' || !z.length || z.length !== z[0].length) continue;
      const ax = (a) => div._fullLayout[`${a}axis${(t[`${a}axis`] || a).slice(1)}`];
      const x = ax('x'); const y = ax('y');
      const unit = (a) => a._length / Math.abs(a.range[1] - a.range[0]);
      const ratio = unit(x) / unit(y);
      if (ratio > 1.05 || ratio < 1 / 1.05)
        out.push(`${name}: a ${z.length}×${z.length} matrix drawn ${ratio.toFixed(2)}:1`);
    }
  }
  return out;
}"""


def figure_problems(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Every drawn figure's clipped title, legend over an axis label, toolbar over a title or
    a colour bar's labels, stretched matrix."""
    return page.evaluate(_FIGURE_PROBLEMS)  # type: ignore[no-any-return]


def console_errors(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The page's console errors and uncaught exceptions from now on, each console message
    followed by the URL it came from (for a failed request, the resource's own URL)."""
    errors: list[str] = []

    def console(m) -> None:  # type: ignore[no-untyped-def]
        if m.type == "error":
            errors.append(f"{m.text} [{(m.location or {}).get('url', '')}]")

    page.on("console", console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def beyond_stored_study(errors: list[str]) -> list[str]:
    """The errors other than those the page rightly meets on ``stored_study``
    (tests/server/test_frontier_api.py), whose similarity run stored no matrices and whose
    train runs logged no curves: the 404s of S_target's request and of the default curve's
    (each time the page asks), and the matrix part's error naming the missing file."""
    return [e for e in errors
            if "/matrices/" not in e and "/curves?key=" not in e and "has no target-" not in e]
