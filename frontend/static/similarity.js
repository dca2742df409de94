// Fig. 1 of the paper from a similarity run's figures.json: S_oracle and S_model in one
// shared clustering order and colour scale, fluctuation histograms, data/model scatter.
import { api, artifactNames, el } from "./api.js";
import { axis, chartDiv, chartIn, legendOnce, plot, plotly } from "./figures.js";
import { conditionColour, dashOf } from "./palette.js";

const MARGIN = { t: 40, r: 10, b: 40, l: 50 };
// a matrix is square on the screen whatever its cell's shape: a row's unit is a column's
// (the plot shrinks to fit, top row first)
const SQUARE = { xaxis: { constrain: "domain" },
  yaxis: { autorange: "reversed", scaleanchor: "x", scaleratio: 1, constrain: "domain" } };

const PANELS = [
  ["fig-s_oracle", "S_oracle (Eq. 3)"], ["fig-s_model", "S_model (Eq. 6)"],
  ["fig-fluctuations", "Fig. 1C"], ["fig-scatter", "Fig. 1D"], ["fig-neurons", "neurons"],
];

const panel = (id, title) => chartIn(document.getElementById("similarity-figures"), id, title);

export async function drawSimilarity(runId) {
  const host = document.getElementById("similarity-figures");
  host.hidden = false;
  // all panels exist before the first is drawn, so each is sized in its final grid cell,
  // and before anything is awaited, so Fig. 1 comes first on the page
  for (const [id, title] of PANELS) panel(id, title);
  let fig;
  try {
    const { figures } = await artifactNames();
    fig = await (await api(`/api/runs/${runId}/artifacts/${figures}`)).json();
  } catch (err) {  // an older run without its figures: no empty panels
    for (const [id] of PANELS) document.getElementById(id).remove();
    throw err;
  }
  // Fig. 1A/B: every scan's S_oracle, then every scan's S_model, one colour scale for all
  const values = [...fig.s_oracle.flat(2), ...fig.s_model.flat(2)];
  const lim = Math.max(...values.map(Math.abs));
  for (const [key, name] of [["s_oracle", "S_oracle (Eq. 3)"], ["s_model", "S_model (Eq. 6)"]]) {
    let prev = null;
    fig.scans.forEach((scan, k) => {
      const id = k === 0 ? `fig-${key}` : `fig-${key}-${k + 1}`;
      const div = k === 0 ? panel(id, name) : document.getElementById(id)
        || chartDiv(`${name} ${scan}`, id);
      if (prev && !div.isConnected) prev.after(div);
      prev = div;
      div.classList.add("matrix");
      plot(div, [{ z: fig[key][k], type: "heatmap", colorscale: "RdBu", reversescale: true,
        zmin: -lim, zmax: lim, name: `${name} ${scan}` }], {
        title: { text: `${name}, ${scan}`, subtitle: { text: "oracle images, clustered order" } },
        margin: MARGIN,
        xaxis: axis("image (clustered order)", SQUARE.xaxis),
        yaxis: SQUARE.yaxis,
      });
    });
  }
  const centres = (h) => h.edges.slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
  const fl = fig.fluctuations;
  plot(panel("fig-fluctuations", "Fig. 1C"), [
    { x: centres(fl.scan), y: fl.scan.counts.map((c) => c / Math.max(fl.scan.n, 1)), type: "bar",
      name: `ΔS scan (sd ${fl.scan.sd.toFixed(3)})`, opacity: 0.7 },
    { x: centres(fl.repeat), y: fl.repeat.counts.map((c) => c / Math.max(fl.repeat.n, 1)),
      type: "bar", name: `ΔS repeat (sd ${fl.repeat.sd.toFixed(3)})`, opacity: 0.7 },
  ], { title: { text: "Scan vs repeat fluctuations (Fig. 1C)", subtitle: { text: "ΔS across scans and across repeats (Eq. 4, 5)" } },
       barmode: "overlay", margin: MARGIN, yaxis: axis("fraction") });
  const sc = fig.scatter;
  // 95 % bootstrap intervals over stimuli (and neurons) and S_oracle's noise ceiling,
  // when the run measured them (ml/neural/uncertainty.py)
  const bars = fig.error_bars || {};
  const boot = bars.bootstrap;
  const ci = (key) => (boot ? ` [${boot[`${key}_ci_stimuli`].map((v) => v.toFixed(2)).join(", ")}]` : "");
  const ceiling = bars.noise_ceiling && bars.noise_ceiling.ceiling;
  const sub = [boot ? `[ ]: ${Math.round(100 * boot.level)} % bootstrap interval over stimuli (${boot.replicates} replicates); `
    + `over neurons: S_data [${boot.r_data_oracle_ci_neurons.map((v) => v.toFixed(2)).join(", ")}], `
    + `S_model [${boot.r_model_oracle_ci_neurons.map((v) => v.toFixed(2)).join(", ")}]` : "",
  ceiling !== undefined ? `noise ceiling of S_oracle ${ceiling.toFixed(2)} (split halves, Spearman–Brown)` : ""]
    .filter(Boolean).join("; ");
  plot(panel("fig-scatter", "Fig. 1D"), [
    { x: sc.data.oracle, y: sc.data.data, mode: "markers", type: "scatter",
      name: `S_data, r = ${sc.data.r.toFixed(2)}${ci("r_data_oracle")}`, marker: { size: 3, opacity: 0.3 } },
    { x: sc.model.oracle, y: sc.model.model, mode: "markers", type: "scatter",
      name: `S_model, r = ${sc.model.r.toFixed(2)}${ci("r_model_oracle")}`, marker: { size: 3, opacity: 0.5 } },
  ], { title: { text: "Trials and model vs S_oracle (Fig. 1D)", subtitle: { text: sub } }, margin: MARGIN,
       xaxis: axis("S_oracle") });
  plot(panel("fig-neurons", "neurons"), [
    { x: centres(fig.snr), y: fig.snr.counts, type: "bar", name: "SNR weight w_a (Eq. 1)" },
    { x: centres(fig.v), y: fig.v.counts, type: "bar", name: "prediction r v_a", xaxis: "x2",
      yaxis: "y2" },
  ], { title: { text: "Per-neuron reliability" }, grid: { rows: 1, columns: 2, pattern: "independent" },
       margin: MARGIN });
}

