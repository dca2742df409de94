"""``/docs``: Swagger UI from our own origin, so the API's docs read offline.

Swagger UI's script and stylesheet come from the fastapi-offline package (its copy of
swagger-ui-dist 5), served under ``/docs-assets/``; nothing is fetched from a CDN. FastAPI's
page starts Swagger UI with one inline script, which the pages' policy forbids: ``/docs``
alone carries a policy that also allows that one script, by its SHA-256 (any other inline
script on the page is still refused). ReDoc is off (``redoc_url=None``): its bundle
starts web workers from blob: URLs, which the policy refuses.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from server.headers import POLICY
from server.strict import api_router

router = api_router(include_in_schema=False)

ASSETS = "/docs-assets"
# the files /docs needs, by the name it asks for
_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "favicon.png": "image/png"}
_INLINE = re.compile(r"<script>(.*?)</script>", re.S)


def _static() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


@functools.cache
def _page(openapi_url: str, title: str) -> tuple[bytes, str]:
    """The page and its policy: the pages' own, plus the hash of its one inline script."""
    html = bytes(get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{title} · API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png").body)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE.findall(html.decode()))
    policy = POLICY.replace("script-src 'self'", f"script-src 'self' {hashes}", 1)
    assert policy != POLICY, "the pages' policy no longer has script-src 'self'"
    return html, policy


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    html, policy = _page(request.app.openapi_url or "/openapi.json", request.app.title)
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


@router.get(ASSETS + "/{name}")
def swagger_asset(name: str) -> FileResponse:
    if name not in _FILES:
        raise HTTPException(404, f"no docs asset {name!r}")
    path = _static() / name
    if not path.is_file():
        raise HTTPException(500, f"fastapi-offline's {name} is missing: reinstall it")
    return FileResponse(path, media_type=_FILES[name], headers={"Cache-Control": "max-age=86400"})
