// A study: Fig. 4 (noise accuracy, mean ± SEM bands per condition), Fig. 5/7 (median
// perturbation per condition and norm), Fig. 6 (robustness vs α), training curves (mean ±
// SEM over seeds), S_target beside S_CNN of a trained model and their difference, Table 1
// (γ), paired tests against None, and its runs by condition. Clicking a bar or a curve
// jumps to that condition's runs (#cond-…, a shareable URL). The accuracy–robustness
// frontier: each condition through its α in (clean accuracy, robustness), and against None
// at matched clean accuracy. The paper's reported values can be laid over ours (◇), beside
// a box saying how this study's setting differs from the paper's.
import { artifactNames, AuthError, el, fieldLabels, fmt, getJSON, when, withLogin } from "./api.js";
import { chartIn, plain, plot, plotly } from "./figures.js";
import { drawMatrix, matrixDiv, matrixViews, withChoice } from "./similarity.js";

const studyId = Number(location.pathname.split("/").pop());
const FINISHED = ["succeeded", "failed", "cancelled"];
const COLORS = ["#444444", "#d62728", "#9467bd", "#ff7f0e", "#1f77b4", "#2ca02c", "#8c564b"];
const alphaOf = (r) => (r.target === "none" ? 0 : Number(r.alpha));
// a condition as the paper writes it (the server's labels: Neural (model), VGG, …)
const condName = (target) => (latest && latest.paper && latest.paper.labels
  && latest.paper.labels[target]) || target;
const label = (r) => (r.target === "none" ? "None" : `${condName(r.target)} α=${alphaOf(r)}`);
const slug = (s) => s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase();
// stable ids for links and tests: the stored target name, not its label
const condId = (r) => `cond-${slug(r.target === "none" ? "None" : `${r.target} α=${alphaOf(r)}`)}`;
const CURVE_KEYS = ["test_acc", "sim_r", "loss", "sim_loss", "task_loss", "test_loss"];
const page = () => document.getElementById("page");
const TOLERANCE = 0.02;  // the server's default: kept out of the URL
const showPaper = () => document.getElementById("paper-toggle").checked;
const signed = (v, digits) => (v === null || v === undefined ? "–" : `${v >= 0 ? "+" : ""}${fmt(v, digits)}`);
const pval = (p) => (p === null || p === undefined ? "–" : p === 0 ? "0"
  : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));
// a SEM of equal values comes back as float residue (1e-19): draw no error bar for it
const bar = (v) => (v.sem > 1e-9 * Math.abs(v.mean) ? v.sem : 0);
const BETTER_NOTE = (rows) => (rows.every((r) => r.higher_is_better)
  ? "Higher is better for every measure, so a positive difference favours the condition."
  : `Higher is better for ${rows.filter((r) => r.higher_is_better).map((r) => r.measure).join(", ")}; lower for the rest.`);
const wilcoxonFloor = (n) => (n > 0
  ? ` With ${n} pairs the two-sided Wilcoxon p cannot go below 2/2^${n} = ${fmt(2 / 2 ** n, 3)}.` : "");

function band(x, mean, sem, name, color, cond, nAt = null, lineDash = "solid") {
  const upper = mean.map((m, i) => m + sem[i]);
  const lower = mean.map((m, i) => m - sem[i]);
  return [
    { x: [...x, ...x.slice().reverse()], y: [...upper, ...lower.reverse()],
      fill: "toself", fillcolor: color + "33", line: { width: 0 }, hoverinfo: "skip", mode: "lines",
      showlegend: false, type: "scatter", name: `${name} ± SEM` },
    { x, y: mean, name, type: "scatter", mode: x.length < 60 ? "lines+markers" : "lines",
      line: { color, dash: lineDash }, customdata: x.map(() => cond),
      ...(nAt ? { text: nAt.map((n) => `mean of ${n} seed${n === 1 ? "" : "s"}`) } : {}) },
  ];
}

function table(head, rows, attrs = {}) {
  return el("table", { class: "scores", ...attrs },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => (r instanceof Node ? r
      : el("tr", {}, ...r.map((c) => el("td", {}, c)))))));
}

// one div per figure, kept across polls (a re-plot, not a new div) and in draw order
function figure(host, id, title, subtitle = "", wide = false) {
  const div = chartIn(host, id, title);
  div.dataset.subtitle = subtitle;
  div.classList.toggle("wide", wide);
  host.append(div);  // a figure that appears on a later poll still lands in its place
  return div;
}

// one colour per condition on every figure (the frontier's: None grey, the others in the
// order the study names them), and within a condition one dash per α, smallest solid
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
const colour = (r) => condColour(r.target);
function dash(r) {
  const alphas = [...new Set(((latest && latest.robustness) || []).concat((latest && latest.gamma) || [])
    .filter((o) => o.target === r.target).map(alphaOf))].sort((a, b) => a - b);
  return DASHES[Math.max(0, alphas.indexOf(alphaOf(r))) % DASHES.length];
}

// a click on a bar or a curve point: that condition's runs
function linkToRuns(div) {
  if (div.linked) return;
  div.linked = true;
  div.on("plotly_click", (ev) => {
    const cond = ev.points && ev.points[0] && ev.points[0].customdata;
    if (cond) location.hash = cond;
  });
}

