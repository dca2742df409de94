// Fig. 1 of the paper from a similarity run's figures.json: S_oracle and S_model in one
// shared clustering order and colour scale, fluctuation histograms, data/model scatter.
import { api, el } from "./api.js";

const CONFIG = { responsive: true, displaylogo: false };
const MARGIN = { t: 40, r: 10, b: 40, l: 50 };

const PANELS = [
  ["fig-s_oracle", "S_oracle (Eq. 3)"], ["fig-s_model", "S_model (Eq. 6)"],
  ["fig-fluctuations", "Fig. 1C"], ["fig-scatter", "Fig. 1D"], ["fig-neurons", "neurons"],
];

function panel(id, title) {
  let div = document.getElementById(id);
  if (!div) {
    div = el("div", { id, class: "chart", "data-title": title });
    document.getElementById("similarity-figures").append(div);
  }
  return div;
}

export async function drawSimilarity(runId) {
  const res = await api(`/api/runs/${runId}/artifacts/figures.json`);
  const fig = await res.json();
  const host = document.getElementById("similarity-figures");
  host.replaceChildren();
  host.hidden = false;
  // all panels exist before the first is drawn, so each is sized in its final grid cell
  for (const [id, title] of PANELS) panel(id, title);
  const scan = fig.scans[0];
  const values = [...fig.s_oracle[0].flat(), ...fig.s_model[0].flat()];
  const lim = Math.max(...values.map(Math.abs));
  for (const [key, name] of [["s_oracle", "S_oracle (Eq. 3)"], ["s_model", "S_model (Eq. 6)"]]) {
    Plotly.newPlot(panel(`fig-${key}`, name), [{
      z: fig[key][0], type: "heatmap", colorscale: "RdBu", reversescale: true, zmin: -lim, zmax: lim,
    }], {
      title: { text: `${name} · ${scan} · oracle images, clustered order` }, margin: MARGIN,
      xaxis: { title: { text: "image (clustered order)" } },
      yaxis: { autorange: "reversed" },
    }, CONFIG);
  }
  const centres = (h) => h.edges.slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
  const fl = fig.fluctuations;
  Plotly.newPlot(panel("fig-fluctuations", "Fig. 1C"), [
    { x: centres(fl.scan), y: fl.scan.counts.map((c) => c / Math.max(fl.scan.n, 1)), type: "bar",
      name: `ΔS scan (sd ${fl.scan.sd.toFixed(3)})`, opacity: 0.7 },
    { x: centres(fl.repeat), y: fl.repeat.counts.map((c) => c / Math.max(fl.repeat.n, 1)),
      type: "bar", name: `ΔS repeat (sd ${fl.repeat.sd.toFixed(3)})`, opacity: 0.7 },
  ], { title: { text: "Fluctuations across scans vs repeats (Eq. 4, 5)" }, barmode: "overlay",
       margin: MARGIN, yaxis: { title: { text: "fraction" } }, legend: { orientation: "h" } },
  CONFIG);
  const sc = fig.scatter;
  Plotly.newPlot(panel("fig-scatter", "Fig. 1D"), [
    { x: sc.data.oracle, y: sc.data.data, mode: "markers", type: "scattergl",
      name: `S_data, r = ${sc.data.r.toFixed(2)}`, marker: { size: 3, opacity: 0.3 } },
    { x: sc.model.oracle, y: sc.model.model, mode: "markers", type: "scattergl",
      name: `S_model, r = ${sc.model.r.toFixed(2)}`, marker: { size: 3, opacity: 0.5 } },
  ], { title: { text: "Single trials and model vs S_oracle" }, margin: MARGIN,
       xaxis: { title: { text: "S_oracle" } }, legend: { orientation: "h" } }, CONFIG);
  Plotly.newPlot(panel("fig-neurons", "neurons"), [
    { x: centres(fig.snr), y: fig.snr.counts, type: "bar", name: "SNR weight w_a (Eq. 1)" },
    { x: centres(fig.v), y: fig.v.counts, type: "bar", name: "prediction r v_a", xaxis: "x2",
      yaxis: "y2" },
  ], { title: { text: "Per-neuron reliability" }, grid: { rows: 1, columns: 2, pattern: "independent" },
       margin: MARGIN, legend: { orientation: "h" } }, CONFIG);
}

// Single-value metrics (a similarity run's scores) read better as a table than as charts.
export function drawScores(series) {
  const table = document.getElementById("scores");
  table.replaceChildren(...series.map((s) =>
    el("tr", {}, el("th", {}, s.key), el("td", {}, s.values[0].toPrecision(4)))));
  table.hidden = series.length === 0;
}
