// The frequency part across seeds (ml.evaluate.summary.frequency_table, served as
// data.frequency): per condition, accuracy on the low- and the high-pass images against
// the cut-off, how often a hybrid image is read as its low-frequency image's class, and
// the Fourier map's error per radial band, and per norm where each minimal perturbation's
// energy sits in frequency (the clean images' contrast dashed); mean ± SEM bands, one
// colour per condition.
import { axis, band, positive } from "../figures.js";
import { colour, condId, dash, figure, label } from "./common.js";

const CUTOFF = "cut-off (cycles/image)";
const CLEAN = "#7f7f7f";
// a SEM band's edge below 0 drawn at the band's smallest positive value (null would break
// the filled outline)
const floored = (ys) => {
  const low = Math.min(...ys.filter((y) => y > 0));
  return ys.map((y) => (y > 0 ? y : low));
};
// per norm: one band per condition of the median energy fraction per radial band, and the
// clean images' contrast (the first condition's: every condition attacks the same images)
// (norm names as the server writes them: /api/labels, data.normLabels)
function spectrumJobs(host, rows, seeds, norms) {
  const withBands = rows.filter((r) => r.frequency.spectrum_bands);
  return Object.entries(norms).flatMap(([norm, name]) => {
    const got = withBands.filter((r) => r.frequency.spectrum[norm]);
    if (!got.length) return [];
    const traces = got.flatMap((r) => {
      const s = r.frequency.spectrum[norm];
      return band(r.frequency.spectrum_bands, s.median.mean, s.median.sem, {
        name: `${label(r)} (n=${s.n}, centroid ${s.centroid.mean.toFixed(2)})`, color: colour(r),
        dash: dash(r), customdata: r.frequency.spectrum_bands.map(() => condId(r)) })
        .map((t) => ({ ...t, y: t.fill ? floored(t.y) : positive(t.y) }));
    });
    const clean = got[0].frequency.spectrum.clean;
    if (clean) {
      traces.push({ x: got[0].frequency.spectrum_bands, y: positive(clean.median.mean),
        type: "scatter", mode: "lines", name: "clean images' contrast",
        line: { color: CLEAN, dash: "dash" } });
    }
    return [[figure(host, `fig-frequency-spectrum-${norm}`,
      `Minimal ${name} perturbations' energy per frequency`,
      `median fraction of each perturbation's energy per radial band (centroid: the median band ` +
      `its energy centres on); ${seeds}`),
    traces, { xaxis: axis("radial frequency band (cycles/image)"),
      yaxis: axis("energy fraction (median)", { type: "log" }) }]];
  });
}

// one band per condition of `pick(frequency)` → {x, mean, sem} (null: the row has none)
function bands(rows, pick) {
  return rows.flatMap((r) => {
    const s = pick(r.frequency);
    if (!s) return [];
    return band(s.x, s.mean, s.sem, { name: `${label(r)} (n=${r.frequency.n})`, color: colour(r),
      dash: dash(r), customdata: s.x.map(() => condId(r)) });
  });
}

// [div, traces, layout] jobs for plotJobs, none when no condition ran the part
export function frequencyFigures(host, data) {
  const rows = data.frequency || [];
  if (!rows.length) return [];
  const seeds = "mean ± SEM over seeds";
  const acc = axis("accuracy", { range: [0, 1.02] });
  const jobs = [
    [figure(host, "fig-frequency-lowpass", "Accuracy on low-pass images",
      `only frequencies |f| ≤ cut-off kept; ${seeds}`),
    bands(rows, (f) => ({ x: f.cutoffs, ...f.lowpass })), { xaxis: axis(CUTOFF), yaxis: acc }],
    [figure(host, "fig-frequency-highpass", "Accuracy on high-pass images",
      `only frequencies |f| > cut-off kept, the image's mean added back; ${seeds}`),
    bands(rows, (f) => ({ x: f.cutoffs, ...f.highpass })), { xaxis: axis(CUTOFF), yaxis: acc }],
    [figure(host, "fig-frequency-hybrid", "Hybrid images read as the low-frequency class",
      `low-pass of class a + high-pass of class b: the fraction classified a; ${seeds}`),
    bands(rows, (f) => ({ x: f.cutoffs, ...f.hybrid.low })),
    { xaxis: axis(CUTOFF), yaxis: axis("fraction following the low-pass image", { range: [0, 1.02] }) }]];
  const mapped = rows.filter((r) => r.frequency.fourier_map);
  if (mapped.length) {
    const eps = [...new Set(mapped.map((r) => r.frequency.fourier_map.eps))].join(", ");
    jobs.push([figure(host, "fig-frequency-radial", "Fourier map error per radial band",
      `error under a single-frequency perturbation of L2 norm ε = ${eps}, averaged over each band |f|; ${seeds}`),
    bands(mapped, (f) => ({ x: f.fourier_map.radial.bands, mean: f.fourier_map.radial.mean,
      sem: f.fourier_map.radial.sem })),
    { xaxis: axis("radial frequency band (cycles/image)"), yaxis: axis("error", { range: [0, 1.02] }) }]);
  }
  return jobs.concat(spectrumJobs(host, rows, seeds, data.normLabels || {}));
}