function skeleton() {
  page().replaceChildren(
    el("h1", {}, el("span", { id: "study-title" }), " ", el("span", { id: "study-status", class: "badge" })),
    el("p", { class: "meta", id: "study-meta" }),
    el("div", { class: "progress" }, el("div", { id: "study-progress" })),
    el("p", { class: "study-note", id: "study-note", hidden: "" }),
    el("aside", { class: "paper-box", id: "paper-box", "aria-label": "the paper beside this study" },
      el("label", {}, el("input", { type: "checkbox", id: "paper-toggle" }),
        " show the paper's values (◇: Fig. 4 at the highest σ, Fig. 5 medians, Table 1)"),
      el("div", { id: "paper-setting" })),
    el("div", { class: "charts", id: "study-charts" }),
    el("h2", {}, "Accuracy–robustness frontier"),
    el("p", {}, el("label", { for: "frontier-tolerance" }, "matched when |clean accuracy − None's| ≤ "),
      el("input", { id: "frontier-tolerance", type: "number", min: "0.001", max: "1", step: "0.005",
        value: String(TOLERANCE) }),
      el("span", { class: "meta", id: "frontier-note" })),
    el("div", { class: "charts", id: "frontier-charts" }),
    el("div", { id: "frontier-matched" }),
    el("h2", {}, "Training curves, mean ± SEM over seeds"),
    el("p", {}, el("label", { for: "curve-key" }, "metric "),
      el("select", { id: "curve-key" }, ...CURVE_KEYS.map((k) => el("option", { value: k }, k))),
      el("span", { class: "meta", id: "curve-note" })),
    el("div", { class: "charts", id: "study-curves" }),
    el("h2", {}, "Similarity: S_target beside S_CNN of a trained model"),
    el("p", { class: "meta", id: "sim-note" }),
    el("p", {}, el("label", { for: "sim-run" }, "trained model "), el("select", { id: "sim-run" }),
      el("span", { class: "meta", id: "sim-run-note" })),
    el("div", { class: "charts", id: "study-matrices" }),
    el("div", { id: "study-tables" }));
  // the picked curve and model live in the URL (?curve=sim_r&model=all), like the anchor
  const curve = document.getElementById("curve-key");
  const wanted = SHARED.get("curve");
  if (wanted && !CURVE_KEYS.includes(wanted)) curve.append(el("option", { value: wanted }, wanted));
  if (wanted) curve.value = wanted;
  curve.onchange = () => { remember(); drawCurves().catch(console.error); };
  document.getElementById("sim-run").onchange = () => {
    remember(); drawModelMatrices().catch(console.error);
  };
  const tolerance = document.getElementById("frontier-tolerance");
  if (SHARED.get("tolerance")) tolerance.value = SHARED.get("tolerance");
  tolerance.onchange = () => { remember(); drawFrontier().catch(console.error); };
  const toggle = document.getElementById("paper-toggle");
  toggle.checked = SHARED.get("paper") === "1";
  toggle.onchange = () => {
    remember();
    if (!latest) return;
    drawFigures(latest).catch(console.error);
    drawTables(latest);
  };
}

let latest = null;  // the last GET /api/studies/{id}: the study, its runs, aggregates
const trains = () => latest.runs.filter((r) => r.kind === "train");
const SHARED = new URLSearchParams(location.search);

function remember() {
  const q = new URLSearchParams();
  const curve = document.getElementById("curve-key").value;
  const model = document.getElementById("sim-run").value;
  if (curve && curve !== "test_acc") q.set("curve", curve);
  if (model) q.set("model", model);
  const tolerance = document.getElementById("frontier-tolerance").value;
  if (tolerance !== "" && Number(tolerance) !== TOLERANCE) q.set("tolerance", tolerance);
  if (showPaper()) q.set("paper", "1");
  history.replaceState(null, "", `${location.pathname}${q.size ? `?${q}` : ""}${location.hash}`);
}

function drawHeader(s) {
  document.title = `neuroreg · ${s.name || `study ${s.id}`}`;
  document.getElementById("study-title").textContent = `#${s.id} ${s.name}`;
  const badge = document.getElementById("study-status");
  badge.textContent = s.status; badge.className = `badge ${s.status}`;
  document.getElementById("study-meta").textContent =
    `study · owner ${s.owner} · created ${when(s.created_at)} · ${s.message}`;
  document.getElementById("study-progress").style.width = `${Math.round(s.progress * 100)}%`;
  const note = document.getElementById("study-note");
  const text = typeof s.config.note === "string" ? s.config.note.trim() : "";
  note.textContent = text;
  note.hidden = !text;
}

// a condition's colour on the frontier: one per condition (α is the point's label), in
// the order the study names its conditions, so no two lines share one however many α
// values each has; a condition the study does not name ("neural-model (shared)", when the
// frontier splits stimulus_norm modes) takes the next free colour
const condColours = new Map([["none", COLORS[0]]]);
function condColour(target) {
  if (!condColours.has(target)) {
    const named = ((latest && latest.study && latest.study.config.conditions) || [])
      .filter((c) => c !== "none" && !condColours.has(c));
    for (const c of named) condColours.set(c, COLORS[1 + ((condColours.size - 1) % (COLORS.length - 1))]);
    if (!condColours.has(target)) condColours.set(target, COLORS[1 + ((condColours.size - 1) % (COLORS.length - 1))]);
  }
  return condColours.get(target);
}

