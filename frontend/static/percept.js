// An evaluation's percept part (ml/evaluate/percept.py, docs/alignment.md "The predictor in
// the loop") on the run page: per norm, how far the minimal adversarial images move each
// readout — the similarity run's predicted V1 response (the mean over scans, each scan),
// each tapped layer, the logits — beside the permuted control of the same norms, in units
// of the typical distance between two clean images. result.percept as the server sent it;
// nothing is recomputed here.
import { el, fmt } from "./api.js";
import { axis, chartIn, plain, plot } from "./figures.js";

const ADV = "#d62728";
const CONTROL = "#7f7f7f";

// the x axis's label of a readout
function label(r, nScans) {
  if (r.kind === "v1") return `V1 (predicted,<br>mean of ${nScans} scans)`;
  if (r.kind === "scan") return `V1 ${plain(r.name.slice(3))}`;
  return plain(r.name);
}

// a median with its CI as a point and an asymmetric error bar; a log axis has no 0
function trace(readouts, key, x, name, color, symbol) {
  const y = readouts.map((r) => (r[key].median > 0 ? r[key].median : null));
  return { type: "scatter", mode: "markers", x, y, name, marker: { color, symbol, size: 9 },
    error_y: { type: "data", symmetric: false, color, thickness: 1.5, width: 4,
      array: readouts.map((r, i) => (y[i] === null || r[key].ci_high === null ? null : r[key].ci_high - r[key].median)),
      arrayminus: readouts.map((r, i) => (y[i] === null || r[key].ci_low === null ? null : r[key].median - r[key].ci_low)) },
    customdata: readouts.map((r) => [r[key].ci_low, r[key].ci_high, r.n, r.ratio.median]),
    hovertemplate: `%{x}<br>${name}: D = %{y:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]`
      + "<br>adv/control %{customdata[3]:.3g}, n = %{customdata[2]}<extra></extra>" };
}

const ci = (s) => (s.ci_low === null ? "" : ` [${fmt(s.ci_low, 3)}, ${fmt(s.ci_high, 3)}]`);

// the line under a norm's figure: the specificity and the control's clipping
function sentence(row, normLabel) {
  const spec = row.specificity;
  const parts = [spec && spec.median !== null
    ? `Specificity at ${spec.layer}: ${fmt(spec.median, 3)}${ci(spec)} (n = ${spec.n}; median over samples of `
      + "(model adv/control) ÷ (predicted V1 adv/control); above 1 the adversarial direction is more special to the model than to predicted V1)"
    : "Specificity: not measured (no finite ratio)"];
  parts.push(row.clip_ratio === null ? "the control's clipping: unknown"
    : `the control's realized L2 after clipping to [0, 1]: median ${fmt(row.clip_ratio, 3)} of the adversarial's`
      + ` (least ${fmt(row.clip_ratio_min, 3)})`);
  return el("p", { class: "meta" }, `${normLabel}: ${parts.join("; ")}.`);
}

function normFigure(host, p, norm, row, normLabel) {
  const div = chartIn(host, `fig-percept-${norm}`, `Percept ${normLabel}`);
  const nScans = p.scans.length;
  const x = row.readouts.map((r) => label(r, nScans));
  return plot(div, [trace(row.readouts, "adv", x, `minimal ${normLabel} adversarial`, ADV, "circle"),
    trace(row.readouts, "rand", x, "permuted control (same norms)", CONTROL, "diamond")], {
    title: { text: `How far minimal ${normLabel} adversarials move each readout`, subtitle: { text:
      `median D with bootstrap 95 % CI over ${row.n} samples; D = 1: two different clean images` } },
    xaxis: axis("readout", { type: "category" }),
    // a log axis with labels at 1, 2 and 5 of each decade: the readouts' D span decades,
    // one readout's CI a fraction of one; the two traces side by side per readout
    yaxis: axis("D (÷ median clean–clean distance)", { type: "log", dtick: "D2", tickformat: ".2~g" }),
    scattermode: "group", scattergap: 0.6, uirevision: div.id });
}

// One figure per norm of result.percept in #percept, each with its line of text
export async function drawPercept(result, norms) {
  const p = result.percept;
  const section = document.getElementById("percept");
  section.hidden = false;  // before drawing: a figure drawn hidden keeps plotly's 700 px
  const host = document.getElementById("percept-charts");
  const notes = document.getElementById("percept-notes");
  document.getElementById("percept-note").textContent = `Against ${p.source}'s predictor `
    + `(${p.scans.length} scans). Embedding: ${p.embedding}. Control: ${p.control}.`;
  const jobs = [];
  const lines = [];
  for (const [norm, row] of Object.entries(p.norms)) {
    const name = norms[norm] || norm;
    if (!row) {
      lines.push(el("p", { class: "meta" }, `${name}: no sample was clean-correct with a finite minimal adversarial.`));
      continue;
    }
    jobs.push(normFigure(host, p, norm, row, name));
    lines.push(sentence(row, name));
  }
  notes.replaceChildren(...lines);
  await Promise.all(jobs);
}
