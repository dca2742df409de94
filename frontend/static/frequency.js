// An evaluation's frequency part (ml/evaluate/frequency.py, docs/robustness.md) on the run
// page: accuracy on the low- and high-pass images per cut-off, the Fourier sensitivity
// map, the hybrid images' outcomes and the minimal perturbations' spectrum. The figures
// draw result.frequency as the server sent it; nothing is recomputed here.
import { el, fmt } from "./api.js";
import { axis, chartIn, plot, positive } from "./figures.js";
import { seriesColours } from "./palette.js";

const CUTOFF = "cut-off (cycles/image)";
const BAND = "radial frequency band (cycles/image)";
// low-pass, high-pass; the hybrid's low-frequency class, its high's, another
const LOW = "#1f77b4";
const HIGH = "#d62728";
const OTHER = "#9a9a9a";
const CLEAN = "#444444";

// the noise part's accuracy at σ = 0: the clean accuracy on the whole test split
function cleanAccuracy(result) {
  const noise = result.noise;
  if (!noise || !noise.sigmas) return null;
  const k = noise.sigmas.indexOf(0);
  return k < 0 ? null : noise.accuracy[k];
}

// a horizontal dashed line across the plot: the clean accuracy, in the legend
const cleanLine = (x, value, name) => ({ x: [Math.min(...x), Math.max(...x)], y: [value, value],
  type: "scatter", mode: "lines", name, line: { color: CLEAN, dash: "dash", width: 1.5 },
  hovertemplate: `${name}: %{y:.3f}<extra></extra>` });

function filterFigure(host, f, clean) {
  const div = chartIn(host, "fig-frequency-filters", "Accuracy on filtered images");
  const traces = [
    { x: f.cutoffs, y: f.lowpass, name: "low-pass (|f| ≤ cut-off)", type: "scatter",
      mode: "lines+markers", line: { color: LOW } },
    { x: f.cutoffs, y: f.highpass, name: "high-pass (|f| > cut-off, mean kept)", type: "scatter",
      mode: "lines+markers", line: { color: HIGH } }];
  if (clean !== null) traces.push(cleanLine(f.cutoffs, clean, "clean (noise part, σ = 0)"));
  return plot(div, traces, {
    title: { text: "Accuracy on filtered images", subtitle: { text:
      `ideal radial filters, ${f.n} test images (seed ${f.seed}), clipped to [0, 1]` } },
    xaxis: axis(CUTOFF), yaxis: axis("accuracy", { range: [0, 1.02] }), uirevision: div.id });
}

// the error per frequency (rows f_y, columns f_x, DC at the centre), square cells
function mapFigure(host, m) {
  const div = chartIn(host, "fig-frequency-map", "Fourier sensitivity map");
  return plot(div, [{ type: "heatmap", z: m.error, x: m.fx, y: m.fy, zmin: 0, zmax: 1,
    colorscale: "Viridis", colorbar: { title: { text: "error" } }, name: "error",
    hovertemplate: "f_x %{x}, f_y %{y}: error %{z:.3f}<extra></extra>" }], {
    title: { text: "Fourier sensitivity map (Yin et al. 2019)", subtitle: { text:
      `error under x + r·ε·U(f_x, f_y), ε = ${m.eps} (L2), ${m.n} images; `
      + `clean error ${fmt(m.clean_error, 3)}, mean ${fmt(m.mean_error, 3)}` } },
    xaxis: axis("f_x (cycles/image)", { constrain: "domain" }),
    yaxis: axis("f_y (cycles/image)", { scaleanchor: "x", scaleratio: 1, constrain: "domain" }),
    uirevision: div.id });
}

function hybridFigure(host, h) {
  const div = chartIn(host, "fig-frequency-hybrid", "Hybrid images");
  const x = h.cutoffs.map(String);
  const bar = (y, name, color) => ({ type: "bar", x, y, name, marker: { color },
    hovertemplate: `cut-off %{x}: %{y:.3f}<extra>${name}</extra>` });
  return plot(div, [bar(h.low, "low-frequency image's class", LOW),
    bar(h.high, "high-frequency image's class", HIGH), bar(h.other, "another class", OTHER)], {
    title: { text: "Hybrid images: which image the model follows", subtitle: { text:
      `low-pass of an image of class a + high-pass of one of class b, ${h.n} pairs per cut-off` } },
    barmode: "stack", xaxis: axis(CUTOFF, { type: "category" }),
    yaxis: axis("fraction of hybrids", { range: [0, 1] }), uirevision: div.id });
}

// median energy fraction per band, per norm, and the clean images' contrast dashed
function spectrumFigure(host, s, norms) {
  const div = chartIn(host, "fig-frequency-spectrum", "Perturbation spectrum");
  const colour = seriesColours();
  const traces = Object.entries(s.norms).filter(([, r]) => r).map(([norm, r]) => ({
    x: s.bands, y: positive(r.median), name: `${norms[norm] || norm} (n=${r.n}, centroid ${fmt(r.centroid, 2)})`,
    type: "scatter", mode: "lines+markers", line: { color: colour(norm) } }));
  traces.push({ x: s.bands, y: positive(s.clean.median), type: "scatter", mode: "lines",
    name: `clean contrast (n=${s.clean.n}, centroid ${fmt(s.clean.centroid, 2)})`,
    line: { color: CLEAN, dash: "dash" } });
  return plot(div, traces, {
    title: { text: "Minimal perturbations' energy per frequency", subtitle: { text:
      "median fraction of each perturbation's energy per radial band" } },
    xaxis: axis(BAND), yaxis: axis("energy fraction (median)", { type: "log" }), uirevision: div.id });
}

// The four figures of result.frequency in #frequency; a skipped spectrum says why
export async function drawFrequency(result, norms) {
  const f = result.frequency;
  const section = document.getElementById("frequency");
  section.hidden = false;  // before drawing: a figure drawn hidden keeps plotly's 700 px
  const host = document.getElementById("frequency-charts");
  const note = document.getElementById("frequency-note");
  const jobs = [filterFigure(host, f, cleanAccuracy(result)), mapFigure(host, f.fourier_map),
    hybridFigure(host, f.hybrid)];
  if (f.spectrum) {
    jobs.push(spectrumFigure(host, f.spectrum, norms));
    note.replaceChildren();
  } else {
    note.replaceChildren(el("span", {}, `Perturbation spectrum: ${f.spectrum_skipped || "not measured"}.`));
  }
  await Promise.all(jobs);
}