// the paper's reported values: hollow diamonds with their own legend entries, so they are
// never read as ours
function paperTrace(name, x, y, targets) {
  return { type: "scatter", mode: "markers", name, x, y, cliponaxis: false,
    hovertemplate: `%{x}: %{y}<extra>${name}</extra>`,
    marker: { symbol: "diamond-open", size: 13, line: { width: 2 }, color: targets.map(condColour) } };
}

function drawFigures(data) {
  const host = document.getElementById("study-charts");
  const rows = data.robustness;
  const jobs = [];  // every div goes in first: a grid cell sized alone would clip later
  const noiseRows = rows.filter((r) => r.noise);
  if (noiseRows.length) {
    const div = figure(host, "fig4", "Accuracy under noise (Fig. 4)",
      "Gaussian noise of standard deviation σ; mean ± SEM over seeds", true);
    const traces = noiseRows.flatMap((r) => band(r.noise.sigmas, r.noise.mean, r.noise.sem,
      `${label(r)} (n=${r.n})`, colour(r), condId(r), null, dash(r)));
    const layout = { xaxis: { title: { text: "noise σ" } }, yaxis: { title: { text: "accuracy" } } };
    const reported = data.paper && data.paper.noise_highest;
    if (showPaper() && reported) {  // at our highest σ: the paper's σ is in its figure only
      const top = Math.max(...noiseRows.flatMap((r) => r.noise.sigmas));
      for (const [target, value] of Object.entries(reported.values)) {
        traces.push(paperTrace(`paper: ${data.paper.labels[target] || target}`, [top], [value], [target]));
      }
    }
    jobs.push([div, traces, layout]);
  }
  for (const { name: norm, label: normLabel } of data.norms) {  // the server's norms, written its way
    const have = rows.filter((r) => r.medians[norm]);
    if (!have.length) continue;
    const div = figure(host, `fig5-${norm}`, `Median ${normLabel} perturbation (Fig. 5, 7)`,
      "smallest adversarial per image; mean ± SEM over seeds");
    const traces = [{ type: "bar", x: have.map(label), y: have.map((r) => r.medians[norm].mean),
      error_y: { type: "data", array: have.map((r) => r.medians[norm].sem), visible: true },
      marker: { color: have.map(colour) }, name: `median ${normLabel}`, customdata: have.map(condId) }];
    const layout = { xaxis: { tickangle: -40 }, yaxis: { title: { text: `median ${normLabel} distance` } } };
    const reported = data.paper && data.paper.medians;
    const theirs = reported ? Object.keys(reported.values).filter((t) => reported.values[t][norm] !== undefined) : [];
    if (showPaper() && theirs.length) {  // beside our bars, on categories of their own
      traces.push(paperTrace(`paper (${reported.source})`,
        theirs.map((t) => `paper: ${data.paper.labels[t] || t}`), theirs.map((t) => reported.values[t][norm]), theirs));
    }
    jobs.push([div, traces, layout]);
  }
  for (const { name: norm, label: normLabel } of data.norms) {
    const have = rows.filter((r) => r.curves && r.curves[norm]);
    if (!have.length) continue;
    const div = figure(host, `fig5-budget-${norm}`, `Median ${normLabel} vs attack budget (Fig. 5)`,
      "best so far after each attack; mean ± SEM over seeds");
    jobs.push([div, have.map((r) => ({ x: r.curves[norm].iterations, y: r.curves[norm].mean,
      error_y: { type: "data", array: r.curves[norm].sem, visible: true },
      name: label(r), type: "scatter", mode: "lines+markers", line: { color: colour(r), dash: dash(r) },
      customdata: r.curves[norm].iterations.map(() => condId(r)) })),
    { xaxis: { title: { text: "attack iterations (cumulative)" }, type: "log" },
      yaxis: { title: { text: `median ${normLabel} (best so far)` } } }]);
  }
  jobs.push(...standardScores(host, rows, data.corruptionLabels || {}));
  const cond = [...new Set(rows.map((r) => r.target))];
  const alphas = new Set(rows.filter((r) => r.target !== "none").map((r) => r.alpha));
  if (alphas.size > 1) {  // Fig. 6 as in the paper: robustness against α, None at α = 0
    const div = figure(host, "fig6", "Robustness vs α (Fig. 6)",
      "mean accuracy over σ > 0, mean ± SEM over seeds; α = 0 is None");
    // the server's mean over σ > 0 (ml/evaluate/measures.py), with its SEM over seeds
    const none = rows.find((r) => r.target === "none" && r.measures.noise_accuracy);
    const point = (r) => ({ x: String(alphaOf(r)), m: r.measures.noise_accuracy, id: condId(r) });
    const trace = (c, pts) => ({ x: pts.map((p) => p.x), y: pts.map((p) => p.m.mean),
      error_y: { type: "data", array: pts.map((p) => p.m.sem), visible: true },
      name: condName(c), type: "scatter", mode: "lines+markers",
      line: { color: condColour(c) }, marker: { color: condColour(c), size: 8 },
      customdata: pts.map((p) => p.id) });
    const traces = cond.filter((c) => c !== "none").map((c) => trace(c, [
      ...(none ? [point(none)] : []),  // every condition starts from None (α = 0)
      ...rows.filter((r) => r.target === c && r.measures.noise_accuracy)
        .sort((a, b) => a.alpha - b.alpha).map(point)]));
    if (none) traces.unshift({ ...trace("none", [point(none)]), mode: "markers",
      marker: { color: condColour("none"), size: 10, symbol: "square" } });
    const ticks = [0, ...[...alphas].sort((a, b) => a - b)].map(String);  // evenly spaced
    jobs.push([div, traces, { xaxis: { title: { text: "α (0: None)" }, type: "category",
      categoryorder: "array", categoryarray: ticks },
      yaxis: { title: { text: "mean accuracy over σ > 0" } }, showlegend: true }]);
  }
  return Promise.all(jobs.map(async ([div, traces, layout]) => {
    await plot(div, traces, { title: { text: div.dataset.title,
      subtitle: { text: div.dataset.subtitle || "" } }, uirevision: div.id, ...layout });
    linkToRuns(div);
  }));
}


