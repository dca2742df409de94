"""The dashboard's pages and static files (plotly.js from the plotly package, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

import frontend

router = APIRouter(include_in_schema=False)

FRONTEND = Path(frontend.__file__).parent
# plotly.js 4.1.1 (MIT) with only the traces the dashboard draws: scatter, bar, heatmap
# (frontend/plotly/build.sh). It loads and runs in ~190 ms in headless chromium on a 2-core
# machine; the official cartesian bundle took ~490 ms and the full one about a second.
PLOTLY_JS = FRONTEND / "static" / "vendor" / "plotly-neuroreg.min.js"
_PAGES = {"runs": "index.html", "run": "run.html"}


def _page(name: str) -> FileResponse:
    return FileResponse(FRONTEND / _PAGES[name], media_type="text/html")


@router.get("/")
def index() -> FileResponse:
    return _page("runs")


@router.get("/runs/{run_id}")
def run_page(run_id: int) -> FileResponse:
    return _page("run")


_SHELL = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>neuroreg · {title}</title>
  <link rel="stylesheet" href="/static/app.css">
  <link rel="icon" href="data:,">
  {plotly}
</head>
<body>
  <header><a class="brand" href="/">neuroreg</a><span id="whoami"></span></header>
  <main>
    <section id="login" hidden>
      <h1>Sign in</h1>
      <p>Paste an API token (<code>neuroreg up</code> prints the admin's).</p>
      <form id="login-form"><input id="token" type="password" aria-label="API token" size="50"
        required> <button>Use token</button></form>
      <p id="login-error" class="error"></p>
    </section>
    <section id="page" hidden></section>
  </main>
  <script type="module" src="/static/{script}"></script>
</body>
</html>
"""


def _shell(title: str, script: str, plotly: bool = False) -> HTMLResponse:
    # plotly.js is fetched at once but run by figures.js after the page's requests are out
    tag = ('<link rel="preload" href="/static/vendor/plotly.min.js" as="script">\n'
           '  <link rel="modulepreload" href="/static/api.js">\n'
           '  <link rel="modulepreload" href="/static/figures.js">') if plotly else ""
    return HTMLResponse(_SHELL.format(title=title, script=script, plotly=tag))


@router.get("/submit")
def submit_page() -> HTMLResponse:
    return _shell("submit a run", "submit.js")


@router.get("/tokens")
def tokens_page() -> HTMLResponse:
    return _shell("my tokens", "tokens.js")


@router.get("/compare")
def compare_page() -> HTMLResponse:
    return _shell("compare runs", "compare.js", plotly=True)


@router.get("/studies/{run_id}")
def study_page(run_id: int) -> HTMLResponse:
    return _shell("study", "study.js", plotly=True)


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    if not PLOTLY_JS.is_file():
        raise HTTPException(500, "the vendored plotly.js bundle is missing")
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
