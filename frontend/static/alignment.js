// An evaluation's alignment part (ml/evaluate/alignment.py, docs/alignment.md) on the run
// page: per tapped layer and the γ-mix (Eq. 10), RSA with mouse V1 (Pearson r with its
// bootstrap CI against S_oracle, S_target and a simulation's S_true, S_oracle's noise
// ceiling beside it), the ridge readout's FEVE (R² where there are no repeats) and linear
// CKA, for the scan picked above the figures or the mean over scans; and each scan's
// headline numbers in a table. result.alignment as the server sent it; only the means over
// scans and their ranges are computed here.
import { el, fmt } from "./api.js";
import { axis, chartIn, plain, plot } from "./figures.js";

const MEAN = "";  // the scan select's value for the mean over scans
const REFERENCES = [
  ["s_oracle", "S_oracle (V1's repeats)", "#1f77b4", "circle"],
  ["s_target", "S_target (the predictor's)", "#ff7f0e", "diamond"],
  ["s_true", "S_true (the simulation's)", "#2ca02c", "square"],
];
const RESPONSES = ["responses", "V1's trial-averaged responses", "#9467bd", "triangle-up"];
const CEILING = "#1f77b4";
const FEVE = "#4c78a8";

// the headline numbers of a scan (result.alignment.scans[name].headline), in the table
const COLUMNS = [
  ["rsa_mix_oracle", "RSA γ-mix · S_oracle"],
  ["rsa_mix_oracle_normalized", "RSA γ-mix · S_oracle ÷ ceiling"],
  ["rsa_mix_target", "RSA γ-mix · S_target"],
  ["rsa_mix_true", "RSA γ-mix · S_true"],
  ["rsa_best_oracle", "RSA best tap · S_oracle"],
  ["cka_mix_oracle", "CKA γ-mix · S_oracle"],
  ["feve_best", "FEVE best tap"],
  ["r2_best", "R² best tap"],
];

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const numbers = (xs) => xs.filter((v) => typeof v === "number" && Number.isFinite(v));

// the models of a scan's RSA (its taps, then the mix) and their axis labels, γ under each
function models(a, scan) {
  const taps = scan.layers || [];
  const gamma = scan.gamma || a.gamma;
  const names = [...taps, ...(scan.rsa && scan.rsa.mix ? ["mix"] : [])];
  const label = (m) => {
    if (m === "mix") return "γ-mix (Eq. 10)";
    const k = taps.indexOf(m);
    return gamma && gamma.length === taps.length ? `${plain(m)}<br>γ = ${fmt(gamma[k], 2)}` : plain(m);
  };
  return { names, labels: names.map(label) };
}

// value(scan, model) of each picked scan: one point with its own interval, or the mean over
// scans with their range (low, high = the smallest and largest scan's value)
function summary(scans, model, value, interval) {
  if (scans.length === 1) {
    const v = value(scans[0], model);
    const ci = interval ? interval(scans[0], model) : null;
    return { y: v ?? null, lo: ci ? ci[0] : null, hi: ci ? ci[1] : null, n: v === null || v === undefined ? 0 : 1 };
  }
  const vs = numbers(scans.map((s) => value(s, model)));
  return { y: mean(vs), lo: vs.length ? Math.min(...vs) : null, hi: vs.length ? Math.max(...vs) : null, n: vs.length };
}

// a point per model with an asymmetric error bar from `lo` to `hi`
function points(rows, x, name, color, symbol, hover) {
  const y = rows.map((r) => r.y);
  const bar = (f) => rows.map((r) => (r.y === null || r.lo === null ? null : f(r)));
  return { type: "scatter", mode: "markers", x, y, name, marker: { color, symbol, size: 10 },
    error_y: { type: "data", symmetric: false, color, thickness: 1.5, width: 4,
      array: bar((r) => r.hi - r.y), arrayminus: bar((r) => r.y - r.lo) },
    customdata: rows.map((r) => [r.lo, r.hi, r.n]), hovertemplate: hover };
}