// The field's standard numbers: AutoAttack robust accuracy per threat model and ε, CE/mCE
// against None (Hendrycks & Dietterich's, None as the baseline) and one corruption heatmap
// per condition (accuracy per corruption × severity), all mean ± SEM over seeds.
function standardScores(host, rows, names) {
  const jobs = [];
  for (const [norm, normLabel] of [["linf", "L∞"], ["l2", "L2"]]) {
    const have = rows.filter((r) => r.autoattack && r.autoattack[norm]);
    if (!have.length) continue;
    const eps = [...new Set(have.flatMap((r) => r.autoattack[norm].eps))].sort((a, b) => a - b);
    // ε as the server writes it (8/255): ml/evaluate/record.py's eps_label
    const labelOf = Object.fromEntries(have.flatMap((r) => r.autoattack[norm].eps.map((e, i) =>
      [e, r.autoattack[norm].eps_labels[i]])));
    const custom = have.some((r) => r.autoattack[norm].versions.includes("custom"));
    const div = figure(host, `fig-autoattack-${norm}`, `AutoAttack robust accuracy, ${normLabel}`
      + (eps.length === 1 ? ` at ε = ${labelOf[eps[0]]}` : ""),
      `${eps.length > 1 ? "per ε; " : ""}mean ± SEM over seeds${custom ? "; a reduced (custom) AutoAttack, not RobustBench's standard" : ""}`);
    const traces = eps.map((e, k) => {
      const at = have.filter((r) => r.autoattack[norm].eps.includes(e));
      const i = (r) => r.autoattack[norm].eps.indexOf(e);
      return { type: "bar", name: `ε = ${labelOf[e]}`, x: at.map(label),
        y: at.map((r) => r.autoattack[norm].mean[i(r)]),
        error_y: { type: "data", array: at.map((r) => bar({ mean: r.autoattack[norm].mean[i(r)],
          sem: r.autoattack[norm].sem[i(r)] })), visible: true },
        marker: { color: at.map(colour), opacity: 1 - 0.45 * (k / Math.max(1, eps.length - 1)) },
        customdata: at.map(condId) };
    });
    jobs.push([div, traces, { barmode: "group", showlegend: eps.length > 1, xaxis: { tickangle: -40 },
      yaxis: { title: { text: "robust accuracy" }, range: [0, 1] } }]);
  }
  const withMce = rows.filter((r) => r.mce);
  if (withMce.length) {
    const div = figure(host, "fig-mce", "Mean corruption error (mCE) vs None",
      "Σ error over severities relative to None of the same seed, mean over CIFAR-10-C's 15 corruptions measured; mean ± SEM over seeds; < 1 is more robust");
    jobs.push([div, [{ type: "bar", x: withMce.map(label), y: withMce.map((r) => r.mce.mean),
      error_y: { type: "data", array: withMce.map((r) => bar(r.mce)), visible: true },
      text: withMce.map((r) => `${r.mce.n} seed${r.mce.n === 1 ? "" : "s"}`), textposition: "none",
      marker: { color: withMce.map(colour) }, name: "mCE", customdata: withMce.map(condId) }],
    { xaxis: { tickangle: -40 }, yaxis: { title: { text: "mCE (None = 1)" } },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1, line: { dash: "dot", color: "#888" } }] }]);
  }
  for (const r of rows.filter((x) => x.corruptions)) {
    const g = r.corruptions;
    const div = figure(host, `fig-corruptions-${condId(r).slice(5)}`, `Accuracy under corruptions: ${label(r)}`,
      `CIFAR-10-C's corruptions × severity, mean over ${g.n} seed${g.n === 1 ? "" : "s"}`);
    div.style.height = `${190 + 24 * g.names.length}px`;  // rows readable, never stretched
    const y = g.names.map((n) => names[n] || n);
    jobs.push([div, [{ type: "heatmap", z: g.mean, x: g.severities.map(String), y, zmin: 0, zmax: 1,
      colorscale: "Viridis", colorbar: { title: { text: "accuracy" }, thickness: 12 },
      customdata: g.sem, hovertemplate: "%{y}, severity %{x}: %{z:.3f} ± %{customdata:.3f}<extra></extra>" }],
    { xaxis: { title: { text: "severity" }, type: "category" },
      yaxis: { autorange: "reversed", automargin: true, type: "category" } }]);
  }
  return jobs;
}