// a count as a count (n_scans 2, not 2.000), anything else to four significant digits
export const number = (v) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));

// Single-value metrics (a similarity run's scores) read better as a table than as charts.
export function drawScores(series, norms = {}) {
  const table = document.getElementById("scores");
  // median_linf → "median L∞ (median_linf)": the field's name, then the stored key
  const name = (key) => { const m = key.match(/^median_(\w+)$/);
    return m && norms[m[1]] ? `median ${norms[m[1]]} (${key})` : key; };
  // a score's bootstrap intervals (<key>_ci_<over>_lo/hi) go in its own row
  const value = Object.fromEntries(series.map((s) => [s.key, s.values[0]]));
  const interval = (key, over) => (value[`${key}_ci_${over}_lo`] === undefined ? null
    : `[${value[`${key}_ci_${over}_lo`].toFixed(3)}, ${value[`${key}_ci_${over}_hi`].toFixed(3)}] over ${over}`);
  const shown = series.filter((s) => !/_ci_(stimuli|neurons)_(lo|hi)$/.test(s.key));
  table.replaceChildren(...shown.map((s) => {
    const cis = ["stimuli", "neurons"].map((o) => interval(s.key, o)).filter(Boolean);
    return el("tr", {}, el("th", {}, name(s.key)), el("td", {}, number(s.values[0])),
      ...(cis.length ? [el("td", { class: "meta" }, `95 % CI ${cis.join(", ")}`)] : []));
  }));
  table.hidden = series.length === 0;
}

// Similarity matrices (e.g. 5,000×5,000) without sending N² numbers: an exact block-mean
// overview in the run's one shared order, replaced by exact sub-blocks when zoomed in.
// S maps share one colour scale (−1…1); a difference map is symmetric about 0.
const MAX_BLOCK = 600;