// a horizontal dashed line across the whole plot, in the legend: a ceiling. It is drawn on
// a hidden x axis over the category axis (ACROSS), from its left edge to its right.
const ceilingLine = (value, name, color) => ({ type: "scatter", mode: "lines", x: [0, 1], xaxis: "x2",
  y: [value, value], name, line: { color, dash: "dash", width: 1.5 },
  hovertemplate: `${name}<extra></extra>` });
const ACROSS = { overlaying: "x", range: [0, 1], visible: false, fixedrange: true };

const pearson = (scan, model, ref) => (((scan.rsa || {})[model] || {})[ref] || {}).pearson;

function rsaFigure(host, a, picked, view) {
  const div = chartIn(host, "fig-alignment-rsa", "RSA with mouse V1 per layer");
  div.style.gridColumn = "1 / -1";  // the part's main figure, across the grid; the two below
  const { names, labels } = models(a, picked[0]);
  const one = picked.length === 1;
  const traces = [];
  for (const [ref, name, color, symbol] of REFERENCES) {
    if (!picked.some((s) => names.some((m) => pearson(s, m, ref)))) continue;
    const rows = names.map((m) => summary(picked, m, (s, mm) => (pearson(s, mm, ref) || {}).r,
      (s, mm) => (pearson(s, mm, ref) || {}).ci));
    traces.push(points(rows, labels, name, color, symbol, one
      ? `%{x}<br>${name}: r = %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>`
      : `%{x}<br>${name}: mean r = %{y:.3f}, scans from %{customdata[0]:.3f} to %{customdata[1]:.3f} (n = %{customdata[2]})<extra></extra>`));
  }
  const ceilings = numbers(picked.map((s) => ((s.ceilings || {}).s_oracle || {}).ceiling));
  const ceiling = ceilings.length === picked.length ? mean(ceilings) : null;
  if (ceiling !== null) {
    traces.push(ceilingLine(ceiling, `S_oracle's noise ceiling ${fmt(ceiling, 3)}`
      + (one ? "" : " (mean over scans)"), CEILING));
  }
  const cfg = picked[0].config || {};
  const bars = !one ? `mean over ${picked.length} scans, bars: the scans' range`
    : cfg.replicates === 0 ? `${picked[0].n_stimuli} stimuli, no bootstrap (replicates 0)`
      : `bars: bootstrap ${Math.round(100 * (cfg.level || 0.95))} % CI over ${picked[0].n_stimuli} stimuli`;
  return plot(div, traces, {
    title: { text: `RSA with mouse V1 per layer${one ? ` (${plain(view)})` : ""}`, subtitle: { text:
      `Pearson r of S_CNN's and each reference's upper triangle; ${bars}`
      + (!traces.length || traces[0].name !== REFERENCES[0][1] ? "; no S_oracle: no stimulus was shown twice"
        : ceiling === null ? "; S_oracle: no noise ceiling" : "") } },
    xaxis: axis("tapped layer (γ: its weight in the mix)", { type: "category" }), xaxis2: ACROSS,
    yaxis: axis("Pearson r"), scattermode: "group", scattergap: 0.5, uirevision: div.id });
}