// Each condition as a line through its α values in (clean accuracy, robustness), one
// subplot per robustness measure, mean ± SEM over seeds on both axes; None is one point.
async function drawFrontier() {
  const host = document.getElementById("frontier-charts");
  const note = document.getElementById("frontier-note");
  const tolerance = document.getElementById("frontier-tolerance").value;
  let data;
  try {
    data = await getJSON(`/api/studies/${studyId}/frontier?tolerance=${encodeURIComponent(tolerance)}`);
  } catch (err) {  // 409: nothing evaluated yet, or no None; 422: a bad tolerance
    if (err instanceof AuthError) throw err;
    note.textContent = ` · ${err.message}`;
    note.className = "meta frontier-error";
    host.hidden = true;
    document.getElementById("frontier-matched").replaceChildren();
    return;
  }
  note.className = "meta";
  note.textContent = ` · None's clean accuracy ${fmt(data.none_clean_accuracy, 3)}; each condition`
    + " is compared with None at its α of closest clean accuracy, paired by seed";
  host.hidden = false;
  const measures = Object.keys(data.measures).filter((m) => m !== "clean_accuracy"
    && data.points.some((p) => p.measures[m] && p.measures.clean_accuracy));
  if (!measures.length) {  // evaluations with a clean accuracy but no robustness measure
    note.textContent += " · no robustness measure to draw against clean accuracy yet";
    host.hidden = true;
  }
  const conditions = Object.keys(data.curves).sort((a, b) => (a !== "none") - (b !== "none"));
  const columns = measures.length === 4 ? 2 : Math.min(measures.length, 3);
  const rows = Math.ceil(measures.length / columns);
  const traces = [];
  const layout = { grid: { rows, columns, pattern: "independent", xgap: 0.1, ygap: 0.3 },
    height: 330 * rows + 110 };
  const inLegend = new Set();
  measures.forEach((m, k) => {
    const ax = k ? String(k + 1) : "";
    layout[`xaxis${ax}`] = { title: { text: "clean accuracy (σ = 0)" } };
    layout[`yaxis${ax}`] = { title: { text: data.measures[m].label } };
    for (const c of conditions) {
      const ps = data.points.filter((p) => p.condition === c && p.measures[m] && p.measures.clean_accuracy);
      if (!ps.length) continue;
      const name = c === "none" ? "None" : c;
      const clean = ps.map((p) => p.measures.clean_accuracy);
      const y = ps.map((p) => p.measures[m]);
      const cells = ps.map((p) => ({ target: c, alpha: p.alpha }));
      traces.push({ type: "scatter", mode: "lines+markers+text", name, legendgroup: c,
        showlegend: !inLegend.has(c), xaxis: `x${ax}`, yaxis: `y${ax}`,
        x: clean.map((v) => v.mean), y: y.map((v) => v.mean),
        error_x: { type: "data", array: clean.map(bar), visible: true, thickness: 1 },
        error_y: { type: "data", array: y.map(bar), visible: true, thickness: 1 },
        text: ps.map((p) => `α=${alphaOf({ target: c, alpha: p.alpha })}`), textposition: "top center",
        textfont: { size: 12 }, cliponaxis: false, line: { color: condColour(c) },
        marker: { size: 8, color: condColour(c) }, customdata: cells.map(condId),
        hovertext: ps.map((p, i) => `${name} α=${p.alpha} (n=${p.n})<br>clean ${fmt(clean[i].mean, 3)} ± `
          + `${fmt(clean[i].sem, 3)}<br>${data.measures[m].label} ${y[i].mean.toPrecision(3)} ± ${y[i].sem.toPrecision(2)}`),
        hoverinfo: "text" });
      inLegend.add(c);
    }
  });
  document.getElementById("frontier-matched").replaceChildren(...matchedTable(data));
  if (!measures.length) return;
  const div = figure(host, "frontier", "Clean accuracy against robustness, one line per condition through its α, mean ± SEM over seeds");
  div.classList.add("wide");
  await plot(div, traces, { title: { text: div.dataset.title }, uirevision: div.id, ...layout });
  linkToRuns(div);
}