// A 202 means a worker is computing the view (a run's S_CNN overview it lacked): call
// pending(detail) and ask again after Retry-After, while keepAsking() holds.
async function matrix(runId, name, query, pending = () => {}, keepAsking = () => true) {
  for (;;) {
    const res = await api(`/api/runs/${runId}/matrices/${name}?${query}`);
    const body = await res.json();
    if (res.status !== 202) return body;
    if (!keepAsking()) return null;
    pending(body.detail);
    await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("Retry-After") || 2)));
  }
}

// a figure title's second, smaller line (the view's name stays on the first)
const sub = (text) => `<br><span style="font-size:11px">${text}</span>`;

function centresOf(edges) {
  return edges.slice(0, -1).map((e, i) => (e + edges[i + 1] - 1) / 2);
}

export function matrixDiv(title, host) {
  const div = chartDiv(title, `fig-target-${title.replace(/[^A-Za-z0-9]+/g, "_")}`);
  host.append(div);
  return div;
}

// Draws view {runId, name, title, minus} into div (again when the view changes: the
// div keeps one zoom handler, which reads div.view).
export async function drawMatrix(div, view) {
  div.view = view;
  div.classList.add("matrix");
  const query = () => (div.view.minus ? `minus=${div.view.minus}` : "");
  const overview = async () => {
    const v = div.view;
    const waiting = () => plot(div, [], { title: { text: `${v.title}${sub("a worker is computing this view; it is drawn when ready")}` },
      margin: { ...MARGIN, t: 62 }, xaxis: { visible: false }, yaxis: { visible: false } });
    const m = await matrix(v.runId, v.name, `size=200&${query()}`, waiting,
      () => div.view === v && div.isConnected);
    if (!m || div.view !== v) return;  // the view changed while this was in flight
    const c = centresOf(m.edges);
    const lim = v.minus ? Math.max(...m.z.flat().map(Math.abs), 1e-6) : 1;
    await plot(div, [{ z: m.z, x: c, y: c, type: "heatmap", colorscale: "RdBu", name: v.title,
      reversescale: true, zmin: -lim, zmax: lim }], {
      title: { text: `${v.title}${sub(`${m.n} stimuli · ${m.exact ? "exact" : "block means; zoom in for exact cells"}${v.note ? ` · ${v.note}` : ""}`)}` },
      margin: { ...MARGIN, t: 62 }, xaxis: axis("stimulus (shared order)", SQUARE.xaxis),
      yaxis: SQUARE.yaxis });
    div.dataset.exact = m.exact ? "1" : "0";
    div.dataset.n = m.n;
    if (!div.zoomable) {
      div.zoomable = true;
      div.on("plotly_relayout", (ev) => zoom(div, ev, overview, query).catch(console.error));
    }
  };
  await overview();
}

