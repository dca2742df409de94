"""The report's folder: one ``index.html`` that opens from ``file://`` with no server and
no network (classic scripts only: ``plotly.min.js`` once, ``data.js`` holding every
figure's data, ``report.js`` drawing them), each figure as SVG, PDF and CSV, each table as
CSV, the configs as run files ``neuroreg submit`` takes, provenance, the API answers it
was drawn from, and the commands that reproduce it."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import frontend
from server.report.capture import Answer, Drawn

STATIC = Path(frontend.__file__).parent
PLOTLY_JS = STATIC / "static" / "vendor" / "plotly-neuroreg.min.js"
ASSETS = STATIC / "report"

# the page's figure groups, in its order, as the report heads them
SECTIONS = {
    "study-charts": "Figures",
    "frontier-charts": "Accuracy–robustness frontier",
    "study-curves": "Training curves, mean ± SEM over seeds",
    "study-matrices": "Similarity: S_target beside S_CNN of a trained model",
}


def file_name(text: str) -> str:
    """A figure id or API path as a file name: letters, digits, ``_ . -``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "figure"


def _yaml(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88))


def write_folder(out: Path, drawn: Drawn, study: dict[str, Any],
                 provenance: dict[int, Any], *, server_url: str) -> None:
    """Writes the report of ``study`` (``GET /api/studies/{id}``'s answer) into ``out``."""
    s = study["study"]
    for sub in ("figures", "tables", "configs/runs", "data"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    figures = []
    for f in drawn.figures:
        name = file_name(f.id)
        (out / "figures" / f"{name}.svg").write_text(f.svg)
        (out / "figures" / f"{name}.pdf").write_bytes(f.pdf)
        (out / "figures" / f"{name}.csv").write_text(f.csv)
        figures.append({"file": name, "title": f.title, "section": f.section, "data": f.data,
                        "layout": f.layout, "width": f.width, "height": f.height,
                        "wide": f.wide})
    for name, text in drawn.table_csv.items():
        (out / "tables" / f"{file_name(name)}.csv").write_text(text)
    sources = _sources(out, drawn.requests)
    configs = _configs(out, study)
    (out / "provenance.json").write_text(json.dumps(
        {str(k): v for k, v in provenance.items()}, indent=1) + "\n")
    commands = _commands(s, server_url)
    (out / "REPRODUCE.md").write_text(_reproduce_md(s, commands, provenance))
    (out / "plotly.min.js").write_bytes(PLOTLY_JS.read_bytes())
    (out / "report.js").write_text((ASSETS / "report.js").read_text())
    (out / "report.css").write_text((STATIC / "static" / "app.css").read_text()
                                    + (ASSETS / "report.css").read_text())
    (out / "data.js").write_text("// every figure's data and layout, as the study page drew them\n"
                                 "window.NEUROREG_REPORT = "
                                 + json.dumps({"study": s["id"], "figures": figures},
                                              separators=(",", ":")) + ";\n")
    built = datetime.now(UTC).isoformat(timespec="seconds")
    runs = {kind: [r["id"] for r in study["runs"] if r["kind"] == kind]
            for kind in ("train", "evaluate")}
    manifest = {"study": s["id"], "name": s["name"], "status": s["status"],
                "server": server_url, "built_at": built,
                "runs": runs, "target_run": s.get("input_run_id"),
                "figures": [{"id": f["file"], "title": f["title"],
                             **{k: f"figures/{f['file']}.{k}" for k in ("svg", "pdf", "csv")}}
                            for f in figures],
                "undrawn": drawn.undrawn,
                "tables": [f"tables/{file_name(n)}.csv" for n in drawn.table_csv],
                "configs": configs, "api": sources, "commands": commands}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    (out / "index.html").write_text(_index(s, drawn, figures, manifest, provenance))


def _sources(out: Path, requests: list[tuple[str, Answer]]) -> list[dict[str, Any]]:
    """Each API answer the page was drawn from, saved as it came (``data/``)."""
    rows = []
    for k, (path, got) in enumerate(requests):
        row: dict[str, Any] = {"get": path, "status": got.status}
        if got.content_type.startswith("application/json"):
            name = f"data/{k:02d}-{file_name(path.removeprefix('/api/'))}.json"
            (out / name).write_bytes(got.body)
            row["file"] = name
        rows.append(row)
    return rows


def _configs(out: Path, study: dict[str, Any]) -> list[str]:
    """The study and each of its runs as a run file (``kind``, ``name``, ``config``):
    ``neuroreg submit configs/study.yaml`` runs the study again."""
    s = study["study"]
    files = ["configs/study.yaml"]
    (out / files[0]).write_text(
        f"# study {s['id']} as it ran: `neuroreg submit configs/study.yaml --wait` runs it again\n"
        + _yaml({"kind": "study", "name": s["name"], "config": s["config"]}))
    for r in study["runs"]:
        name = f"configs/runs/{r['id']}-{r['kind']}.yaml"
        body = {"kind": r["kind"], "name": r["name"], "config": r["config"]}
        if r.get("input_run_id"):
            body["input_run_id"] = r["input_run_id"]
        (out / name).write_text(f"# run {r['id']} of study {s['id']} ({r['kind']}, "
                                f"{r['status']}), as it ran\n" + _yaml(body))
        files.append(name)
    return files


def _commands(s: dict[str, Any], server_url: str) -> list[str]:
    return [
        f"NEUROREG_API_URL={server_url} neuroreg report {s['id']} -o study-{s['id']}-report",
        "neuroreg submit configs/study.yaml --check",
        "neuroreg submit configs/study.yaml --wait",
        "neuroreg report NEW_STUDY_ID -o new-report",
    ]


def _commits(provenance: dict[int, Any]) -> dict[str, list[int]]:
    """Which code ran which runs: ``commit (dirty)`` → run ids."""
    out: dict[str, list[int]] = {}
    for run_id, p in sorted(provenance.items()):
        if not p:
            continue
        key = (p.get("git_commit") or f"neuroreg {p.get('neuroreg_version')}") \
            + (" (uncommitted changes)" if p.get("git_dirty") else "")
        out.setdefault(key, []).append(run_id)
    return out


def _reproduce_md(s: dict[str, Any], commands: list[str], provenance: dict[int, Any]) -> str:
    commits = _commits(provenance)
    code = "\n".join(f"- `{c}`: runs {', '.join(map(str, ids))}" for c, ids in commits.items())
    target = s.get("input_run_id")
    reads = (f"It reads similarity run {target} (`target_run`): on another server, run that "
             "first and put its id there.") if target else ""
    return f"""# Reproducing study {s['id']} ({s['name']})

This report again, from the server it came from (with your token in NEUROREG_TOKEN):

    {commands[0]}

The study again: its config as it ran is `configs/study.yaml`, every default filled in.
{reads}
Check it, then submit it and wait; `neuroreg submit` prints the new study's id:

    {commands[1]}
    {commands[2]}
    {commands[3]}

Each train and evaluate run's own config is in `configs/runs/`.

The code that ran it (provenance.json has each run's packages, host and devices):

{code or "- no provenance recorded"}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _index(s: dict[str, Any], drawn: Drawn, figures: list[dict[str, Any]],
           manifest: dict[str, Any], provenance: dict[int, Any]) -> str:
    parts = []
    matched = f'<div id="frontier-matched">{drawn.tables.get("frontier-matched", "")}</div>'
    for section, heading in SECTIONS.items():
        mine = [f for f in figures if f["section"] == section]
        if not mine:
            continue
        parts.append(f"<h2>{_esc(heading)}</h2>")
        if section == "frontier-charts" and drawn.notes.get("frontier-note"):
            parts.append(f'<p class="meta">{_esc(drawn.notes["frontier-note"].lstrip(" ·"))}</p>')
        if section == "study-matrices" and drawn.notes.get("sim-note"):
            parts.append(f'<p class="meta">{_esc(drawn.notes["sim-note"])}</p>')
        cells = []
        for f in mine:
            # a figure drawn across the page (the frontier, a training curve) spans it again
            wide = " wide" if f["width"] > 900 else ""
            cells.append(
                f'<figure class="report-figure{wide}" style="max-width:{f["width"] + 2}px">'
                f'<div class="chart" id="fig-{f["file"]}" '
                f'role="img" aria-label="{_esc(f["title"])}" style="height:{f["height"]}px"></div>'
                f'<figcaption>{_esc(f["title"])} · '
                + " · ".join(f'<a href="figures/{f["file"]}.{kind}">{kind.upper()}</a>'
                             for kind in ("svg", "pdf", "csv"))
                + "</figcaption></figure>")
        parts.append(f'<div class="charts">{"".join(cells)}</div>')
        if section == "frontier-charts":
            parts.append(matched)
    if "frontier-charts" not in {f["section"] for f in figures}:  # no frontier: why, said
        parts.append(matched)
    undrawn = (f'<p class="meta" id="report-undrawn">Not in this report (not drawn when it was '
               f'built): {_esc("; ".join(drawn.undrawn))}.</p>') if drawn.undrawn else ""
    tables = "".join(f'<li><a href="{t}">{_esc(t)}</a></li>' for t in manifest["tables"])
    api = "".join(f'<li><code>GET {_esc(a["get"])}</code> → {a["status"]}'
                  + (f' (<a href="{a["file"]}">{_esc(a["file"])}</a>)' if "file" in a else "")
                  + "</li>" for a in manifest["api"])
    runs = manifest["runs"]
    commits = "".join(f"<li><code>{_esc(c)}</code>: {len(ids)} run{'s' * (len(ids) != 1)} "
                      f"({_esc(', '.join(map(str, ids)))})</li>"
                      for c, ids in _commits(provenance).items()) or "<li>none recorded</li>"
    commands = "\n".join(_esc(c) for c in manifest["commands"])
    note = f'<p class="study-note">{_esc(drawn.notes["study-note"])}</p>' \
        if drawn.notes.get("study-note") else ""
    server = _esc(manifest["server"])
    status = _esc(s["status"])
    trains, evals = (_esc(", ".join(map(str, runs[k]))) for k in ("train", "evaluate"))
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>neuroreg report · study {s['id']} {_esc(s['name'])}</title>
  <link rel="stylesheet" href="report.css">
  <link rel="icon" href="data:,">
</head>
<body>
  <header><span class="brand">neuroreg</span><span class="meta">report of study {s['id']},
    built {_esc(manifest['built_at'])} from
    <a href="{server}/studies/{s['id']}">{server}</a></span></header>
  <main>
    <section id="page">
      <h1>#{s['id']} {_esc(s['name'])} <span class="badge {status}">{status}</span></h1>
      <p class="meta" id="study-meta">{_esc(drawn.notes.get('study-meta', ''))}</p>
      {note}
      <nav class="report-nav">Figures as <a href="figures/">SVG, PDF and CSV</a> ·
        tables as <a href="tables/">CSV</a> · <a href="configs/study.yaml">the study's config</a>
        and <a href="configs/runs/">its runs'</a> · <a href="provenance.json">provenance</a> ·
        <a href="manifest.json">manifest</a> · <a href="#reproduce">reproduce</a></nav>
      <aside class="paper-box" id="paper-box">{drawn.tables.get('paper-setting', '')}</aside>
      {undrawn}
      {''.join(parts)}
      <div id="study-tables">{drawn.tables.get('study-tables', '')}</div>
      <h2 id="sources">Where it came from</h2>
      <p>Study {s['id']}: {len(runs['train'])} train runs ({trains}),
        {len(runs['evaluate'])} evaluations ({evals})
        {f"reading similarity run {manifest['target_run']}" if manifest['target_run'] else ""}.
        The tables as CSV:</p>
      <ul>{tables}</ul>
      <p>The code that ran them (each run's packages, host and devices in
        <a href="provenance.json">provenance.json</a>):</p>
      <ul id="report-commits">{commits}</ul>
      <details><summary>The API requests this report was drawn from, and their answers</summary>
        <ul id="report-api">{api}</ul></details>
      <h2 id="reproduce">Reproduce</h2>
      <p>This report again from its server; the study again from its config as it ran
        (<a href="REPRODUCE.md">REPRODUCE.md</a> says more):</p>
      <pre id="report-commands">{commands}</pre>
    </section>
  </main>
  <script src="plotly.min.js"></script>
  <script src="data.js"></script>
  <script src="report.js"></script>
</body>
</html>
"""
