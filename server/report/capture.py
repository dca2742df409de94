"""A study's page drawn in headless chromium, every request answered by a ``fetch``
(the API in-process: nothing leaves the machine), and what it drew taken off the page:
each figure's Plotly data and layout as the study modules styled them, its SVG (Plotly's
own export), its CSV (figures.js's, as the page's CSV button writes it) and a PDF that
chromium prints of that SVG; the tables as the page laid them out, and each as CSV.

The figures are the study page's own (frontend/static/study/*.js): the report draws no
figure of its own, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# a name no server answers to: the page's requests never reach a network
ORIGIN = "http://neuroreg.report"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# the study page's width on a laptop: titles are wrapped to it, and the report's page
# draws each figure at the width it was captured at
VIEWPORT = {"width": 1280, "height": 900}


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the API answered a GET."""

    status: int
    content_type: str
    body: bytes
    retry_after: str | None = None


Fetch = Callable[[str], Answer]


@dataclasses.dataclass
class Figure:
    id: str
    section: str  # the page's figure group: study-charts, frontier-charts, study-curves, ...
    title: str
    data: list[Any]
    layout: dict[str, Any]
    width: int
    height: int
    wide: bool
    svg: str
    csv: str
    pdf: bytes = b""


@dataclasses.dataclass
class Drawn:
    """What the study page drew: figures in page order, ``tables`` (a section's HTML by
    its element id), ``table_csv`` (by table name), ``notes`` (a line's text by element
    id), ``undrawn`` (figures the page placed but could not draw, by title) and
    ``requests``: every API GET the page made, in order, with its answer."""

    figures: list[Figure]
    tables: dict[str, str]
    table_csv: dict[str, str]
    notes: dict[str, str]
    undrawn: list[str]
    requests: list[tuple[str, Answer]]


# every figure on the page that has data, as the page drew it (JSON as one string: the
# traces' arrays go through as they are)
_FIGURES = """async () => {
  const { csvOf } = await import('/static/figures.js');
  const out = [];
  for (const div of document.querySelectorAll('#page .js-plotly-plot')) {
    if (!div.data || !div.data.length || !div.offsetWidth) continue;
    const width = div.offsetWidth; const height = div.offsetHeight;
    const url = await Plotly.toImage(div, { format: 'svg', width, height });
    out.push({ id: div.id, section: (div.closest('.charts') || {}).id || '',
      title: div.dataset.title || div.id, data: div.data, layout: div.layout, width, height,
      wide: div.classList.contains('wide'),
      svg: decodeURIComponent(url.slice(url.indexOf(',') + 1)), csv: csvOf(div) });
  }
  return JSON.stringify(out);
}"""

# the page's tables and notes, its links made absolute (to the server the report came
# from), each table also as CSV (figures.js's cells: a formula is quoted as text)
_TABLES = """async ([server, sections, notes]) => {
  const { csvCell } = await import('/static/figures.js');
  for (const a of document.querySelectorAll('#page a[href^="/"]')) {
    a.href = server + a.getAttribute('href');
  }
  const cell = (v) => {
    const s = csvCell(v);
    return /[",\\n\\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const csv = {};
  let k = 0;
  for (const id of sections) {
    for (const t of document.querySelectorAll(`#${id} table`)) {
      const name = t.id || `runs${k++ ? `-${k}` : ''}`;
      const rows = [...t.rows].map((r) => [...r.cells].map((c) => cell(c.innerText.trim())));
      csv[name] = rows.map((r) => r.join(',')).join('\\n') + '\\n';
    }
  }
  const of = (id) => document.getElementById(id) || {};
  const html = Object.fromEntries(sections.map((id) => [id, of(id).innerHTML || '']));
  const text = Object.fromEntries(notes.map((id) => [id, (of(id).innerText || '').trim()]));
  const undrawn = [...document.querySelectorAll('#page .chart')]
    .filter((d) => !(d.data && d.data.length))
    .map((d) => d.dataset.title || d.id);
  return JSON.stringify({ html, csv, text, undrawn });
}"""

# the training curve of each key the runs log, drawn by the page's own curves.js
_CURVE = """async (key) => {
  const select = document.getElementById('curve-key');
  select.value = key;
  await (await import('/static/study/curves.js')).drawCurves();
}"""

TABLE_SECTIONS = ["paper-setting", "frontier-matched", "study-tables"]
NOTES = ["study-meta", "study-note", "frontier-note", "curve-note", "sim-note", "sim-run-note"]


def draw_study(fetch: Fetch, study_id: int, *, chromium: str, server_url: str,
               settle_s: float = 120.0) -> Drawn:
    """The study page of ``study_id`` drawn with ``fetch`` answering its requests, in the
    chromium at ``chromium``. A figure a worker is still computing (an S_CNN overview)
    after ``settle_s`` is left out and named in ``undrawn``."""
    from playwright.sync_api import Error, Route, sync_playwright

    requests: list[tuple[str, Answer]] = []

    def answer(route: Route) -> None:
        url = urlsplit(route.request.url)
        if f"{url.scheme}://{url.netloc}" != ORIGIN or route.request.method != "GET":
            route.abort()
            return
        path = url.path + (f"?{url.query}" if url.query else "")
        got = fetch(path)
        if url.path.startswith("/api/"):
            requests.append((path, got))
        headers = {"content-type": got.content_type}
        if got.retry_after:
            headers["retry-after"] = got.retry_after
        route.fulfill(status=got.status, headers=headers, body=got.body)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.route("**/*", answer)
            page = context.new_page()
            page.goto(f"{ORIGIN}/studies/{study_id}#token=in-process")
            try:
                page.wait_for_function("() => document.documentElement.dataset.studyDrawn",
                                       timeout=settle_s * 1000)
            except Error:  # a view still computing: what is drawn goes in, the rest is named
                pass
            figures = [Figure(**f) for f in json.loads(page.evaluate(_FIGURES))]
            figures += _other_curves(page, figures)
            taken = json.loads(page.evaluate(_TABLES, [server_url, TABLE_SECTIONS, NOTES]))
            _print_pdfs(context.new_page(), figures)
        finally:
            browser.close()
    return Drawn(figures=figures, tables=taken["html"], table_csv=taken["csv"],
                 notes=taken["text"], undrawn=taken["undrawn"], requests=requests)


def _other_curves(page: Any, figures: list[Figure]) -> list[Figure]:
    """The training curve of every other key the runs log (the page draws one, picked),
    each a figure of its own: ``study-curve-<key>``."""
    shown = next((f for f in figures if f.id == "study-curve"), None)
    if shown is None:
        return []
    keys = page.eval_on_selector_all("#curve-key option", "os => os.map((o) => o.value)")
    first = page.input_value("#curve-key")
    shown.id = f"study-curve-{first}"
    more = []
    for key in keys:
        if key == first:
            continue
        page.evaluate(_CURVE, key)
        drawn = json.loads(page.evaluate(_FIGURES))
        for f in (Figure(**d) for d in drawn if d["id"] == "study-curve"):
            f.id = f"study-curve-{key}"
            more.append(f)
    page.evaluate(_CURVE, first)  # the page as it was, for the tables' notes
    return more


def _print_pdfs(page: Any, figures: list[Figure]) -> None:
    """Each figure's SVG printed by chromium on a page of the figure's size: vector
    paths and text, as in the SVG."""
    for f in figures:
        page.set_content("<!doctype html><style>@page { margin: 0 } html, body { margin: 0 }"
                         f" svg {{ display: block }}</style>{f.svg}")
        f.pdf = page.pdf(width=f"{f.width}px", height=f"{f.height}px", print_background=True,
                         page_ranges="1")
