// The run page's log (followed while the run runs), its System figure and its provenance.
// Log lines are text: every one goes in through a text node, never as HTML.
import { el, getJSON } from "./api.js";
import { axis, chartIn, plot } from "./figures.js";

const PAGE = 2000;
const MAX_SHOWN = 20000;  // lines kept in the page; older ones leave the top (logs.txt has all)

function lineEl(ln) {
  const node = el("span", { class: `log-line ${ln.stream}`, "data-seq": ln.seq,
    title: new Date(ln.time * 1000).toISOString() });
  if (ln.stream !== "stdout") node.append(el("span", { class: "stream" }, `${ln.stream} `));
  node.append(document.createTextNode(`${ln.line}\n`));
  return node;
}

// Follows the log with after=: every 2 s while the run runs, scrolled to the end when the
// reader was at the end; stops after the page that says the run has finished.
export function followLogs(runId) {
  const pre = document.getElementById("logs");
  const state = document.getElementById("logs-state");
  const follow = document.getElementById("logs-follow");
  let after = -1;
  let shown = 0;
  let marker = null;
  follow.onchange = () => { if (follow.checked) pre.scrollTop = pre.scrollHeight; };
  const tick = async () => {
    let page;
    try {
      page = await getJSON(`/api/runs/${runId}/logs?after=${after}&limit=${PAGE}`);
    } catch (err) {
      state.textContent = `· could not read the log (${err.message}); trying again`;
      setTimeout(tick, 5000);
      return;
    }
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    const lines = document.createDocumentFragment();
    for (const ln of page.lines) lines.append(lineEl(ln));
    pre.insertBefore(lines, marker);
    shown += page.lines.length;
    while (shown > MAX_SHOWN && pre.firstChild !== marker) { pre.firstChild.remove(); shown -= 1; }
    after = page.next_after;
    if (page.dropped) {  // one marker line, kept last and brought up to date
      const now = lineEl({ seq: "dropped", stream: "dropped", time: Date.now() / 1000,
        line: page.dropped.line });
      if (marker) marker.replaceWith(now); else pre.append(now);
      marker = now;
    }
    const kib = (b) => `${(b / 1024).toFixed(b < 10240 ? 1 : 0)} KiB`;
    state.textContent = `· ${after + 1} lines, ${kib(page.bytes)} of ${kib(page.max_bytes)}`
      + (page.running ? " · following" : ` · run ${page.status}`);
    if (follow.checked && atEnd) pre.scrollTop = pre.scrollHeight;
    if (page.lines.length === PAGE) tick();  // more already there
    else if (page.running) setTimeout(tick, 2000);
    else {
      if (after < 0 && !marker) {  // finished, and never wrote a line: say so, not "yet"
        pre.append(el("span", { class: "log-none" }, "this run wrote no log lines"));
        state.textContent = `· no lines · run ${page.status}`;
      }
      pre.dataset.complete = "true";
    }
  };
  return tick();
}

// The server's System panels stacked in one figure over a shared time axis
export async function drawSystem(runId) {
  const host = document.getElementById("system");
  const fig = await getJSON(`/api/runs/${runId}/system`);
  if (!fig.panels.length) return;
  host.hidden = false;
  const div = chartIn(host, "chart-system", fig.title);
  div.classList.add("wide");
  const n = fig.panels.length;
  const gap = 0.06;
  const h = (1 - gap * (n - 1)) / n;
  const layout = { title: { text: fig.title }, uirevision: "system",
    xaxis: axis("time (UTC)", { type: "date", anchor: `y${n === 1 ? "" : n}` }) };
  const traces = [];
  fig.panels.forEach((p, i) => {
    const top = 1 - i * (h + gap);
    layout[i === 0 ? "yaxis" : `yaxis${i + 1}`] = axis(`${p.title} (${p.y_title})`,
      { domain: [top - h, top], rangemode: "tozero" });
    for (const t of p.traces) {
      traces.push({ x: t.x, y: t.y, name: `${p.title}: ${t.name}`, type: "scatter",
        mode: t.x.length < 60 ? "lines+markers" : "lines", yaxis: i === 0 ? "y" : `y${i + 1}`,
        xaxis: "x" });
    }
  });
  div.style.height = `${140 + 150 * n}px`;
  div.dataset.points = traces.reduce((sum, t) => sum + t.x.length, 0);
  await plot(div, traces, layout);
}

const PROVENANCE_ROWS = [
  ["git_commit", "commit"], ["git_branch", "branch"], ["git_root", "checkout"],
  ["neuroreg_version", "neuroreg"], ["script", "script"], ["host", "host"],
  ["platform", "platform"], ["python", "Python"], ["torch", "torch"], ["cuda", "CUDA (torch built for)"],
  ["gpus", "GPUs"],
];

// Commit (with a dirty or clean badge), host, GPU, Python and torch, and the packages
// folded away; true once the run has provenance
export async function drawProvenance(runId) {
  const { provenance: p } = await getJSON(`/api/runs/${runId}/provenance`);
  if (!p) return false;
  const section = document.getElementById("provenance");
  const rows = PROVENANCE_ROWS.filter(([k]) => k in p).map(([k, label]) => {
    let value = p[k];
    if (k === "gpus") value = value && value.length ? value.join(", ") : "none";
    const cell = el("td", { id: `prov-${k}` }, value === null || value === undefined ? "–" : String(value));
    if (k === "git_commit" && p.git_dirty !== null && p.git_dirty !== undefined) {
      cell.append(" ", el("span", { class: `badge ${p.git_dirty ? "dirty" : "clean"}`, id: "prov-dirty" },
        p.git_dirty ? "dirty" : "clean"));
    }
    return el("tr", {}, el("th", {}, label), cell);
  });
  // a run an MLflow client logged: its experiment and its key/value tags (docs/mlflow.md)
  const mlflow = p.mlflow && typeof p.mlflow === "object" ? p.mlflow : null;
  if (mlflow) {
    rows.push(el("tr", {}, el("th", {}, "MLflow experiment"),
      el("td", { id: "prov-mlflow-experiment" }, String(mlflow.experiment_id ?? "–"))));
    for (const [k, v] of Object.entries(mlflow.tags || {}).sort()) {
      rows.push(el("tr", { class: "mlflow-tag" }, el("th", {}, `MLflow tag ${k}`), el("td", {}, String(v))));
    }
  }
  document.getElementById("provenance-table").replaceChildren(el("tbody", {}, ...rows));
  const packages = Object.entries(p.packages || {});
  const details = document.getElementById("provenance-packages");
  details.querySelector("summary").textContent = `${packages.length} installed packages`;
  details.hidden = !packages.length;  // a script that sent none (an MLflow client's run)
  details.querySelector("table").replaceChildren(el("tbody", {},
    ...packages.map(([name, version]) => el("tr", {}, el("th", {}, name), el("td", {}, version)))));
  section.hidden = false;
  return true;
}
