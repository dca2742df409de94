"""The dashboard's pages and static files (plotly.js from the plotly package, no CDN)."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

import frontend

router = APIRouter(include_in_schema=False)

FRONTEND = Path(frontend.__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_PAGES = {"runs": "index.html", "run": "run.html"}


def _page(name: str) -> FileResponse:
    return FileResponse(FRONTEND / _PAGES[name], media_type="text/html")


@router.get("/")
def index() -> FileResponse:
    return _page("runs")


@router.get("/runs/{run_id}")
def run_page(run_id: int) -> FileResponse:
    return _page("run")


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    if not PLOTLY_JS.is_file():
        raise HTTPException(500, "plotly.min.js is missing from the installed plotly package")
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
