"""The dashboard's pages and static files (plotly.js vendored, no CDN)."""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse, HTMLResponse

import frontend
from server.deps import RunId
from server.strict import api_router

router = api_router(include_in_schema=False)

FRONTEND = Path(frontend.__file__).parent
# plotly.js 4.1.1 (MIT) with only the traces the dashboard draws: scatter, bar, heatmap and
# Compare's parcoords (frontend/plotly/build.sh); bench/dashboard.py times its load. The
# official cartesian bundle took ~490 ms to load and run in headless chromium on a 2-core
# machine, and the full one about a second.
PLOTLY_JS = FRONTEND / "static" / "vendor" / "plotly-neuroreg.min.js"

_SHELL = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>neuroreg · {title}</title>
  <link rel="stylesheet" href="/static/app.css">
  <link rel="icon" href="data:,">
  {preload}
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
    {body}
  </main>
  <script type="module" src="/static/{script}"></script>
</body>
</html>
"""


def _shell(title: str, script: str, *, body: str | None = None,
           plots: bool = False) -> HTMLResponse:
    """A page: the shared head, header and sign-in form around ``body`` (a fragment file
    in frontend/, or an empty section the script fills). Every module the page's script
    imports, however deep, is fetched at once (:func:`imported`); a page that ``plots``
    fetches plotly.js at once too, and figures.js runs it once the page's first requests
    are out."""
    preload = "\n  ".join(
        ['<link rel="preload" href="/static/vendor/plotly.min.js" as="script">'] * plots
        + [f'<link rel="modulepreload" href="/static/{m}">' for m in imported(script)])
    section = (FRONTEND / body).read_text() if body else '<section id="page" hidden></section>'
    return HTMLResponse(_SHELL.format(title=title, script=script, preload=preload,
                                      body=section))


_IMPORT = re.compile(r'^import\s[^;]*?\sfrom\s+"(\.{1,2}/[^"]+\.js)"', re.M)


@functools.cache
def imported(script: str) -> tuple[str, ...]:
    """The static modules ``script`` imports, directly or through others, in the order
    they are first named (read from frontend/static/ once; a new figure module is
    preloaded without naming it here)."""
    found: list[str] = []
    todo = [script]
    while todo:
        module = todo.pop(0)
        source = (FRONTEND / "static" / module).read_text()
        for rel in _IMPORT.findall(source):
            dep = posixpath.normpath(posixpath.join(posixpath.dirname(module), rel))
            if dep not in found and dep != script:
                found.append(dep)
                todo.append(dep)
    return tuple(found)


@router.get("/")
def index() -> HTMLResponse:
    return _shell("runs", "runs.js", body="runs.html")


@router.get("/runs/{run_id}")
def run_page(run_id: RunId) -> HTMLResponse:
    return _shell("run", "run.js", body="run.html",
                  plots=True)


@router.get("/leaderboard")
def leaderboard_page() -> HTMLResponse:
    return _shell("leaderboard", "leaderboard.js", body="leaderboard.html")


@router.get("/submit")
def submit_page() -> HTMLResponse:
    return _shell("submit a run", "submit.js")


@router.get("/tokens")
def tokens_page() -> HTMLResponse:
    return _shell("my tokens", "tokens.js")


@router.get("/storage")
def storage_page() -> HTMLResponse:
    return _shell("storage", "storage.js")


@router.get("/users")
def users_page() -> HTMLResponse:
    return _shell("users", "users.js")


@router.get("/projects")
def projects_page() -> HTMLResponse:
    return _shell("projects", "projects.js")


@router.get("/audit")
def audit_page() -> HTMLResponse:
    return _shell("audit trail", "audit.js")


@router.get("/compare")
def compare_page() -> HTMLResponse:
    return _shell("compare runs", "compare.js", plots=True)


@router.get("/studies/{run_id}")
def study_page(run_id: RunId) -> HTMLResponse:
    return _shell("study", "study.js", plots=True)


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    if not PLOTLY_JS.is_file():
        raise HTTPException(500, "the vendored plotly.js bundle is missing")
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