// each condition against None at its matched α: one row per measure, or why none matched
function matchedTable(data) {
  const tol = data.tolerance;
  const rows = [];
  let fewest = 0;
  const tested = [];
  for (const m of data.matched) {
    if (!m.matched) {
      rows.push(el("tr", { class: "unmatched" }, el("td", {}, m.condition),
        el("td", { colspan: "7" }, `no α within ±${tol} (closest α=${m.alpha}, gap ${signed(m.clean_gap, 3)})`)));
      continue;
    }
    Object.entries(m.tests).forEach(([name, t], i) => {
      tested.push({ measure: data.measures[name].label, higher_is_better: t.higher_is_better });
      fewest = fewest ? Math.min(fewest, t.pairs) : t.pairs;
      rows.push(el("tr", {}, el("td", {}, i ? "" : m.condition), el("td", {}, i ? "" : `α=${m.alpha}`),
        el("td", {}, i ? "" : signed(m.clean_gap, 3)), el("td", {}, data.measures[name].label),
        el("td", {}, String(t.pairs)),
        el("td", {}, `${signed(t.mean_difference, 4)} ± ${fmt(t.sem_difference, 4)}`),
        el("td", {}, pval(t.t_test_p)), el("td", {}, pval(t.wilcoxon_p))));
    });
  }
  return [
    el("h3", {}, `Each condition vs None at matched clean accuracy (within ±${tol})`),
    table(["condition", "matched α", "clean gap", "measure", "pairs", "difference ± SEM", "paired t p", "Wilcoxon p"],
      rows, { id: "frontier-table" }),
    el("p", { class: "meta" }, "Difference = condition − None at the matched α, paired by seed. ",
      tested.length ? BETTER_NOTE(tested) : "", wilcoxonFloor(fewest))];
}

// how this study's setting differs from the paper's, from the study's own config
const SETTING_LABEL = { dataset: "dataset", backbone: "backbone", width: "width", epochs: "epochs",
  batch_size: "batch size", schedule: "optimizer", seeds: "seeds", alphas: "α", target: "target",
  attack_samples: "attacked samples", attacks: "attacks" };

function drawPaperBox(data) {
  const host = document.getElementById("paper-setting");
  const paper = data.paper;
  if (!paper) { host.replaceChildren(); return; }
  const name = (r) => SETTING_LABEL[r.field] || r.field;
  const differ = paper.beside.filter((r) => r.same !== true);
  const same = paper.beside.filter((r) => r.same === true);
  host.replaceChildren(
    el("p", {}, el("strong", {}, "This study beside the paper's setting"), ` — ${paper.citation}.`),
    table(["differs", "this study", "the paper", "paper §"], differ.map((r) => [
      name(r), r.same === null ? `${r.ours} (whether it matches is not recorded)` : r.ours, r.paper, r.source]),
    { id: "paper-differences" }),
    el("p", { class: "meta" }, same.length ? `Same as the paper: ${same.map(name).join(", ")}.` : ""),
    el("p", { class: "meta", id: "paper-marks" }, "◇ marks the paper's values, never ours. ",
      ...[["Fig. 4", paper.noise_highest], ["Fig. 5", paper.medians], ["Table 1 (italic rows)", paper.gamma]]
        .map(([fig, v]) => `${fig}: ${v.note} (${v.source}). `)));
}

async function drawCurves() {
  const key = document.getElementById("curve-key").value;
  const data = await getJSON(`/api/studies/${studyId}/curves?key=${encodeURIComponent(key)}&max_points=500`)
    .catch((err) => ({ rows: [], keys: [], error: err.message }));
  const select = document.getElementById("curve-key");
  const known = data.keys.length ? data.keys.filter((k) => !k.startsWith("noise_")) : CURVE_KEYS;
  if (known.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...known.map((k) => el("option", { value: k }, k)));
    select.value = known.includes(key) ? key : known[0];
  }
  document.getElementById("curve-note").textContent = data.error ? ` · ${data.error}`
    : data.bin_steps > 1 ? ` · each point averages ${data.bin_steps} steps` : "";
  const host = document.getElementById("study-curves");
  const div = figure(host, "study-curve", `${key} over training`, "mean ± SEM over seeds", true);
  if (!data.rows.length) { host.hidden = true; return; }
  host.hidden = false;
  const traces = data.rows.flatMap((r) => band(r.steps, r.mean, r.sem, `${label(r)} (n=${r.n})`,
    colour(r), condId(r), r.n_at, dash(r)));
  div.dataset.title = `${key} over training`;
  await plot(div, traces, { title: { text: plain(div.dataset.title), subtitle: { text: "mean ± SEM over seeds" } }, uirevision: key,
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: plain(key) } } });  // a key a run logged
  linkToRuns(div);
}

// S_target of the study's target run, drawn at once; S_CNN of the picked model beside it
const views = {};

async function drawTarget() {
  const host = document.getElementById("study-matrices");
  const target = latest.study.input_run_id || latest.study.config.target_run;
  const note = document.getElementById("sim-note");
  if (!target) { note.textContent = "This study trains without a similarity target."; return; }
  note.replaceChildren("S over all stimuli of ", el("a", { href: `/runs/${target}` }, `similarity run #${target}`),
    " in one shared order and colour scale; overviews are exact block means, zoom in for exact cells.");
  if (!views.target) {
    views.target = matrixDiv("S_target neural-model", host);
    await drawMatrix(views.target, { runId: target, name: "neural-model",
      title: `S_target (run #${target}, neural-model)` });
  }
}

function pickable(data) {
  return data.runs.filter((r) => r.kind === "train" && r.status === "succeeded" && r.input_run_id);
}

