"""A study as a report: a folder that opens offline with no server (issue 37, item 4).

One builder, :func:`report_zip`, behind ``GET /api/studies/{id}/report``: the study
page's own button downloads its zip and ``neuroreg report STUDY -o DIR`` unpacks the same
zip, so the two are one report. The builder draws the study page in headless chromium
with every request answered by the API in-process, as the asking user
(:func:`in_process`), takes what the page drew (:mod:`server.report.capture`) and writes
the folder (:mod:`server.report.folder`).
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal

from server.report.capture import Answer, Fetch, draw_study
from server.report.folder import write_folder

__all__ = ["Answer", "Fetch", "in_process", "nothing_finished", "report_zip"]


def nothing_finished(runs: list[Any]) -> str | None:
    """Why a study with these child runs (``kind``, ``status``) has nothing to report, or
    None: a report needs a train run that succeeded."""
    trains = [r for r in runs if r.kind == "train"]
    if any(r.status == "succeeded" for r in trains):
        return None
    evals = [r for r in runs if r.kind == "evaluate"]
    counts: dict[str, int] = {}
    for r in runs:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    now = ", ".join(f"{n} {s.removeprefix('RunStatus.')}" for s, n in sorted(counts.items()))
    return (f"nothing finished to report yet: none of its {len(trains)} train runs and "
            f"{len(evals)} evaluations has succeeded" + (f" ({now})" if now else "")
            + "; a report needs at least one finished train run")


def report_zip(fetch: Fetch, study_id: int, *, chromium: str, server_url: str,
               settle_s: float = 120.0) -> bytes:
    """The report of study ``study_id`` as a zip of one folder, ``study-<id>-report/``;
    ``fetch`` answers the API as the asking user, ``server_url`` is where the report's
    links point (the server it came from)."""
    study = json.loads(_ok(fetch(f"/api/studies/{study_id}")).body)
    drawn = draw_study(fetch, study_id, chromium=chromium, server_url=server_url,
                       settle_s=settle_s)
    provenance = {}
    for run in [study["study"], *study["runs"]]:
        got = fetch(f"/api/runs/{run['id']}/provenance")
        provenance[run["id"]] = json.loads(got.body)["provenance"] if got.status == 200 else None
    top = f"study-{study_id}-report"
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), drawn, study, provenance, server_url=server_url)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    z.write(path, f"{top}/{path.relative_to(tmp).as_posix()}")
    return buf.getvalue()


def _ok(got: Answer) -> Answer:
    if got.status != 200:
        raise RuntimeError(f"the API answered {got.status}: {got.body[:300]!r}")
    return got


class in_process:  # noqa: N801 (used as a context manager, like open)
    """A :data:`Fetch` that asks ``app`` itself, in-process, with the asking user's
    ``Authorization``: the report reads only what that user may, and nothing goes over a
    network. The app runs on an event loop of its own thread while the report is built
    (``with in_process(app, auth) as fetch``)."""

    def __init__(self, app: Any, authorization: str) -> None:
        self.app = app
        self.headers = {"Authorization": authorization}

    def __enter__(self) -> Fetch:
        self._portal_cm = start_blocking_portal()
        portal = self._portal_cm.__enter__()
        return lambda path: portal.call(self._get, path)

    def __exit__(self, *exc: object) -> None:
        self._portal_cm.__exit__(None, None, None)

    async def _get(self, path: str) -> Answer:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://neuroreg.report") as c:
            res = await c.get(path, headers=self.headers)
        return Answer(status=res.status_code,
                      content_type=res.headers.get("content-type", "application/octet-stream"),
                      body=res.content, retry_after=res.headers.get("retry-after"))