function predictivityFigure(host, a, picked, view) {
  const div = chartIn(host, "fig-alignment-predictivity", "Linear predictivity (FEVE)");
  const taps = picked[0].layers || Object.keys(picked[0].predictivity || {});
  const one = picked.length === 1;
  const pred = (s, t) => ((s.predictivity || {})[t]) || {};
  // FEVE where every picked scan has repeats, else R² (no ceiling exists)
  const feve = picked.every((s) => taps.some((t) => typeof pred(s, t).feve === "number"));
  const key = feve ? "feve" : "r2";
  const rows = taps.map((t) => summary(picked, t, (s, tt) => pred(s, tt)[key]));
  const x = taps.map(plain);
  const name = feve ? "FEVE (ridge readout, cross-validated)" : "R² (ridge readout, cross-validated)";
  const first = taps.map((t) => pred(picked[0], t));
  const trace = { ...points(rows, x, name, FEVE, "circle", ""), mode: "lines+markers", line: { color: FEVE } };
  trace.customdata = rows.map((r, i) => [r.lo, r.hi, r.n, first[i].fev ?? null, first[i].r2 ?? null,
    first[i].neurons ?? null]);
  trace.hovertemplate = one
    ? `%{x}<br>${feve ? "FEVE" : "R²"} %{y:.3f}${feve ? "<br>FEV %{customdata[3]:.3f}, R² %{customdata[4]:.3f}" : ""}`
      + "<br>%{customdata[5]} neurons<extra></extra>"
    : `%{x}<br>mean ${feve ? "FEVE" : "R²"} %{y:.3f}, scans from %{customdata[0]:.3f} to %{customdata[1]:.3f}<extra></extra>`;
  const traces = [trace];
  if (feve) traces.push(ceilingLine(1, "FEVE's ceiling (1: all explainable variance)", "#444444"));
  const message = picked.map((s) => s.message).find(Boolean) || a.message;
  const threshold = ((picked[0].config || {}).fev_threshold);
  const detail = feve
    ? `fraction of the explainable variance explained, over neurons with FEV > ${fmt(threshold, 2)}`
      + (one ? "" : `; mean over ${picked.length} scans, bars: the scans' range`)
    : `R², not normalized: ${message || "no repeats, no noise ceiling"}`;
  return plot(div, traces, {
    title: { text: feve ? `Linear predictivity (FEVE)${one ? ` (${plain(view)})` : ""}`
      : `Linear predictivity (R², no ceiling)${one ? ` (${plain(view)})` : ""}`, subtitle: { text: detail } },
    xaxis: axis("tapped layer", { type: "category" }), xaxis2: ACROSS,
    yaxis: axis(feve ? "FEVE" : "R²", { rangemode: "tozero" }), uirevision: div.id });
}

function ckaFigure(host, a, picked, view) {
  const div = chartIn(host, "fig-alignment-cka", "Linear CKA per layer");
  const { names, labels } = models(a, picked[0]);
  const one = picked.length === 1;
  const traces = [];
  for (const [ref, name, color, symbol] of [RESPONSES, ...REFERENCES]) {
    const cka = (s, m) => ((s.cka || {})[m] || {})[ref];
    if (!picked.some((s) => names.some((m) => typeof cka(s, m) === "number"))) continue;
    const rows = names.map((m) => summary(picked, m, cka));
    traces.push(points(rows, labels, name, color, symbol, one
      ? `%{x}<br>${name}: CKA %{y:.3f}<extra></extra>`
      : `%{x}<br>${name}: mean CKA %{y:.3f}, scans from %{customdata[0]:.3f} to %{customdata[1]:.3f}<extra></extra>`));
  }
  return plot(div, traces, {
    title: { text: `Linear CKA per layer${one ? ` (${plain(view)})` : ""}`, subtitle: { text:
      "centred kernel alignment of each layer's Gram matrix (the mix's: S_mix) with each reference; ceiling 1"
      + (one ? "" : `; mean over ${picked.length} scans, bars: the scans' range`) } },
    xaxis: axis("tapped layer (γ: its weight in the mix)", { type: "category" }),
    yaxis: axis("linear CKA", { range: [0, 1.02] }), scattermode: "group", scattergap: 0.5,
    uirevision: div.id });
}