// the first seed of each condition: what "every condition" puts side by side
function firstSeeds(runs) {
  const first = new Map();
  for (const r of [...runs].sort((a, b) => a.config.seed - b.config.seed || a.id - b.id)) {
    if (!first.has(label(r.config))) first.set(label(r.config), r);
  }
  return [...first.values()];
}

function fillPicker(data) {
  const select = document.getElementById("sim-run");
  const runs = pickable(data);
  const every = firstSeeds(runs).length > 1 ? ["all"] : [];
  const ids = [...every, ...runs.map((r) => String(r.id))];
  if (ids.join() === [...select.options].map((o) => o.value).join()) return false;
  const keep = select.value;
  select.replaceChildren(
    ...every.map((v) => el("option", { value: v }, "every condition side by side (first seed)")),
    ...runs.map((r) => el("option", { value: r.id },
      `#${r.id} ${label(r.config)} seed ${r.config.seed}`)));
  select.disabled = !runs.length;
  if (!runs.length) {
    select.append(el("option", { value: "" }, "– appears when a train run with a target finishes –"));
    return false;
  }
  // the strongest neural-model regularization first: where S_CNN should look most like S_target
  const neural = runs.filter((r) => r.config.target === "neural-model");
  const best = neural.sort((a, b) => b.config.alpha - a.config.alpha || a.config.seed - b.config.seed)[0]
    || runs[0];
  const shared = SHARED.get("model");  // a shared link's pick, until the user picks
  select.value = ids.includes(keep) ? keep : shared && ids.includes(shared) ? shared
    : String(best.id);
  return select.value !== keep;
}

function clearModelViews() {
  for (const key of ["model", "diff"]) {
    if (views[key]) { (views[key].closest(".cell") || views[key]).remove(); delete views[key]; }
  }
  for (const div of views.every || []) div.remove();
  views.every = [];
}

// γ-weighted S_CNN of each condition's first seed, beside S_target in one colour scale
async function drawEveryCondition() {
  const runs = firstSeeds(pickable(latest));
  const lists = await Promise.all(runs.map((r) => getJSON(`/api/runs/${r.id}/matrices`)));
  clearModelViews();
  const host = document.getElementById("study-matrices");
  const shown = runs.map((r, k) => [r, lists[k]]).filter(([, names]) => names.includes("cnn"));
  document.getElementById("sim-run-note").textContent = shown.length ? ""
    : ` no ${(await artifactNames()).model} yet to compute S_CNN from`;
  views.every = shown.map(([r]) => matrixDiv(`S_CNN ${label(r.config)}`, host));
  await Promise.all(shown.map(([r, names], k) => {
    const view = matrixViews(r.id, names, r.result || {}).find((v) => v.name === "cnn" && !v.minus);
    return drawMatrix(views.every[k], { ...view,
      title: `S_CNN (γ), ${label(r.config)} seed ${r.config.seed}, run #${r.id}` });
  }));
}

async function drawModelMatrices() {
  if (document.getElementById("sim-run").value === "all") { await drawEveryCondition(); return; }
  const id = Number(document.getElementById("sim-run").value);
  if (!id) return;
  const run = trains().find((r) => r.id === id);
  const names = await getJSON(`/api/runs/${id}/matrices`);
  const host = document.getElementById("study-matrices");
  document.getElementById("sim-run-note").textContent = names.length ? ""
    : ` run #${id} has no ${(await artifactNames()).model} to compute S_CNN from`;
  const want = matrixViews(id, names, (run && run.result) || {}).filter((v) =>
    v.name === "cnn" || v.minus === "target" || (!names.includes("cnn") && v.name === "cnn-0"));
  clearModelViews();
  const model = want.find((v) => !v.minus);
  const diff = want.find((v) => v.minus);
  const jobs = [];
  if (model) {
    views.model = matrixDiv("S_CNN of the picked model", host);
    jobs.push(drawMatrix(views.model, { ...model, title: `${model.title}, run #${id}` }));
  }
  if (diff) {
    views.diff = matrixDiv("S_CNN minus S_target", host);
    withChoice(diff, views.diff);
    jobs.push(drawMatrix(views.diff, { ...diff, title: `S_CNN − its S_target, run #${id}` }));
  }
  await Promise.all(jobs);
}

