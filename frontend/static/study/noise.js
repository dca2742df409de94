// Accuracy under noise and corruptions: Fig. 4 (accuracy against σ, mean ± SEM bands per
// condition), Fig. 6 (robustness against α, None at α = 0), the mean corruption error
// against None and one corruption × severity heatmap per condition.
import { axis, band } from "../figures.js";
import { conditionColour } from "../palette.js";
import { alphaOf, bar, colour, condId, condName, dash, figure, label, paperTrace,
  showPaper } from "./common.js";

// Fig. 4: one band per condition and α; the paper's values (◇) at our highest σ
export function noiseFigure(host, data) {
  const noiseRows = data.robustness.filter((r) => r.noise);
  if (!noiseRows.length) return [];
  const div = figure(host, "fig4", "Accuracy under noise (Fig. 4)",
    "Gaussian noise of standard deviation σ; mean ± SEM over seeds", true);
  const traces = noiseRows.flatMap((r) => band(r.noise.sigmas, r.noise.mean, r.noise.sem, {
    name: `${label(r)} (n=${r.n})`, color: colour(r), dash: dash(r),
    customdata: r.noise.sigmas.map(() => condId(r)) }));
  const reported = data.paper && data.paper.noise_highest;
  if (showPaper() && reported) {  // at our highest σ: the paper's σ is in its figure only
    const top = Math.max(...noiseRows.flatMap((r) => r.noise.sigmas));
    for (const [target, value] of Object.entries(reported.values)) {
      traces.push(paperTrace(`paper: ${data.paper.labels[target] || target}`, [top], [value], [target]));
    }
  }
  return [[div, traces, { xaxis: axis("noise σ"), yaxis: axis("accuracy") }]];
}

// Fig. 6 as in the paper: robustness against α, every condition starting from None at α = 0
export function alphaFigure(host, data) {
  const rows = data.robustness;
  const alphas = new Set(rows.filter((r) => r.target !== "none").map((r) => r.alpha));
  if (alphas.size <= 1) return [];
  const div = figure(host, "fig6", "Robustness vs α (Fig. 6)",
    "mean accuracy over σ > 0, mean ± SEM over seeds; α = 0 is None");
  // the server's mean over σ > 0 (ml/evaluate/measures.py), with its SEM over seeds
  const none = rows.find((r) => r.target === "none" && r.measures.noise_accuracy);
  const point = (r) => ({ x: String(alphaOf(r)), m: r.measures.noise_accuracy, id: condId(r) });
  const trace = (c, pts) => ({ x: pts.map((p) => p.x), y: pts.map((p) => p.m.mean),
    error_y: { type: "data", array: pts.map((p) => p.m.sem), visible: true },
    name: condName(c), type: "scatter", mode: "lines+markers",
    line: { color: conditionColour(c) }, marker: { color: conditionColour(c), size: 8 },
    customdata: pts.map((p) => p.id) });
  const cond = [...new Set(rows.map((r) => r.target))];
  const traces = cond.filter((c) => c !== "none").map((c) => trace(c, [
    ...(none ? [point(none)] : []),  // every condition starts from None (α = 0)
    ...rows.filter((r) => r.target === c && r.measures.noise_accuracy)
      .sort((a, b) => a.alpha - b.alpha).map(point)]));
  if (none) traces.unshift({ ...trace("none", [point(none)]), mode: "markers",
    marker: { color: conditionColour("none"), size: 10, symbol: "square" } });
  const ticks = [0, ...[...alphas].sort((a, b) => a - b)].map(String);  // evenly spaced
  return [[div, traces, { xaxis: axis("α (0: None)", { type: "category",
    categoryorder: "array", categoryarray: ticks }),
  yaxis: axis("mean accuracy over σ > 0"), showlegend: true }]];
}

// CE/mCE against None (Hendrycks & Dietterich's, None as the baseline), then one
// corruption heatmap per condition (accuracy per corruption × severity); mean ± SEM over seeds
export function corruptionFigures(host, data) {
  const rows = data.robustness;
  const names = data.corruptionLabels || {};
  const jobs = [];
  const withMce = rows.filter((r) => r.mce);
  if (withMce.length) {
    const div = figure(host, "fig-mce", "Mean corruption error (mCE) vs None",
      "Σ error over severities relative to None of the same seed, mean over CIFAR-10-C's 15 corruptions measured; mean ± SEM over seeds; < 1 is more robust");
    jobs.push([div, [{ type: "bar", x: withMce.map(label), y: withMce.map((r) => r.mce.mean),
      error_y: { type: "data", array: withMce.map((r) => bar(r.mce)), visible: true },
      text: withMce.map((r) => `${r.mce.n} seed${r.mce.n === 1 ? "" : "s"}`), textposition: "none",
      marker: { color: withMce.map(colour) }, name: "mCE", customdata: withMce.map(condId) }],
    { xaxis: { tickangle: -40 }, yaxis: axis("mCE (None = 1)"),
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
    { xaxis: axis("severity", { type: "category" }),
      yaxis: { autorange: "reversed", automargin: true, type: "category" } }]);
  }
  return jobs;
}
