// The frequency part across seeds (ml.evaluate.summary.frequency_table, served as
// data.frequency): per condition, accuracy on the low- and the high-pass images against
// the cut-off, how often a hybrid image is read as its low-frequency image's class, and
// the Fourier map's error per radial band; mean ± SEM bands, one colour per condition.
import { axis, band } from "../figures.js";
import { colour, condId, dash, figure, label } from "./common.js";

const CUTOFF = "cut-off (cycles/image)";

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
  return jobs;
}