function drawTables(data) {
  const host = document.getElementById("study-tables");
  const parts = [];
  const reported = showPaper() && data.paper && data.paper.gamma;
  const paperRows = reported ? reported.rows.map((r) => el("tr", { class: "paper-row" },
    el("td", {}, r.alpha ? `paper: ${data.paper.labels[reported.condition]} α=${r.alpha}` : "paper: None (α=0)"),
    el("td", {}, reported.seeds), ...r.gamma.map((v) => el("td", {}, fmt(v, 2))))) : [];
  const paperCaption = reported ? el("p", { class: "meta" }, `◇ paper rows: ${reported.source}, `
    + `layers ${reported.layers.join(", ")} of ResNet18; ${reported.note}.`) : null;
  if (data.gamma.length) {
    const layers = data.gamma[0].layers;
    const sameLayers = reported && layers.join() === reported.layers.join();
    parts.push(el("h2", {}, "Final γ per tapped layer, mean over seeds (Table 1)"),
      table(["condition", "runs", ...layers.map((l) => `γ${l}`)], [...data.gamma.map((g) => [
        label(g), g.n, ...g.gamma_mean.map((m, i) => `${fmt(m, 2)} ± ${fmt(g.gamma_sem[i], 2)}`)]),
      ...(sameLayers ? paperRows : [])], { id: "gamma-table" }));
    if (reported && !sameLayers) {  // other taps: the paper's table on its own
      parts.push(el("p", { class: "meta" }, `This study taps layers ${layers.join(", ")}; the paper's γ:`),
        table(["condition", "runs", ...reported.layers.map((l) => `γ${l}`)], paperRows, { id: "paper-gamma" }));
    }
    if (paperCaption) parts.push(paperCaption);
    const withR = data.gamma.filter((g) => g.r_taps_mean);
    if (withR.length) {  // which layers look like the target, beside where γ went
      const layers = withR[0].layers;
      parts.push(el("h2", {}, "r(S_k, S_target) of each tapped layer alone, held-out stimuli, mean over seeds"),
        table(["condition", "runs", ...layers.map((l) => `layer ${l}`)], withR.map((g) => [
          label(g), g.r_taps_n, ...g.r_taps_mean.map((m, i) => `${fmt(m, 3)} ± ${fmt(g.r_taps_sem[i], 3)}`)]),
        { id: "tap-r" }));
    }
  }
  if (data.paired_vs_none.length) {
    const pairs = data.paired_vs_none;
    const fewest = Math.min(...pairs.map((p) => p.pairs).filter((n) => n > 0));
    parts.push(el("h2", {}, "Each condition vs None, paired by seed"),
      table(["condition", "measure", "pairs", "mean difference ± SEM", "paired t p", "Wilcoxon p"],
        pairs.map((p) => [`${p.condition} α=${p.alpha}`, p.measure, p.pairs,
          `${signed(p.mean_difference, 4)} ± ${fmt(p.sem_difference, 4)}`, pval(p.t_test_p),
          pval(p.wilcoxon_p)]), { id: "paired-tests" }),
      el("p", { class: "meta" }, "Difference = condition − None. ", BETTER_NOTE(pairs),
        Number.isFinite(fewest) ? wilcoxonFloor(fewest) : ""));
  }
  // runs by condition: each seed's train run and its evaluation; the target of the figure links
  const evalOf = new Map(data.runs.filter((r) => r.kind === "evaluate").map((r) => [r.input_run_id, r]));
  const groups = new Map();
  for (const r of trains()) {
    const key = label(r.config);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const link = (r) => el("a", { href: `/runs/${r.id}`, title: r.status }, `#${r.id}`);
  parts.push(el("h2", {}, "Runs by condition"), table(
    ["condition", "seeds", "train runs", "evaluations", "overlay"],
    [...groups.entries()].map(([key, rs]) => el("tr", { id: condId(rs[0].config), tabindex: "-1" },
      el("td", {}, key), el("td", {}, rs.map((r) => r.config.seed).join(", ")),
      el("td", {}, ...rs.flatMap((r) => [link(r), " "])),
      el("td", {}, ...rs.flatMap((r) => (evalOf.has(r.id) ? [link(evalOf.get(r.id)), " "] : []))),
      el("td", {}, el("a", { href: `/compare?runs=${rs.map((r) => r.id).join(",")}&key=test_acc` },
        "compare")))), { id: "study-conditions" }));
  parts.push(el("h2", {}, `Runs (${data.runs.length})`),
    table(["#", "name", "kind", "status", "reads"], data.runs.map((r) => [
      el("a", { href: `/runs/${r.id}` }, String(r.id)), r.name, r.kind,
      el("span", { class: `badge ${r.status}` }, r.status),
      r.input_run_id ? el("a", { href: `/runs/${r.input_run_id}` }, `#${r.input_run_id}`) : "–"])));
  host.replaceChildren(...parts);
  focusCondition();
}

function focusCondition() {
  const row = location.hash.startsWith("#cond-") && document.getElementById(location.hash.slice(1));
  if (!row) return;
  for (const r of document.querySelectorAll("#study-conditions tr.picked")) r.classList.remove("picked");
  row.classList.add("picked");
  row.scrollIntoView({ block: "center" });
  row.focus({ preventScroll: true });
}

async function draw(first) {
  const [data, labels] = await Promise.all([getJSON(`/api/studies/${studyId}`), fieldLabels()]);
  data.corruptionLabels = labels.corruptions;
  latest = data;
  drawHeader(data.study);
  drawPaperBox(data);
  const jobs = [drawTarget(), drawFigures(data), drawFrontier(), drawCurves()];
  if (fillPicker(data) || first) jobs.push(drawModelMatrices());
  drawTables(data);
  await Promise.all(jobs.map((j) => j.catch(console.error)));
  return data.study.status;
}

withLogin(async () => {
  page().hidden = false;
  skeleton();
  const first = draw(true);
  plotly();  // after the first request is out
  window.addEventListener("hashchange", focusCondition);
  let status = await first;
  while (!FINISHED.includes(status)) {
    await new Promise((r) => setTimeout(r, 5000));
    status = await draw(false);
  }
});