// per scan (and their mean) the headline numbers, the stimuli
const NOWRAP = "white-space: nowrap";
function table(a) {
  const scans = Object.entries(a.scans || {});
  const cells = (h) => COLUMNS.map(([k]) => el("td", {}, fmt(h[k], 3)));
  const rows = scans.map(([name, s]) => el("tr", {}, el("th", {}, name),
    el("td", {}, String(s.n_stimuli ?? "–")), ...cells(s.headline || {})));
  if (scans.length > 1 && a.mean) {
    const n = scans.map(([, s]) => s.n_stimuli).filter((v) => typeof v === "number");
    rows.push(el("tr", { class: "mean" }, el("th", { style: NOWRAP }, "mean over scans"),
      el("td", { style: NOWRAP }, n.length ? `${n.reduce((x, y) => x + y, 0)} in all` : "–"), ...cells(a.mean)));
  }
  return el("table", { id: "alignment-table", class: "scores" },
    el("caption", { class: "meta", style: "text-align: left" }, `RSA: Pearson r; γ: ${gammaText(a)} — ${a.gamma_source || "source unknown"}; `
      + "FEVE needs repeats, R² does not; – where a scan lacks the reference or the score."),
    el("thead", {}, el("tr", {}, el("th", {}, "scan"), el("th", {}, "stimuli"),
      ...COLUMNS.map(([, label]) => el("th", {}, label)))),
    el("tbody", {}, ...rows));
}

// the note above the figures: where the references came from, γ and its source, what the
// predictor's own S_target scores
function gammaText(a) {
  const taps = (Object.values(a.scans || {})[0] || {}).layers || [];
  const gamma = a.gamma && a.gamma.length === taps.length
    ? taps.map((t, k) => `${t} ${fmt(a.gamma[k], 2)}`).join(", ") : (a.gamma || []).map((g) => fmt(g, 2)).join(", ");
  return gamma || "none";
}

function note(a) {
  const parts = [`Against ${a.source} on each scan's held-out oracle images (${a.n_scans} scan${a.n_scans === 1 ? "" : "s"}).`,
    `γ: ${gammaText(a)} — ${a.gamma_source || "source unknown"}.`];
  const target = Object.values(a.scans || {}).map((s) => ((s.rsa || {}).s_target || {}).s_oracle)
    .filter(Boolean).map((e) => e.pearson.r);
  if (target.length) {
    parts.push(`The predictor's own S_target scores r = ${fmt(mean(target), 3)} with S_oracle`
      + (target.length > 1 ? " (mean over scans)." : "."));
  }
  if (a.message) parts.push(a.message[0].toUpperCase() + a.message.slice(1) + ".");
  return parts.join(" ");
}

// The figures for the scan picked in #alignment-scan ("" = the mean over scans)
function drawFigures(a) {
  const host = document.getElementById("alignment-charts");
  const value = document.getElementById("alignment-scan").value;
  const all = Object.values(a.scans || {});
  const picked = value === MEAN ? all : [a.scans[value]];
  const view = value === MEAN ? (all.length === 1 ? Object.keys(a.scans)[0] : "") : value;
  const jobs = [rsaFigure(host, a, picked, view)];
  if (picked.some((s) => s.predictivity)) jobs.push(predictivityFigure(host, a, picked, view));
  if (picked.some((s) => s.cka)) jobs.push(ckaFigure(host, a, picked, view));
  return Promise.all(jobs);
}

// result.alignment in #alignment: the note, the scan select, three figures, the table
export async function drawAlignmentPart(result) {
  const a = result.alignment;
  const scans = Object.keys(a.scans || {});
  const section = document.getElementById("alignment");
  section.hidden = false;  // before drawing: a figure drawn hidden keeps plotly's 700 px
  document.getElementById("alignment-note").textContent = note(a);
  const select = document.getElementById("alignment-scan");
  const keep = select.value;
  select.replaceChildren(...(scans.length > 1 ? [el("option", { value: MEAN }, `mean over ${scans.length} scans`)] : []),
    ...scans.map((s) => el("option", { value: s }, s)));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  document.getElementById("alignment-pick").hidden = scans.length < 2;
  document.getElementById("alignment-scores").replaceChildren(table(a));
  if (!scans.length) return;
  select.onchange = () => drawFigures(a).catch(console.error);
  await drawFigures(a);
}