async function zoom(div, ev, overview, query) {
  if (ev["xaxis.autorange"] || ev["yaxis.autorange"]) { await overview(); return; }
  // a box zoom sends range[0]/[1]; a programmatic relayout may send the whole range
  const [x0, x1] = ev["xaxis.range"] || [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
  const [y0, y1] = ev["yaxis.range"] || [ev["yaxis.range[0]"], ev["yaxis.range[1]"]];
  if (x0 === undefined || y0 === undefined) return;
  const v = div.view;
  const n = Number(div.dataset.n);
  const c0 = Math.max(0, Math.floor(x0)); const c1 = Math.min(n, Math.ceil(x1) + 1);
  const r0 = Math.max(0, Math.floor(Math.min(y0, y1))); const r1 = Math.min(n, Math.ceil(Math.max(y0, y1)) + 1);
  if (c1 - c0 > MAX_BLOCK || r1 - r0 > MAX_BLOCK) return;  // still an overview
  const m = await matrix(v.runId, v.name, `rows=${r0}:${r1}&cols=${c0}:${c1}&${query()}`);
  const Plotly = await plotly();
  const xs = Array.from({ length: c1 - c0 }, (_, i) => c0 + i);
  const ys = Array.from({ length: r1 - r0 }, (_, i) => r0 + i);
  await Plotly.restyle(div, { z: [m.z], x: [xs], y: [ys] });
  div.dataset.exact = "1";
  Plotly.relayout(div, { "title.subtitle.text": `exact, rows ${r0}–${r1 - 1} × cols ${c0}–${c1 - 1}` });
}

// The views of a run's matrices: a similarity run's targets and S_model − S_data; a train
// run's S_target, Eq. 10's γ-weighted S_CNN, S_CNN − S_target (pick which S_CNN) and S_CNN
// of each tapped layer. result is the train run's: its layers name the taps (1, 5, 9, 13,
// 17 for ResNet18) and r_similarity, r(S_CNN, S_target) on held-out stimuli, is noted
// under the γ-weighted S_CNN's title.
export function matrixViews(runId, names, result = {}) {
  const layers = result.layers || [];
  const tap = (n) => { const k = Number(n.slice(4)); return layers[k] !== undefined ? `layer ${layers[k]}` : `tap ${k}`; };
  const held = (what, r) => (typeof r === "number"
    ? { note: `${what} = ${r.toFixed(3)} on held-out stimuli` } : {});
  const views = names.map((n) => ({ runId, name: n,
    ...(n === "cnn" ? held("r(S_CNN, S_target)", result.r_similarity)
      : n.startsWith("cnn-") ? held("r(S_k, S_target)", (result.r_similarity_per_tap || [])[Number(n.slice(4))])
        : {}),
    title: n === "target" ? "S_target (what it was trained toward)"
      : n === "cnn" ? "S_CNN, γ-weighted (Eq. 10)"
        : n.startsWith("cnn-") ? `S_CNN, ${tap(n)}` : `S_target ${n}` }));
  if (names.includes("neural-model") && names.includes("neural-data")) {
    views.push({ runId, name: "neural-model", title: "S_model − S_data", minus: "neural-data" });
  }
  const cnn = names.filter((n) => n.startsWith("cnn"));
  if (names.includes("target") && cnn.length) {  // after S_target and S_CNN (γ), before taps
    const diff = { runId, name: cnn[0], title: "S_CNN − S_target", minus: "target",
      choices: cnn.map((n) => [n, n === "cnn" ? "γ-weighted S_CNN" : `S_CNN, ${tap(n)}`]) };
    views.splice(names.includes("cnn") ? 2 : 1, 0, diff);
  }
  return views;
}

export async function drawTargets(runId, result, names) {
  if (!names.length) return;
  const host = document.getElementById("similarity-figures");
  host.hidden = false;
  const views = matrixViews(runId, names, result);
  const divs = views.map((v) => matrixDiv(v.title, host));
  views.forEach((v, k) => { if (v.choices) withChoice(v, divs[k]); });
  await Promise.all(views.map((v, k) => drawMatrix(divs[k], v)));
}

// The difference map's grid cell: which S_CNN to subtract S_target from, above the map.
export function withChoice(view, div) {
  const cell = el("div", { class: "cell" });
  div.replaceWith(cell);
  cell.append(choiceOf(view, div), div);
  return cell;
}

function choiceOf(view, div) {
  const id = `${div.id}-pick`;
  const select = el("select", { id, "aria-label": `${view.title}: which S_CNN` },
    ...view.choices.map(([value, text]) => el("option", { value }, text)));
  select.value = view.name;
  select.onchange = () => drawMatrix(div, { ...div.view, name: select.value });
  return el("label", { class: "pick", for: id }, `${view.title}: `, select);
}

// Fig. 2 of the paper: the least and the most similar pairs of distinct stimuli in a
// target (S_model by default) over all its stimuli, with the images themselves.
export async function drawPairs(runId, names, name = "neural-model") {
  if (!names.includes(name)) return;
  const data = await (await api(`/api/runs/${runId}/matrices/${name}/pairs?k=3`)).json();
  const row = (title, pairs) => el("div", { class: "pair-row" }, el("h3", {}, title),
    ...pairs.map((p) => el("div", { class: "pair" },
      el("div", {}, canvasOf(p.images[0], `image ${p.image_ids[0]}`),
        canvasOf(p.images[1], `image ${p.image_ids[1]}`)),
      el("p", { class: "meta" }, `S = ${p.s.toFixed(3)} · images ${p.image_ids.join(" & ")}`))));
  const fig = el("figure", { class: "pairs wide", id: "fig2" },
    el("figcaption", {}, `Fig. 2: least and most similar image pairs, S_target ${name} over all `
      + `${data.n} stimuli (distinct images per pair)`),
    row("least similar", data.low), row("most similar", data.high));
  const host = document.getElementById("similarity-figures");
  host.hidden = false;
  host.append(fig);
}

// Each stored target's eigenspectrum (…/matrices/{name}/spectrum): S's leading eigenvalues
// as fractions of variance against their rank, both on log axes, one line per target in
// its condition's colour; the legend gives each one's participation ratio and how many
// components hold 90 % of the variance. A high ratio is a target that asks the network
// for many independent directions (the Random control); S_model's is low.
export async function drawSpectra(runId, names) {
  if (!names.length) return;
  const host = document.getElementById("similarity-figures");
  host.hidden = false;
  const div = chartIn(host, "fig-spectrum", "Eigenspectrum of each target");
  div.style.height = "440px";  // the plot keeps its height under the caption and legend
  // S_model first and widest: the lines drawn over it (shuffle's is the same) leave its edge
  const ordered = [...names].sort((a, b) => (b === "neural-model") - (a === "neural-model"));
  const spectra = await Promise.all(ordered.map((name) => api(`/api/runs/${runId}/matrices/${name}/spectrum`)
    .then((res) => res.json()).then((sp) => [name, sp]).catch(() => [name, null])));
  const entry = legendOnce();
  // a dash per line: shuffle's spectrum is S_model's (the same S, stimuli permuted)
  const traces = spectra.filter(([, sp]) => sp && sp.fractions.length).map(([name, sp], k) => ({
    x: sp.fractions.map((_, i) => i + 1), y: sp.fractions, type: "scatter",
    mode: sp.fractions.length < 60 ? "lines+markers" : "lines",
    line: { color: conditionColour(name), dash: dashOf(k), width: name === "neural-model" ? 5 : 2 },
    marker: { size: name === "neural-model" ? 10 : 6 },
    name: `${name}: PR ${sp.participation_ratio.toFixed(1)}, 90 % in ${sp.components_90} of ${sp.n}`,
    hovertemplate: `${name}<br>component %{x}: %{y:.3~g} of the variance<extra></extra>`,
    ...entry(name) }));
  if (!traces.length) { div.remove(); return; }
  const n = Math.max(...spectra.filter(([, sp]) => sp).map(([, sp]) => sp.n));
  await plot(div, traces, {
    title: { text: "Eigenspectrum of each target", subtitle: { text: `S's eigenvalues over ${n} `
      + "stimuli as fractions of variance. PR, the participation ratio (Σλ)²/Σλ², counts the "
      + "independent directions a target asks the network for: high for a random target, "
      + `low for S_model${names.includes("shuffle") ? "; shuffle permutes S_model's stimuli, "
        + "so its spectrum is S_model's" : ""}` } },
    xaxis: axis("component rank", { type: "log" }),
    yaxis: axis("fraction of variance", { type: "log" }),
  });
}

function canvasOf(pixels, label) {
  const h = pixels.length; const w = pixels[0].length;
  const canvas = el("canvas", { width: w, height: h, role: "img", "aria-label": label,
    style: `width:${w * 2}px;height:${h * 2}px` });
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  pixels.flat().forEach((v, k) => { img.data.set([v, v, v, 255], 4 * k); });
  ctx.putImageData(img, 0, 0);
  return canvas;
}
